package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rs/zerolog"

	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/nft"
	"github.com/tknock/tknock/totpseq"
)

// minimal is the smallest valid configuration.
const minimal = `realm = "gw.example.org"
[services]
ssh = ["tcp/22"]
`

// top returns minimal with keys (lines ending in \n) added at the top level,
// from line 2 on.
func top(keys string) string {
	return "realm = \"gw.example.org\"\n" + keys + "[services]\nssh = [\"tcp/22\"]\n"
}

func TestConfigDefaults(t *testing.T) {
	c, err := Parse("/etc/tknock/tknockd.toml", []byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	want := totpseq.Defaults()
	want.Realm = "gw.example.org"
	want.Length = EnrollLength // the protocol's default 4 is under totpseq.MinBits
	if diff := cmp.Diff(want, c.Enroll.Params); diff != "" {
		t.Errorf("enroll params (-want +got):\n%s", diff)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"UsersDir", c.UsersDir, "/etc/tknock/users"},
		{"Interfaces", c.Interfaces, []string(nil)},
		{"Skew", c.Skew, 1},
		{"OpenFor", c.OpenFor, 30 * time.Second},
		{"GapMax", c.GapMax, 3 * time.Second},
		{"SeqTimeout", c.SeqTimeout, 10 * time.Second},
		{"StateCapacity", c.StateCapacity, 0},
		{"MemoryLimit", c.MemoryLimit, int64(0)},
		{"Prefilter", c.Prefilter, "auto"},
		{"Enroll.Host", c.Enroll.Host, "gw.example.org"},
		{"Firewall", c.Firewall, FirewallConfig{Mode: "table", Table: "", DropKnocks: true}},
		{"LogLevel", c.LogLevel, zerolog.InfoLevel},
		{"LogFormat", c.LogFormat, "auto"},
		{"MetricsListen", c.MetricsListen, ""},
		{"Services", c.Services, map[string]nft.Service{"ssh": {Name: "ssh", Endpoints: []nft.Endpoint{{Proto: inet.TCP, Port: 22}}}}},
	}
	for _, c := range checks {
		if diff := cmp.Diff(c.want, c.got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", c.name, diff)
		}
	}
}

// TestConfigDropKnocks: knock ports are dropped unless the file says
// otherwise, and never in external mode.
func TestConfigDropKnocks(t *testing.T) {
	tests := []struct {
		file string
		want bool
	}{
		{minimal, true},
		{minimal + "[firewall]\ndrop_knocks = true\n", true},
		{minimal + "[firewall]\ndrop_knocks = false\n", false},
		{minimal + "[firewall]\nmode = \"external\"\n[firewall.external]\nfamily = \"inet\"\ntable = \"filter\"\nset4 = \"s\"\n", false},
	}
	for _, tt := range tests {
		c, err := Parse("f.toml", []byte(tt.file))
		if err != nil {
			t.Fatalf("Parse(%q): %v", tt.file, err)
		}
		if c.Firewall.DropKnocks != tt.want {
			t.Errorf("Parse(%q): DropKnocks = %v, want %v", tt.file, c.Firewall.DropKnocks, tt.want)
		}
	}
}

// TestConfigProtectLoopback: loopback is exempt unless the file says
// otherwise.
func TestConfigProtectLoopback(t *testing.T) {
	for _, tt := range []struct {
		file string
		want bool
	}{
		{minimal, false},
		{minimal + "[firewall]\nprotect_loopback = true\n", true},
		{minimal + "[firewall]\nprotect_loopback = false\n", false},
	} {
		c, err := Parse("f.toml", []byte(tt.file))
		if err != nil {
			t.Fatalf("Parse(%q): %v", tt.file, err)
		}
		if c.Firewall.ProtectLoopback != tt.want || c.NFT(nil).ProtectLoopback != tt.want {
			t.Errorf("Parse(%q): ProtectLoopback = %v, want %v", tt.file, c.Firewall.ProtectLoopback, tt.want)
		}
	}
}

