package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rs/zerolog"
	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/totpseq"
)

// sent is one knock as the fake network saw it.
type sent struct {
	Proto inet.Proto
	Dst   netip.AddrPort
	At    time.Time
}

// fakeNet is an injected network: it records knocks, resolves names from a
// table and routes every destination from a fixed source per family.
type fakeNet struct {
	mu     sync.Mutex
	knocks []sent
	failAt int // 1-based knock that fails; 0: none
	names  map[string][]netip.Addr
	src4   netip.Addr
	src6   netip.Addr
	noV6   bool // IPv6 destinations have no route
}

func (f *fakeNet) Knock(_ context.Context, proto inet.Proto, dst netip.AddrPort) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.knocks)+1 == f.failAt {
		return errors.New("send: no buffer space available")
	}
	f.knocks = append(f.knocks, sent{proto, dst, time.Now()})
	return nil
}

func (f *fakeNet) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := f.names[host]; ok {
		return a, nil
	}
	return nil, fmt.Errorf("lookup %s: no such host", host)
}

func (f *fakeNet) route(dst netip.Addr) (netip.Addr, error) {
	if dst.Is4() {
		return f.src4, nil
	}
	if f.noV6 {
		return netip.Addr{}, errors.New("connect: network is unreachable")
	}
	return f.src6, nil
}

func (f *fakeNet) ports() []uint16 {
	var ps []uint16
	for _, k := range f.knocks {
		ps = append(ps, k.Dst.Port())
	}
	return ps
}

func newFakeNet() *fakeNet {
	return &fakeNet{
		names: map[string][]netip.Addr{
			"ssh.example.com":  {netip.MustParseAddr("2001:db8::10"), netip.MustParseAddr("192.0.2.10")},
			"ssh4.example.com": {netip.MustParseAddr("192.0.2.10")},
		},
		src4: netip.MustParseAddr("198.51.100.7"),
		src6: netip.MustParseAddr("2001:db8:1::7"),
	}
}

func (f *fakeNet) knocker(now func() time.Time) *Knocker {
	return &Knocker{Dialer: f, Resolver: f, Route: f.route, Now: now, Gap: DefaultGap}
}

func wantSequence(t *testing.T, e *totpseq.Enrollment, service string, w uint64, src netip.Addr) []uint16 {
	t.Helper()
	ps, err := totpseq.Sequence(&e.Params, service, w, src)
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

func TestKnockSendsRoundsWithGaps(t *testing.T) {
	for _, proto := range []inet.Proto{inet.TCP, inet.UDP} {
		t.Run(proto.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFakeNet()
				e := testEnrollment(t, "alice", "ssh4.example.com", proto, "ssh", "web")
				e.Length = 6
				start := time.Now()
				k := f.knocker(time.Now)
				k.Rounds = DefaultRounds
				r, err := k.Knock(t.Context(), Request{Enrollment: e, Service: "web"})
				if err != nil {
					t.Fatal(err)
				}
				w := totpseq.Window(start, e.Period)
				seq := wantSequence(t, e, "web", w, f.src4)
				want := slices.Concat(seq, seq, seq)
				if diff := cmp.Diff(want, f.ports()); diff != "" {
					t.Errorf("ports knocked (-want +got):\n%s", diff)
				}
				for i, kn := range f.knocks {
					if kn.Proto != proto || kn.Dst.Addr() != netip.MustParseAddr("192.0.2.10") {
						t.Errorf("knock %d: %v to %v, want %v to 192.0.2.10", i, kn.Proto, kn.Dst.Addr(), proto)
					}
					// synctest's clock is exact: round r's anchor goes at
					// 2r gaps, its bound ports together one gap later.
					round, j := i/len(seq), i%len(seq)
					gaps := 2 * round
					if j > 0 {
						gaps++
					}
					if got, want := kn.At.Sub(start), time.Duration(gaps)*DefaultGap; got != want {
						t.Errorf("knock %d (round %d, port %d) sent at +%v, want +%v", i, round+1, j+1, got, want)
					}
				}
				wantR := &Result{Host: "ssh4.example.com", Addr: netip.MustParseAddr("192.0.2.10"), Source: f.src4, From: FromOutbound,
					Service: "web", Proto: proto, Window: w, Knocks: 18}
				if diff := cmp.Diff(wantR, r, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
					t.Errorf("Result (-want +got):\n%s", diff)
				}
			})
		})
	}
}

func TestKnockRoundsOutOfRange(t *testing.T) {
	for _, n := range []int{-1, MaxRounds + 1} {
		f := newFakeNet()
		k := f.knocker(time.Now)
		k.Rounds = n
		_, err := k.Knock(t.Context(), Request{Enrollment: testEnrollment(t, "alice", "ssh4.example.com", inet.TCP)})
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("rounds %d", n)) || len(f.knocks) != 0 {
			t.Errorf("Rounds %d: %v, %d knocks; want an error naming the rounds and no knock", n, err, len(f.knocks))
		}
	}
}

