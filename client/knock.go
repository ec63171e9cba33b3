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

// The sending pattern of the tknock command (PROTOCOL.md section 4): each
// round sends the anchor, pauses DefaultGap, then sends the bound ports back
// to back; the rounds are DefaultGap apart.
//
// The gap after the anchor is there because the daemon must have started
// tracking (rule 1) before a bound port arrives, and packets to different
// ports are different flows: a receiver's multi-queue NIC (RSS) or an ECMP
// path may hand them to the capture out of order by tens of microseconds;
// a millisecond is far more than that and costs little. The bound ports
// need no pause: the daemon takes them in any order (rule 2). The later
// rounds are insurance against loss: a copy of a port that already matched
// is ignored (rule 3), so a round costs the daemon nothing, and with three
// rounds a knock fails only when every usable copy of one of its k ports is
// lost (at 10 % random loss and k = 4, about 0.9 % of knocks instead of 34 %
// with one round: a round whose anchor is the first to arrive wastes the
// bound ports of the rounds before it). The rounds are spread by the gap, not sent in one burst, so
// that a short burst of loss does not take every copy of a port.
const (
	DefaultGap    = time.Millisecond
	DefaultRounds = 3
	MaxRounds     = 10
)

// Knocker computes the knock sequence of an enrollment for the current time
// window and sends it. Every field may be left zero; the zero Knocker sends
// the sequence once on the real network, with no pause, and no window
// memory.
// A Knocker is safe for concurrent use if its Dialer, Resolver and Route
// are.
type Knocker struct {
	Dialer   Dialer                                   // nil: NetDialer
	Resolver Resolver                                 // nil: net.DefaultResolver
	Route    func(dst netip.Addr) (netip.Addr, error) // outbound address towards dst; nil: OutboundAddr
	Now      func() time.Time                         // nil: time.Now
	Gap      time.Duration                            // pause after each anchor knock and between rounds; zero: none
	Rounds   int                                      // times the sequence is sent, 1..MaxRounds; zero: once
	Memory   *Memory                                  // windows used before; nil: always the current window
	STUN     Mapper                                   // asks for the public source address behind NAT; nil: &STUN{Resolver: Resolver}
	NATCache *NATCache                                // STUN answers per network; nil: ask every time
	Log      zerolog.Logger                           // steps at debug level (zero value: none); never a secret or a port
}

// Request says what to knock for.
type Request struct {
	Enrollment *totpseq.Enrollment // required, valid
	Service    string              // "": the enrollment's first service
	Host       string              // name or address to knock at; "": the enrollment's host
	Source     netip.Addr          // source address the server sees; zero: the outbound address towards it, or behind NAT the address STUN reports
	STUN       []string            // STUN servers (HOST:PORT) to ask before the enrollment's, behind NAT
	Family     Family              // knock at an address of this family only; zero: any

	addrs []netip.Addr // the host's addresses, resolved already (KnockFamilies); nil: resolve Host
}

// Result describes a knock that was sent, or was about to be.
type Result struct {
	Host    string     // the host name or address knocked at
	Addr    netip.Addr // the address knocked at
	Source  netip.Addr // the source address bound into the sequence
	From    string     // where Source came from: FromFlag, FromOutbound, "stun server HOST:PORT", "stun cache (...)"
	Service string     // the service knocked for
	Proto   inet.Proto // the knock protocol
	Window  uint64     // the time window of the sequence
	Next    bool       // Window is the one after the current one (the current one was used)
	Knocks  int        // knocks sent, every round's
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
// and sends the sequence Rounds times: in each round the anchor, a pause of
// Gap, then the bound ports back to back; Gap between rounds. It returns
// when the last knock is handed to the system or ctx is done.
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
	dst, src, from, err := k.target(ctx, host, req)
	if err != nil {
		return nil, err
	}
	r := &Result{Host: host, Addr: dst, Source: src, From: from, Service: service, Proto: e.Proto}
	k.Log.Debug().Str("host", host).Stringer("addr", dst).Stringer("source", src).
		Str("source_from", from).Msg("target")

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
	if err := k.send(ctx, e.Proto, dst, ports, r); err != nil {
		return r, err
	}
	k.Log.Debug().Int("knocks", r.Knocks).Stringer("proto", e.Proto).Stringer("gap", k.Gap).Int("rounds", max(k.Rounds, 1)).Msg("sent")
	if k.Memory != nil {
		if err := k.Memory.Record(key, r.Window, e.Period, now); err != nil {
			// The knock went out; a lost record costs at most a replayed
			// window later, which the daemon refuses.
			k.Log.Warn().Err(err).Msg("window memory not saved")
		}
	}
	return r, nil
}

// send sends ports Rounds times in the pattern of Knock, counting the
// knocks in r.
func (k *Knocker) send(ctx context.Context, proto inet.Proto, dst netip.Addr, ports []uint16, r *Result) error {
	if k.Rounds < 0 || k.Rounds > MaxRounds {
		return fmt.Errorf("rounds %d: want 1..%d", k.Rounds, MaxRounds)
	}
	d := k.dialer()
	for round := range max(k.Rounds, 1) {
		if round > 0 {
			if err := sleep(ctx, k.Gap); err != nil {
				return err
			}
		}
		for i, p := range ports {
			if i == 1 {
				if err := sleep(ctx, k.Gap); err != nil {
					return err
				}
			}
			if err := d.Knock(ctx, proto, netip.AddrPortFrom(dst, p)); err != nil {
				if round > 0 {
					return fmt.Errorf("round %d: knock %d of %d: %w", round+1, i+1, len(ports), err)
				}
				return fmt.Errorf("knock %d of %d: %w", i+1, len(ports), err)
			}
			r.Knocks++
		}
	}
	return nil
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
