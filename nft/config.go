package nft

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tknock/tknock/inet"
)

// DefaultTable is the name of the table in own-table mode when
// [Config.Table] is empty.
const DefaultTable = "tknock"

// DefaultPriority is the input chain's priority when [Config.Priority] is 0:
// just before the usual filter priority (0), so the chain runs before a
// typical ruleset.
const DefaultPriority int32 = -10

// MaxTTL is the longest grant [Table.Allow] accepts. Access is meant to be
// short; a longer time is taken for a configuration mistake.
const MaxTTL = 24 * time.Hour

// conntrackPriority is NF_IP_PRI_CONNTRACK: a chain must run after it to see
// a connection's state.
const conntrackPriority = -200

// Endpoint is one protocol and port of a service. The zero value is not
// valid.
type Endpoint struct {
	Proto inet.Proto // inet.TCP or inet.UDP
	Port  uint16
}

// String returns the endpoint as "tcp/22" (the form ParseEndpoint reads).
func (e Endpoint) String() string {
	return e.Proto.String() + "/" + strconv.Itoa(int(e.Port))
}

// ParseEndpoint parses "tcp/22" or "udp/53".
func ParseEndpoint(s string) (Endpoint, error) {
	name, port, ok := strings.Cut(s, "/")
	if !ok {
		return Endpoint{}, fmt.Errorf("endpoint %q: want protocol/port, as in tcp/22", s)
	}
	proto, err := inet.ParseProto(name)
	if err != nil {
		return Endpoint{}, fmt.Errorf("endpoint %q: protocol %w", s, err)
	}
	p, err := parsePort(port)
	if err != nil {
		return Endpoint{}, fmt.Errorf("endpoint %q: %w", s, err)
	}
	return Endpoint{Proto: proto, Port: p}, nil
}

func (e Endpoint) validate() error {
	if err := checkProto(e.Proto); err != nil {
		return fmt.Errorf("endpoint %v: %w", e, err)
	}
	if e.Port == 0 {
		return fmt.Errorf("endpoint %v: port 0 is not a port", e)
	}
	return nil
}

func compareEndpoints(a, b Endpoint) int {
	return cmp.Or(cmp.Compare(a.Proto, b.Proto), cmp.Compare(a.Port, b.Port))
}

// Service is what one completed knock opens: every endpoint, for the
// knocking source.
type Service struct {
	Name      string // for messages only, e.g. "ssh"
	Endpoints []Endpoint
}

// validateKnock checks a knock range: knocks are sent to a range of
// ports, both ends included, for TCP a segment with SYN set and ACK clear,
// for UDP any datagram. With [Config.DropKnocks] the table drops such
// packets.
func validateKnock(r inet.Range) error {
	if err := checkProto(r.Proto); err != nil {
		return fmt.Errorf("knock range %v: %w", r, err)
	}
	if r.Lo == 0 || r.Lo > r.Hi {
		return fmt.Errorf("knock range %v: want 1 <= lo <= hi", r)
	}
	return nil
}

// ExternalSets names the sets that an administrator created in their own
// table for the daemon to fill (see the package documentation).
type ExternalSets struct {
	Family string // "inet", "ip" or "ip6"
	Table  string
	Set4   string // type ipv4_addr . inet_proto . inet_service, flags timeout; "" = no IPv4 grants
	Set6   string // type ipv6_addr . inet_proto . inet_service, flags timeout; "" = no IPv6 grants
}