func TestKnockNoGap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeNet()
		k := f.knocker(time.Now)
		k.Gap = 0
		k.Rounds = 2
		start := time.Now()
		if _, err := k.Knock(t.Context(), Request{Enrollment: testEnrollment(t, "alice", "ssh4.example.com", inet.TCP)}); err != nil {
			t.Fatal(err)
		}
		if len(f.knocks) != 8 || !f.knocks[7].At.Equal(start) {
			t.Errorf("with Gap 0: %d knocks, last at +%v; want 8 at once", len(f.knocks), f.knocks[len(f.knocks)-1].At.Sub(start))
		}
	})
}

func TestKnockWindowMemory(t *testing.T) {
	f := newFakeNet()
	now := time.Unix(1_800_000_010, 0) // 10 s into window 60_000_000
	k := f.knocker(func() time.Time { return now })
	k.Gap = 0
	k.Memory = &Memory{Path: filepath.Join(t.TempDir(), MemoryFile)}
	e := testEnrollment(t, "alice", "ssh4.example.com", inet.UDP, "ssh", "web")
	cur := totpseq.Window(now, e.Period)

	knock := func(svc string) (*Result, error) {
		f.knocks = nil
		return k.Knock(t.Context(), Request{Enrollment: e, Service: svc})
	}
	r, err := knock("ssh")
	if err != nil || r.Window != cur || r.Next {
		t.Fatalf("first knock: window %d next %v err %v; want %d", r.Window, r.Next, err, cur)
	}
	now = now.Add(3 * time.Second)
	r, err = knock("ssh")
	if err != nil || r.Window != cur+1 || !r.Next {
		t.Fatalf("second knock in one window: window %d next %v err %v; want %d", r.Window, r.Next, err, cur+1)
	}
	if diff := cmp.Diff(wantSequence(t, e, "ssh", cur+1, f.src4), f.ports()); diff != "" {
		t.Errorf("second knock sent another sequence than window+1's (-want +got):\n%s", diff)
	}
	// Another service has its own windows.
	if r, err := knock("web"); err != nil || r.Window != cur {
		t.Errorf("knock for another service: window %d, %v; want %d", r.Window, err, cur)
	}
	now = now.Add(3 * time.Second)
	r, err = knock("ssh")
	if !errors.Is(err, ErrWindowsUsed) || len(f.knocks) != 0 {
		t.Fatalf("third knock in one window: %v, %d knocks sent; want ErrWindowsUsed and none", err, len(f.knocks))
	}
	if r == nil || r.Addr != netip.MustParseAddr("192.0.2.10") || r.Knocks != 0 {
		t.Errorf("third knock Result = %+v, want the target filled and no knocks", r)
	}
	// A source behind NAT is another replay key: its window is free.
	if r, err := k.Knock(t.Context(), Request{Enrollment: e, Service: "ssh", Source: netip.MustParseAddr("203.0.113.9")}); err != nil || r.Window != cur {
		t.Errorf("knock from another source: window %d, %v; want %d", r.Window, err, cur)
	}
}

func TestKnockFailureNotRemembered(t *testing.T) {
	f := newFakeNet()
	f.failAt = 2
	now := time.Unix(1_800_000_010, 0)
	k := f.knocker(func() time.Time { return now })
	k.Gap = 0
	k.Memory = &Memory{Path: filepath.Join(t.TempDir(), MemoryFile)}
	e := testEnrollment(t, "alice", "ssh4.example.com", inet.TCP)
	_, err := k.Knock(t.Context(), Request{Enrollment: e})
	if err == nil || !strings.Contains(err.Error(), "knock 2 of 4") {
		t.Fatalf("Knock with a failing second send = %v, want 'knock 2 of 4'", err)
	}
	f.failAt = 0
	r, err := k.Knock(t.Context(), Request{Enrollment: e})
	if err != nil || r.Window != totpseq.Window(now, e.Period) {
		t.Errorf("retry after a failed knock: window %d, %v; want the current window again", r.Window, err)
	}
}

