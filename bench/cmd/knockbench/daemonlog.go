package main

import "encoding/json"

// What the harness reads of the daemon's output: its JSON log lines and
// its metrics.

// logEvent is the part of a daemon log line the harness reads.
type logEvent struct {
	Event   string `json:"event"`
	Message string `json:"message"`
	Src     string `json:"src"`
	User    string `json:"user"`
	// DelayMs is, on an "open" line, how long after the kernel received
	// the last knock the grant was in place (nil when the daemon does not
	// say).
	DelayMs *float64 `json:"delay_ms"`
}

// parseLogEvent decodes a JSON log line. The daemon's "ready" line may
// carry it as the event or as the message.
func parseLogEvent(line []byte) (logEvent, bool) {
	if len(line) == 0 || line[0] != '{' {
		return logEvent{}, false
	}
	var ev logEvent
	if err := json.Unmarshal(line, &ev); err != nil {
		return logEvent{}, false
	}
	if ev.Event == "" && ev.Message == "ready" {
		ev.Event = "ready"
	}
	return ev, ev.Event != ""
}

// Names of the daemon's metrics, tried in order (see Metrics.Find).
var (
	metricKnocks   = []string{"tknock_knock_packets_total", "tknockd_knock_packets_total", "*knock_packets*"}
	metricDrops    = []string{"tknock_capture_drops_total", "tknockd_capture_drops_total", "*capture_drop*"}
	metricPrefilt  = []string{"tknock_prefilter_dropped_total"}
	metricTracked  = []string{"tknock_tracked_sources", "tknockd_tracked_sources"}
	metricCapacity = []string{"tknock_tracked_sources_capacity", "tknockd_tracked_sources_capacity"}
)

// counter returns the sum of the first metric of names that the scrape
// has; ok is false when it has none of them.
func counter(m Metrics, names []string) (float64, bool) {
	n, ok := m.Find(names...)
	if !ok {
		return 0, false
	}
	return m.Sum(n)
}
