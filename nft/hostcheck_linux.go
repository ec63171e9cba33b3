package nft

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/tknock/tknock/inet"
	"golang.org/x/sys/unix"
)

// CheckHost looks at the rest of the ruleset for what would keep a grant
// from working: an input chain of another table whose policy is drop and
// that accepts none of a protected endpoint. tknock's table only takes
// away; such a chain drops the granted connection after tknock let it
// through, and the user sees "access opened", then a timeout. It returns
// one plain-words warning per chain, and changes nothing. It also warns
// when a UDP knock range that the table drops overlaps the ports the host's
// own UDP clients use (net.ipv4.ip_local_port_range).
//
// An endpoint counts as accepted when a rule of the chain, or of a chain it
// jumps to, ends in accept and matches its port (by value, range or set)
// and, if the rule names one, its protocol. Other conditions of the rule
// (source, interface, connection state new) are not judged; a rule that
// accepts everything without naming a port does not count, as it is
// usually "ct state established,related accept" or "iif lo accept".
func CheckHost(cfg Config, opts ...Option) ([]string, error) {
	o := options{}
	for _, opt := range opts {
		opt(&o)
	}
	n, err := cfg.normalize()
	if err != nil {
		return nil, fmt.Errorf("nft: check host: config: %w", err)
	}
	c, err := nftables.New(o.connOptions()...)
	if err != nil {
		return nil, fmt.Errorf("nft: check host: %w", probeError(err))
	}
	chains, err := c.ListChains()
	if err != nil {
		return nil, fmt.Errorf("nft: check host: list chains: %w", probeError(err))
	}
	hc := hostCheck{conn: c, chains: chains, sets: make(map[string][]nftables.SetElement)}
	ours := n.Table
	if n.External != nil {
		ours = "" // the administrator's table is the one to check
	}
	var warnings []string
	for _, ch := range chains {
		if ch.Table == nil || ch.Hooknum == nil || *ch.Hooknum != *nftables.ChainHookInput ||
			ch.Policy == nil || *ch.Policy != nftables.ChainPolicyDrop || ch.Type != nftables.ChainTypeFilter {
			continue
		}
		if ch.Table.Family != nftables.TableFamilyINet && ch.Table.Family != nftables.TableFamilyIPv4 &&
			ch.Table.Family != nftables.TableFamilyIPv6 {
			continue
		}
		if ch.Table.Family == nftables.TableFamilyINet && ch.Table.Name == ours {
			continue
		}
		var missing []string
		for _, e := range n.Protected {
			ok, err := hc.accepts(ch, e, map[string]bool{})
			if err != nil {
				return nil, fmt.Errorf("nft: check host: %s chain %s: %w", describeTable(ch.Table), ch.Name, err)
			}
			if !ok {
				missing = append(missing, e.String())
			}
		}
		if len(missing) > 0 {
			warnings = append(warnings, fmt.Sprintf("%s chain %s has policy drop and accepts none of %s: "+
				"a grant opens tknock's table but this chain still drops the connection; "+
				"accept those ports in it (tknock drops strangers before it), e.g. ufw allow PORT/PROTO",
				describeTable(ch.Table), ch.Name, strings.Join(missing, ",")))
		}
	}
	if n.External == nil && n.DropKnocks && slices.ContainsFunc(n.Knocks, func(r inet.Range) bool { return r.Proto == inet.UDP }) {
		lo, hi, err := localPortRange(o.netnsFd)
		if err != nil {
			return nil, fmt.Errorf("nft: check host: %w", err)
		}
		for _, r := range n.Knocks {
			if r.Proto == inet.UDP && r.Lo <= hi && lo <= r.Hi {
				warnings = append(warnings, fmt.Sprintf("knock range %v overlaps the ports this host's own UDP clients use "+
					"(net.ipv4.ip_local_port_range %d-%d): with drop_knocks, replies to them (DNS, NTP) in the overlap "+
					"are dropped, as the table keeps no connection state; move the range or exclude those ports", r, lo, hi))
			}
		}
	}
	return warnings, nil
}

