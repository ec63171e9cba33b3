package capture_test

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rs/zerolog"

	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/internal/testkit"
	"github.com/tknock/tknock/listener"
	"github.com/tknock/tknock/listener/capture"
	"github.com/tknock/tknock/listener/capture/capturetest"
)

func TestFeedMergesInterfaces(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := capturetest.NewNet()
		ranges := []inet.Range{{Proto: 6, Lo: 10000, Hi: 10999}}
		f, err := capture.OpenGroup([]string{"eth0", "eth1"}, ranges, n.Open, zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		eth0, eth1 := n.WaitOpen(t), n.WaitOpen(t)
		eth0.Frames <- capturetest.Frame(1)
		eth1.Frames <- capturetest.Frame(2)
		eth0.Frames <- capturetest.Frame(3)
		got := map[byte]bool{}
		for range 3 {
			fr, err := f.ReadFrame()
			if err != nil {
				t.Fatal(err)
			}
			got[fr.Data[0]] = true
		}
		if len(got) != 3 {
			t.Errorf("read frames %v, want 1, 2 and 3", got)
		}

		// Reload: every capture gets the new ranges.
		newRanges := []inet.Range{{Proto: 17, Lo: 40000, Hi: 40999}}
		if err := f.SetRanges(newRanges); err != nil {
			t.Fatal(err)
		}
		for _, c := range []*capturetest.Fake{eth0, eth1} {
			if got := c.Ranges(); len(got) != 1 || got[0] != newRanges[0] {
				t.Errorf("%s ranges after SetRanges: %v", c.Iface, got)
			}
		}
		if s := f.Stats(); s.Packets != 20 || s.Drops != 2 {
			t.Errorf("Stats = %+v, want the sum of both captures", s)
		}

		// Close unblocks a pending ReadFrame.
		errc := make(chan error, 1)
		go func() {
			_, err := f.ReadFrame()
			errc <- err
		}()
		synctest.Wait() // ReadFrame is blocked
		f.Close()
		if err := <-errc; !errors.Is(err, listener.ErrClosed) {
			t.Errorf("ReadFrame after Close: %v, want ErrClosed", err)
		}
		if !eth0.Closed() || !eth1.Closed() {
			t.Errorf("Close left a capture.Reader open")
		}
	})
}

// plainCapture is a capture without ReadFrames: only the methods of the
// capture interface are promoted.
type plainCapture struct{ capture.Reader }

// readFrames calls f.ReadFrames with room for max frames and returns the
// first byte of each frame read.
func readFrames(t *testing.T, f *capture.Group, max int) []byte {
	t.Helper()
	fs := make([]listener.Frame, max)
	n, err := f.ReadFrames(fs)
	if err != nil || n < 1 || n > max {
		t.Fatalf("ReadFrames(%d frames) = %d, %v; want 1 to %d frames", max, n, err, max)
	}
	var got []byte
	for _, fr := range fs[:n] {
		got = append(got, fr.Data[0])
	}
	return got
}

