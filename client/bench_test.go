package client

import (
	"context"
	"net"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/tknock/tknock/inet"
)

type nopDialer struct{}

func (nopDialer) Knock(context.Context, inet.Proto, netip.AddrPort) error { return nil }

// BenchmarkKnockPlan is the client's own work for one knock: target,
// window, sequence, no network and no pause.
func BenchmarkKnockPlan(b *testing.B) {
	f := newFakeNet()
	k := &Knocker{Dialer: nopDialer{}, Resolver: f, Route: f.route}
	req := Request{Enrollment: testEnrollment(b, "alice", "192.0.2.10", inet.TCP)}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := k.Knock(b.Context(), req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkKnockPlanWithMemory adds the window memory's read and atomic
// rewrite.
func BenchmarkKnockPlanWithMemory(b *testing.B) {
	f := newFakeNet()
	now := time.Unix(1_800_000_000, 0)
	k := &Knocker{Dialer: nopDialer{}, Resolver: f, Route: f.route, Now: func() time.Time { return now },
		Memory: &Memory{Path: filepath.Join(b.TempDir(), MemoryFile)}}
	req := Request{Enrollment: testEnrollment(b, "alice", "192.0.2.10", inet.TCP)}
	for b.Loop() {
		now = now.Add(time.Minute) // a fresh window each time
		if _, err := k.Knock(b.Context(), req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNetDialerTCP is one real TCP knock (socket, non-blocking
// connect, close) to a closed loopback port.
func BenchmarkNetDialerTCP(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	dst := ln.Addr().(*net.TCPAddr).AddrPort()
	ln.Close()
	for b.Loop() {
		if err := (NetDialer{}).Knock(b.Context(), inet.TCP, dst); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNetDialerUDP is one real UDP knock to loopback.
func BenchmarkNetDialerUDP(b *testing.B) {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	dst := c.LocalAddr().(*net.UDPAddr).AddrPort()
	for b.Loop() {
		if err := (NetDialer{}).Knock(b.Context(), inet.UDP, dst); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadQR decodes pquerna/otp's 400x400 PNG of an enrollment.
func BenchmarkReadQR(b *testing.B) {
	uri, img := enrollmentQR(b)
	path := writeImage(b, "qr.png", img)
	for b.Loop() {
		got, err := ReadQR(path)
		if err != nil || got != uri {
			b.Fatalf("ReadQR = %q, %v", got, err)
		}
	}
}
