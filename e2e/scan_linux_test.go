package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/internal/nstest"
)

// TestScan runs nmap from the stranger's namespace: a SYN scan of every
// TCP port and a UDP scan of the knock range, at a bounded rate. The scans
// sweep every anchor port of both users and open nothing; the protected
// ports show as filtered and stay closed to the stranger; the client still
// gets in afterwards.
func TestScan(t *testing.T) {
	nstest.RequireTool(t, "nmap")
	forFamilies(t, func(t *testing.T, e *env) {
		e.serve(sshPort)
		e.serve(webPort)
		alice := e.enroll("alice", params{Proto: inet.TCP, Services: []string{"ssh"}})
		e.enroll("bob", params{Proto: inet.UDP, Services: []string{"web"}})
		services := map[string][]string{"ssh": {"tcp/2222"}, "web": {"tcp/8080"}}
		d := e.startDaemon(e.writeConfig(config{Services: services, DropKnocks: ptr(true), Metrics: true, MetricsDebug: true}))

		m := d.mark()
		out := e.nmap("-sS", "-p-", "--min-rate", "5000", "--max-rate", "20000")
		if ports := openPorts(out); len(ports) > 0 {
			t.Errorf("SYN scan of every port found open ports %v; want none:\n%s", ports, out)
		}
		out = e.nmap("-sU", "-p", fmt.Sprintf("%d-%d", knockLo, knockHi), "--min-rate", "2000", "--max-rate", "5000")
		if ports := openPorts(out); len(ports) > 0 {
			t.Errorf("UDP scan of the knock range found open ports %v; want none:\n%s", ports, out)
		}
		out = e.nmap("-sS", "-p", fmt.Sprintf("%d,%d", sshPort, webPort))
		for _, port := range []uint16{sshPort, webPort} {
			if state := portState(out, port, "tcp"); state != "filtered" {
				t.Errorf("protected port %d after the scans: %q, want filtered:\n%s", port, state, out)
			}
		}

		e.marker(d, e.stranger, e.strangerAddr, alice)
		if got := d.since(m, isEvent("open")); len(got) != 0 {
			t.Errorf("the scans opened: %s", got[0].raw)
		}
		e.mustRefuse(e.stranger, sshPort)
		e.mustRefuse(e.stranger, webPort)

		// The daemon did see the scans: every port of the knock range,
		// for TCP and for UDP, and with them the anchor ports of both
		// users, which started sequences that went nowhere. Its eBPF
		// prefilter (root, so prefilter = "auto" loads it) dropped in the
		// kernel the stranger's knocks before its first anchor; it passed
		// the rest, the stranger's source having knocked at an anchor.
		// (The per-knock counters are metrics.debug's.)
		metrics := d.metrics()
		dropped, ok := metrics["tknock_prefilter_dropped_total"]
		if !ok {
			t.Errorf("no tknock_prefilter_dropped_total metric: the prefilter did not load")
		}
		if got, want := metrics["tknock_knock_packets_total"]+dropped, float64(2*(knockHi-knockLo+1)); got < want {
			t.Errorf("tknock_knock_packets_total + tknock_prefilter_dropped_total = %v after the scans, want at least %v", got, want)
		}
		if got := metrics["tknock_sequences_started_total"]; got < 2 {
			t.Errorf("tknock_sequences_started_total = %v after the scans, want at least 2 (both users' anchors were hit)", got)
		}
		for name, v := range metrics {
			if strings.HasPrefix(name, "tknock_openings_total") && v != 0 {
				t.Errorf("%s = %v after the scans, want 0", name, v)
			}
		}

		m = d.mark()
		e.knock(alice, "ssh")
		if _, err := d.waitFrom(m, 5*time.Second, "an opening for alice after the scans", isOpen("alice", "ssh")); err != nil {
			t.Fatal(err)
		}
		e.mustConnect(e.client, sshPort)
	})
}

// nmap scans the server from the stranger's namespace and returns nmap's
// grepable output. Without name resolution or host discovery, with one
// retry, and bounded in time.
func (e *env) nmap(args ...string) string {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	all := []string{"-n", "-Pn", "--max-retries", "1", "--host-timeout", "90s", "-oG", "-"}
	if e.fam == v6 {
		all = append(all, "-6")
	}
	all = append(append(all, args...), e.serverAddr.String())
	start := time.Now()
	out, err := e.stranger.Command(ctx, "nmap", all...).CombinedOutput()
	if err != nil {
		e.t.Fatalf("nmap %s: %v\n%s", strings.Join(all, " "), err, out)
	}
	e.t.Logf("nmap %s: %v", strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
	return string(out)
}

// nmapPorts returns the port entries of nmap's grepable output:
// "2222/filtered/tcp//EtherNetIP-1///" split at the slashes.
func nmapPorts(out string) [][]string {
	var ports [][]string
	for line := range strings.Lines(out) {
		_, list, ok := strings.Cut(line, "Ports: ")
		if !ok {
			continue
		}
		list, _, _ = strings.Cut(list, "\t")
		for entry := range strings.SplitSeq(list, ", ") {
			if f := strings.Split(strings.TrimSpace(entry), "/"); len(f) >= 3 {
				ports = append(ports, f)
			}
		}
	}
	return ports
}

// openPorts lists the ports nmap reported open (not "open|filtered").
func openPorts(out string) []string {
	var open []string
	for _, f := range nmapPorts(out) {
		if f[1] == "open" {
			open = append(open, f[0]+"/"+f[2])
		}
	}
	return open
}

// portState returns nmap's state of one port ("" when not listed).
func portState(out string, port uint16, proto string) string {
	for _, f := range nmapPorts(out) {
		if f[0] == fmt.Sprint(port) && f[2] == proto {
			return f[1]
		}
	}
	return ""
}
