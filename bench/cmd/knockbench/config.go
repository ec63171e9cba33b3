package main

import (
	"crypto/rand"
	"fmt"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/tknock/tknock/internal/config"
	"github.com/tknock/tknock/internal/enrollfile"
	"github.com/tknock/tknock/totpseq"
)

// Fixed settings of the benchmarked daemon.
const (
	benchRealm    = "bench.tknock.test"
	benchUser     = "bench"
	benchService  = "ssh"
	protectedPort = 2222
	metricsAddr   = "127.0.0.1:9121"
	nftTable      = "tknock"
)

// benchMemoryLimit is the daemon's memory_limit: the spray part runs it
// with sprayUsers users, whose estimate (tknockd check-config prints it)
// is about 380 MiB; deploy/tknockd.toml documents 512MiB for 100 000
// users. Set rather than left to the default so that the spray's row
// compares the daemon with a fixed cap (TestBenchMemoryLimit checks
// that the estimate fits under it); for the other parts, with one user,
// it is only a cap far above their use.
const benchMemoryLimit = 512 << 20

// daemonConfig is what the harness sets in the daemon's configuration
// file; everything else keeps the daemon's defaults, which is what is
// measured.
type daemonConfig struct {
	UsersDir   string
	Interfaces []string
	Host       netip.Addr // what the enrollment's clients knock at
	OpenFor    time.Duration
	// MemoryLimit is memory_limit in bytes; 0 leaves it out (the
	// daemon's default, derived from its estimate).
	MemoryLimit int64
}

// TOML returns the configuration file (cmd/tknockd's format, documented in
// deploy/).
func (c daemonConfig) TOML() string {
	var b strings.Builder
	fmt.Fprintf(&b, "realm = %s\n", strconv.Quote(benchRealm))
	fmt.Fprintf(&b, "users_dir = %s\n", strconv.Quote(c.UsersDir))
	quoted := make([]string, len(c.Interfaces))
	for i, s := range c.Interfaces {
		quoted[i] = strconv.Quote(s)
	}
	fmt.Fprintf(&b, "interfaces = [%s]\n", strings.Join(quoted, ", "))
	if c.OpenFor > 0 {
		fmt.Fprintf(&b, "open_for = %s\n", strconv.Quote(c.OpenFor.String()))
	}
	if c.MemoryLimit > 0 {
		fmt.Fprintf(&b, "memory_limit = %s\n", strconv.Quote(config.FormatSize(c.MemoryLimit)))
	}
	fmt.Fprintf(&b, "\n[enroll]\nhost = %s\n", strconv.Quote(c.Host.String()))
	fmt.Fprintf(&b, "\n[services]\n%s = [\"tcp/%d\"]\n", benchService, protectedPort)
	fmt.Fprintf(&b, "\n[firewall]\nmode = \"table\"\ntable = %s\ndrop_knocks = true\n", strconv.Quote(nftTable))
	b.WriteString("\n[log]\nlevel = \"info\"\nformat = \"json\"\n")
	// debug: the harness counts the knocks the daemon processed and the
	// sources it tracks, per-knock counters the daemon publishes only
	// with metrics.debug (see deploy/README.md).
	fmt.Fprintf(&b, "\n[metrics]\nlisten = %s\ndebug = true\n", strconv.Quote(metricsAddr))
	return b.String()
}

// writeEnrollment makes a fresh enrollment with tknockd's defaults (length 5)
// for the benchmark's realm and service and writes it to dir/NAME.uri
// (mode 0600), as `tknockd enroll` would.
func writeEnrollment(dir, name string, host netip.Addr) (*totpseq.Enrollment, string, error) {
	p := totpseq.Defaults()
	p.Length = 5 // tknockd's default: the protocol's 4 is under totpseq.MinBits
	p.Realm = benchRealm
	p.Services = []string{benchService}
	e, err := totpseq.NewEnrollment(name, host.String(), p, rand.Reader)
	if err != nil {
		return nil, "", fmt.Errorf("enrollment %s: %w", name, err)
	}
	path := filepath.Join(dir, name+".uri")
	if err := enrollfile.Write(path, e); err != nil {
		return nil, "", err
	}
	return e, path, nil
}

// anchorPorts returns the anchor ports of service for the windows
// now-skew .. now+skew, deduplicated, oldest window first.
func anchorPorts(p *totpseq.Params, service string, now time.Time, skew int) ([]uint16, error) {
	w := totpseq.Window(now, p.Period)
	var ports []uint16
	for off := -skew; off <= skew; off++ {
		a, err := totpseq.Anchor(p, service, uint64(int64(w)+int64(off)))
		if err != nil {
			return nil, err
		}
		dup := false
		for _, q := range ports {
			dup = dup || q == a
		}
		if !dup {
			ports = append(ports, a)
		}
	}
	return ports, nil
}
