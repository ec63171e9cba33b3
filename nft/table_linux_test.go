package nft

import (
	"errors"
	"flag"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/internal/nstest"
)

var update = flag.Bool("update", false, "rewrite testdata/ensure.golden from the kernel")

// testConfig protects tcp/22, tcp/2222 and udp/5353, and drops knocks to
// two TCP ranges and a UDP range.
var testConfig = Config{
	Protected: []Endpoint{{inet.UDP, 5353}, {inet.TCP, 22}, {inet.TCP, 2222}},
	Knocks: []inet.Range{
		{Proto: inet.TCP, Lo: 10000, Hi: 32767},
		{Proto: inet.UDP, Lo: 40000, Hi: 40999},
		{Proto: inet.TCP, Lo: 5000, Hi: 5000},
	},
	DropKnocks: true,
}

var (
	ssh  = Service{Name: "ssh", Endpoints: []Endpoint{{inet.TCP, 22}}}
	both = Service{Name: "both", Endpoints: []Endpoint{{inet.TCP, 22}, {inet.UDP, 5353}}}
)

// newNS returns a fresh namespace in which nft works.
func newNS(t testing.TB) *nstest.NS {
	t.Helper()
	nstest.RequireRoot(t)
	nstest.RequireTool(t, "nft")
	return nstest.New(t)
}

// open opens a Table in ns; t.Cleanup closes it.
func open(t testing.TB, ns *nstest.NS, cfg Config) *Table {
	t.Helper()
	tb, err := Open(cfg, WithNetNSFd(ns.Fd(t)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tb.Close() })
	return tb
}

func ensure(t testing.TB, tb *Table) {
	t.Helper()
	if err := tb.Apply(tb.cfg); err != nil {
		t.Fatalf("Ensure: %v", err)
	}
}

func allow(t testing.TB, tb *Table, src string, svc Service, ttl time.Duration) {
	t.Helper()
	if err := tb.Allow(netip.MustParseAddr(src), svc, ttl); err != nil {
		t.Fatalf("Allow: %v", err)
	}
}

func grants(t testing.TB, tb *Table) []Grant {
	t.Helper()
	g, err := tb.Grants()
	if err != nil {
		t.Fatalf("Grants: %v", err)
	}
	return g
}

func ruleset(t testing.TB, ns *nstest.NS) string {
	t.Helper()
	return ns.MustRun(t, "nft", "list", "ruleset")
}

func TestEnsureGolden(t *testing.T) {
	ns := newNS(t)
	tb := open(t, ns, testConfig)
	ensure(t, tb)
	first := ruleset(t, ns)
	golden := filepath.Join("testdata", "ensure.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(first), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -run TestEnsureGolden -update as root to create it)", err)
	}
	if diff := cmp.Diff(string(want), first); diff != "" {
		t.Errorf("nft list ruleset after Ensure: (-%s +got)\n%s", golden, diff)
	}
	ensure(t, tb)
	if diff := cmp.Diff(first, ruleset(t, ns)); diff != "" {
		t.Errorf("nft list ruleset after a second Ensure: (-first +second)\n%s", diff)
	}
	// A new handle (a restarted daemon) builds the same ruleset too.
	ensure(t, open(t, ns, testConfig))
	if diff := cmp.Diff(first, ruleset(t, ns)); diff != "" {
		t.Errorf("nft list ruleset after Ensure from a new Table: (-first +second)\n%s", diff)
	}
}

// TestRulesMatchNft checks that the rules built through netlink are the
// ones nft itself compiles from the text it prints: loading the golden file
// with nft -f into a second namespace gives the same bytecode.
func TestRulesMatchNft(t *testing.T) {
	ours, theirs := newNS(t), newNS(t)
	ensure(t, open(t, ours, testConfig))
	theirs.MustRun(t, "nft", "-f", filepath.Join("testdata", "ensure.golden"))
	// Rule handles count in order of creation, which differs: nft -f
	// declares every chain first.
	handles := regexp.MustCompile(`(?m)^(inet \S+ \S+) \d+( \d+)?$`)
	dump := func(ns *nstest.NS) string {
		return handles.ReplaceAllString(sortElementLines(ns.MustRun(t, "nft", "--debug=netlink", "list", "ruleset")), "$1")
	}
	if diff := cmp.Diff(dump(theirs), dump(ours)); diff != "" {
		t.Errorf("nft --debug=netlink list ruleset: (-nft -f +Ensure)\n%s", diff)
	}
}

