package main

import (
	"os"
	"strings"
	"testing"

	"github.com/tknock/tknock/internal/config/configtest"
)

// TestCheckConfigMetrics: check-config refuses a metrics address beyond
// loopback and says why, and says where and how the metrics are served.
func TestCheckConfigMetrics(t *testing.T) {
	for _, tt := range []struct {
		name, metrics string
		code          int
		want          string
	}{
		{"any address", "listen = \"0.0.0.0:9121\"", 1,
			`field metrics.listen: "0.0.0.0:9121" is not a loopback address: whoever reaches the endpoint reads the daemon's counters, so it listens on 127.0.0.1, ::1, localhost or a unix: socket unless metrics.allow_remote = true says otherwise`},
		{"allowed", "listen = \"0.0.0.0:9121\"\nallow_remote = true", 0, ", metrics on 0.0.0.0:9121, published every 1m0s (allow_remote: reachable beyond loopback)"},
		{"loopback", "listen = \"127.0.0.1:9121\"\nwindow = \"30s\"", 0, ", metrics on 127.0.0.1:9121, published every 30s\n"},
		{"socket", "listen = \"unix:/run/tknockd/metrics.sock\"", 0, ", metrics on unix:/run/tknockd/metrics.sock, published every 1m0s (socket mode 0600)"},
		{"debug", "listen = \"127.0.0.1:9121\"\ndebug = true", 0, "WARNING: metrics.debug publishes per-knock counters, an oracle of the anchor ports"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := configtest.New(t, "interfaces = [\"lo\"]")
			doc, err := os.ReadFile(c.Path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(c.Path, append(doc, "[metrics]\n"+tt.metrics+"\n"...), 0o600); err != nil {
				t.Fatal(err)
			}
			code, out, errOut := runCLI(t, "check-config", "--config", c.Path)
			if code != tt.code || !strings.Contains(out+errOut, tt.want) {
				t.Errorf("check-config: exit %d, stdout %q, stderr %q; want exit %d and %q", code, out, errOut, tt.code, tt.want)
			}
		})
	}
}
