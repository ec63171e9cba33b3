package main

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tknock/tknock/listener"
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

// TestRejectFloodIsSampled: a flood of rejected sequences (a replay from
// spoofed sources, say) writes a bounded number of lines; openings are
// never sampled.
func TestRejectFloodIsSampled(t *testing.T) {
	var buf syncBuffer
	log := zerolog.New(&buf)
	d := &daemon{log: log, rejects: log.Sample(newSampler()), fw: newFakeFirewall(), openings: map[string]uint64{}, deps: deps{now: time.Now}}
	c := testConfig(t, "")
	d.cfg.Store(c)
	d.prev.Store(c)
	const n = 10000
	src := netip.MustParseAddr("192.0.2.7")
	for range n {
		d.emit(listener.Event{Kind: listener.Replay, User: "alice", Service: "ssh", Src: src, Time: time.Now()})
	}
	rejects := strings.Count(buf.String(), `"event":"reject"`)
	if hi := sampleBurst*2 + n/sampleEvery; rejects > hi || rejects < sampleBurst {
		t.Errorf("%d reject lines for %d rejections, want %d..%d", rejects, n, sampleBurst, hi)
	}
	for range 300 {
		d.emit(listener.Event{Kind: listener.Opened, User: "alice", Service: "ssh", Src: src, Time: time.Now()})
	}
	if opens := strings.Count(buf.String(), `"event":"open"`); opens != 300 {
		t.Errorf("%d open lines for 300 openings: openings must all be logged", opens)
	}
	if delays := strings.Count(buf.String(), `"delay_ms":`); delays != 300 {
		t.Errorf("%d of 300 open lines give the delay since the last knock", delays)
	}
}