func TestEnsureLeavesForeignTables(t *testing.T) {
	ns := newNS(t)
	foreign := `table ip filter {
	set blocked {
		type ipv4_addr
		elements = { 198.51.100.9 }
	}
	chain input {
		type filter hook input priority filter; policy accept;
		ip saddr @blocked drop
		tcp dport 22 accept
	}
}
table inet tknock2 {
	chain input {
		type filter hook input priority filter - 10; policy accept;
	}
}
`
	ns.MustRun(t, "nft", "-f", writeTemp(t, foreign))
	before := ruleset(t, ns)
	tb := open(t, ns, testConfig)
	ensure(t, tb)
	allow(t, tb, "192.0.2.7", ssh, time.Minute)
	ensure(t, tb)
	for _, table := range []string{"ip filter", "inet tknock2"} {
		args := append([]string{"list", "table"}, strings.Fields(table)...)
		got := ns.MustRun(t, "nft", args...)
		if !strings.Contains(before, got) {
			t.Errorf("nft list table %s changed after Ensure and Allow:\n%s\nwas, in the whole ruleset:\n%s", table, got, before)
		}
	}
	if err := tb.Teardown(); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before, ruleset(t, ns)); diff != "" {
		t.Errorf("ruleset after Teardown: (-before Ensure +after)\n%s", diff)
	}
	// Teardown of a missing table is not an error.
	if err := tb.Teardown(); err != nil {
		t.Errorf("second Teardown: %v", err)
	}
}

func TestEnsureRefusesForeignTableOfOurName(t *testing.T) {
	ns := newNS(t)
	ns.MustRun(t, "nft", "-f", writeTemp(t, "table inet tknock {\n\tset allowed4 {\n\t\ttype ipv4_addr\n\t}\n}\n"))
	before := ruleset(t, ns)
	tb := open(t, ns, testConfig)
	for name, f := range map[string]func() error{"Apply": func() error { return tb.Apply(testConfig) }, "Teardown": tb.Teardown} {
		err := f()
		if err == nil || !strings.Contains(err.Error(), "table inet tknock: the table exists but was not built by tknockd") {
			t.Errorf("%s on a foreign table named tknock: error = %v, want a refusal", name, err)
		}
	}
	if diff := cmp.Diff(before, ruleset(t, ns)); diff != "" {
		t.Errorf("foreign table changed: (-before +after)\n%s", diff)
	}
}

func TestAllowGrants(t *testing.T) {
	ns := newNS(t)
	tb := open(t, ns, testConfig)
	ensure(t, tb)
	allow(t, tb, "192.0.2.7", both, 30*time.Second)
	allow(t, tb, "2001:db8::7", ssh, 20*time.Second)
	allow(t, tb, "::ffff:198.51.100.1", ssh, 10*time.Second) // IPv4-mapped: goes to allowed4
	got := grants(t, tb)
	g := func(src string, e Endpoint, ttl time.Duration) Grant {
		return Grant{Src: netip.MustParseAddr(src), Endpoint: e, Timeout: ttl, Remaining: ttl}
	}
	want := []Grant{
		g("192.0.2.7", Endpoint{inet.TCP, 22}, 30*time.Second),
		g("192.0.2.7", Endpoint{inet.UDP, 5353}, 30*time.Second),
		g("198.51.100.1", Endpoint{inet.TCP, 22}, 10*time.Second),
		g("2001:db8::7", Endpoint{inet.TCP, 22}, 20*time.Second),
	}
	// Remaining has counted down a little since Allow.
	if diff := cmp.Diff(want, got, approxRemaining(2*time.Second)); diff != "" {
		t.Errorf("Grants: (-want +got)\n%s", diff)
	}
	set4 := ns.MustRun(t, "nft", "list", "set", "inet", "tknock", "allowed4")
	if !strings.Contains(set4, "192.0.2.7 . tcp . 22 timeout 30s expires") || !strings.Contains(set4, "198.51.100.1 . tcp . 22 timeout 10s") {
		t.Errorf("nft list set inet tknock allowed4 lacks the grants:\n%s", set4)
	}
	set6 := ns.MustRun(t, "nft", "list", "set", "inet", "tknock", "allowed6")
	if !strings.Contains(set6, "2001:db8::7 . tcp . 22 timeout 20s expires") {
		t.Errorf("nft list set inet tknock allowed6 lacks the grant:\n%s", set6)
	}
}