// localPortRange reads net.ipv4.ip_local_port_range in the network namespace
// of netnsFd (0: the caller's). The sysctl files show the namespace of the
// thread that opens them, so for another namespace it is read from a thread
// moved there, which is then left to die.
func localPortRange(netnsFd int) (lo, hi uint16, err error) {
	const path = "/proc/sys/net/ipv4/ip_local_port_range"
	read := func() ([]byte, error) { return os.ReadFile(path) }
	var b []byte
	if netnsFd == 0 {
		b, err = read()
	} else {
		done := make(chan struct{})
		go func() {
			defer close(done)
			runtime.LockOSThread() // never unlocked: the thread goes with the goroutine
			if err = unix.Setns(netnsFd, unix.CLONE_NEWNET); err == nil {
				b, err = read()
			}
		}()
		<-done
	}
	if err != nil {
		return 0, 0, fmt.Errorf("read %s: %w", path, err)
	}
	var l, h uint16
	if _, err := fmt.Sscan(string(b), &l, &h); err != nil || l > h {
		return 0, 0, fmt.Errorf("read %s: %q: want two ports", path, strings.TrimSpace(string(b)))
	}
	return l, h, nil
}

func describeTable(t *nftables.Table) string {
	return "table " + familyName(t.Family) + " " + t.Name
}

type hostCheck struct {
	conn   *nftables.Conn
	chains []*nftables.Chain
	sets   map[string][]nftables.SetElement // by "family table set"
}

// accepts reports whether a rule of ch, or of a chain it jumps to, accepts
// e (see CheckHost).
func (h *hostCheck) accepts(ch *nftables.Chain, e Endpoint, seen map[string]bool) (bool, error) {
	key := describeTable(ch.Table) + " " + ch.Name
	if seen[key] {
		return false, nil
	}
	seen[key] = true
	rules, err := h.conn.GetRules(ch.Table, ch)
	if err != nil {
		return false, fmt.Errorf("list rules: %w", classify(err))
	}
	for _, r := range rules {
		ok, next, err := h.ruleAccepts(ch.Table, r, e)
		if err != nil {
			return false, err
		}
		if ok {
			return true, nil
		}
		if next == "" {
			continue
		}
		i := slices.IndexFunc(h.chains, func(c *nftables.Chain) bool {
			return c.Name == next && c.Table != nil && c.Table.Name == ch.Table.Name && c.Table.Family == ch.Table.Family
		})
		if i < 0 {
			continue
		}
		if ok, err := h.accepts(h.chains[i], e, seen); ok || err != nil {
			return ok, err
		}
	}
	return false, nil
}

// regKind is what a register holds, as far as the check follows it.
type regKind int

const (
	regOther regKind = iota
	regProto
	regPort
)

