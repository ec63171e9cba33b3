package config

import (
	"os"
	"os/user"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const metricsTop = "realm = \"r.example\"\n[services]\nssh = [\"tcp/22\"]\n"

func TestMetricsConfig(t *testing.T) {
	g, err := user.LookupGroupId(strconv.Itoa(os.Getgid()))
	if err != nil {
		t.Fatalf("the process's group: %v", err)
	}
	gid := os.Getgid()
	for _, tt := range []struct {
		name, doc string
		want      MetricsConfig
	}{
		{"none", "", MetricsConfig{SocketGID: -1, Window: time.Minute}},
		{"loopback v4", "listen = \"127.0.0.1:9121\"\n", MetricsConfig{Network: "tcp", Addr: "127.0.0.1:9121", SocketGID: -1, Window: time.Minute}},
		{"loopback v6", "listen = \"[::1]:9121\"\n", MetricsConfig{Network: "tcp", Addr: "[::1]:9121", SocketGID: -1, Window: time.Minute}},
		{"localhost", "listen = \"localhost:9121\"\n", MetricsConfig{Network: "tcp", Addr: "localhost:9121", SocketGID: -1, Window: time.Minute}},
		{"remote allowed", "listen = \"0.0.0.0:9121\"\nallow_remote = true\nwindow = \"15s\"\n",
			MetricsConfig{Network: "tcp", Addr: "0.0.0.0:9121", SocketGID: -1, AllowRemote: true, Window: 15 * time.Second}},
		{"unix", "listen = \"unix:/run/tknockd/metrics.sock\"\n",
			MetricsConfig{Network: "unix", Addr: "/run/tknockd/metrics.sock", SocketGID: -1, Window: time.Minute}},
		{"unix group", "listen = \"unix:/run/tknockd/metrics.sock\"\nsocket_group = \"" + g.Name + "\"\n",
			MetricsConfig{Network: "unix", Addr: "/run/tknockd/metrics.sock", SocketGroup: g.Name, SocketGID: gid, Window: time.Minute}},
		{"debug", "listen = \"127.0.0.1:9121\"\ndebug = true\n",
			MetricsConfig{Network: "tcp", Addr: "127.0.0.1:9121", SocketGID: -1, Window: time.Minute, Debug: true}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("f.toml", []byte(metricsTop+"[metrics]\n"+tt.doc))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, c.Metrics); diff != "" {
				t.Errorf("metrics (-want +got):\n%s", diff)
			}
		})
	}
}

// TestMetricsConfigRefused: an address other than loopback needs
// allow_remote, and the error says why.
func TestMetricsConfigRefused(t *testing.T) {
	for _, tt := range []struct{ name, doc, want string }{
		{"all addresses", "listen = \":9121\"\n", `f.toml: line 5: field metrics.listen: ":9121" is not a loopback address: whoever reaches the endpoint reads the daemon's counters`},
		{"any v4", "listen = \"0.0.0.0:9121\"\n", `"0.0.0.0:9121" is not a loopback address`},
		{"public", "listen = \"192.0.2.1:9121\"\n", `metrics.allow_remote = true`},
		{"any v6", "listen = \"[::]:9121\"\n", `"[::]:9121" is not a loopback address`},
		{"relative socket", "listen = \"unix:metrics.sock\"\n", `field metrics.listen: "unix:metrics.sock": want unix: and an absolute, clean path`},
		{"group on tcp", "listen = \"127.0.0.1:9121\"\nsocket_group = \"adm\"\n", `field metrics.socket_group: "adm": only for a Unix socket`},
		{"unknown group", "listen = \"unix:/run/m.sock\"\nsocket_group = \"no-such-group-tk\"\n", `field metrics.socket_group: "no-such-group-tk": no such group`},
		{"window unit", "window = \"60\"\n", `field metrics.window: "60" is not a duration`},
		{"window short", "window = \"500ms\"\n", `field metrics.window: 500ms: want 1s to 1h0m0s`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("f.toml", []byte(metricsTop+"[metrics]\n"+tt.doc))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse: %v, want an error containing %q", err, tt.want)
			}
		})
	}
}