func TestConfigExample(t *testing.T) {
	path := filepath.Join("..", "..", "deploy", "tknockd.toml")
	c, err := Load(path)
	if err != nil {
		t.Fatalf("the documented example does not load: %v", err)
	}
	if c.Realm != "ssh.example.com" || !c.Firewall.DropKnocks || c.MetricsListen != "127.0.0.1:9121" ||
		len(c.Services) != 2 || c.Enroll.Params.Range != totpseq.DefaultRange() || c.UsersDir != filepath.Join(filepath.Dir(path), "users") {
		t.Errorf("example config read as %+v", c)
	}
}

func TestConfigFull(t *testing.T) {
	doc := `realm = "r"
users_dir = "/var/lib/tknock/users"
interfaces = ["eth0", "wg0"]
skew = 0
open_for = "2m"
gap_max = "500ms"
seq_timeout = "5s"
state_capacity = 1000
replay_capacity = 500
memory_limit = "1GiB"
prefilter = "on"
[enroll]
host = "203.0.113.1"
services = ["ssh", "web"]
period = 60
length = 8
range = "40000-40999"
exclude = [40500, 40001]
proto = "udp"
v6prefix = 64
[services]
ssh = ["tcp/22"]
web = ["tcp/80", "tcp/443", "udp/443"]
[firewall]
mode = "external"
[firewall.external]
family = "inet"
table = "filter"
set4 = "tk4"
[log]
level = "debug"
format = "json"
[metrics]
listen = "[::1]:9121"
`
	c, err := Parse("f.toml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	p := c.Enroll.Params
	if c.Skew != 0 || c.OpenFor != 2*time.Minute || c.GapMax != 500*time.Millisecond || c.SeqTimeout != 5*time.Second ||
		c.StateCapacity != 1000 || c.ReplayCapacity != 500 || c.MemoryLimit != 1<<30 || c.Prefilter != "on" || c.UsersDir != "/var/lib/tknock/users" ||
		!cmp.Equal(c.Interfaces, []string{"eth0", "wg0"}) || c.Enroll.Host != "203.0.113.1" ||
		p.Period != 60 || p.Length != 8 || p.Range != (totpseq.Range{Lo: 40000, Hi: 40999}) ||
		!cmp.Equal(p.Exclude, []uint16{40001, 40500}) || p.Proto != inet.UDP || p.V6Prefix != 64 ||
		!cmp.Equal(p.Services, []string{"ssh", "web"}) || c.LogLevel != zerolog.DebugLevel || c.LogFormat != "json" ||
		c.MetricsListen != "[::1]:9121" {
		t.Errorf("config read as %+v", c)
	}
	want := FirewallConfig{Mode: "external", External: &nft.ExternalSets{Family: "inet", Table: "filter", Set4: "tk4"}}
	if diff := cmp.Diff(want, c.Firewall); diff != "" {
		t.Errorf("firewall (-want +got):\n%s", diff)
	}
	if got := len(c.Protected()); got != 4 {
		t.Errorf("Protected() has %d endpoints, want 4", got)
	}
}

// TestConfigErrors feeds every kind of bad input; each error must name the
// file, the line, the field and the problem.
func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want []string // substrings of the error, in order
	}{
		{"typo", top("open_fro = \"30s\"\n"), []string{"f.toml: line 2: field open_fro: unknown field"}},
		{"typo in table", minimal + "[firewall]\ndrop_knock = true\n", []string{"f.toml: line 5: field firewall.drop_knock: unknown field"}},
		{"two typos", "realmm = \"x\"\n" + top("skw = 1\n"), []string{"f.toml: line 1: field realmm: unknown", "f.toml: line 3: field skw: unknown"}},
		{"syntax", top("skew = \n"), []string{"f.toml: line 2:"}},
		{"duplicate key", top("skew = 1\nskew = 2\n"), []string{"f.toml: line 3:", "skew"}},
		{"wrong type int", top("skew = \"1\"\n"), []string{"f.toml: line 2: field skew: got a TOML string, want an integer"}},
		{"wrong type list", top("interfaces = \"eth0\"\n"), []string{"f.toml: line 2: field interfaces: got a TOML string, want a list of strings"}},
		{"wrong type bool", minimal + "[firewall]\ndrop_knocks = 1\n", []string{"f.toml: line 5: field firewall.drop_knocks: got a TOML integer, want true or false"}},
		{"duration number", top("open_for = 30\n"), []string{"f.toml: line 2: field open_for: got a TOML integer, want a string"}},
		{"duration no unit", top("open_for = \"30\"\n"), []string{"f.toml: line 2: field open_for: \"30\" is not a duration"}},
		{"duration bad", top("gap_max = \"soon\"\n"), []string{"f.toml: line 2: field gap_max: \"soon\" is not a duration"}},
		{"open_for short", top("open_for = \"10ms\"\n"), []string{"f.toml: line 2: field open_for: 10ms: want 1s to 24h0m0s"}},
		{"open_for long", top("open_for = \"25h\"\n"), []string{"field open_for: 25h0m0s: want 1s to 24h0m0s"}},
		{"open_for negative", top("open_for = \"-1s\"\n"), []string{"field open_for: -1s"}},
		{"gap over seq", top("gap_max = \"20s\"\n"), []string{"f.toml: line 2: field gap_max: longer than seq_timeout (10s, the default)"}},
		{"seq_timeout long", top("seq_timeout = \"1h\"\n"), []string{"field seq_timeout: 1h0m0s: want 3s (gap max)..10m0s"}},
		{"skew negative", top("skew = -1\n"), []string{"f.toml: line 2: field skew: -1: want 0..5"}},
		{"skew big", top("skew = 6\n"), []string{"field skew: 6: want 0..5"}},
		// Drift: the limits are the tracker's (listener.Config.Validate), so
		// check-config refuses what run would refuse.
		{"gap_max over the tracker's", top("gap_max = \"2m\"\nseq_timeout = \"5m\"\n"), []string{"f.toml: line 2: field gap_max: 2m0s: want more than 0, at most 1m0s"}},
		{"capacity one", top("state_capacity = 1\n"), []string{"f.toml: line 2: field state_capacity: 1: want 2..16777216"}},
		{"capacity zero", top("state_capacity = 0\n"), []string{"f.toml: line 2: field state_capacity: 0: leave it out for the default"}},
		{"capacity huge", top("replay_capacity = 100000000\n"), []string{"field replay_capacity: 100000000"}},
		{"replay per user over capacity", top("replay_capacity = 100\nreplay_per_user = 101\n"), []string{"field replay_per_user: 101: want 1..100 records (the replay capacity)"}},
		{"memory_limit unit", top("memory_limit = \"256MB\"\n"), []string{`f.toml: line 2: field memory_limit: "256MB" is not a size: want a number of bytes, or with a unit KiB, MiB or GiB, as in "256MiB"`}},
		{"memory_limit lower case", top("memory_limit = \"256mib\"\n"), []string{`field memory_limit: "256mib" is not a size`}},
		{"memory_limit space", top("memory_limit = \"256 MiB\"\n"), []string{`field memory_limit: "256 MiB" is not a size`}},
		{"memory_limit no number", top("memory_limit = \"MiB\"\n"), []string{`field memory_limit: "MiB" is not a size`}},
		{"memory_limit negative", top("memory_limit = \"-1MiB\"\n"), []string{`field memory_limit: "-1MiB" is not a size`}},
		{"memory_limit fraction", top("memory_limit = \"1.5GiB\"\n"), []string{`field memory_limit: "1.5GiB" is not a size`}},
		{"memory_limit zero", top("memory_limit = \"0\"\n"), []string{"f.toml: line 2: field memory_limit: 0: leave it out for the default"}},
		{"memory_limit huge", top("memory_limit = \"2048GiB\"\n"), []string{"field memory_limit: 2048GiB: want at most 1024GiB"}},
		{"memory_limit overflow", top("memory_limit = \"99999999999999999999\"\n"), []string{`field memory_limit: "99999999999999999999" is not a size`}},
		{"memory_limit integer", top("memory_limit = 268435456\n"), []string{"f.toml: line 2: field memory_limit: got a TOML integer, want a string"}},
		{"state_dir relative", top("state_dir = \"state\"\n"), []string{"f.toml: line 2: field state_dir: \"state\": want an absolute path"}},
		{"prefilter word", top("prefilter = \"yes\"\n"), []string{"f.toml: line 2: field prefilter: \"yes\": want \"auto\", \"on\" or \"off\""}},
		{"prefilter bool", top("prefilter = true\n"), []string{"f.toml: line 2: field prefilter: got a TOML boolean, want a string"}},
		{"realm empty", "realm = \"\"\n[services]\nssh = [\"tcp/22\"]\n", []string{"f.toml: line 1: field realm: 0 bytes"}},
		{"realm long", "realm = \"" + strings.Repeat("x", 256) + "\"\n[services]\nssh = [\"tcp/22\"]\n", []string{"field realm: 256 bytes"}},
		{"no services", "realm = \"r\"\n", []string{"f.toml: field services: no services"}},
		{"empty services", "realm = \"r\"\n[services]\n", []string{"f.toml: line 2: field services: no services"}},
		{"service no endpoints", minimal + "web = []\n", []string{"f.toml: line 4: field services.web: no endpoints"}},
		{"service bad name", minimal + "Web = [\"tcp/80\"]\n", []string{"f.toml: line 4: field services.Web: bad service name"}},
		{"endpoint proto", minimal + "web = [\"sctp/80\"]\n", []string{"f.toml: line 4: field services.web: endpoint \"sctp/80\": protocol \"sctp\""}},
		{"endpoint port", minimal + "web = [\"tcp/0\"]\n", []string{"field services.web: endpoint \"tcp/0\": port \"0\""}},
		{"endpoint form", minimal + "web = [\"80\"]\n", []string{"field services.web: endpoint \"80\": want protocol/port"}},
		{"endpoint twice", minimal + "web = [\"tcp/80\", \"tcp/80\"]\n", []string{"field services.web: tcp/80 listed twice"}},
		{"interfaces empty", top("interfaces = []\n"), []string{"f.toml: line 2: field interfaces: empty list"}},
		{"interfaces any and more", top("interfaces = [\"any\", \"eth0\"]\n"), []string{"field interfaces: \"any\" means every interface"}},
		{"interface bad name", top("interfaces = [\"eth0/1\"]\n"), []string{"field interfaces: \"eth0/1\" is not an interface name"}},
		{"interface too long", top("interfaces = [\"abcdefghijklmnop\"]\n"), []string{"is not an interface name"}},
		{"interface twice", top("interfaces = [\"eth0\", \"eth0\"]\n"), []string{"field interfaces: \"eth0\" listed twice"}},
		{"enroll unknown service", minimal + "[enroll]\nservices = [\"web\"]\n", []string{"f.toml: line 5: field enroll.services: \"web\" is not in [services]"}},
		{"enroll default service missing", "realm = \"r\"\n[services]\nweb = [\"tcp/80\"]\n", []string{"field enroll.services: not set, and the default \"ssh\" is not in [services]"}},
		{"enroll bad service name", minimal + "[enroll]\nservices = [\"S S\"]\n", []string{"field enroll.services: \"S S\": bad service name"}},
		{"enroll period", minimal + "[enroll]\nperiod = 4\n", []string{"f.toml: line 5: field enroll.period: 4: want 5..3600"}},
		{"enroll length", minimal + "[enroll]\nlength = 17\n", []string{"f.toml: line 5: field enroll.length: 17: want 2..16"}},
		{"enroll range form", minimal + "[enroll]\nrange = \"10000\"\n", []string{"f.toml: line 5: field enroll.range: \"10000\": want lo-hi"}},
		{"enroll range order", minimal + "[enroll]\nrange = \"9-8\"\n", []string{"field enroll.range: 9-8: lo must be < hi"}},
		{"enroll range small", minimal + "[enroll]\nrange = \"1000-1010\"\n", []string{"field enroll.range: 1000-1010: 11 usable ports"}},
		{"enroll exclude outside", minimal + "[enroll]\nexclude = [80]\n", []string{"field enroll.exclude: 80: port outside range"}},
		{"enroll exclude not port", minimal + "[enroll]\nexclude = [70000]\n", []string{"field enroll.exclude: 70000 is not a port"}},
		{"enroll exclude twice", minimal + "[enroll]\nexclude = [20000, 20000]\n", []string{"field enroll.exclude: 20000: ports must be sorted and distinct"}},
		{"enroll proto", minimal + "[enroll]\nproto = \"icmp\"\n", []string{"f.toml: line 5: field enroll.proto: \"icmp\": want tcp or udp"}},
		{"enroll v6prefix", minimal + "[enroll]\nv6prefix = 32\n", []string{"field enroll.v6prefix: 32: want 48..128"}},
		{"enroll host", minimal + "[enroll]\nhost = \"a b\"\n", []string{"field enroll.host: \"a b\": ' ' at byte 1: not a host name"}},
		{"firewall mode", minimal + "[firewall]\nmode = \"tabel\"\n", []string{"f.toml: line 5: field firewall.mode: \"tabel\": want \"table\""}},
		{"firewall table name", minimal + "[firewall]\ntable = \"1x\"\n", []string{"field firewall.table: table \"1x\": want a letter"}},
		{"firewall priority zero", minimal + "[firewall]\npriority = 0\n", []string{"field firewall.priority: 0: leave it out"}},
		{"firewall priority low", minimal + "[firewall]\npriority = -200\n", []string{"field firewall.priority: priority -200: must be above -200"}},
		{"firewall external in table mode", minimal + "[firewall.external]\nfamily = \"inet\"\n", []string{"field firewall.external: only with mode = \"external\""}},
		{"external missing", minimal + "[firewall]\nmode = \"external\"\n", []string{"field firewall.external: missing"}},
		{"external with table", minimal + "[firewall]\nmode = \"external\"\ntable = \"t\"\n[firewall.external]\nfamily = \"inet\"\ntable = \"filter\"\nset4 = \"s\"\n",
			[]string{"f.toml: line 6: field firewall.table: not with mode = \"external\""}},
		{"external drop_knocks", minimal + "[firewall]\nmode = \"external\"\ndrop_knocks = true\n[firewall.external]\nfamily = \"inet\"\ntable = \"filter\"\nset4 = \"s\"\n",
			[]string{"field firewall.drop_knocks: not with mode = \"external\""}},
		{"external protect_loopback", minimal + "[firewall]\nmode = \"external\"\nprotect_loopback = true\n[firewall.external]\nfamily = \"inet\"\ntable = \"filter\"\nset4 = \"s\"\n",
			[]string{"field firewall.protect_loopback: not with mode = \"external\""}},
		{"external family", minimal + "[firewall]\nmode = \"external\"\n[firewall.external]\nfamily = \"bridge\"\ntable = \"filter\"\nset4 = \"s\"\n",
			[]string{"f.toml: line 7: field firewall.external.family: external: family \"bridge\""}},
		{"external no sets", minimal + "[firewall]\nmode = \"external\"\n[firewall.external]\nfamily = \"inet\"\ntable = \"filter\"\n",
			[]string{"field firewall.external: external: no set named"}},
		{"external set6 in ip", minimal + "[firewall]\nmode = \"external\"\n[firewall.external]\nfamily = \"ip\"\ntable = \"filter\"\nset6 = \"s6\"\n",
			[]string{"field firewall.external.set6: external: set6 \"s6\": an ip table sees no IPv6 packets"}},
		{"external bad set name", minimal + "[firewall]\nmode = \"external\"\n[firewall.external]\nfamily = \"inet\"\ntable = \"filter\"\nset4 = \"a b\"\n",
			[]string{"field firewall.external.set4: external: set4 \"a b\": want a letter"}},
		{"log level", minimal + "[log]\nlevel = \"trace\"\n", []string{"f.toml: line 5: field log.level: \"trace\": want debug, info, warn or error"}},
		{"log format", minimal + "[log]\nformat = \"xml\"\n", []string{"field log.format: \"xml\""}},
		{"metrics form", minimal + "[metrics]\nlisten = \"9121\"\n", []string{"f.toml: line 5: field metrics.listen: \"9121\": want host:port"}},
		{"metrics host", minimal + "[metrics]\nlisten = \"example.com:9121\"\n", []string{"field metrics.listen: \"example.com:9121\": host"}},
		{"metrics port", minimal + "[metrics]\nlisten = \"127.0.0.1:http\"\n", []string{"field metrics.listen: \"127.0.0.1:http\": port"}},
		{"several, in line order", top("skew = 9\n") + "[log]\nlevel = \"x\"\n[firewall]\nmode = \"y\"\n",
			[]string{"f.toml: line 2: field skew", "\nf.toml: line 6: field log.level", "\nf.toml: line 8: field firewall.mode"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("f.toml", []byte(tt.doc))
			if err == nil {
				t.Fatalf("Parse accepted:\n%s", tt.doc)
			}
			msg := err.Error()
			rest := msg
			for _, w := range tt.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("error\n%s\ndoes not contain %q (in order)", msg, w)
				}
				rest = rest[i+len(w):]
			}
		})
	}
}