func TestKnockTarget(t *testing.T) {
	e := testEnrollment(t, "alice", "ssh.example.com", inet.TCP)
	for _, tc := range []struct {
		name     string
		req      Request
		noV6     bool
		dst, src string
		err      string
	}{
		{name: "first address with a route", req: Request{}, dst: "2001:db8::10", src: "2001:db8:1::7"},
		{name: "IPv6 unreachable falls back to IPv4", req: Request{}, noV6: true, dst: "192.0.2.10", src: "198.51.100.7"},
		{name: "source picks the family", req: Request{Source: netip.MustParseAddr("203.0.113.9")}, dst: "192.0.2.10", src: "203.0.113.9"},
		{name: "mapped source", req: Request{Source: netip.MustParseAddr("::ffff:203.0.113.9")}, dst: "192.0.2.10", src: "203.0.113.9"},
		{name: "host override", req: Request{Host: "ssh4.example.com"}, dst: "192.0.2.10", src: "198.51.100.7"},
		{name: "IPv4 literal", req: Request{Host: "192.0.2.99"}, dst: "192.0.2.99", src: "198.51.100.7"},
		{name: "bracketed IPv6 literal", req: Request{Host: "[2001:db8::99]"}, dst: "2001:db8::99", src: "2001:db8:1::7"},
		{name: "no such host", req: Request{Host: "nohost.example.com"}, err: "host nohost.example.com: cannot resolve the name: lookup nohost.example.com: no such host"},
		{name: "unreachable", req: Request{Host: "2001:db8::99"}, noV6: true, err: "host 2001:db8::99 (2001:db8::99): unreachable: connect: network is unreachable"},
		{name: "family mismatch", req: Request{Host: "ssh4.example.com", Source: netip.MustParseAddr("2001:db8::5")}, err: "host ssh4.example.com has no IPv6 address to match the source address 2001:db8::5"},
		{name: "unknown service", req: Request{Service: "db"}, err: `no service "db" in this enrollment: it has [ssh]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeNet()
			f.noV6 = tc.noV6
			k := f.knocker(time.Now)
			k.Gap = 0
			tc.req.Enrollment = e
			r, err := k.Knock(t.Context(), tc.req)
			if tc.err != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tc.err) {
					t.Errorf("Knock = %v, want an error starting %q", err, tc.err)
				}
				if len(f.knocks) != 0 {
					t.Errorf("%d knocks sent despite the error", len(f.knocks))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.Addr.String() != tc.dst || r.Source.String() != tc.src {
				t.Errorf("knocked %v from %v, want %s from %s", r.Addr, r.Source, tc.dst, tc.src)
			}
			want := wantSequence(t, e, "ssh", r.Window, netip.MustParseAddr(tc.src))
			if diff := cmp.Diff(want, f.ports()); diff != "" {
				t.Errorf("ports (-want +got):\n%s", diff)
			}
			for _, kn := range f.knocks {
				if kn.Dst.Addr().String() != tc.dst {
					t.Errorf("knock to %v, want %s", kn.Dst.Addr(), tc.dst)
				}
			}
		})
	}
}

func TestKnockNoHost(t *testing.T) {
	f := newFakeNet()
	e := testEnrollment(t, "alice", "", inet.TCP)
	if _, err := f.knocker(time.Now).Knock(t.Context(), Request{Enrollment: e}); err == nil || !strings.Contains(err.Error(), "no host") {
		t.Errorf("Knock without a host = %v, want a 'no host' error", err)
	}
	if _, err := f.knocker(time.Now).Knock(t.Context(), Request{}); err == nil {
		t.Error("Knock without an enrollment succeeded")
	}
}

func TestKnockCancelledDuringPause(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeNet()
		k := f.knocker(time.Now)
		k.Gap = time.Second
		k.Rounds = 3
		ctx, cancel := context.WithTimeout(t.Context(), 1500*time.Millisecond)
		defer cancel()
		_, err := k.Knock(ctx, Request{Enrollment: testEnrollment(t, "alice", "ssh4.example.com", inet.TCP)})
		if !errors.Is(err, context.DeadlineExceeded) || len(f.knocks) != 4 {
			t.Errorf("Knock cancelled after 1.5 s of 1 s gaps: %v, %d knocks; want DeadlineExceeded after the first round's 4", err, len(f.knocks))
		}
	})
}

// TestKnockLogsNoPorts runs a knock with debug logging and checks that no
// log field holds a port of the sequence.
func TestKnockLogsNoPorts(t *testing.T) {
	f := newFakeNet()
	var buf bytes.Buffer
	k := f.knocker(time.Now)
	k.Gap = 0
	k.Log = zerolog.New(&buf).Level(zerolog.DebugLevel)
	k.Memory = &Memory{Path: filepath.Join(t.TempDir(), MemoryFile)}
	e := testEnrollment(t, "alice", "ssh4.example.com", inet.TCP)
	e.Length = 16
	if _, err := k.Knock(t.Context(), Request{Enrollment: e}); err != nil {
		t.Fatal(err)
	}
	ports := f.ports()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) < 3 {
		t.Fatalf("debug log has %d lines, want the steps:\n%s", len(lines), buf.String())
	}
	for _, line := range lines {
		var fields map[string]any
		if err := json.Unmarshal([]byte(line), &fields); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		for k, v := range fields {
			if n, ok := v.(float64); ok && slices.Contains(ports, uint16(n)) && float64(uint16(n)) == n {
				t.Errorf("log field %s=%v is a port of the sequence", k, v)
			}
			if s, ok := v.(string); ok {
				for _, p := range ports {
					if strings.Contains(s, fmt.Sprint(p)) {
						t.Errorf("log field %s=%q holds port %d", k, s, p)
					}
				}
			}
		}
	}
}
