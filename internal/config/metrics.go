package config

import (
	"net"
	"net/netip"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// MetricsConfig is the [metrics] table: where the endpoint listens and what
// it publishes.
type MetricsConfig struct {
	// Network is "tcp" or "unix" (listen = "unix:/path"); Addr the
	// host:port or the socket's path. Both are "" without an endpoint.
	Network, Addr string
	// SocketGroup and SocketGID: the group given read and write access to
	// the Unix socket (mode 0660); "" and -1 leave it 0600, the daemon's
	// user alone.
	SocketGroup string
	SocketGID   int
	// AllowRemote allows a TCP address other than loopback.
	AllowRemote bool
	// Window is how often the counters of traffic and events are
	// published: each scrape shows their totals up to the end of the
	// latest whole window, never a count that moves with each knock.
	Window time.Duration
	// Debug adds the per-knock counters (the tracker's and the
	// prefilter's decisions, published live): an oracle of the anchor
	// ports for whoever can read them, for benchmarks only.
	Debug bool
}

// Limits of metrics.window.
const (
	DefaultMetricsWindow = time.Minute
	MinMetricsWindow     = time.Second
	MaxMetricsWindow     = time.Hour
)

// unixPrefix marks a Unix socket in metrics.listen.
const unixPrefix = "unix:"

// metrics validates the [metrics] table into c.
func (v *validator) metrics(c *Config, fm *fileMetrics) {
	m := &c.Metrics
	m.SocketGID, m.AllowRemote, m.Debug, m.Window = -1, fm.AllowRemote, fm.Debug, DefaultMetricsWindow
	if fm.Window != nil {
		d, err := time.ParseDuration(*fm.Window)
		switch {
		case err != nil:
			v.addf("metrics.window", "%q is not a duration: want a number with a unit, as in \"60s\"", *fm.Window)
		case d < MinMetricsWindow || d > MaxMetricsWindow:
			v.addf("metrics.window", "%v: want %v to %v", d, MinMetricsWindow, MaxMetricsWindow)
		default:
			m.Window = d
		}
	}
	l := fm.Listen
	if l == "" {
		if fm.SocketGroup != "" {
			v.addf("metrics.socket_group", "%q: set without metrics.listen = \"unix:/path\"", fm.SocketGroup)
		}
		return
	}
	c.MetricsListen = l
	if path, ok := strings.CutPrefix(l, unixPrefix); ok {
		m.Network, m.Addr = "unix", path
		if !filepath.IsAbs(path) || filepath.Clean(path) != path {
			v.addf("metrics.listen", "%q: want unix: and an absolute, clean path, as in unix:/run/tknockd/metrics.sock", l)
		}
		if g := fm.SocketGroup; g != "" {
			grp, err := user.LookupGroup(g)
			if err != nil {
				v.addf("metrics.socket_group", "%q: no such group", g)
			} else if gid, err := strconv.Atoi(grp.Gid); err == nil {
				m.SocketGroup, m.SocketGID = g, gid
			}
		}
		return
	}
	m.Network, m.Addr = "tcp", l
	if fm.SocketGroup != "" {
		v.addf("metrics.socket_group", "%q: only for a Unix socket (listen = \"unix:/path\")", fm.SocketGroup)
	}
	if err := checkListen(l); err != nil {
		v.addf("metrics.listen", "%q: %v", l, err)
		return
	}
	if !fm.AllowRemote && !loopbackHost(l) {
		v.addf("metrics.listen", "%q is not a loopback address: whoever reaches the endpoint reads the daemon's counters, "+
			"so it listens on 127.0.0.1, ::1, localhost or a unix: socket unless metrics.allow_remote = true says otherwise", l)
	}
}

// loopbackHost reports whether the host of a checked host:port is a
// loopback address or localhost. An empty host means every address.
func loopbackHost(hostport string) bool {
	host, _, _ := net.SplitHostPort(hostport)
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}
