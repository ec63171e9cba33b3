package nft

import (
	"errors"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
)

// TestDeadlineReplacesSocket: an operation whose deadline passes before
// the kernel's answer is read fails with the deadline, and the socket is
// replaced, so the answer left behind is not read as the next
// operation's: the next Apply and Allow succeed and the grant reads back.
func TestDeadlineReplacesSocket(t *testing.T) {
	ns := newNS(t)
	tb, err := Open(testConfig, WithNetNSFd(ns.Fd(t)), WithTimeout(time.Nanosecond))
	if err != nil {
		t.Fatal(err)
	}
	defer tb.Close()
	first := tb.conn
	if err := tb.Apply(testConfig); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Apply with a deadline already passed: %v, want a deadline error", err)
	}
	if tb.conn == first {
		t.Errorf("after a deadline the netlink socket is the same: an answer left in it would be read as the next one's")
	}
	tb.timeout = DefaultTimeout
	ensure(t, tb)
	src := netip.MustParseAddr("192.0.2.7")
	if err := tb.Allow(src, ssh, time.Minute); err != nil {
		t.Fatalf("Allow after the socket was replaced: %v", err)
	}
	g, err := tb.Grants()
	if err != nil || len(g) != 1 || g[0].Src != src {
		t.Errorf("Grants = %v, %v, want the one grant of %v", g, err, src)
	}
}

// TestDeadlineSocketLost: when the socket cannot be reopened after a
// deadline (here a socket option of the reopen fails, as the kernel's
// refusal would), the Table is closed: the error and every later call's
// wrap ErrClosed, which the daemon takes as the cue to exit.
func TestDeadlineSocketLost(t *testing.T) {
	ns := newNS(t)
	tb, err := Open(testConfig, WithNetNSFd(ns.Fd(t)), WithTimeout(time.Nanosecond))
	if err != nil {
		t.Fatal(err)
	}
	defer tb.Close()
	tb.connOpts = append(tb.connOpts, nftables.WithSockOptions(func(*netlink.Conn) error {
		return errors.New("no more sockets")
	}))
	if err := tb.Apply(testConfig); !errors.Is(err, ErrClosed) || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Apply, deadline passed and no way to reopen: %v, want the deadline and ErrClosed", err)
	}
	if err := tb.Allow(netip.MustParseAddr("192.0.2.7"), ssh, time.Minute); !errors.Is(err, ErrClosed) {
		t.Errorf("Allow after the socket was lost: %v, want ErrClosed", err)
	}
}
