// Package totpseq is the tknock protocol, version 1: the parameters of an
// enrollment, the time window, the derivation of a knock sequence, and the
// enrollment URI (docs/PROTOCOL.md).
//
// It is pure: no clock, no I/O, no logger. Time comes in as an argument.
package totpseq

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/tknock/tknock/inet"
)

// Version is the protocol version this package implements.
const Version = 1

// Range is an inclusive range of ports, Lo <= port <= Hi.
type Range struct {
	Lo, Hi uint16
}

// Size is the number of ports in r.
func (r Range) Size() int { return int(r.Hi) - int(r.Lo) + 1 }

// Contains reports whether port is inside r.
func (r Range) Contains(port uint16) bool { return port >= r.Lo && port <= r.Hi }

// String returns "lo-hi".
func (r Range) String() string { return fmt.Sprintf("%d-%d", r.Lo, r.Hi) }

// ParseRange parses "lo-hi" and checks 1 <= lo < hi <= 65535.
func ParseRange(s string) (Range, error) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return Range{}, fmt.Errorf("%q: want lo-hi", s)
	}
	lo, err := parsePort(a)
	if err != nil {
		return Range{}, fmt.Errorf("%q: lo: %w", s, err)
	}
	hi, err := parsePort(b)
	if err != nil {
		return Range{}, fmt.Errorf("%q: hi: %w", s, err)
	}
	r := Range{lo, hi}
	if lo >= hi {
		return r, fmt.Errorf("%s: lo must be < hi", s)
	}
	return r, nil
}

func parsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 || (len(s) > 1 && s[0] == '0') {
		return 0, fmt.Errorf("%q is not a port (1..65535)", s)
	}
	return uint16(n), nil
}

// Defaults and limits of PROTOCOL.md section 1.
const (
	DefaultSecretSize = 32
	MinSecretSize     = 16
	MaxSecretSize     = 64
	DefaultPeriod     = 30
	MinPeriod         = 5
	MaxPeriod         = 3600
	DefaultLength     = 4
	MinLength         = 2
	MaxLength         = 16
	DefaultV6Prefix   = 128
	MinV6Prefix       = 48
	MaxV6Prefix       = 128
	MinUsablePorts    = 64
	MaxRealm          = 255
	DefaultService    = "ssh"
)

// DefaultRange returns the default knock range, 10000-32767.
func DefaultRange() Range { return Range{10000, 32767} }

// Params are the parameters of one enrollment that the sequence derivation
// depends on. The zero value is not valid; start from Defaults.
type Params struct {
	Secret   Secret     // shared key, MinSecretSize..MaxSecretSize bytes
	Realm    string     // names the server or fleet; 1..255 bytes of UTF-8
	Services []string   // services this user may open, each a valid service name
	Period   int        // window length in seconds
	Length   int        // knocks per sequence
	Range    Range      // knock ports
	Exclude  []uint16   // ports inside Range never used; sorted, no duplicates
	Proto    inet.Proto // knock protocol
	V6Prefix int        // leading bits of an IPv6 source bound into the sequence
}

// Defaults returns the default parameters of PROTOCOL.md section 1 with no
// secret and no realm set.
func Defaults() Params {
	return Params{
		Services: []string{DefaultService},
		Period:   DefaultPeriod,
		Length:   DefaultLength,
		Range:    DefaultRange(),
		Proto:    inet.TCP,
		V6Prefix: DefaultV6Prefix,
	}
}

// ParamError is a parameter that failed validation.
type ParamError struct {
	Param string // the URI parameter name: secret, realm, services, period, len, range, exclude, proto, v6prefix, stun, check
	Value string // the offending value, never a secret
	Err   error
}

func (e *ParamError) Error() string {
	if e.Value == "" {
		return "parameter " + e.Param + ": " + e.Err.Error()
	}
	return "parameter " + e.Param + ": " + e.Value + ": " + e.Err.Error()
}

func (e *ParamError) Unwrap() error { return e.Err }

func paramErr(param, value, format string, args ...any) error {
	return &ParamError{Param: param, Value: value, Err: fmt.Errorf(format, args...)}
}

// ValidService reports whether s is a valid service name:
// [a-z0-9][a-z0-9._-]{0,62}.
func ValidService(s string) bool {
	if len(s) == 0 || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case i > 0 && (c == '.' || c == '_' || c == '-'):
		default:
			return false
		}
	}
	return true
}

// Validate checks every parameter against the limits of PROTOCOL.md
// section 1. The error is a *ParamError naming the first bad parameter.
func (p *Params) Validate() error {
	if n := len(p.Secret); n < MinSecretSize || n > MaxSecretSize {
		return paramErr("secret", "", "%d bytes: want %d..%d", n, MinSecretSize, MaxSecretSize)
	}
	if n := len(p.Realm); n < 1 || n > MaxRealm {
		return paramErr("realm", "", "%d bytes: want 1..%d", n, MaxRealm)
	}
	if !utf8.ValidString(p.Realm) {
		return paramErr("realm", "", "not valid UTF-8")
	}
	if len(p.Services) == 0 {
		return paramErr("services", "", "empty: want at least one service")
	}
	for i, s := range p.Services {
		if !ValidService(s) {
			return paramErr("services", strconv.Quote(s), "bad service name: want [a-z0-9][a-z0-9._-]{0,62}")
		}
		if slices.Contains(p.Services[:i], s) {
			return paramErr("services", s, "listed twice")
		}
	}
	if p.Period < MinPeriod || p.Period > MaxPeriod {
		return paramErr("period", strconv.Itoa(p.Period), "want %d..%d seconds", MinPeriod, MaxPeriod)
	}
	if p.Length < MinLength || p.Length > MaxLength {
		return paramErr("len", strconv.Itoa(p.Length), "want %d..%d", MinLength, MaxLength)
	}
	if p.Range.Lo < 1 || p.Range.Lo >= p.Range.Hi {
		return paramErr("range", p.Range.String(), "want 1 <= lo < hi <= 65535")
	}
	for i, x := range p.Exclude {
		if !p.Range.Contains(x) {
			return paramErr("exclude", strconv.Itoa(int(x)), "port outside range %v", p.Range)
		}
		if i > 0 && p.Exclude[i-1] >= x {
			return paramErr("exclude", strconv.Itoa(int(x)), "ports must be sorted and distinct")
		}
	}
	if usable := p.Range.Size() - len(p.Exclude); usable < MinUsablePorts {
		return paramErr("range", p.Range.String(), "%d usable ports after exclude: want at least %d", usable, MinUsablePorts)
	}
	if p.Proto != inet.TCP && p.Proto != inet.UDP {
		return paramErr("proto", p.Proto.String(), "want tcp or udp")
	}
	if p.V6Prefix < MinV6Prefix || p.V6Prefix > MaxV6Prefix {
		return paramErr("v6prefix", strconv.Itoa(p.V6Prefix), "want %d..%d", MinV6Prefix, MaxV6Prefix)
	}
	return nil
}

// HasService reports whether the enrollment may open service s.
func (p *Params) HasService(s string) bool { return slices.Contains(p.Services, s) }

// ErrExhausted is returned when 256 HMAC blocks did not yield enough
// distinct usable ports. PROTOCOL.md allows ranges where this can happen
// (a wide range with all but 64 ports excluded).
var ErrExhausted = errors.New("port stream exhausted after 256 HMAC blocks (too few usable ports in the range)")
