package daemon

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rs/zerolog"

	"github.com/tknock/tknock/internal/config"
	"github.com/tknock/tknock/internal/config/configtest"
	"github.com/tknock/tknock/internal/nstest"
	"github.com/tknock/tknock/listener/capture"
)

// TestOpenPrefilter checks the three settings of prefilter against a
// prefilter that the kernel refuses: "off" never tries, "auto" falls back
// to the classic filter with a warning that says why (the error's first
// line: the verifier's log goes to debug) and what it costs, "on" fails
// with an error that says so.
func TestOpenPrefilter(t *testing.T) {
	refused := errors.New("prefilter: load the ethernet program: operation not permitted\n\t0: R1=ctx() R10=fp0")
	for _, c := range []struct {
		setting   string
		wantTried bool
		wantErr   string
		wantLog   string
	}{
		{"off", false, "", ""},
		{"auto", true, "", "prefilter unavailable"},
		{"on", true, `R10=fp0 (prefilter = "on"`, ""},
	} {
		t.Run(c.setting, func(t *testing.T) {
			var logBuf bytes.Buffer
			tried := false
			var hold time.Duration
			dp := deps{openPrefilter: func(h time.Duration) (*capture.Prefilter, error) {
				tried, hold = true, h
				return nil, refused
			}}
			cfg := &config.Config{Prefilter: c.setting, SeqTimeout: 7 * time.Second}
			pf, err := openPrefilter(cfg, dp, zerolog.New(&logBuf))
			if pf != nil {
				t.Errorf("prefilter %v, want none", pf)
			}
			if tried != c.wantTried {
				t.Errorf("tried to load: %v, want %v", tried, c.wantTried)
			}
			if tried && hold != cfg.SeqTimeout {
				t.Errorf("hold %v, want seq_timeout %v", hold, cfg.SeqTimeout)
			}
			switch {
			case c.wantErr == "" && err != nil:
				t.Errorf("error %v, want none", err)
			case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
				t.Errorf("error %v, want one containing %q", err, c.wantErr)
			}
			if got := logBuf.String(); c.wantLog != "" && !strings.Contains(got, c.wantLog) || c.wantLog == "" && got != "" {
				t.Errorf("log %q, want %q", got, c.wantLog)
			}
			if c.setting != "auto" {
				return
			}
			var warn, debug map[string]any
			for line := range strings.Lines(logBuf.String()) {
				var l map[string]any
				if err := json.Unmarshal([]byte(line), &l); err != nil {
					t.Fatalf("log line %q: %v", line, err)
				}
				switch l["level"] {
				case "warn":
					warn = l
				case "debug":
					debug = l
				}
			}
			if warn["error"] != "prefilter: load the ethernet program: operation not permitted" {
				t.Errorf("warning %v, want the error's first line as its error", warn)
			}
			if cost := fmt.Sprint(warn["cost"]); !strings.Contains(cost, "every knock into the knock ranges") {
				t.Errorf("warning %v, want it to say what the fallback costs", warn)
			}
			if debug["detail"] != "\t0: R1=ctx() R10=fp0" {
				t.Errorf("debug line %v, want the rest of the error as its detail", debug)
			}
		})
	}
}

// TestDaemonPrefilterReload runs the daemon with a real prefilter (root)
// beside the fake capture: it loads with seq_timeout as its hold, reports
// it in the metrics, and a reload that changes seq_timeout changes the
// hold; a reload that turns the prefilter off warns that it takes effect
// at the next restart.
func TestDaemonPrefilterReload(t *testing.T) { synctest.Test(t, testDaemonPrefilterReload) }

func testDaemonPrefilterReload(t *testing.T) {
	nstest.RequireRoot(t)
	c0 := configtest.New(t, "")
	alice := configtest.Enrollment(t, c0, "alice", "ssh")
	var pf *capture.Prefilter
	h := startHarnessDeps(t, "", func(dp *deps) {
		dp.openPrefilter = func(hold time.Duration) (*capture.Prefilter, error) {
			p, err := capture.NewPrefilter(hold)
			pf = p
			return p, err
		}
	}, alice)
	if pf == nil {
		t.Fatal("the daemon did not open the prefilter")
	}
	given := h.net.Prefilter()
	if given != pf {
		t.Errorf("the capture was opened with prefilter %p, want the daemon's %p", given, pf)
	}
	h.waitLog("the prefilter line", func(l map[string]any) bool {
		return strings.HasPrefix(fmt.Sprint(l["message"]), "prefilter loaded") && l["hold"] == "10s"
	})
	h.waitLog("the ready line", func(l map[string]any) bool { return l["message"] == "ready" && l["prefilter"] == true })
	h.wantMetrics("tknock_prefilter_active 1", "tknock_prefilter_hold_seconds 10", "tknock_knocks_received_total 0")

	good, err := os.ReadFile(h.cfg.Path)
	if err != nil {
		t.Fatal(err)
	}
	conf := strings.Replace(string(good), "realm", "seq_timeout = \"5s\"\ngap_max = \"2s\"\nprefilter = \"off\"\nrealm", 1)
	if err := os.WriteFile(h.cfg.Path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	m := h.mark()
	h.hup <- os.Interrupt
	h.waitLogFrom(m, "a reload line", event("reload"))
	if got := pf.Hold(); got != 5*time.Second {
		t.Errorf("prefilter hold after a reload to seq_timeout 5s: %v", got)
	}
	h.wantMetrics("tknock_prefilter_hold_seconds 5")
	l := h.waitLogFrom(m, "the restart-only warning", func(l map[string]any) bool { return l["level"] == "warn" })
	if !strings.Contains(fmt.Sprint(l["fields"]), "prefilter") {
		t.Errorf("restart-only warning %v, want it to name prefilter", l)
	}
}
