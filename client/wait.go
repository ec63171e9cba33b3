package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// ErrNotOpen is wrapped by Wait's error when the port accepted no
// connection in time.
var ErrNotOpen = errors.New("the port accepted no connection")

// WaitInterval is how often Wait starts a new connection attempt. Earlier
// attempts go on (a port behind the knock drops SYNs, so an attempt made
// just before the door opened would hang until its SYN is retransmitted a
// second later); the first to connect wins.
const WaitInterval = 100 * time.Millisecond

// Wait connects to dst over TCP, starting a fresh attempt every
// WaitInterval, until one succeeds or timeout passes. It returns the
// connection and how long it took. The error after a timeout wraps
// ErrNotOpen and carries the last attempt's error.
func Wait(ctx context.Context, dst netip.AddrPort, timeout time.Duration) (net.Conn, time.Duration, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	type result struct {
		c   net.Conn
		err error
	}
	results := make(chan result)
	pending := 0
	attempt := func() {
		pending++
		go func() {
			var d net.Dialer
			c, err := d.DialContext(ctx, "tcp", dst.String())
			results <- result{c, err}
		}()
	}
	// drain collects the attempts still running once Wait has its answer,
	// closing any late connection.
	drain := func() {
		go func(n int) {
			for range n {
				if r := <-results; r.c != nil {
					r.c.Close()
				}
			}
		}(pending)
	}

	tick := time.NewTicker(WaitInterval)
	defer tick.Stop()
	attempt()
	var last error
	for {
		select {
		case r := <-results:
			pending--
			if r.err == nil {
				cancel()
				drain()
				return r.c, time.Since(start), nil
			}
			if !errors.Is(r.err, context.DeadlineExceeded) && !errors.Is(r.err, context.Canceled) {
				last = r.err
			}
		case <-tick.C:
			attempt()
		case <-ctx.Done():
			drain()
			if err := context.Cause(ctx); !errors.Is(err, context.DeadlineExceeded) {
				return nil, time.Since(start), err
			}
			if last == nil {
				last = errors.New("no answer (the SYNs were dropped)")
			}
			return nil, time.Since(start), fmt.Errorf("%v: %w within %v: %w", dst, ErrNotOpen, timeout, hidePort(last))
		}
	}
}
