package nft

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/tknock/tknock/inet"
)

func TestParseEndpoint(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Endpoint
	}{
		{"tcp/22", Endpoint{inet.TCP, 22}},
		{"udp/53", Endpoint{inet.UDP, 53}},
		{"tcp/65535", Endpoint{inet.TCP, 65535}},
	} {
		got, err := ParseEndpoint(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseEndpoint(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
		if s := got.String(); s != tc.in {
			t.Errorf("%v.String() = %q, want %q", got, s, tc.in)
		}
	}
	for _, tc := range []struct{ in, wantErr string }{
		{"22", "want protocol/port"},
		{"sctp/22", `protocol "sctp"`},
		{"TCP/22", `protocol "TCP"`},
		{"tcp/0", `port "0"`},
		{"tcp/65536", `port "65536"`},
		{"tcp/ssh", `port "ssh"`},
		{"tcp/", `port ""`},
	} {
		_, err := ParseEndpoint(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("ParseEndpoint(%q) error = %v, want one containing %q", tc.in, err, tc.wantErr)
		}
	}
}

func TestNormalize(t *testing.T) {
	got, err := Config{
		Protected: []Endpoint{{inet.UDP, 53}, {inet.TCP, 22}, {inet.TCP, 22}, {inet.TCP, 443}},
		Knocks: []inet.Range{
			{Proto: inet.UDP, Lo: 40000, Hi: 40999},
			{Proto: inet.TCP, Lo: 20000, Hi: 30000},
			{Proto: inet.TCP, Lo: 10000, Hi: 20000}, // overlaps the one above
			{Proto: inet.TCP, Lo: 30001, Hi: 30005}, // adjacent
			{Proto: inet.TCP, Lo: 65000, Hi: 65535}, // reaches the top: no overflow
			{Proto: inet.TCP, Lo: 65535, Hi: 65535}, // inside the one above
			{Proto: inet.UDP, Lo: 41001, Hi: 41001}, // a gap of one port: not merged
			{Proto: inet.TCP, Lo: 12000, Hi: 12001}, // inside
			{Proto: inet.UDP, Lo: 39000, Hi: 39999}, // adjacent below
			{Proto: inet.TCP, Lo: 5000, Hi: 5000},   // alone
			{Proto: inet.TCP, Lo: 40000, Hi: 40999}, // another protocol's range
			{Proto: inet.UDP, Lo: 40999, Hi: 41000}, // overlaps and extends
			{Proto: inet.UDP, Lo: 100, Hi: 100},     // alone
			{Proto: inet.TCP, Lo: 64999, Hi: 64999}, // adjacent below 65000
			{Proto: inet.TCP, Lo: 30006, Hi: 30006}, // adjacent to the merged 10000-30005
		},
	}.normalize()
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Table:     DefaultTable,
		Priority:  DefaultPriority,
		Protected: []Endpoint{{inet.TCP, 22}, {inet.TCP, 443}, {inet.UDP, 53}},
		Knocks: []inet.Range{
			{Proto: inet.TCP, Lo: 5000, Hi: 5000},
			{Proto: inet.TCP, Lo: 10000, Hi: 30006},
			{Proto: inet.TCP, Lo: 40000, Hi: 40999},
			{Proto: inet.TCP, Lo: 64999, Hi: 65535},
			{Proto: inet.UDP, Lo: 100, Hi: 100},
			{Proto: inet.UDP, Lo: 39000, Hi: 41001},
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("normalize: (-want +got)\n%s", diff)
	}
}

func TestNormalizeErrors(t *testing.T) {
	ok := []Endpoint{{inet.TCP, 22}}
	for _, tc := range []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"no protected", Config{}, "protected: no endpoints"},
		{"bad proto", Config{Protected: []Endpoint{{1, 22}}}, "protected: endpoint proto(1)/22: protocol 1"},
		{"port 0", Config{Protected: []Endpoint{{inet.TCP, 0}}}, "endpoint tcp/0: port 0"},
		{"table name", Config{Table: "tk nock", Protected: ok}, `table "tk nock"`},
		{"table name digit", Config{Table: "1tk", Protected: ok}, `table "1tk"`},
		{"priority", Config{Priority: -200, Protected: ok}, "priority -200: must be above -200"},
		{"knock lo>hi", Config{Protected: ok, Knocks: []inet.Range{{Proto: inet.TCP, Lo: 9, Hi: 8}}}, "knock range tcp/9-8: want 1 <= lo <= hi"},
		{"knock lo 0", Config{Protected: ok, Knocks: []inet.Range{{Proto: inet.UDP, Lo: 0, Hi: 8}}}, "knock range udp/0-8"},
		{"knock proto", Config{Protected: ok, Knocks: []inet.Range{{Proto: 0, Lo: 1, Hi: 8}}}, "knock range proto(0)/1-8: protocol 0"},
		{"ext family", Config{External: &ExternalSets{Family: "bridge", Table: "f", Set4: "s"}}, `external: family "bridge"`},
		{"ext no sets", Config{External: &ExternalSets{Family: "inet", Table: "f"}}, "external: no set named"},
		{"ext table", Config{External: &ExternalSets{Family: "inet", Table: "", Set4: "s"}}, `external: table ""`},
		{"ext set name", Config{External: &ExternalSets{Family: "inet", Table: "f", Set4: "a;b"}}, `external: set4 "a;b"`},
		{"ext v6 in ip", Config{External: &ExternalSets{Family: "ip", Table: "f", Set6: "s6"}}, "an ip table sees no IPv6"},
		{"ext v4 in ip6", Config{External: &ExternalSets{Family: "ip6", Table: "f", Set4: "s4"}}, "an ip6 table sees no IPv4"},
	} {
		_, err := tc.cfg.normalize()
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%s: normalize error = %v, want one containing %q", tc.name, err, tc.wantErr)
		}
	}
	// External mode ignores the own-table fields.
	if _, err := (Config{External: &ExternalSets{Family: "inet", Table: "filter", Set4: "tk4", Set6: "tk6"}}).normalize(); err != nil {
		t.Errorf("external config: %v", err)
	}
}

