package daemon

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/internal/config"
	"github.com/tknock/tknock/internal/config/configtest"
	"github.com/tknock/tknock/listener"
	"github.com/tknock/tknock/listener/capture"
	"github.com/tknock/tknock/totpseq"
)

// loopCapture serves its frames round and round without blocking, n
// frames in all, then blocks until closed: a capture as fast as memory.
type loopCapture struct {
	frames []listener.Frame
	n      int64
	served atomic.Int64
	done   chan struct{}
}

func (c *loopCapture) ReadFrame() (listener.Frame, error) {
	i := c.served.Add(1) - 1
	if i >= c.n {
		<-c.done
		return listener.Frame{}, listener.ErrClosed
	}
	return c.frames[i%int64(len(c.frames))], nil
}

func (c *loopCapture) Close() error {
	select {
	case <-c.done:
	default:
		close(c.done)
	}
	return nil
}

func (c *loopCapture) SetRanges([]inet.Range) error { return nil }
func (c *loopCapture) Stats() capture.Stats         { return capture.Stats{} }

// strayFrames are knocks into the range from many sources that match no
// sequence: what a scan or a spoofed flood looks like.
func strayFrames(b *testing.B, n int) []listener.Frame {
	frames := make([]listener.Frame, n)
	now := time.Now()
	for i := range frames {
		src := netip.AddrFrom4([4]byte{198, 51, byte(i >> 8), byte(i)})
		frames[i] = knockFrame(b, src, inet.TCP, uint16(10000+i%20000), now)
	}
	return frames
}

// BenchmarkFeed is the cost the feed adds per frame: with one interface
// (or "any") a direct read; with several, the hand-over from an
// interface's goroutine to the run loop.
func BenchmarkFeed(b *testing.B) {
	for _, ifaces := range [][]string{nil, {"eth0", "eth1"}} {
		b.Run(fmt.Sprintf("interfaces=%d", max(1, len(ifaces))), func(b *testing.B) {
			open := func(string, []inet.Range) (capture.Reader, error) {
				return &loopCapture{frames: strayFrames(b, 1), n: int64(b.N), done: make(chan struct{})}, nil
			}
			f, err := capture.OpenGroup(ifaces, nil, open, zerolog.Nop())
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, err := f.ReadFrame(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDaemon runs the whole daemon (feed, decoder, tracker with 1000
// users, fake firewall) over stray knocks and reports frames per second.
func BenchmarkDaemon(b *testing.B) {
	c := configtest.New(b, "")
	var users []*totpseq.Enrollment
	for i := range 1000 {
		u := configtest.Enrollment(b, c, fmt.Sprintf("user%04d", i))
		users = append(users, u)
	}
	lc := &loopCapture{frames: strayFrames(b, 4096), n: int64(b.N), done: make(chan struct{})}
	fw := newFakeFirewall()
	var ln net.Listener
	d := deps{
		openCapture:     func(string, []inet.Range, *capture.Prefilter) (capture.Reader, error) { return lc, nil },
		openFirewall:    fw.open,
		checkInterfaces: func(*config.Config) error { return nil },
		listen:          func(string, string) (net.Listener, error) { return ln, nil },
		now:             time.Now,
		hup:             make(chan os.Signal),
	}
	var err error
	ln, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	cc := *c
	cc.MetricsListen = "x"
	cc.Metrics = config.MetricsConfig{Network: "tcp", Addr: "x", Window: time.Minute, Debug: true} // tknock_frames_total
	addr := ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	b.ResetTimer()
	start := time.Now()
	go func() { done <- runDaemon(ctx, &cc, users, nil, d, zerolog.Nop()) }()
	for {
		n, err := frameCount(addr)
		if err == nil && n >= b.N {
			break
		}
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "frames/s")
}

// frameCount reads tknock_frames_total from the metrics at addr.
func frameCount(addr string) (int, error) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(body)) {
		var n int
		if _, err := fmt.Sscanf(line, "tknock_frames_total %d", &n); err == nil {
			return n, nil
		}
	}
	return 0, fmt.Errorf("no tknock_frames_total in the metrics")
}