// TestFeedReadFrames: a feed of one capture hands over every frame the
// capture has ready, up to the room given, and reopens a failed capture
// as ReadFrame does; a feed of several interfaces, or of a capture without
// a batch read, hands over one frame at a time.
func TestFeedReadFrames(t *testing.T) {
	n := capturetest.NewNet()
	f, err := capture.OpenGroup([]string{"eth0"}, nil, n.Open, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	first := n.WaitOpen(t)
	for i := range 5 {
		first.Frames <- capturetest.Frame(byte(1 + i))
	}
	if got := readFrames(t, f, 3); string(got) != "\x01\x02\x03" {
		t.Errorf("first ReadFrames: frames %v, want 1 2 3", got)
	}
	if got := readFrames(t, f, 8); string(got) != "\x04\x05" {
		t.Errorf("second ReadFrames: frames %v, want 4 5", got)
	}
	// A failed capture is reopened; the run loop sees frames, not the error.
	first.Errs <- fmt.Errorf("capture eth0: %w", syscall.ENETDOWN)
	got := make(chan string)
	go func() {
		fs := make([]listener.Frame, 8)
		n, err := f.ReadFrames(fs)
		if err != nil {
			got <- err.Error()
			return
		}
		var b []byte
		for _, fr := range fs[:n] {
			b = append(b, fr.Data[0])
		}
		got <- string(b)
	}()
	second := n.WaitOpen(t)
	second.Frames <- capturetest.Frame(6)
	if g := <-got; g != "\x06" {
		t.Errorf("ReadFrames across a reopen: %q, want frame 6", g)
	}
	f.Close()
	if n, err := f.ReadFrames(make([]listener.Frame, 4)); n != 0 || !errors.Is(err, listener.ErrClosed) {
		t.Errorf("ReadFrames after Close = %d, %v; want 0, ErrClosed", n, err)
	}

	// A capture without ReadFrames: one frame at a time.
	plain := func(iface string, ranges []inet.Range) (capture.Reader, error) {
		c, err := n.Open(iface, ranges)
		if err != nil {
			return nil, err
		}
		return plainCapture{c}, nil
	}
	fp, err := capture.OpenGroup([]string{"eth0"}, nil, plain, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer fp.Close()
	c := n.WaitOpen(t)
	c.Frames <- capturetest.Frame(7)
	c.Frames <- capturetest.Frame(8)
	for _, want := range []byte{7, 8} {
		if got := readFrames(t, fp, 8); len(got) != 1 || got[0] != want {
			t.Errorf("ReadFrames of a plain capture: frames %v, want %d alone", got, want)
		}
	}

	// Two interfaces: the batch one of them has ready, up to the room
	// given, the rest of it with the next call; in order.
	f2, err := capture.OpenGroup([]string{"eth0", "eth1"}, nil, n.Open, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer f2.Close()
	eth0, eth1 := n.WaitOpen(t), n.WaitOpen(t)
	for i := range 3 {
		eth0.Frames <- capturetest.Frame(byte(9 + i))
	}
	var all []byte
	for len(all) < 3 {
		got := readFrames(t, f2, 1)
		all = append(all, got...)
	}
	if string(all) != "\x09\x0a\x0b" {
		t.Errorf("ReadFrames of two interfaces, one frame at a time: frames %v, want 9 10 11", all)
	}
	eth1.Frames <- capturetest.Frame(12)
	if got := readFrames(t, f2, 8); string(got) != "\x0c" {
		t.Errorf("ReadFrames of two interfaces: frames %v, want 12", got)
	}
}

func TestFeedOpenFails(t *testing.T) {
	n := capturetest.NewNet()
	n.SetMissing("eth1", true)
	_, err := capture.OpenGroup([]string{"eth0", "eth1"}, nil, n.Open, zerolog.Nop())
	if err == nil || !strings.Contains(err.Error(), "interface eth1") {
		t.Fatalf("OpenGroup with a missing interface: %v", err)
	}
	if !n.Opened[0].Closed() {
		t.Errorf("eth0's capture.Reader left open after eth1 failed")
	}
}

// TestFeedReattach: when an interface's capture fails, the feed reopens it,
// retrying while the interface is missing, and frames flow again; the run
// loop never sees the error.
func TestFeedReattach(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := capturetest.NewNet()
		var logBuf testkit.SyncBuffer
		f, err := capture.OpenGroup([]string{"eth0"}, nil, n.Open, zerolog.New(&logBuf))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		first := n.WaitOpen(t)

		got := make(chan byte)
		go func() {
			for {
				fr, err := f.ReadFrame()
				if err != nil {
					close(got)
					return
				}
				got <- fr.Data[0]
			}
		}()
		first.Frames <- capturetest.Frame(1)
		if b := <-got; b != 1 {
			t.Fatalf("frame %d, want 1", b)
		}

		n.SetMissing("eth0", true)
		first.Errs <- fmt.Errorf("capture eth0: %w", syscall.ENETDOWN)
		// Two failed reopens, then the interface is back.
		deadline := time.Now().Add(10 * time.Second)
		for strings.Count(logBuf.String(), "capture reopen failed") < 2 {
			if time.Now().After(deadline) {
				t.Fatalf("no failed reopen logged:\n%s", logBuf.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
		n.SetMissing("eth0", false)
		second := n.WaitOpen(t)
		if !first.Closed() {
			t.Errorf("the failed capture.Reader was not closed")
		}
		second.Frames <- capturetest.Frame(2)
		if b := <-got; b != 2 {
			t.Fatalf("frame %d after reattach, want 2", b)
		}
		for _, want := range []string{`"level":"warn"`, "capture failed; reopening", "network is down", "capture reattached", `"interface":"eth0"`} {
			if !strings.Contains(logBuf.String(), want) {
				t.Errorf("log lacks %q:\n%s", want, logBuf.String())
			}
		}
		if s := f.Stats(); s.Packets != 20 {
			t.Errorf("Stats().Packets = %d after a reopen, want 20 (the closed capture's counters are kept)", s.Packets)
		}
		f.Close()
		if _, ok := <-got; ok {
			t.Errorf("frames after Close")
		}
	})
}
