package client

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/stun/v3"
)

// responder is an in-process STUN server on a loopback address: it answers
// binding requests with a mapped address it is told (as a NAT would make
// one up), and records where the requests came from.
type responder struct {
	conn   *net.UDPConn
	mapped netip.AddrPort // the address it reports
	drop   int            // requests to ignore before answering
	errors bool           // answer with a 400 error response
	stray  bool           // send an answer of another transaction first
	legacy bool           // MAPPED-ADDRESS only (RFC 3489)

	mu   sync.Mutex // guards from
	from []netip.AddrPort
}

func newResponder(t *testing.T, network, addr string, mapped string) *responder {
	t.Helper()
	c, err := net.ListenPacket(network, addr)
	if err != nil {
		t.Skipf("no %s loopback here: %v", network, err)
	}
	r := &responder{conn: c.(*net.UDPConn), mapped: netip.MustParseAddrPort(mapped)}
	done := make(chan struct{})
	t.Cleanup(func() { r.conn.Close(); <-done })
	go func() {
		defer close(done)
		r.serve()
	}()
	return r
}

func (r *responder) addr() string { return r.conn.LocalAddr().String() }

func (r *responder) requests() []netip.AddrPort {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]netip.AddrPort(nil), r.from...)
}

func (r *responder) serve() {
	buf := make([]byte, 1500)
	for {
		n, from, err := r.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		r.mu.Lock()
		r.from = append(r.from, from)
		count := len(r.from)
		r.mu.Unlock()
		if count <= r.drop {
			continue
		}
		req := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
		if req.Decode() != nil || req.Type != stun.BindingRequest {
			continue
		}
		ip, port := net.IP(r.mapped.Addr().AsSlice()), int(r.mapped.Port())
		if r.stray {
			other, _ := stun.Build(stun.NewTransactionIDSetter([12]byte{1, 2, 3}), stun.BindingSuccess,
				&stun.XORMappedAddress{IP: net.ParseIP("192.0.2.66"), Port: 1})
			r.conn.WriteToUDPAddrPort(other.Raw, from)
		}
		var setters []stun.Setter
		switch {
		case r.errors:
			setters = []stun.Setter{req, stun.NewType(stun.MethodBinding, stun.ClassErrorResponse), stun.CodeBadRequest}
		case r.legacy:
			setters = []stun.Setter{req, stun.BindingSuccess, &stun.MappedAddress{IP: ip, Port: port}}
		default:
			setters = []stun.Setter{req, stun.BindingSuccess, &stun.XORMappedAddress{IP: ip, Port: port}, stun.Fingerprint}
		}
		resp, err := stun.Build(setters...)
		if err != nil {
			panic(err)
		}
		r.conn.WriteToUDPAddrPort(resp.Raw, from)
	}
}

var loopback4 = netip.MustParseAddr("127.0.0.1")

func TestSTUNMapped(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(*responder)
	}{
		{"xor-mapped", func(*responder) {}},
		{"mapped-address only", func(r *responder) { r.legacy = true }},
		{"first request lost", func(r *responder) { r.drop = 1 }},
		{"stray answer ignored", func(r *responder) { r.stray = true }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newResponder(t, "udp4", "127.0.0.1:0", "203.0.113.50:4444")
			tc.set(r)
			s := &STUN{Timeout: 10 * time.Second}
			got, from, err := s.Mapped(t.Context(), []string{r.addr()}, loopback4)
			if err != nil {
				t.Fatal(err)
			}
			if got != netip.MustParseAddr("203.0.113.50") || from != r.addr() {
				t.Errorf("Mapped = %v from %s, want 203.0.113.50 from %s", got, from, r.addr())
			}
		})
	}
}