// ruleAccepts reports whether r accepts e (ok), or else the chain r jumps
// or goes to when it may match e (next).
func (h *hostCheck) ruleAccepts(t *nftables.Table, r *nftables.Rule, e Endpoint) (ok bool, next string, err error) {
	regs := map[uint32]regKind{}
	portSeen := false
	set := func(reg uint32, k regKind) {
		// A 16-byte register (1..4) aliases four 4-byte ones (8..).
		if reg >= 1 && reg <= 4 {
			reg = 8 + (reg-1)*4
		}
		regs[reg] = k
	}
	kind := func(reg uint32) regKind {
		if reg >= 1 && reg <= 4 {
			reg = 8 + (reg-1)*4
		}
		return regs[reg]
	}
	for _, x := range r.Exprs {
		switch x := x.(type) {
		case *expr.Meta:
			k := regOther
			if x.Key == expr.MetaKeyL4PROTO {
				k = regProto
			}
			set(x.Register, k)
		case *expr.Payload:
			k := regOther
			switch {
			case x.Base == expr.PayloadBaseTransportHeader && x.Offset == 2 && x.Len == 2:
				k = regPort
			case x.Base == expr.PayloadBaseNetworkHeader && x.Len == 1 &&
				((t.Family == nftables.TableFamilyIPv4 && x.Offset == 9) || (t.Family == nftables.TableFamilyIPv6 && x.Offset == 6)):
				k = regProto
			}
			set(x.DestRegister, k)
		case *expr.Cmp:
			switch kind(x.Register) {
			case regProto:
				if len(x.Data) == 1 && !cmpHolds(x.Op, int(x.Data[0]), int(e.Proto)) {
					return false, "", nil
				}
			case regPort:
				if len(x.Data) == 2 {
					portSeen = true
					if !cmpHolds(x.Op, int(binary.BigEndian.Uint16(x.Data)), int(e.Port)) {
						return false, "", nil
					}
				}
			}
		case *expr.Range:
			if kind(x.Register) == regPort && len(x.FromData) == 2 && len(x.ToData) == 2 {
				portSeen = true
				in := e.Port >= binary.BigEndian.Uint16(x.FromData) && e.Port <= binary.BigEndian.Uint16(x.ToData)
				if in != (x.Op == expr.CmpOpEq) {
					return false, "", nil
				}
			}
		case *expr.Lookup:
			k0, k1 := kind(x.SourceRegister), kind(nextReg(x.SourceRegister))
			var want []byte
			switch {
			case k0 == regPort:
				want = port(e.Port)
			case k0 == regProto && k1 == regPort:
				want = endpointKey(e)
			default:
				continue
			}
			portSeen = true
			in, err := h.inSet(t, x.SetName, want)
			if err != nil {
				return false, "", err
			}
			if in == x.Invert {
				return false, "", nil
			}
		case *expr.Verdict:
			switch x.Kind {
			case expr.VerdictAccept:
				return portSeen, "", nil
			case expr.VerdictJump, expr.VerdictGoto:
				return false, x.Chain, nil
			}
			return false, "", nil
		}
	}
	return false, "", nil
}

// nextReg is the 4-byte register after the first 4 bytes of reg.
func nextReg(reg uint32) uint32 {
	if reg >= 1 && reg <= 4 {
		reg = 8 + (reg-1)*4
	}
	return reg + 1
}

func cmpHolds(op expr.CmpOp, rule, v int) bool {
	switch op {
	case expr.CmpOpEq:
		return v == rule
	case expr.CmpOpNeq:
		return v != rule
	case expr.CmpOpLt:
		return v < rule
	case expr.CmpOpLte:
		return v <= rule
	case expr.CmpOpGt:
		return v > rule
	case expr.CmpOpGte:
		return v >= rule
	}
	return true
}

// inSet reports whether want is in the set (plain or interval) of table t.
func (h *hostCheck) inSet(t *nftables.Table, name string, want []byte) (bool, error) {
	key := describeTable(t) + " " + name
	elems, ok := h.sets[key]
	if !ok {
		var err error
		elems, err = h.conn.GetSetElements(&nftables.Set{Table: t, Name: name})
		if err != nil {
			return false, fmt.Errorf("read set %s: %w", name, classify(err))
		}
		h.sets[key] = elems
	}
	// An interval set holds the start of each interval and, flagged, the
	// first value after its end: want is in if the greatest boundary at or
	// below it is a start.
	var best []byte
	bestEnd := false
	for _, el := range elems {
		if len(el.Key) != len(want) {
			continue
		}
		if bytes.Equal(el.Key, want) && !el.IntervalEnd {
			return true, nil
		}
		if bytes.Compare(el.Key, want) <= 0 && (best == nil || bytes.Compare(el.Key, best) > 0) {
			best, bestEnd = el.Key, el.IntervalEnd
		}
	}
	return best != nil && !bestEnd && isInterval(elems), nil
}

func isInterval(elems []nftables.SetElement) bool {
	return slices.ContainsFunc(elems, func(e nftables.SetElement) bool { return e.IntervalEnd })
}