// approxRemaining compares Grant.Remaining values within d of each other
// (and not above Timeout).
func approxRemaining(d time.Duration) cmp.Option {
	return cmp.Comparer(func(a, b Grant) bool {
		return a.Src == b.Src && a.Endpoint == b.Endpoint && a.Timeout == b.Timeout &&
			a.Remaining <= a.Timeout && b.Remaining <= b.Timeout &&
			(a.Remaining-b.Remaining).Abs() <= d
	})
}

func TestAllowRefreshes(t *testing.T) {
	ns := newNS(t)
	tb := open(t, ns, testConfig)
	ensure(t, tb)
	src := "203.0.113.7"
	for _, ttl := range []time.Duration{10 * time.Second, time.Minute, 5 * time.Second} {
		allow(t, tb, src, ssh, ttl)
		got := grants(t, tb)
		if len(got) != 1 || got[0].Timeout != ttl || got[0].Remaining > ttl || got[0].Remaining < ttl-2*time.Second {
			t.Errorf("after Allow(%s, ssh, %v): Grants = %v, want one grant with that timeout", src, ttl, got)
		}
	}
	// A refresh restarts the clock: without it the grant would be gone.
	allow(t, tb, src, ssh, 1500*time.Millisecond)
	time.Sleep(time.Second)
	allow(t, tb, src, ssh, 1500*time.Millisecond)
	time.Sleep(time.Second)
	if got := grants(t, tb); len(got) != 1 {
		t.Errorf("1s after a refresh of a 1.5s grant that began 2s ago: Grants = %v, want the grant", got)
	}
	time.Sleep(time.Second)
	if got := grants(t, tb); len(got) != 0 {
		t.Errorf("after expiry: Grants = %v, want none", got)
	}
}

func TestEnsureKeepsLiveGrants(t *testing.T) {
	ns := newNS(t)
	tb := open(t, ns, testConfig)
	ensure(t, tb)
	chain := ns.MustRun(t, "nft", "list", "chain", "inet", "tknock", "input")
	allow(t, tb, "192.0.2.7", both, 30*time.Second)
	allow(t, tb, "2001:db8::7", ssh, 30*time.Second)
	allow(t, tb, "192.0.2.8", ssh, time.Second) // expires before the restart
	time.Sleep(1100 * time.Millisecond)
	if err := tb.Close(); err != nil {
		t.Fatal(err)
	}
	if err := tb.Allow(netip.MustParseAddr("192.0.2.7"), ssh, time.Second); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Allow after Close: error = %v, want one saying the table is closed", err)
	}

	// The daemon restarts: a new handle, a new Ensure.
	tb2 := open(t, ns, testConfig)
	ensure(t, tb2)
	got := grants(t, tb2)
	want := []string{"192.0.2.7 tcp/22", "192.0.2.7 udp/5353", "2001:db8::7 tcp/22"}
	if len(got) != len(want) {
		t.Fatalf("Grants after restart = %v, want %v", got, want)
	}
	for i, g := range got {
		if s := g.Src.String() + " " + g.Endpoint.String(); s != want[i] {
			t.Errorf("grant %d after restart = %s, want %s", i, s, want[i])
		}
		// The grant ran on undisturbed: its timeout is the original one,
		// and 1.1s of it had passed before the restart.
		if g.Timeout != 30*time.Second || g.Remaining > 28900*time.Millisecond || g.Remaining < 25*time.Second {
			t.Errorf("grant %v after restart: want a timeout of 30s with 25s to 28.9s left", g)
		}
	}
	if diff := cmp.Diff(chain, ns.MustRun(t, "nft", "list", "chain", "inet", "tknock", "input")); diff != "" {
		t.Errorf("chain after restart: (-before +after)\n%s", diff)
	}
}

// TestEnsureCleansOurTable: whatever was added to our table is gone after
// Ensure, and the ruleset is the golden one again.
func TestEnsureCleansOurTable(t *testing.T) {
	ns := newNS(t)
	tb := open(t, ns, testConfig)
	ensure(t, tb)
	golden := ruleset(t, ns)
	ns.MustRun(t, "nft", "-f", writeTemp(t, `add chain inet tknock extra
add rule inet tknock extra counter accept
insert rule inet tknock input jump extra
add set inet tknock junk { type ipv4_addr; }
add rule inet tknock input ip saddr @junk drop
add chain inet tknock output { type filter hook output priority 0; policy drop; }
`))
	ensure(t, tb)
	if diff := cmp.Diff(golden, ruleset(t, ns)); diff != "" {
		t.Errorf("ruleset after Ensure over a changed table: (-golden +got)\n%s", diff)
	}
}