func TestCheckAllow(t *testing.T) {
	ssh := Service{Name: "ssh", Endpoints: []Endpoint{{inet.TCP, 22}}}
	for _, tc := range []struct {
		in, want string
	}{
		{"203.0.113.7", "203.0.113.7"},
		{"::ffff:203.0.113.7", "203.0.113.7"},
		{"2001:db8::7", "2001:db8::7"},
		{"fe80::1%eth0", "fe80::1"},
	} {
		got, err := checkAllow(netip.MustParseAddr(tc.in), ssh, time.Second)
		if err != nil || got.String() != tc.want {
			t.Errorf("checkAllow(%s) = %v, %v; want %s", tc.in, got, err, tc.want)
		}
	}
	src := netip.MustParseAddr("203.0.113.7")
	for _, tc := range []struct {
		name    string
		src     netip.Addr
		svc     Service
		ttl     time.Duration
		wantErr string
	}{
		{"no source", netip.Addr{}, ssh, time.Second, "source address: missing"},
		{"unspecified", netip.MustParseAddr("0.0.0.0"), ssh, time.Second, "source address 0.0.0.0: not a unicast"},
		{"multicast", netip.MustParseAddr("ff02::1"), ssh, time.Second, "source address ff02::1: not a unicast"},
		{"no endpoints", src, Service{Name: "web"}, time.Second, `service "web": no endpoints`},
		{"bad endpoint", src, Service{Name: "web", Endpoints: []Endpoint{{inet.TCP, 0}}}, time.Second, `service "web": endpoint tcp/0`},
		{"zero ttl", src, ssh, 0, "ttl 0s: must be at least 1ms"},
		{"negative ttl", src, ssh, -time.Second, "ttl -1s: must be at least 1ms"},
		{"sub-ms ttl", src, ssh, time.Microsecond, "ttl 1µs: must be at least 1ms"},
		{"huge ttl", src, ssh, 25 * time.Hour, "ttl 25h0m0s: must be at most 24h0m0s"},
	} {
		_, err := checkAllow(tc.src, tc.svc, tc.ttl)
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%s: checkAllow error = %v, want one containing %q", tc.name, err, tc.wantErr)
		}
	}
}

func TestKeys(t *testing.T) {
	for _, tc := range []struct {
		src  string
		ep   Endpoint
		want []byte
	}{
		{"192.0.2.2", Endpoint{inet.TCP, 2222}, []byte{192, 0, 2, 2, 6, 0, 0, 0, 0x08, 0xae, 0, 0}},
		{"2001:db8::2", Endpoint{inet.UDP, 53}, []byte{
			0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2,
			17, 0, 0, 0, 0, 53, 0, 0}},
	} {
		src := netip.MustParseAddr(tc.src)
		k := grantKey(src, tc.ep)
		if !bytes.Equal(k, tc.want) {
			t.Errorf("grantKey(%v, %v) = % x, want % x", src, tc.ep, k, tc.want)
		}
		gotSrc, gotEp, err := parseGrantKey(k)
		if err != nil || gotSrc != src || gotEp != tc.ep {
			t.Errorf("parseGrantKey(% x) = %v, %v, %v; want %v, %v", k, gotSrc, gotEp, err, src, tc.ep)
		}
	}
	if got, want := endpointKey(Endpoint{inet.UDP, 5353}), []byte{17, 0, 0, 0, 0x14, 0xe9, 0, 0}; !bytes.Equal(got, want) {
		t.Errorf("endpointKey(udp/5353) = % x, want % x", got, want)
	}
	for _, bad := range [][]byte{
		make([]byte, 8),
		{192, 0, 2, 2, 6, 1, 0, 0, 0x08, 0xae, 0, 0}, // padding not zero
		{192, 0, 2, 2, 6, 0, 0, 0, 0x08, 0xae, 0, 1},
	} {
		if _, _, err := parseGrantKey(bad); err == nil {
			t.Errorf("parseGrantKey(% x): no error", bad)
		}
	}
}

func TestGrantString(t *testing.T) {
	g := Grant{Src: netip.MustParseAddr("203.0.113.7"), Endpoint: Endpoint{inet.TCP, 22}, Timeout: 30 * time.Second, Remaining: 12500 * time.Millisecond}
	if got, want := g.String(), "203.0.113.7 tcp/22 12.5s left of 30s"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	g.Timeout, g.Remaining = 0, 0
	if got, want := g.String(), "203.0.113.7 tcp/22 permanent"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}
