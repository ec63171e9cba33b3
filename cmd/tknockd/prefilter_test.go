package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tknock/tknock/listener"
)

// TestOpenPrefilter checks the three settings of prefilter against a
// prefilter that the kernel refuses: "off" never tries, "auto" falls back
// to the classic filter with a warning, "on" fails with an error that says
// so.
func TestOpenPrefilter(t *testing.T) {
	refused := errors.New("prefilter: load the ethernet program: operation not permitted")
	for _, c := range []struct {
		setting   string
		wantTried bool
		wantErr   string
		wantLog   string
	}{
		{"off", false, "", ""},
		{"auto", true, "", "prefilter unavailable"},
		{"on", true, `operation not permitted (prefilter = "on"`, ""},
	} {
		t.Run(c.setting, func(t *testing.T) {
			var logBuf bytes.Buffer
			tried := false
			var hold time.Duration
			dp := deps{openPrefilter: func(h time.Duration) (*listener.Prefilter, error) {
				tried, hold = true, h
				return nil, refused
			}}
			cfg := &Config{Prefilter: c.setting, SeqTimeout: 7 * time.Second}
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
		})
	}
}
