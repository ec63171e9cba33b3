package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/rs/zerolog"
	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/totpseq"
)

// DefaultDelay is the pause between two knocks that the tknock command uses
// (PROTOCOL.md section 4).
const DefaultDelay = 25 * time.Millisecond

// Knocker computes the knock sequence of an enrollment for the current time
// window and sends it. Every field may be left zero; the zero Knocker sends
// on the real network with no pause between knocks and no window memory.
// A Knocker is safe for concurrent use if its Dialer, Resolver and Route
// are.
type Knocker struct {
	Dialer   Dialer                                   // nil: NetDialer
	Resolver Resolver                                 // nil: net.DefaultResolver
	Route    func(dst netip.Addr) (netip.Addr, error) // outbound address towards dst; nil: OutboundAddr
	Now      func() time.Time                         // nil: time.Now
	Delay    time.Duration                            // pause between two knocks; zero: none
	Memory   *Memory                                  // windows used before; nil: always the current window
	Log      zerolog.Logger                           // steps at debug level (zero value: none); never a secret or a port
}

// Request says what to knock for.
type Request struct {
	Enrollment *totpseq.Enrollment // required, valid
	Service    string              // "": the enrollment's first service
	Host       string              // name or address to knock at; "": the enrollment's host
	Source     netip.Addr          // source address the server sees; zero: the outbound address towards it
}

// Result describes a knock that was sent, or was about to be.
type Result struct {
	Host    string     // the host name or address knocked at
	Addr    netip.Addr // the address knocked at
	Source  netip.Addr // the source address bound into the sequence
	Service string     // the service knocked for
	Proto   inet.Proto // the knock protocol
	Window  uint64     // the time window of the sequence
	Next    bool       // Window is the one after the current one (the current one was used)
	Knocks  int        // knocks sent
}

func (k *Knocker) dialer() Dialer {
	if k.Dialer == nil {
		return NetDialer{}
	}
	return k.Dialer
}

func (k *Knocker) resolver() Resolver {
	if k.Resolver == nil {
		return net.DefaultResolver
	}
	return k.Resolver
}

func (k *Knocker) route() func(netip.Addr) (netip.Addr, error) {
	if k.Route == nil {
		return OutboundAddr
	}
	return k.Route
}

func (k *Knocker) now() time.Time {
	if k.Now == nil {
		return time.Now()
	}
	return k.Now()
}

// Service returns the service a request for service s means: s itself if
// the enrollment lists it, its first service for "", else an error that
// lists the enrollment's services.
func Service(e *totpseq.Enrollment, s string) (string, error) {
	if s == "" {
		if len(e.Services) == 0 {
			return "", errors.New("the enrollment lists no service")
		}
		return e.Services[0], nil
	}
	if !e.HasService(s) {
		return "", fmt.Errorf("no service %q in this enrollment: it has %v", s, e.Services)
	}
	return s, nil
}

// Knock resolves the host, chooses the source address and the window,
// and sends the sequence, pausing Delay between knocks. It returns when the
// last knock is handed to the system or ctx is done.
//
// With a Memory, a service knocked earlier in the current window is knocked
// in the next one; when both were used, Knock sends nothing and returns the
// Result (host, addresses, service) with an error wrapping ErrWindowsUsed.
func (k *Knocker) Knock(ctx context.Context, req Request) (*Result, error) {
	e := req.Enrollment
	if e == nil {
		return nil, errors.New("knock: no enrollment")
	}
	service, err := Service(e, req.Service)
	if err != nil {
		return nil, err
	}
	host := req.Host
	if host == "" {
		host = e.Host
	}
	if host == "" {
		return nil, errors.New("the enrollment has no host: name the host to knock at")
	}
	dst, src, err := k.target(ctx, host, req.Source)
	if err != nil {
		return nil, err
	}
	r := &Result{Host: host, Addr: dst, Source: src, Service: service, Proto: e.Proto}
	k.Log.Debug().Str("host", host).Stringer("addr", dst).Stringer("source", src).
		Bool("source_given", req.Source.IsValid()).Msg("target")

	now := k.now()
	r.Window = totpseq.Window(now, e.Period)
	var key string
	if k.Memory != nil {
		if key, err = MemoryKey(e, service, src); err != nil {
			return nil, err
		}
		w, err := k.Memory.Next(key, e.Period, now)
		if err != nil {
			return r, err
		}
		r.Next = w != r.Window
		r.Window = w
	}
	k.Log.Debug().Uint64("window", r.Window).Bool("next_window", r.Next).Int("period", e.Period).Msg("window")

	ports, err := totpseq.Sequence(&e.Params, service, r.Window, src)
	if err != nil {
		return nil, err
	}
	d := k.dialer()
	for i, p := range ports {
		if i > 0 {
			if err := sleep(ctx, k.Delay); err != nil {
				return r, err
			}
		}
		if err := d.Knock(ctx, e.Proto, netip.AddrPortFrom(dst, p)); err != nil {
			return r, fmt.Errorf("knock %d of %d: %w", i+1, len(ports), err)
		}
		r.Knocks++
	}
	k.Log.Debug().Int("knocks", r.Knocks).Stringer("proto", e.Proto).Stringer("delay", k.Delay).Msg("sent")
	if k.Memory != nil {
		if err := k.Memory.Record(key, r.Window, e.Period, now); err != nil {
			// The knock went out; a lost record costs at most a replayed
			// window later, which the daemon refuses.
			k.Log.Warn().Err(err).Msg("window memory not saved")
		}
	}
	return r, nil
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