// TestSTUNFromLocal: the request leaves from the local address the knock
// uses, not whatever the system would pick.
func TestSTUNFromLocal(t *testing.T) {
	r := newResponder(t, "udp4", "127.0.0.1:0", "203.0.113.50:4444")
	local := netip.MustParseAddr("127.0.0.2")
	s := &STUN{Timeout: 10 * time.Second}
	if _, _, err := s.Mapped(t.Context(), []string{r.addr()}, local); err != nil {
		t.Fatal(err)
	}
	reqs := r.requests()
	if len(reqs) == 0 || reqs[0].Addr() != local {
		t.Errorf("requests came from %v, want %v", reqs, local)
	}
}

func TestSTUNIPv6(t *testing.T) {
	r := newResponder(t, "udp6", "[::1]:0", "[2001:db8::50]:4444")
	s := &STUN{Timeout: 10 * time.Second}
	got, _, err := s.Mapped(t.Context(), []string{r.addr()}, netip.MustParseAddr("::1"))
	if err != nil {
		t.Fatal(err)
	}
	if got != netip.MustParseAddr("2001:db8::50") {
		t.Errorf("Mapped = %v, want 2001:db8::50", got)
	}
}

// TestSTUNParallel: a silent server does not hold up one that answers.
func TestSTUNParallel(t *testing.T) {
	silent, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	r := newResponder(t, "udp4", "127.0.0.1:0", "203.0.113.50:4444")
	// A timeout far longer than the test may take: the answer must not
	// wait for the silent server.
	s := &STUN{Timeout: time.Hour}
	got, from, err := s.Mapped(t.Context(), []string{silent.LocalAddr().String(), r.addr()}, loopback4)
	if err != nil || got != netip.MustParseAddr("203.0.113.50") || from != r.addr() {
		t.Errorf("Mapped = %v from %s, %v; want 203.0.113.50 from %s", got, from, err, r.addr())
	}
}

func TestSTUNErrors(t *testing.T) {
	silent, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	refusing := newResponder(t, "udp4", "127.0.0.1:0", "203.0.113.50:4444")
	refusing.errors = true
	names := fakeResolver{"stun6.example.net": {netip.MustParseAddr("::1")}}
	s := &STUN{Timeout: 300 * time.Millisecond, Resolver: names}
	for _, tc := range []struct {
		servers []string
		want    []string
	}{
		{nil, []string{"stun: no server"}},
		{[]string{silent.LocalAddr().String()}, []string{"stun server " + silent.LocalAddr().String() + ": no answer from", "deadline exceeded"}},
		{[]string{refusing.addr()}, []string{"stun server " + refusing.addr() + ": answer from", "error response 400"}},
		{[]string{"[::1]:3478"}, []string{"stun server [::1]:3478: no IPv4 address (it has [::1]), and the knock leaves from 127.0.0.1"}},
		{[]string{"stun6.example.net:3478"}, []string{"no IPv4 address (it has [::1])"}},
		{[]string{"nohost.example.net:3478"}, []string{"stun server nohost.example.net:3478: cannot resolve nohost.example.net"}},
		{[]string{"[::1]:3478", refusing.addr()}, []string{"no IPv4 address", "error response 400"}},
	} {
		_, _, err := s.Mapped(t.Context(), tc.servers, loopback4)
		for _, w := range tc.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("Mapped(%v) = %v, want an error containing %q", tc.servers, err, w)
			}
		}
	}
}

// TestSTUNCancel: Mapped returns when its context is done.
func TestSTUNCancel(t *testing.T) {
	silent, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	s := &STUN{Timeout: time.Hour}
	_, _, err = s.Mapped(ctx, []string{silent.LocalAddr().String()}, loopback4)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Mapped with a cancelled context = %v, want context.Canceled", err)
	}
}

type fakeResolver map[string][]netip.Addr

func (f fakeResolver) LookupNetIP(_ context.Context, network, host string) ([]netip.Addr, error) {
	a, ok := f[host]
	if !ok {
		return nil, errors.New("no such host")
	}
	return a, nil
}
