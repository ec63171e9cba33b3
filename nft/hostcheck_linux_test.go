package nft

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/tknock/tknock/inet"
)

// TestCheckHost loads host rulesets into a namespace and checks which
// protected endpoints CheckHost reports as dropped.
func TestCheckHost(t *testing.T) {
	cfg := Config{Protected: []Endpoint{
		{inet.TCP, 22}, {inet.TCP, 443}, {inet.TCP, 2222}, {inet.TCP, 8050}, {inet.UDP, 5353}, {inet.UDP, 22},
	}}
	for _, tc := range []struct {
		name    string
		ruleset string
		want    []string // the endpoint lists of the warnings
	}{
		{"no host firewall", "", nil},
		{"policy accept", `table inet filter {
	chain input { type filter hook input priority filter; policy accept; }
}`, nil},
		// The usual ufw set-up, written natively: default drop, loopback
		// and established traffic accepted, then the user's rules in a
		// chain of their own.
		{"default drop allowing ssh", `table inet filter {
	chain input {
		type filter hook input priority filter; policy drop;
		iif "lo" accept
		ct state established,related accept
		jump user-input
	}
	chain user-input {
		tcp dport 22 accept
		tcp dport { 80, 443 } accept
		tcp dport 8000-8100 ct state new accept
		meta l4proto . th dport { udp . 5353 } accept
		ip saddr 192.0.2.0/24 tcp dport 2222 drop
	}
}`, []string{"tcp/2222,udp/22"}},
		{"ip family, drop everything", `table ip fw {
	chain in { type filter hook input priority 0; policy drop; ct state established accept; }
}`, []string{"tcp/22,tcp/443,tcp/2222,tcp/8050,udp/22,udp/5353"}},
		{"accept all", `table ip6 fw {
	chain in { type filter hook input priority 0; policy drop; meta l4proto { tcp, udp } accept; tcp dport != 2222 accept; }
}`, []string{"tcp/2222,udp/22,udp/5353"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := newNS(t)
			if tc.ruleset != "" {
				ns.MustRun(t, "nft", "-f", writeTemp(t, tc.ruleset+"\n"))
			}
			tb := open(t, ns, cfg)
			if err := tb.Apply(cfg); err != nil {
				t.Fatal(err)
			}
			warnings, err := CheckHost(cfg, WithNetNSFd(ns.Fd(t)))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, w := range warnings {
				_, rest, _ := strings.Cut(w, "accepts none of ")
				eps, _, _ := strings.Cut(rest, ":")
				got = append(got, eps)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("CheckHost endpoints: (-want +got)\n%s\nwarnings: %q", diff, warnings)
			}
		})
	}
}

// TestCheckHostLocalPorts: a UDP knock range that the table drops must
// not overlap the host's ephemeral ports, read in the namespace.
func TestCheckHostLocalPorts(t *testing.T) {
	ns := newNS(t)
	ns.MustRun(t, "sysctl", "-q", "-w", "net.ipv4.ip_local_port_range=40500 60999")
	cfg := Config{
		Protected:  []Endpoint{{inet.TCP, 22}},
		Knocks:     []inet.Range{{Proto: inet.UDP, Lo: 40000, Hi: 40999}, {Proto: inet.TCP, Lo: 40000, Hi: 40999}, {Proto: inet.UDP, Lo: 10000, Hi: 32767}},
		DropKnocks: true,
	}
	warnings, err := CheckHost(cfg, WithNetNSFd(ns.Fd(t)))
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 1 || !strings.HasPrefix(warnings[0], "knock range udp/40000-40999 overlaps") || !strings.Contains(warnings[0], "40500-60999") {
		t.Errorf("CheckHost = %q, want one warning for udp/40000-40999 naming 40500-60999", warnings)
	}
	cfg.DropKnocks = false
	if warnings, err := CheckHost(cfg, WithNetNSFd(ns.Fd(t))); err != nil || len(warnings) != 0 {
		t.Errorf("CheckHost without DropKnocks = %q, %v; want no warning", warnings, err)
	}
}
