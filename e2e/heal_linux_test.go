package e2e

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/internal/nstest"
)

// TestFlushHeals flushes the server's whole ruleset, as nftables.service
// and `nft -f /etc/nftables.conf` do, under a running daemon: within a
// second the protected port is closed to strangers again, the client
// granted before still gets in, and a new knock opens.
func TestFlushHeals(t *testing.T) {
	forFamilies(t, func(t *testing.T, e *env) {
		e.serve(sshPort)
		e.serve(webPort)
		alice := e.enroll("alice", params{Proto: inet.TCP, Services: []string{"ssh"}})
		bob := e.enroll("bob", params{Proto: inet.TCP, Services: []string{"web"}})
		services := map[string][]string{"ssh": {fmt.Sprintf("tcp/%d", sshPort)}, "web": {fmt.Sprintf("tcp/%d", webPort)}}
		d := e.startDaemon(e.writeConfig(config{OpenFor: time.Minute, Services: services, DropKnocks: ptr(true)}))

		m := d.mark()
		e.knockOpens(d, alice, "ssh")
		e.mustConnect(e.client, sshPort)
		e.mustRefuse(e.stranger, sshPort)
		e.mustRefuse(e.client, webPort)

		flushed := time.Now()
		e.server.MustRun(t, "nft", "flush", "ruleset")
		took := waitTable(t, e.server, flushed.Add(time.Second))
		t.Logf("table back %v after nft flush ruleset", took)
		e.mustRefuse(e.stranger, sshPort)
		e.mustConnect(e.client, sshPort)
		if l, err := d.waitFrom(m, time.Second, "the rebuild", isEvent("table_rebuilt")); err != nil {
			t.Error(err)
		} else if l.str("grants_restored") != "1" {
			t.Errorf("rebuild line %v: want grants_restored 1", l)
		}

		e.knockOpens(d, bob, "web")
		e.mustConnect(e.client, webPort)
		e.mustRefuse(e.stranger, webPort)
	})
}

// knockOpens knocks for u's service from the client and fails the test
// unless the daemon logs the opening within 5 s.
func (e *env) knockOpens(d *daemon, u *user, service string) {
	e.t.Helper()
	m := d.mark()
	e.knock(u, service)
	if _, err := d.waitFrom(m, 5*time.Second, "an opening for "+u.enr.Name, isOpen(u.enr.Name, service)); err != nil {
		e.t.Fatal(err)
	}
}

