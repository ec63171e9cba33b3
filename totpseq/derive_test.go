package totpseq

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestWindow(t *testing.T) {
	tests := []struct {
		unix   int64
		period int
		want   uint64
	}{
		{0, 30, 0},
		{29, 30, 0},
		{30, 30, 1},
		{1_740_000_000, 30, 58_000_000},
		{1_740_000_029, 30, 58_000_000},
		{3599, 3600, 0},
		{-1, 30, 0},
	}
	for _, tt := range tests {
		if got := Window(time.Unix(tt.unix, 999_999_999), tt.period); got != tt.want {
			t.Errorf("Window(%d, %d) = %d, want %d", tt.unix, tt.period, got, tt.want)
		}
	}
	if got := WindowStart(58_000_000, 30); got.Unix() != 1_740_000_000 {
		t.Errorf("WindowStart = %v", got)
	}
}

func TestIP16(t *testing.T) {
	tests := []struct {
		addr   string
		prefix int
		want   string
	}{
		{"192.0.2.7", 128, "::ffff:192.0.2.7"},
		{"192.0.2.7", 48, "::ffff:192.0.2.7"},
		{"::ffff:192.0.2.7", 48, "::ffff:192.0.2.7"}, // mapped: no masking
		{"2001:db8:1:2:aaaa:bbbb:cccc:dddd", 64, "2001:db8:1:2::"},
		{"2001:db8:1:2:aaaa:bbbb:cccc:dddd", 128, "2001:db8:1:2:aaaa:bbbb:cccc:dddd"},
		{"2001:db8:1:2:aaaa:bbbb:cccc:dddd", 56, "2001:db8:1::"},
		{"fe80::1%eth0", 128, "fe80::1"},
	}
	for _, tt := range tests {
		got, err := IP16(netip.MustParseAddr(tt.addr), tt.prefix)
		if err != nil || netip.AddrFrom16(got) != netip.MustParseAddr(tt.want) {
			t.Errorf("IP16(%s, %d) = %v, %v; want %s", tt.addr, tt.prefix, netip.AddrFrom16(got), err, tt.want)
		}
	}
	if _, err := IP16(netip.Addr{}, 128); err == nil {
		t.Error("IP16(invalid address) succeeded")
	}
}

func randParams(r *rand.Rand) Params {
	p := Defaults()
	p.Secret = make(Secret, MinSecretSize+r.IntN(MaxSecretSize-MinSecretSize+1))
	for i := range p.Secret {
		p.Secret[i] = byte(r.Uint32())
	}
	p.Realm = strings.Repeat("r", 1+r.IntN(40))
	p.Length = MinLength + r.IntN(MaxLength-MinLength+1)
	lo := 1 + r.IntN(60000)
	hi := lo + 63 + r.IntN(65535-lo-63+1)
	p.Range = Range{uint16(lo), uint16(hi)}
	if n := p.Range.Size() - MinUsablePorts; n > 0 {
		for range r.IntN(min(n, 20) + 1) {
			p.Exclude = append(p.Exclude, uint16(lo+r.IntN(p.Range.Size())))
		}
		slices.Sort(p.Exclude)
		p.Exclude = slices.Compact(p.Exclude)
	}
	p.V6Prefix = MinV6Prefix + r.IntN(MaxV6Prefix-MinV6Prefix+1)
	return p
}

func randAddr(r *rand.Rand) netip.Addr {
	if r.IntN(2) == 0 {
		return netip.AddrFrom4([4]byte{byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32())})
	}
	var b [16]byte
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return netip.AddrFrom16(b)
}

// checkSequence asserts the invariants every sequence has.
func checkSequence(t *testing.T, p *Params, seq []uint16) {
	t.Helper()
	if len(seq) != p.Length {
		t.Fatalf("sequence %v has %d ports, want %d", seq, len(seq), p.Length)
	}
	for i, port := range seq {
		if !p.Range.Contains(port) {
			t.Fatalf("port %d outside range %v", port, p.Range)
		}
		if _, ok := slices.BinarySearch(p.Exclude, port); ok {
			t.Fatalf("port %d is excluded", port)
		}
		if slices.Contains(seq[:i], port) {
			t.Fatalf("port %d twice in %v", port, seq)
		}
	}
}

func TestSequenceProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		p := randParams(r)
		d, err := NewDeriver(&p)
		if err != nil {
			t.Fatalf("NewDeriver: %v", err)
		}
		w := r.Uint64()
		a, b := randAddr(r), randAddr(r)
		sa, err := d.AppendSequence(nil, "ssh", w, a)
		if err != nil {
			t.Fatal(err)
		}
		sb, err := d.AppendSequence(nil, "ssh", w, b)
		if err != nil {
			t.Fatal(err)
		}
		checkSequence(t, &p, sa)
		checkSequence(t, &p, sb)
		if sa[0] != sb[0] {
			t.Fatalf("anchor depends on the address: %d for %v, %d for %v", sa[0], a, sb[0], b)
		}
		// The bound ports depend on the address, unless both share the bound prefix.
		ia, _ := IP16(a, p.V6Prefix)
		ib, _ := IP16(b, p.V6Prefix)
		if ia != ib && slices.Equal(sa, sb) && p.Range.Size() > 1000 {
			t.Fatalf("addresses %v and %v give one sequence %v", a, b, sa)
		}
	}
}

// TestOneBitChanges flips one bit of the secret, realm, service and window
// and checks that the sequence changes. With 22768 ports and 4 knocks a
// collision has probability ~1e-17, so a failure means an input is unused.
func TestOneBitChanges(t *testing.T) {
	p := Defaults()
	p.Secret = make(Secret, 32)
	p.Realm = "ssh.example.com"
	src := netip.MustParseAddr("203.0.113.9")
	const svc, w = "ssh", 58_000_000
	base, err := Sequence(&p, svc, w, src)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(s string, bit int) string {
		b := []byte(s)
		b[bit/8] ^= 1 << (bit % 8)
		return string(b)
	}
	for bit := range len(p.Secret) * 8 {
		q := p
		q.Secret = slices.Clone(p.Secret)
		q.Secret[bit/8] ^= 1 << (bit % 8)
		if got, _ := Sequence(&q, svc, w, src); slices.Equal(got, base) {
			t.Errorf("secret bit %d flipped: sequence unchanged %v", bit, got)
		}
	}
	for bit := range len(p.Realm) * 8 {
		q := p
		q.Realm = flip(p.Realm, bit)
		if got, err := Sequence(&q, svc, w, src); err == nil && slices.Equal(got, base) {
			t.Errorf("realm bit %d flipped: sequence unchanged %v", bit, got)
		}
	}
	for bit := range len(svc) * 8 {
		s := flip(svc, bit)
		if !ValidService(s) {
			continue
		}
		if got, _ := Sequence(&p, s, w, src); slices.Equal(got, base) {
			t.Errorf("service bit %d flipped (%q): sequence unchanged %v", bit, s, got)
		}
	}
	for bit := range 64 {
		if got, _ := Sequence(&p, svc, w^(1<<bit), src); slices.Equal(got, base) {
			t.Errorf("window bit %d flipped: sequence unchanged %v", bit, got)
		}
	}
	other, _ := Sequence(&p, svc, w, netip.MustParseAddr("203.0.113.10"))
	if other[0] != base[0] || slices.Equal(other, base) {
		t.Errorf("another source: %v vs %v: want same anchor, other bound ports", other, base)
	}
}