// Config says what the table protects. The zero value of each field means
// its documented default; a Config is copied by Open and Apply, so the
// caller may reuse it.
type Config struct {
	// Table is the name of the inet table in own-table mode; "" means
	// DefaultTable. Ignored in external-set mode.
	Table string
	// Protected lists the endpoints that only granted sources may open new
	// connections to: the union of all services' endpoints. Own-table mode
	// needs at least one. An endpoint is the protocol and port a client
	// dials on this host, whether a local socket listens there or the host
	// forwards the port by DNAT (Docker -p, libvirt): the table checks
	// before DNAT.
	Protected []Endpoint
	// Knocks lists the ports knocks go to; with DropKnocks the table drops
	// knock packets to them. Overlapping ranges are merged. Ports inside a
	// range that a public service listens on must be cut out by the caller,
	// or new connections to that service are dropped too.
	Knocks []inet.Range
	// DropKnocks makes knock ports look filtered rather than closed to a
	// scanner. The capture still sees the knocks: it runs before nftables.
	DropKnocks bool
	// Priority is the input chain's priority; 0 means DefaultPriority (so
	// the filter priority itself, 0, is not available: take 1 or -1). It
	// must be above -200 (conntrack). The prerouting chain, which does most
	// of the work, always runs at priority raw (-300).
	Priority int32
	// ProtectLoopback makes traffic that arrives on the loopback interface
	// (the host talking to itself, on any of its addresses) need a grant
	// too. By default it is exempt: `ssh localhost` works.
	ProtectLoopback bool
	// External, when set, selects external-set mode: Allow only adds
	// elements to these sets, and nothing is ever created or deleted.
	External *ExternalSets
}

var nameRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_.-]{0,63}$`)

func checkName(what, name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("%s %q: want a letter then up to 63 letters, digits, '_', '.' or '-'", what, name)
	}
	return nil
}

// Validate checks c as Open and Update do. The error is a *ConfigError
// naming the field at fault.
func (c Config) Validate() error {
	_, err := c.normalize()
	return err
}

// ConfigError is a Config field that Validate, Open or Update refuses.
type ConfigError struct {
	// Field is the field at fault: "Table", "Priority", "Protected",
	// "Knocks", "External" (no set named), "External.Family",
	// "External.Table", "External.Set4" or "External.Set6".
	Field string
	Err   error // the problem, naming the field and the value
}

func (e *ConfigError) Error() string { return e.Err.Error() }

func (e *ConfigError) Unwrap() error { return e.Err }

func fieldErr(field string, err error) error { return &ConfigError{Field: field, Err: err} }

// normalize returns a validated copy of c with defaults filled in, Protected
// sorted without duplicates and Knocks merged, so that equal configurations
// build byte-identical rulesets.
func (c Config) normalize() (Config, error) {
	n := Config{DropKnocks: c.DropKnocks, Priority: c.Priority, ProtectLoopback: c.ProtectLoopback}
	if c.External != nil {
		ext := *c.External
		if err := ext.validate(); err != nil {
			return Config{}, err
		}
		n.External = &ext
		return n, nil
	}
	n.Table = cmp.Or(c.Table, DefaultTable)
	if err := checkName("table", n.Table); err != nil {
		return Config{}, fieldErr("Table", err)
	}
	if n.Priority == 0 {
		n.Priority = DefaultPriority
	}
	if n.Priority <= conntrackPriority {
		return Config{}, fieldErr("Priority", fmt.Errorf("priority %d: must be above %d (conntrack) so the chain sees connection state", n.Priority, conntrackPriority))
	}
	if len(c.Protected) == 0 {
		return Config{}, fieldErr("Protected", errors.New("protected: no endpoints: the table would protect nothing"))
	}
	for _, e := range c.Protected {
		if err := e.validate(); err != nil {
			return Config{}, fieldErr("Protected", fmt.Errorf("protected: %w", err))
		}
	}
	n.Protected = slices.Clone(c.Protected)
	slices.SortFunc(n.Protected, compareEndpoints)
	n.Protected = slices.Compact(n.Protected)
	ranges, err := mergeRanges(c.Knocks)
	if err != nil {
		return Config{}, fieldErr("Knocks", err)
	}
	n.Knocks = ranges
	return n, nil
}

func (e ExternalSets) validate() error {
	switch e.Family {
	case "inet", "ip", "ip6":
	default:
		return fieldErr("External.Family", fmt.Errorf("external: family %q: want inet, ip or ip6", e.Family))
	}
	if err := checkName("external: table", e.Table); err != nil {
		return fieldErr("External.Table", err)
	}
	if e.Set4 == "" && e.Set6 == "" {
		return fieldErr("External", errors.New("external: no set named: give set4, set6 or both"))
	}
	if e.Set4 != "" {
		if e.Family == "ip6" {
			return fieldErr("External.Set4", fmt.Errorf("external: set4 %q: an ip6 table sees no IPv4 packets", e.Set4))
		}
		if err := checkName("external: set4", e.Set4); err != nil {
			return fieldErr("External.Set4", err)
		}
	}
	if e.Set6 != "" {
		if e.Family == "ip" {
			return fieldErr("External.Set6", fmt.Errorf("external: set6 %q: an ip table sees no IPv6 packets", e.Set6))
		}
		if err := checkName("external: set6", e.Set6); err != nil {
			return fieldErr("External.Set6", err)
		}
	}
	return nil
}

// mergeRanges validates ranges and returns them merged (inet.Merge).
func mergeRanges(in []inet.Range) ([]inet.Range, error) {
	for _, r := range in {
		if err := validateKnock(r); err != nil {
			return nil, err
		}
	}
	return inet.Merge(in), nil
}

// Grant is one live set element: Src may open new connections to Endpoint
// for Remaining more time.
type Grant struct {
	Src netip.Addr
	Endpoint
	// Timeout is the element's timeout as the kernel holds it: the ttl of
	// the last Allow. Zero means the element never expires: only an
	// administrator can add such an element, to an external set.
	Timeout time.Duration
	// Remaining is the time until the kernel removes the element, to the
	// millisecond; zero when Timeout is zero.
	Remaining time.Duration
}

// String returns the grant as "203.0.113.7 tcp/22 12.5s left of 30s".
func (g Grant) String() string {
	if g.Timeout == 0 {
		return fmt.Sprintf("%v %v permanent", g.Src, g.Endpoint)
	}
	return fmt.Sprintf("%v %v %v left of %v", g.Src, g.Endpoint, g.Remaining, g.Timeout)
}

func compareGrants(a, b Grant) int {
	return cmp.Or(a.Src.Compare(b.Src), compareEndpoints(a.Endpoint, b.Endpoint))
}

// checkAllow validates the arguments of Allow and returns the source as the
// kernel will see it: an IPv4-mapped IPv6 address becomes the IPv4 address,
// and a zone is dropped.
func checkAllow(src netip.Addr, svc Service, ttl time.Duration) (netip.Addr, error) {
	if !src.IsValid() {
		return netip.Addr{}, errors.New("source address: missing")
	}
	src = src.Unmap().WithZone("")
	if src.IsUnspecified() || src.IsMulticast() {
		return netip.Addr{}, fmt.Errorf("source address %v: not a unicast address", src)
	}
	if len(svc.Endpoints) == 0 {
		return netip.Addr{}, fmt.Errorf("service %q: no endpoints", svc.Name)
	}
	for _, e := range svc.Endpoints {
		if err := e.validate(); err != nil {
			return netip.Addr{}, fmt.Errorf("service %q: %w", svc.Name, err)
		}
	}
	if ttl < time.Millisecond {
		return netip.Addr{}, fmt.Errorf("ttl %v: must be at least 1ms (the kernel counts in milliseconds)", ttl)
	}
	if ttl > MaxTTL {
		return netip.Addr{}, fmt.Errorf("ttl %v: must be at most %v", ttl, MaxTTL)
	}
	return src, nil
}

func endpointList(es []Endpoint) string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = e.String()
	}
	return strings.Join(parts, ",")
}

func checkProto(p inet.Proto) error {
	if p != inet.TCP && p != inet.UDP {
		return fmt.Errorf("protocol %d: want tcp (6) or udp (17)", p)
	}
	return nil
}

func parsePort(s string) (uint16, error) {
	p, err := strconv.ParseUint(s, 10, 16)
	if err != nil || p == 0 {
		return 0, fmt.Errorf("port %q: want a number from 1 to 65535", s)
	}
	return uint16(p), nil
}