func TestEnsureKeepsManyGrants(t *testing.T) {
	ns := newNS(t)
	tb := open(t, ns, testConfig)
	ensure(t, tb)
	const n = 3000 // several netlink messages' worth
	for i := range n {
		src := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(i), 14: byte(i >> 8)})
		if err := tb.Allow(src, both, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	ensure(t, tb)
	if got := len(grants(t, tb)); got != 2*n {
		t.Errorf("after Ensure with %d live grants: %d grants", 2*n, got)
	}
}

func TestUpdate(t *testing.T) {
	ns := newNS(t)
	tb := open(t, ns, testConfig)
	ensure(t, tb)
	allow(t, tb, "192.0.2.7", ssh, time.Minute)
	cfg := testConfig
	cfg.Protected = []Endpoint{{inet.TCP, 22}, {inet.TCP, 443}}
	cfg.DropKnocks = false
	cfg.Priority = -5
	if err := tb.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	out := ruleset(t, ns)
	if !strings.Contains(out, "type filter hook input priority filter - 5; policy accept;") {
		t.Errorf("chain priority not updated:\n%s", out)
	}
	if !strings.Contains(out, "elements = { tcp . 22,\n\t\t\t     tcp . 443 }") || strings.Contains(out, "5353") {
		t.Errorf("protected set not updated:\n%s", out)
	}
	if strings.Contains(out, "dport 10000-32767") {
		t.Errorf("knock rules still there with DropKnocks off:\n%s", out)
	}
	if got := grants(t, tb); len(got) != 1 {
		t.Errorf("Grants after Update = %v, want the grant kept", got)
	}

	bad := cfg
	bad.Table = "other"
	if err := tb.Apply(bad); err == nil || !strings.Contains(err.Error(), "restart") {
		t.Errorf("Update with another table name: error = %v, want a refusal", err)
	}
	bad = cfg
	bad.Protected = nil
	if err := tb.Apply(bad); err == nil || !strings.Contains(err.Error(), "nft: apply: config: protected") {
		t.Errorf("Update with no protected endpoints: error = %v", err)
	}
	if diff := cmp.Diff(withoutExpires(out), withoutExpires(ruleset(t, ns))); diff != "" {
		t.Errorf("a refused Update changed the ruleset: (-before +after)\n%s", diff)
	}
}

func TestMissingTable(t *testing.T) {
	ns := newNS(t)
	tb := open(t, ns, testConfig)
	err := tb.Allow(netip.MustParseAddr("192.0.2.7"), ssh, time.Minute)
	if !errors.Is(err, ErrMissing) || !strings.HasPrefix(err.Error(), "nft: allow 192.0.2.7 tcp/22: table or set missing") {
		t.Errorf("Allow before Ensure: error = %v, want ErrMissing with context", err)
	}
	if _, err := tb.Grants(); !errors.Is(err, ErrMissing) {
		t.Errorf("Grants before Ensure: error = %v, want ErrMissing", err)
	}
	ensure(t, tb)
	allow(t, tb, "192.0.2.7", ssh, time.Minute)
	ns.MustRun(t, "nft", "flush", "ruleset")
	// Flushed and not yet healed by Watch: Allow rebuilds the table, with
	// the grant made before, and grants.
	allow(t, tb, "2001:db8::1", both, time.Minute)
	if diff := cmp.Diff(testGolden(t), withoutGrants(ruleset(t, ns))); diff != "" {
		t.Errorf("ruleset after Allow over a flushed ruleset: (-golden +got)\n%s", diff)
	}
	want := []string{"192.0.2.7 tcp/22", "2001:db8::1 tcp/22", "2001:db8::1 udp/5353"}
	if diff := cmp.Diff(want, liveGrants(t, tb, time.Minute-5*time.Second)); diff != "" {
		t.Errorf("Grants after the rebuild: (-want +got)\n%s", diff)
	}
}

