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

// TestWaitReknock: the door opens only once the port is knocked again,
// as after a knock whose packets were lost; WaitReknock knocks again
// after the given time and gets in.
func TestWaitReknock(t *testing.T) {
	dst := freePort(t)
	var ln net.Listener
	calls := 0
	reknock := func(ctx context.Context) error {
		calls++
		if ln != nil {
			return nil
		}
		var err error
		ln, err = net.Listen("tcp", dst.String())
		return err
	}
	c, took, err := WaitReknock(t.Context(), dst, 5*time.Second, 300*time.Millisecond, reknock)
	if ln == nil {
		t.Skipf("the port was taken meanwhile (%v)", err)
	}
	defer ln.Close()
	if err != nil {
		t.Fatalf("WaitReknock: %v", err)
	}
	c.Close()
	if calls != 1 || took < 300*time.Millisecond {
		t.Errorf("WaitReknock: %d re-knocks, connected after %v; want one re-knock, after 300ms", calls, took)
	}
}

// TestWaitReknockError: a re-knock that fails (both windows used, say) is
// not tried again, waiting goes on, and the timeout says why no knock
// went out.
func TestWaitReknockError(t *testing.T) {
	dst := freePort(t)
	calls := 0
	reknock := func(context.Context) error {
		calls++
		return ErrWindowsUsed
	}
	_, _, err := WaitReknock(t.Context(), dst, time.Second, 200*time.Millisecond, reknock)
	if !errors.Is(err, ErrNotOpen) || !errors.Is(err, ErrWindowsUsed) || calls != 1 {
		t.Errorf("WaitReknock with a failing re-knock = %v after %d calls, want ErrNotOpen and ErrWindowsUsed after one", err, calls)
	}
}
