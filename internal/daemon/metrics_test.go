package daemon

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

func TestExpo(t *testing.T) {
	var e expo
	e.counter("tknock_frames_total", "Frames read.", 42)
	e.counter("tknock_big_total", "Big.", 12345678901)
	e.family("tknock_rejected_total", "counter", "Rejected sequences,\nby reason \\ kind.")
	e.sample("tknock_rejected_total", 3, "reason", "replay")
	e.sample("tknock_rejected_total", 0, "reason", `a"b\c`+"\n", "x", "y")
	e.gauge("tknock_rebuild_seconds", "Last rebuild.", 0.00125)
	want := `# HELP tknock_frames_total Frames read.
# TYPE tknock_frames_total counter
tknock_frames_total 42
# HELP tknock_big_total Big.
# TYPE tknock_big_total counter
tknock_big_total 12345678901
# HELP tknock_rejected_total Rejected sequences,\nby reason \\ kind.
# TYPE tknock_rejected_total counter
tknock_rejected_total{reason="replay"} 3
tknock_rejected_total{reason="a\"b\\c\n",x="y"} 0
# HELP tknock_rebuild_seconds Last rebuild.
# TYPE tknock_rebuild_seconds gauge
tknock_rebuild_seconds 0.00125
`
	if got := e.buf.String(); got != want {
		t.Errorf("exposition:\n%s\nwant:\n%s", got, want)
	}
}

func TestServeMetrics(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		errc <- serveMetrics(ctx, ln, metricsHandler(func(e *expo) { e.counter("x_total", "X.", 7) }), zerolog.Nop())
	}()
	resp, err := http.Get("http://" + ln.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "x_total 7\n") ||
		!strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Errorf("GET /metrics: %s %q\n%s", resp.Status, resp.Header.Get("Content-Type"), body)
	}
	resp, err = http.Get("http://" + ln.Addr().String() + "/other")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("GET /other: %s, want 404", resp.Status)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Errorf("serveMetrics after cancel: %v", err)
	}
	if _, err := http.Get("http://" + ln.Addr().String() + "/metrics"); err == nil {
		t.Errorf("metrics still served after the context ended")
	}
}