// waitTable polls the server's ruleset until the table tknock is back
// with its chains, and fails the test if that is not so by deadline. It
// returns how long it took from the flush.
func waitTable(t *testing.T, ns *nstest.NS, deadline time.Time) time.Duration {
	t.Helper()
	start := deadline.Add(-time.Second)
	for {
		out, err := ns.Run("nft", "list", "table", "inet", "tknock")
		if err == nil && strings.Contains(out, "chain prerouting") && strings.Contains(out, "chain closed") {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			t.Fatalf("table inet tknock not back 1s after nft flush ruleset (nft list: %v)", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestFloodConntrack sends 100 000 TCP SYNs from random spoofed sources to
// random ports of the server while the daemon runs, and a knock during the
// flood: the knock opens, and the server's connection tracking table holds
// fewer than 5 000 entries throughout. Then the same with a host ruleset
// that uses conntrack itself, and a flood at the protected port and the
// knock range: tknock's drops come before conntrack, so they add nothing.
func TestFloodConntrack(t *testing.T) {
	t.Parallel()
	nstest.RequireTool(t, "trafgen")
	e := newEnv(t, v4)
	// Spoofed sources arrive on the stranger's link: no reverse-path
	// filter, so they go as far as a real host lets them.
	e.server.MustRun(t, "sysctl", "-q", "-w", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf."+e.srvToStranger+".rp_filter=0")
	e.serve(sshPort)
	alice := e.enroll("alice", params{Proto: inet.TCP})
	d := e.startDaemon(e.writeConfig(config{OpenFor: time.Minute, DropKnocks: ptr(true)}))

	peak := e.flood("dp=drnd(1, 65535)", func() {
		m := d.mark()
		e.knock(alice, "ssh")
		if _, err := d.waitFrom(m, 5*time.Second, "an opening during the flood", isOpen("alice", "ssh")); err != nil {
			t.Error(err)
		}
	})
	t.Logf("random-port flood: conntrack peak %d entries", peak)
	if peak >= 5000 {
		t.Errorf("conntrack held %d entries during a random-port flood, want under 5000", peak)
	}
	e.mustConnect(e.client, sshPort)

	// The host's own ruleset turns conntrack on.
	e.server.MustRun(t, "nft", "-f", e.writeFile("host.nft", `table inet host {
	chain input {
		type filter hook input priority filter; policy accept;
		ct state established,related accept
	}
}
`, 0o600))
	for _, dp := range []string{
		fmt.Sprintf("dp=%d", sshPort),
		fmt.Sprintf("dp=drnd(%d, %d)", knockLo, knockHi),
	} {
		peak := e.flood(dp, nil)
		t.Logf("flood %s with the host's conntrack on: peak %d entries", dp, peak)
		if peak >= 5000 {
			t.Errorf("conntrack held %d entries during a flood %s that tknock drops, want under 5000", peak, dp)
		}
	}
	// The control: the same flood at a port tknock leaves alone does fill
	// the host's conntrack table, so the count above is measured, not
	// missed.
	if peak := e.flood("dp=9", nil); peak < 5000 {
		t.Errorf("control: a flood at an unprotected port with the host's conntrack on left %d entries; want many (is the count read?)", peak)
	} else {
		t.Logf("control: flood at unprotected tcp/9 with the host's conntrack on: peak %d entries", peak)
	}
}

// flood sends 100 000 TCP SYNs from random sources in 10.0.0.0/8 to the
// server, from the stranger's namespace, at 50 000 per second; during it
// runs during (if not nil) and samples the server's conntrack count, whose
// peak it returns. The flood is bounded by its count and by 20 s.
func (e *env) flood(dport string, during func()) int {
	t := e.t
	t.Helper()
	conf := fmt.Sprintf(`{
  eth(da=%s),
  ipv4(sa=10.0.0.0, sa[1]=drnd(), sa[2]=drnd(), sa[3]=drnd(), da=%s, ttl=64),
  tcp(sp=drnd(1024, 65535), %s, seq=drnd(), syn, win=64240)
}
`, e.mac(e.server, e.srvToStranger), e.serverAddr, dport)
	path := e.writeFile("flood.cfg", conf, 0o600)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := e.stranger.Command(ctx, "trafgen", "--no-sock-mem", "--notouch-irq", "--no-cpu-stats", "--cpus", "1",
		"--dev", e.strangerIf, "--conf", path, "--num", "100000", "--rate", "50000pps")
	// trafgen sends from a child: the whole process group is stopped.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("trafgen: %v", err)
	}
	var (
		mu   sync.Mutex
		peak int
	)
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			n := conntrackCount(e.server)
			mu.Lock()
			peak = max(peak, n)
			mu.Unlock()
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	if during != nil {
		time.Sleep(300 * time.Millisecond) // into the flood
		during()
	}
	err := cmd.Wait()
	close(stop)
	<-sampled
	if err != nil {
		t.Fatalf("trafgen: %v\n%s", err, out.String())
	}
	peak = max(peak, conntrackCount(e.server))
	return peak
}

// conntrackCount returns the number of conntrack entries in ns: 0 when
// connection tracking is not loaded at all.
func conntrackCount(ns *nstest.NS) int {
	out, err := ns.Run("cat", "/proc/sys/net/netfilter/nf_conntrack_count")
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(out))
	return n
}
