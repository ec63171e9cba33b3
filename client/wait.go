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

// WaitInterval is the longest pause between two of Wait's connection
// attempts. The first attempts come sooner (firstInterval, doubling up to
// WaitInterval), since a door usually opens within milliseconds of the
// knock. Earlier attempts go on (a port behind the knock drops SYNs, so an
// attempt made just before the door opened would hang until its SYN is
// retransmitted a second later); the first to connect wins.
const WaitInterval = 100 * time.Millisecond

// firstInterval is the pause before Wait's second attempt, and again after
// a re-knock.
const firstInterval = 5 * time.Millisecond

// DefaultReknockAfter is how long the tknock command lets a door stay shut
// after a knock before it knocks again (PROTOCOL.md section 4): far longer
// than a knock and a connection attempt take on any sane path, far shorter
// than a user's patience.
const DefaultReknockAfter = time.Second

// Wait connects to dst over TCP, starting fresh attempts (5 ms apart at
// first, then up to WaitInterval apart), until one succeeds or timeout
// passes. It returns the connection and how long it took. The error after
// a timeout wraps ErrNotOpen and carries the last attempt's error.
func Wait(ctx context.Context, dst netip.AddrPort, timeout time.Duration) (net.Conn, time.Duration, error) {
	return WaitReknock(ctx, dst, timeout, 0, nil)
}

// WaitReknock is Wait that also knocks again: when no attempt has
// connected after seconds since the start (or since the previous
// re-knock), it calls reknock, then starts a fresh attempt at once and
// polls at the fast pace again. Once reknock returns an error it is not
// called again (both windows used, say) and waiting goes on; that error is
// added to the timeout's. A nil reknock or a zero after never re-knocks.
// reknock runs on Wait's goroutine and must return promptly.
func WaitReknock(ctx context.Context, dst netip.AddrPort, timeout, after time.Duration, reknock func(context.Context) error) (net.Conn, time.Duration, error) {
	return waitReknock(ctx, nil, dst, timeout, after, reknock)
}

// ConnectFunc opens a TCP connection to address, as net.Dialer's
// DialContext does with network "tcp". It is the seam through which tests
// give Wait a network of their own.
type ConnectFunc func(ctx context.Context, network, address string) (net.Conn, error)

func waitReknock(ctx context.Context, connect ConnectFunc, dst netip.AddrPort, timeout, after time.Duration, reknock func(context.Context) error) (net.Conn, time.Duration, error) {
	if connect == nil {
		var d net.Dialer
		connect = d.DialContext
	}
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
			c, err := connect(ctx, "tcp", dst.String())
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

	interval := firstInterval
	next := time.NewTimer(interval)
	defer next.Stop()
	var again <-chan time.Time
	if reknock != nil && after > 0 {
		t := time.NewTicker(after)
		defer t.Stop()
		again = t.C
	}
	attempt()
	var last, reknockErr error
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
		case <-next.C:
			attempt()
			interval = min(2*interval, WaitInterval)
			next.Reset(interval)
		case <-again:
			if err := reknock(ctx); err != nil {
				if ctx.Err() == nil {
					reknockErr = err
				}
				again = nil
				continue
			}
			attempt()
			interval = firstInterval
			next.Reset(interval)
		case <-ctx.Done():
			drain()
			if err := context.Cause(ctx); !errors.Is(err, context.DeadlineExceeded) {
				return nil, time.Since(start), err
			}
			if last == nil {
				last = errors.New("no answer (the SYNs were dropped)")
			}
			err := fmt.Errorf("%v: %w within %v: %w", dst, ErrNotOpen, timeout, hidePort(last))
			if reknockErr != nil {
				err = fmt.Errorf("%w; no knock again: %w", err, reknockErr)
			}
			return nil, time.Since(start), err
		}
	}
}
