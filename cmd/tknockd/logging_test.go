package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

func TestNewLogger(t *testing.T) {
	var buf strings.Builder
	l := newLogger(&buf, "auto", zerolog.InfoLevel)
	l.Info().Str("event", "open").Msg("access opened")
	l.Debug().Msg("hidden")
	var m map[string]any
	if err := json.Unmarshal([]byte(buf.String()), &m); err != nil {
		t.Fatalf("auto format on a non-terminal is not JSON: %q", buf.String())
	}
	if m["event"] != "open" || m["level"] != "info" || m["time"] == nil {
		t.Errorf("JSON line: %v", m)
	}
	buf.Reset()
	l = newLogger(&buf, "console", zerolog.DebugLevel)
	l.Warn().Str("src", "192.0.2.7").Msg("sequence rejected")
	if out := buf.String(); strings.HasPrefix(out, "{") || !strings.Contains(out, "WRN") ||
		!strings.Contains(out, "sequence rejected") || !strings.Contains(out, "src=192.0.2.7") || strings.Contains(out, "\x1b[") {
		t.Errorf("console line (no colours off a terminal): %q", out)
	}
}
