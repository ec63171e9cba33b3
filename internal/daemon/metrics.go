package daemon

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// expo writes the Prometheus text exposition format (version 0.0.4), the
// few parts of it the daemon needs: counters and gauges, with labels.
type expo struct {
	buf bytes.Buffer
}

// family starts a metric family: its HELP and TYPE lines. typ is "counter"
// or "gauge".
func (e *expo) family(name, typ, help string) {
	e.buf.WriteString("# HELP " + name + " " + escapeHelp(help) + "\n")
	e.buf.WriteString("# TYPE " + name + " " + typ + "\n")
}

// sample writes one sample of the family started last. labels are name,
// value pairs.
func (e *expo) sample(name string, v float64, labels ...string) {
	e.buf.WriteString(name)
	if len(labels) > 0 {
		e.buf.WriteByte('{')
		for i := 0; i+1 < len(labels); i += 2 {
			if i > 0 {
				e.buf.WriteByte(',')
			}
			e.buf.WriteString(labels[i] + `="` + escapeLabel(labels[i+1]) + `"`)
		}
		e.buf.WriteByte('}')
	}
	e.buf.WriteByte(' ')
	e.buf.WriteString(strconv.FormatFloat(v, 'f', -1, 64)) // 1000000, not 1e+06
	e.buf.WriteByte('\n')
}

// counter writes a family with a single unlabelled counter sample.
func (e *expo) counter(name, help string, v uint64) {
	e.family(name, "counter", help)
	e.sample(name, float64(v))
}

// gauge writes a family with a single unlabelled gauge sample.
func (e *expo) gauge(name, help string, v float64) {
	e.family(name, "gauge", help)
	e.sample(name, v)
}

var (
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)

func escapeHelp(s string) string  { return helpEscaper.Replace(s) }
func escapeLabel(s string) string { return labelEscaper.Replace(s) }

// metricsHandler serves what collect writes, as GET /metrics.
func metricsHandler(collect func(*expo)) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		var e expo
		collect(&e)
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		w.Write(e.buf.Bytes())
	})
	return mux
}

// serveMetrics serves h on ln until ctx is done, then shuts the server
// down, giving requests in flight a second.
func serveMetrics(ctx context.Context, ln net.Listener, h http.Handler, log zerolog.Logger) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		ErrorLog:          nil,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info().Str("addr", ln.Addr().String()).Msg("metrics listening")
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}