func TestDeriverErrors(t *testing.T) {
	p := Defaults()
	p.Secret = make(Secret, 8)
	p.Realm = "r"
	if _, err := NewDeriver(&p); err == nil || !strings.Contains(err.Error(), "parameter secret") {
		t.Errorf("NewDeriver(8-byte secret) error = %v", err)
	}
	p.Secret = make(Secret, 16)
	d, err := NewDeriver(&p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Anchor("Bad Service", 1); err == nil || !strings.Contains(err.Error(), "bad service name") {
		t.Errorf("Anchor(bad service) error = %v", err)
	}
	if _, err := d.AppendSequence(nil, "ssh", 1, netip.Addr{}); err == nil {
		t.Error("AppendSequence(invalid address) succeeded")
	}
}

// TestExhausted shows the protocol's corner: a wide range with all but 64
// ports excluded leaves too few usable words in 256 HMAC blocks.
func TestExhausted(t *testing.T) {
	p := Defaults()
	p.Secret = make(Secret, 16)
	p.Realm = "r"
	p.Length = 16
	p.Range = Range{1, 65535}
	for x := 65; x <= 65535; x++ {
		p.Exclude = append(p.Exclude, uint16(x))
	}
	if err := p.Validate(); err != nil {
		t.Fatalf("Validate: %v (the protocol allows these parameters)", err)
	}
	_, err := Sequence(&p, "ssh", 1, netip.MustParseAddr("192.0.2.1"))
	if !errors.Is(err, ErrExhausted) {
		t.Errorf("Sequence error = %v, want ErrExhausted", err)
	}
}

func TestValidate(t *testing.T) {
	ok := Defaults()
	ok.Secret = make(Secret, 32)
	ok.Realm = "r"
	if err := ok.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	tests := []struct {
		name  string
		mod   func(*Params)
		param string
	}{
		{"short secret", func(p *Params) { p.Secret = make(Secret, 15) }, "secret"},
		{"long secret", func(p *Params) { p.Secret = make(Secret, 65) }, "secret"},
		{"empty realm", func(p *Params) { p.Realm = "" }, "realm"},
		{"long realm", func(p *Params) { p.Realm = strings.Repeat("x", 256) }, "realm"},
		{"bad utf8 realm", func(p *Params) { p.Realm = "\xff" }, "realm"},
		{"no services", func(p *Params) { p.Services = nil }, "services"},
		{"bad service", func(p *Params) { p.Services = []string{"-ssh"} }, "services"},
		{"long service", func(p *Params) { p.Services = []string{strings.Repeat("s", 64)} }, "services"},
		{"period low", func(p *Params) { p.Period = 4 }, "period"},
		{"period high", func(p *Params) { p.Period = 3601 }, "period"},
		{"len low", func(p *Params) { p.Length = 1 }, "len"},
		{"len high", func(p *Params) { p.Length = 17 }, "len"},
		{"range inverted", func(p *Params) { p.Range = Range{20000, 10000} }, "range"},
		{"range zero", func(p *Params) { p.Range = Range{0, 100} }, "range"},
		{"range small", func(p *Params) { p.Range = Range{100, 162} }, "range"},
		{"exclude outside", func(p *Params) { p.Exclude = []uint16{80} }, "exclude"},
		{"exclude unsorted", func(p *Params) { p.Exclude = []uint16{10002, 10001} }, "exclude"},
		{"exclude too much", func(p *Params) {
			p.Range = Range{100, 200}
			for x := uint16(100); x < 140; x++ {
				p.Exclude = append(p.Exclude, x)
			}
		}, "range"},
		{"proto", func(p *Params) { p.Proto = 1 }, "proto"},
		{"v6prefix low", func(p *Params) { p.V6Prefix = 47 }, "v6prefix"},
		{"v6prefix high", func(p *Params) { p.V6Prefix = 129 }, "v6prefix"},
	}
	for _, tt := range tests {
		p := ok
		tt.mod(&p)
		err := p.Validate()
		var pe *ParamError
		if !errors.As(err, &pe) || pe.Param != tt.param {
			t.Errorf("%s: Validate() = %v, want a parameter %s error", tt.name, err, tt.param)
		}
	}
}

func FuzzSequence(f *testing.F) {
	f.Add([]byte("0123456789abcdef"), "realm", "ssh", uint64(58_000_000), []byte{192, 0, 2, 1}, uint16(10000), uint16(32767), uint8(4), uint8(128), uint16(0))
	f.Add([]byte("0123456789abcdef0123456789abcdef"), "x", "web", uint64(1<<63), []byte("\x20\x01\x0d\xb8abcdefghijkl"), uint16(1), uint16(64), uint8(16), uint8(48), uint16(3))
	f.Fuzz(func(t *testing.T, secret []byte, realm, service string, window uint64, ip []byte, lo, hi uint16, length, v6prefix uint8, exclude uint16) {
		p := Defaults()
		p.Secret = secret
		p.Realm = realm
		p.Services = []string{service}
		p.Range = Range{lo, hi}
		p.Length = int(length)
		p.V6Prefix = int(v6prefix)
		if exclude != 0 {
			p.Exclude = []uint16{exclude}
		}
		src, ok := netip.AddrFromSlice(ip)
		seq, err := Sequence(&p, service, window, src)
		if err != nil {
			return
		}
		if p.Validate() != nil || !ok {
			t.Fatalf("Sequence succeeded on invalid input")
		}
		checkSequence(t, &p, seq)
		if a, err := Anchor(&p, service, window); err != nil || a != seq[0] {
			t.Fatalf("Anchor = %d, %v; sequence starts %d", a, err, seq[0])
		}
	})
}

// benchParams returns valid parameters with a 32-byte zero secret.
func benchParams() *Params {
	p := Defaults()
	p.Secret = make(Secret, 32)
	p.Realm = "ssh.example.com"
	return &p
}

func benchDeriver(b *testing.B) *Deriver {
	d, err := NewDeriver(benchParams())
	if err != nil {
		b.Fatal(err)
	}
	return d
}

func BenchmarkAnchor(b *testing.B) {
	d := benchDeriver(b)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := d.Anchor("ssh", uint64(i)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSequence(b *testing.B) {
	d := benchDeriver(b)
	src := netip.MustParseAddr("2001:db8::7")
	buf := make([]uint16, 0, MaxLength)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := d.AppendSequence(buf[:0], "ssh", uint64(i), src); err != nil {
			b.Fatal(err)
		}
	}
}

func TestDeriveAllocs(t *testing.T) {
	p := Defaults()
	p.Secret = make(Secret, 32)
	p.Realm = "ssh.example.com"
	d, _ := NewDeriver(&p)
	buf := make([]uint16, 0, MaxLength)
	src := netip.MustParseAddr("192.0.2.1")
	if n := testing.AllocsPerRun(100, func() { _, _ = d.AppendSequence(buf[:0], "ssh", 7, src) }); n != 0 {
		t.Errorf("AppendSequence allocates %v times per call, want 0", n)
	}
}

// TestMACMatchesHMAC: the Deriver's HMAC over restored SHA-256 states is
// crypto/hmac's HMAC-SHA256, for keys shorter than, as long as and longer
// than a block (the protocol's secrets are 16..64 bytes) and messages of
// every length up to a few blocks.
func TestMACMatchesHMAC(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	d, err := NewDeriver(benchParams())
	if err != nil {
		t.Fatal(err)
	}
	for klen := 1; klen <= 2*sha256.BlockSize+2; klen++ {
		p := *benchParams()
		p.Secret = make(Secret, klen)
		for i := range p.Secret {
			p.Secret[i] = byte(r.Uint32())
		}
		d.setKey(&p)
		msg := make([]byte, r.IntN(3*sha256.BlockSize))
		for i := range msg {
			msg[i] = byte(r.Uint32())
		}
		want := hmac.New(sha256.New, p.Secret)
		want.Write(msg)
		if got := d.mac(msg); !bytes.Equal(got, want.Sum(nil)) {
			t.Fatalf("key of %d bytes, message of %d: mac %x, want HMAC-SHA256 %x", klen, len(msg), got, want.Sum(nil))
		}
	}
}

// TestRekey: a Deriver rekeyed to other parameters derives what a new one
// for them derives, allocating nothing; rekeying to invalid parameters
// fails and leaves it as it was.
func TestRekey(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	p0 := randParams(r)
	d, err := NewDeriver(&p0)
	if err != nil {
		t.Fatal(err)
	}
	src := netip.MustParseAddr("2001:db8::7")
	for range 200 {
		p := randParams(r)
		if err := d.Rekey(&p); err != nil {
			t.Fatalf("Rekey: %v", err)
		}
		fresh, err := NewDeriver(&p)
		if err != nil {
			t.Fatal(err)
		}
		w := r.Uint64()
		got, err1 := d.AppendSequence(nil, "ssh", w, src)
		want, err2 := fresh.AppendSequence(nil, "ssh", w, src)
		if !slices.Equal(got, want) || (err1 == nil) != (err2 == nil) {
			t.Fatalf("rekeyed: %v (%v), new: %v (%v)", got, err1, want, err2)
		}
	}
	before, _ := d.AppendSequence(nil, "ssh", 9, src)
	bad := *d.Params()
	bad.Secret = make(Secret, 8)
	if err := d.Rekey(&bad); err == nil || !strings.Contains(err.Error(), "parameter secret") {
		t.Errorf("Rekey(8-byte secret) error = %v", err)
	}
	if after, _ := d.AppendSequence(nil, "ssh", 9, src); !slices.Equal(after, before) {
		t.Errorf("after a failed Rekey: %v, want %v as before", after, before)
	}
	p1, p2 := randParams(r), randParams(r)
	if n := testing.AllocsPerRun(100, func() { d.Rekey(&p1); d.Rekey(&p2) }); n != 0 {
		t.Errorf("Rekey allocates %v times per call, want 0", n/2)
	}
}