// liveGrants returns the grants as "src endpoint", and fails the test for
// any with less than min left.
func liveGrants(t testing.TB, tb *Table, min time.Duration) []string {
	t.Helper()
	var out []string
	for _, g := range grants(t, tb) {
		if g.Remaining < min {
			t.Errorf("grant %v: %v left, want at least %v", g, g.Remaining, min)
		}
		out = append(out, g.Src.String()+" "+g.Endpoint.String())
	}
	return out
}

// testGolden returns testdata/ensure.golden, the ruleset of testConfig.
func testGolden(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "ensure.golden"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// withoutGrants removes the elements of the grant sets from a listing.
func withoutGrants(ruleset string) string {
	return regexp.MustCompile(`(?s)(flags timeout)\n\t\telements = \{[^}]*\}\n`).ReplaceAllString(ruleset, "$1\n")
}

func TestExternalSets(t *testing.T) {
	ns := newNS(t)
	admin := `table inet filter {
	set tknock4 {
		type ipv4_addr . inet_proto . inet_service
		flags timeout
	}
	set tknock6 {
		type ipv6_addr . inet_proto . inet_service
		flags timeout
	}
	set plain {
		type ipv4_addr . inet_proto . inet_service
	}
	set wrongtype {
		type ipv4_addr . inet_service
		flags timeout
	}
	chain input {
		type filter hook input priority filter; policy drop;
		ct state established,related accept
		ip saddr . meta l4proto . th dport @tknock4 accept
		ip6 saddr . meta l4proto . th dport @tknock6 accept
	}
}
`
	ns.MustRun(t, "nft", "-f", writeTemp(t, admin))
	before := ruleset(t, ns)
	ext := func(set4, set6 string) Config {
		return Config{External: &ExternalSets{Family: "inet", Table: "filter", Set4: set4, Set6: set6}}
	}
	tb := open(t, ns, ext("tknock4", "tknock6"))
	if err := tb.Allow(netip.MustParseAddr("192.0.2.7"), ssh, time.Minute); err == nil || !strings.Contains(err.Error(), "call Apply first") {
		t.Errorf("Allow before Ensure in external mode: error = %v", err)
	}
	ensure(t, tb)
	if diff := cmp.Diff(before, ruleset(t, ns)); diff != "" {
		t.Errorf("Ensure in external mode changed the ruleset: (-before +after)\n%s", diff)
	}
	allow(t, tb, "192.0.2.7", both, time.Minute)
	allow(t, tb, "2001:db8::7", ssh, time.Minute)
	allow(t, tb, "2001:db8::7", ssh, 2*time.Minute) // refresh
	got := grants(t, tb)
	if len(got) != 3 || got[2].Src.String() != "2001:db8::7" || got[2].Timeout != 2*time.Minute {
		t.Errorf("Grants in external mode = %v", got)
	}
	if out := ns.MustRun(t, "nft", "list", "set", "inet", "filter", "tknock4"); !strings.Contains(out, "192.0.2.7 . udp . 5353 timeout 1m") {
		t.Errorf("the administrator's set lacks the grant:\n%s", out)
	}
	if err := tb.Teardown(); err != nil {
		t.Errorf("Teardown in external mode: %v", err)
	}
	if out := ns.MustRun(t, "nft", "list", "table", "inet", "filter"); !strings.Contains(out, "chain input") {
		t.Errorf("Teardown in external mode touched the administrator's table:\n%s", out)
	}

	for _, tc := range []struct {
		cfg     Config
		wantErr string
	}{
		{ext("missing", ""), "nft: apply table inet filter: set missing: not found: add it to your ruleset"},
		{ext("plain", ""), `set plain: has no "flags timeout": grants would never expire`},
		{ext("wrongtype", ""), "set wrongtype: type ipv4_addr . inet_service: want ipv4_addr . inet_proto . inet_service"},
		{ext("", "tknock4"), "set tknock4: type ipv4_addr . inet_proto . inet_service: want ipv6_addr"},
		{Config{External: &ExternalSets{Family: "inet", Table: "nosuch", Set4: "tknock4"}}, "set tknock4: not found"},
	} {
		tb := open(t, ns, tc.cfg)
		if err := tb.Apply(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("Ensure(%+v): error = %v, want one containing %q", *tc.cfg.External, err, tc.wantErr)
		}
	}

	// Only an IPv4 set: IPv6 sources are refused with a clear error.
	tb4 := open(t, ns, ext("tknock4", ""))
	ensure(t, tb4)
	if err := tb4.Allow(netip.MustParseAddr("2001:db8::9"), ssh, time.Minute); err == nil || !strings.Contains(err.Error(), "no set for IPv6 sources") {
		t.Errorf("Allow of an IPv6 source without set6: error = %v", err)
	}
}

// TestPermission runs Open and Ensure in a child process that lacks
// CAP_NET_ADMIN.
func TestPermission(t *testing.T) {
	if os.Getenv("TKNOCK_NFT_PERMISSION_CHILD") == "1" {
		permissionChild(t)
		return
	}
	ns := newNS(t)
	nstest.RequireTool(t, "setpriv")
	cmd := ns.Command(t.Context(), "setpriv", "--bounding-set=-net_admin", "--inh-caps=-net_admin", "--",
		os.Args[0], "-test.run=^TestPermission$", "-test.v")
	cmd.Env = append(os.Environ(), "TKNOCK_NFT_PERMISSION_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("child without CAP_NET_ADMIN failed:\n%s", out)
		}
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "--- PASS: TestPermission") {
		t.Errorf("child did not run the check:\n%s", out)
	}
}

