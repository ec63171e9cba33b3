package main

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// These functions make raw system calls and must run on a thread inside
// the client's namespace (netns.do).

// sockaddr converts an address and port for the socket calls.
func sockaddr(ap netip.AddrPort) unix.Sockaddr {
	a := ap.Addr().Unmap()
	if a.Is4() {
		return &unix.SockaddrInet4{Addr: a.As4(), Port: int(ap.Port())}
	}
	return &unix.SockaddrInet6{Addr: a.As16(), Port: int(ap.Port())}
}

// connectFrom opens a non-blocking TCP socket bound to src and starts a
// connect to dst: the kernel sends the SYN before connect returns. The
// caller closes the socket.
func connectFrom(src netip.Addr, dst netip.AddrPort) (int, error) {
	family := unix.AF_INET6
	if dst.Addr().Unmap().Is4() {
		family = unix.AF_INET
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	if err := unix.Bind(fd, sockaddr(netip.AddrPortFrom(src, 0))); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("bind %v: %w", src, err)
	}
	if err := unix.Connect(fd, sockaddr(dst)); err != nil && !errors.Is(err, unix.EINPROGRESS) {
		unix.Close(fd)
		return -1, fmt.Errorf("connect %v: %w", dst, err)
	}
	return fd, nil
}

// sendKnocks sends a TCP knock (a SYN, the connect abandoned at once, as
// the client does) to each port in order from src, pausing between them,
// and returns the time just after the last knock left.
func sendKnocks(src, dst netip.Addr, ports []uint16, pause time.Duration) (time.Time, error) {
	var last time.Time
	for i, p := range ports {
		if i > 0 {
			time.Sleep(pause)
		}
		fd, err := connectFrom(src, netip.AddrPortFrom(dst, p))
		if err != nil {
			return time.Time{}, fmt.Errorf("knock %d: %w", i+1, err)
		}
		last = time.Now()
		unix.Close(fd)
	}
	return last, nil
}

// errNotOpened says the door did not open within the probe's time limit.
var errNotOpened = errors.New("the protected port did not accept a connection")

// probeResult is what probe found.
type probeResult struct {
	Connected time.Duration // from start to the established connection
	Polled    time.Duration // from start to when the try that connected was due: the poll that found the port open
	Tries     int
	Src       netip.Addr // the knocking source (set by the caller)
}

// probe tries to connect from src to dst every interval, starting at
// start, until one connection is established or limit has passed. Each
// try waits one interval for its answer; a try whose SYN was dropped is
// then abandoned (the kernel would only retransmit it after a second)
// and the next one starts. Tries start on time: the last stretch before
// each is spun, not slept, since a sleeping thread wakes up tens to
// hundreds of microseconds late.
func probe(src netip.Addr, dst netip.AddrPort, start time.Time, interval, limit time.Duration) (probeResult, error) {
	// Timers of this thread (which the caller locked) fire on time rather
	// than up to the default 50 µs slack late.
	_ = unix.Prctl(unix.PR_SET_TIMERSLACK, 1, 0, 0, 0)
	// A try stops waiting for its answer a little before the next one is
	// due, so that the next starts on time: a handshake on the test's
	// veth takes tens of microseconds.
	early := min(200*time.Microsecond, interval/4)
	next := start
	for try := 0; ; try++ {
		sleepUntil(next)
		due, began := next, time.Now()
		if began.Sub(start) > limit {
			return probeResult{Tries: try}, errNotOpened
		}
		fd, err := connectFrom(src, dst)
		if err != nil {
			return probeResult{Tries: try + 1}, err
		}
		// The next try is due one interval after this one was; if this
		// one started so late that less than half an interval is left
		// (a probe that starts far behind its schedule), one interval
		// after it started: never with no time to wait for an answer.
		next = next.Add(interval)
		if next.Sub(began) < interval/2 {
			next = began.Add(interval)
		}
		ok, err := waitConnected(fd, next.Add(-early))
		unix.Close(fd)
		if err != nil {
			return probeResult{Tries: try + 1}, err
		}
		if ok {
			return probeResult{Connected: time.Since(start), Polled: due.Sub(start), Tries: try + 1}, nil
		}
	}
}

// sleepUntil returns at t, to within a few microseconds: it sleeps until
// shortly before and spins the rest.
func sleepUntil(t time.Time) {
	const spin = 300 * time.Microsecond
	if d := time.Until(t); d > spin {
		time.Sleep(d - spin)
	}
	for time.Now().Before(t) {
	}
}

// waitConnected waits until fd's connect completes or until deadline,
// and looks at least once. It reports whether the connection was
// established; a refused or failed connect is false, not an error.
func waitConnected(fd int, deadline time.Time) (bool, error) {
	for {
		left := max(time.Until(deadline), 0)
		ts := unix.NsecToTimespec(left.Nanoseconds())
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
		n, err := unix.Ppoll(fds, &ts, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("ppoll: %w", err)
		}
		if n == 0 {
			if time.Until(deadline) > 0 {
				continue // woken early
			}
			return false, nil
		}
		soErr, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
		if err != nil {
			return false, fmt.Errorf("getsockopt SO_ERROR: %w", err)
		}
		if soErr != 0 {
			// Refused (an RST): wait out the slot like a dropped SYN.
			time.Sleep(time.Until(deadline))
			return false, nil
		}
		return true, nil
	}
}