// TestConfigMemoryLimit: memory_limit takes bytes, KiB, MiB and GiB, and
// FormatSize writes what ParseSize reads.
func TestConfigMemoryLimit(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int64
		back string
	}{
		{"268435456", 256 << 20, "256MiB"},
		{"1000", 1000, "1000"},
		{"64KiB", 64 << 10, "64KiB"},
		{"256MiB", 256 << 20, "256MiB"},
		{"1536MiB", 1536 << 20, "1536MiB"},
		{"2GiB", 2 << 30, "2GiB"},
		{"1024GiB", 1 << 40, "1024GiB"},
	} {
		c, err := Parse("f.toml", []byte(top("memory_limit = \""+tt.in+"\"\n")))
		if err != nil {
			t.Errorf("memory_limit = %q: %v", tt.in, err)
			continue
		}
		if c.MemoryLimit != tt.want || FormatSize(c.MemoryLimit) != tt.back {
			t.Errorf("memory_limit = %q: %d bytes (%s), want %d (%s)", tt.in, c.MemoryLimit, FormatSize(c.MemoryLimit), tt.want, tt.back)
		}
	}
}

func TestConfigFileErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(filepath.Join(dir, "missing.toml")); err == nil || !strings.Contains(err.Error(), "missing.toml") {
		t.Errorf("missing file: err = %v, want one naming the file", err)
	}
	big := filepath.Join(dir, "big.toml")
	if err := os.WriteFile(big, make([]byte, maxConfigSize+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(big); err == nil || !strings.Contains(err.Error(), "big.toml: larger than") {
		t.Errorf("big file: err = %v", err)
	}
	if _, err := Load(dir); err == nil {
		t.Errorf("a directory as config: no error")
	}
}

func TestKnockRanges(t *testing.T) {
	mk := func(proto inet.Proto, lo, hi uint16, exclude ...uint16) *totpseq.Enrollment {
		p := totpseq.Defaults()
		p.Proto, p.Range, p.Exclude = proto, totpseq.Range{Lo: lo, Hi: hi}, exclude
		return &totpseq.Enrollment{Params: p}
	}
	users := []*totpseq.Enrollment{
		mk(inet.TCP, 10000, 10999, 10500),
		mk(inet.TCP, 10900, 11999),
		mk(inet.UDP, 40000, 40099, 40000),
		mk(inet.TCP, 65000, 65535, 65535),
	}
	want := []inet.Range{
		{Proto: inet.TCP, Lo: 10000, Hi: 10499},
		{Proto: inet.TCP, Lo: 10501, Hi: 11999},
		{Proto: inet.TCP, Lo: 65000, Hi: 65534},
		{Proto: inet.UDP, Lo: 40001, Hi: 40099},
	}
	if diff := cmp.Diff(want, knockRanges(users)); diff != "" {
		t.Errorf("knockRanges (-want +got):\n%s", diff)
	}
	if got := knockRanges(nil); got != nil {
		t.Errorf("knockRanges(nil) = %v, want nil", got)
	}
}

func FuzzConfig(f *testing.F) {
	f.Add([]byte(minimal))
	if b, err := os.ReadFile(filepath.Join("..", "..", "deploy", "tknockd.toml")); err == nil {
		f.Add(b)
	}
	f.Add([]byte(top("gap_max = \"2m\"\nseq_timeout = \"5m\"\nstate_capacity = 1\n")))
	f.Add([]byte("[services]\nssh = [\"tcp/22\"]\n[firewall]\nmode = \"external\"\n[firewall.external]\nfamily = \"ip\"\n"))
	f.Fuzz(func(t *testing.T, doc []byte) {
		c, err := Parse("f.toml", doc)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f.toml") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		// A configuration that loads is usable as it is: the tracker and
		// the firewall take it.
		if c.OpenFor < time.Second || len(c.Services) == 0 {
			t.Fatalf("invalid configuration accepted: %+v", c)
		}
		if err := c.Tracker().Validate(); err != nil {
			t.Fatalf("configuration accepted, tracker refuses it: %v", err)
		}
		if err := c.NFT(nil).Validate(); err != nil {
			t.Fatalf("configuration accepted, firewall refuses it: %v", err)
		}
		e := totpseq.Enrollment{Name: "x", Host: c.Enroll.Host, Params: c.Enroll.Params}
		e.Secret = make(totpseq.Secret, 16)
		if err := e.Validate(); err != nil {
			t.Fatalf("enroll defaults accepted but invalid: %v", err)
		}
	})
}

// TestConfigSTUNErrors: a bad [enroll] stun server is an error that names
// enroll.stun and the server.
func TestConfigSTUNErrors(t *testing.T) {
	for _, tt := range []struct{ stun, want string }{
		{`["stun.example.org"]`, `field enroll.stun: "stun.example.org": want HOST:PORT`},
		{`["a.example:1", "a.example:1"]`, `field enroll.stun: "a.example:1": listed twice`},
		{`["a.example:99999"]`, `field enroll.stun: "a.example:99999": "99999" is not a port`},
	} {
		_, err := Parse("f.toml", []byte(minimal+"[enroll]\nstun = "+tt.stun+"\n"))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("stun = %s: error %v, want one containing %q", tt.stun, err, tt.want)
		}
	}
}

// TestConfigWeakEnroll: [enroll] parameters under totpseq.MinBits are
// refused, naming length and range.
func TestConfigWeakEnroll(t *testing.T) {
	for _, tt := range []struct{ enroll, want string }{
		{"length = 4", "field enroll.length: 4: with range 10000-32767 (22768 usable ports) a sequence has 40.8 bits: want at least 48"},
		{"length = 2\nrange = \"10000-10063\"", "field enroll.length: 2: with range 10000-10063 (64 usable ports) a sequence has 6.0 bits"},
	} {
		_, err := Parse("f.toml", []byte(minimal+"[enroll]\n"+tt.enroll+"\n"))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("[enroll] %s: error %v, want one containing %q", tt.enroll, err, tt.want)
		}
	}
}
