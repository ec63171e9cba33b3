package client

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// freePort returns a loopback TCP address where nothing listens.
func freePort(t *testing.T) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ap := ln.Addr().(*net.TCPAddr).AddrPort()
	ln.Close()
	return ap
}

func TestWaitOpenAtOnce(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Write([]byte("hello"))
			c.Close()
		}
	}()
	c, took, err := Wait(t.Context(), ln.Addr().(*net.TCPAddr).AddrPort(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if took <= 0 {
		t.Errorf("Wait took %v, want > 0", took)
	}
	if b, _ := io.ReadAll(c); string(b) != "hello" {
		t.Errorf("read %q through Wait's connection, want hello", b)
	}
}

// TestWaitOpensLater starts listening only after Wait has failed a few
// attempts, as a door that opens after the knock.
func TestWaitOpensLater(t *testing.T) {
	dst := freePort(t)
	ready := make(chan net.Listener, 1)
	go func() {
		time.Sleep(3 * WaitInterval)
		ln, err := net.Listen("tcp", dst.String())
		if err != nil {
			ready <- nil
			return
		}
		ready <- ln
	}()
	c, took, err := Wait(t.Context(), dst, 10*time.Second)
	ln := <-ready
	if ln == nil {
		t.Skip("the port was taken meanwhile")
	}
	defer ln.Close()
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	c.Close()
	if took < 3*WaitInterval {
		t.Errorf("Wait took %v, before the listener started", took)
	}
}

func TestWaitTimeout(t *testing.T) {
	dst := freePort(t)
	_, _, err := Wait(t.Context(), dst, 3*WaitInterval)
	if !errors.Is(err, ErrNotOpen) || !strings.Contains(err.Error(), "refused") || !strings.Contains(err.Error(), dst.String()) {
		t.Errorf("Wait on a closed port = %v, want ErrNotOpen naming %v and the refusal", err, dst)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, _, err := Wait(ctx, dst, time.Second); !errors.Is(err, context.Canceled) {
		t.Errorf("Wait with a cancelled context = %v, want context.Canceled", err)
	}
}