func permissionChild(t *testing.T) {
	_, err := Open(testConfig)
	if !errors.Is(err, ErrPermission) {
		t.Fatalf("Open without CAP_NET_ADMIN: error = %v, want ErrPermission", err)
	}
	want := "nft: list tables: permission denied: tknockd needs CAP_NET_ADMIN (run as root or grant the capability)"
	if err.Error() != want {
		t.Errorf("Open without CAP_NET_ADMIN: error = %q, want %q", err, want)
	}
}

// withoutExpires removes the "expires 59s996ms" countdowns from a listing.
func withoutExpires(ruleset string) string {
	return regexp.MustCompile(` expires [0-9hms]+`).ReplaceAllString(ruleset, "")
}

// sortElementLines sorts each run of "element" lines of an
// nft --debug=netlink listing: a hash set lists its elements in hash order.
func sortElementLines(dump string) string {
	lines := strings.Split(dump, "\n")
	for i := 0; i < len(lines); {
		j := i
		for j < len(lines) && strings.HasPrefix(strings.TrimSpace(lines[j]), "element ") {
			j++
		}
		slices.Sort(lines[i:j])
		i = max(j, i+1)
	}
	return strings.Join(lines, "\n")
}

func writeTemp(t testing.TB, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ruleset.nft")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestConcurrentUse runs Allow, Grants and Ensure from several goroutines
// at once (run with -race): no batch may mix with another.
func TestConcurrentUse(t *testing.T) {
	ns := newNS(t)
	tb := open(t, ns, testConfig)
	ensure(t, tb)
	const workers, each = 4, 50
	var wg sync.WaitGroup
	errs := make(chan error, workers*each+2)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				src := netip.AddrFrom4([4]byte{10, byte(w), 0, byte(i)})
				if err := tb.Allow(src, both, time.Minute); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Go(func() {
		for range 20 {
			if err := tb.Apply(testConfig); err != nil {
				errs <- err
			}
		}
	})
	wg.Go(func() {
		for range 20 {
			if _, err := tb.Grants(); err != nil {
				errs <- err
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got, want := len(grants(t, tb)), workers*each*len(both.Endpoints); got != want {
		t.Errorf("%d grants after concurrent Allows, want %d", got, want)
	}
}

// TestApplyOverSavedRuleset: an administrator saved the ruleset with our
// table in it (`nft list ruleset > /etc/nftables.conf`) and it was loaded
// back with nft -f, as at boot: a new Table applies over it and keeps the
// grants.
func TestApplyOverSavedRuleset(t *testing.T) {
	ns, saved := newNS(t), newNS(t)
	tb := open(t, ns, testConfig)
	ensure(t, tb)
	allow(t, tb, "192.0.2.7", ssh, time.Minute)
	saved.MustRun(t, "nft", "-f", writeTemp(t, ruleset(t, ns)))
	tb2 := open(t, saved, testConfig)
	ensure(t, tb2)
	if diff := cmp.Diff([]string{"192.0.2.7 tcp/22"}, liveGrants(t, tb2, 50*time.Second)); diff != "" {
		t.Errorf("grants after Apply over the saved ruleset: (-want +got)\n%s", diff)
	}
	allow(t, tb2, "192.0.2.8", ssh, time.Minute)
}
