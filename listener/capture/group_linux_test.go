package capture

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/internal/nstest"
	"github.com/tknock/tknock/internal/testkit"
	"github.com/tknock/tknock/listener"
)

// TestFeedReattachVeth captures on a real veth interface in a namespace,
// then takes the interface down and up, then deletes and recreates it:
// each time the feed reattaches and knocks arrive again.
func TestFeedReattachVeth(t *testing.T) {
	nstest.RequireRoot(t)
	srv, peer := nstest.New(t), nstest.New(t)
	srvIf, _ := nstest.Link(t, srv, peer, []string{"192.0.2.1/24"}, []string{"192.0.2.2/24"})
	ranges := []inet.Range{{Proto: inet.UDP, Lo: 40000, Hi: 40999}}
	open := func(iface string, r []inet.Range) (Reader, error) {
		var c *Conn
		err := srv.Do(func() error {
			var err error
			c, err = Listen(Config{Interface: iface, Ranges: r})
			return err
		})
		if err != nil {
			return nil, err
		}
		return c, nil
	}
	var logBuf testkit.SyncBuffer
	f, err := OpenGroup([]string{srvIf}, ranges, open, zerolog.New(&logBuf))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	if _, ok := f.caps[0].cur.(listener.BatchSource); !ok {
		t.Fatal("the Capture is not a listener.BatchSource: the feed would read it one frame at a time")
	}
	knocks := make(chan uint16, 64)
	go func() {
		// As the run loop reads it: in batches, through the Capture's own.
		dec := listener.NewDecoder(ranges)
		fs := make([]listener.Frame, 8)
		for {
			n, err := f.ReadFrames(fs)
			if err != nil {
				close(knocks)
				return
			}
			for _, fr := range fs[:n] {
				if k, ok := dec.Decode(fr); ok {
					knocks <- k.Port
				}
			}
		}
	}()
	// expect sends UDP knocks to port from the peer until one arrives.
	expect := func(step string, port uint16) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			err := peer.Do(func() error {
				c, err := net.Dial("udp", fmt.Sprintf("192.0.2.1:%d", port))
				if err != nil {
					return err
				}
				defer c.Close()
				_, err = c.Write([]byte("knock"))
				return err
			})
			if err != nil {
				t.Logf("%s: send: %v", step, err)
			}
			select {
			case p, ok := <-knocks:
				if !ok {
					t.Fatalf("%s: the feed ended", step)
				}
				if p == port {
					return
				}
			case <-time.After(200 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: no knock to port %d within 15s; log:\n%s", step, port, logBuf.String())
			}
		}
	}
	waitLog := func(what string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(logBuf.String(), what) {
			if time.Now().After(deadline) {
				t.Fatalf("no %q logged within 10s:\n%s", what, logBuf.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	expect("start", 40001)

	srv.MustRun(t, "ip", "link", "set", srvIf, "down")
	waitLog("capture failed; reopening")
	srv.MustRun(t, "ip", "link", "set", srvIf, "up")
	expect("down and up", 40002)

	srv.MustRun(t, "ip", "link", "del", srvIf)
	waitLog("capture reopen failed")
	nstest.Link(t, srv, peer, []string{"192.0.2.1/24"}, []string{"192.0.2.2/24"})
	expect("deleted and recreated", 40003)
	waitLog("capture reattached")
	if s := f.Stats(); s.Read < 3 {
		t.Errorf("Stats().Read = %d after three knocks got through", s.Read)
	}
}
