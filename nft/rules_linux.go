package nft

import (
	"encoding/binary"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/tknock/tknock/inet"
	"golang.org/x/sys/unix"
)

// Set and chain names in own-table mode.
const (
	set4Name       = "allowed4"
	set6Name       = "allowed6"
	protectedName  = "protected"
	preroutingName = "prerouting" // base chain, hook prerouting, priority raw
	inputName      = "input"      // base chain, hook input, priority cfg.Priority
	guardName      = "guard"      // the checks, jumped to from both base chains
	closedName     = "closed"     // a new connection to a protected endpoint
)

// rawPriority is NF_IP_PRI_RAW: the prerouting chain runs before
// connection tracking (-200) and before DNAT (-100), so what it drops never
// becomes a conntrack entry, and it sees the port a client dialed even when
// the host forwards that port to a container.
const rawPriority = -300

var (
	keyType4  = nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeInetProto, nftables.TypeInetService)
	keyType6  = nftables.MustConcatSetType(nftables.TypeIP6Addr, nftables.TypeInetProto, nftables.TypeInetService)
	keyTypePP = nftables.MustConcatSetType(nftables.TypeInetProto, nftables.TypeInetService)
)

// grantSet returns a handle for a set of grants. HasTimeout must be true:
// without it the library silently drops each element's timeout and the
// grant becomes permanent.
func grantSet(t *nftables.Table, name string, v6 bool) *nftables.Set {
	kt := keyType4
	if v6 {
		kt = keyType6
	}
	return &nftables.Set{Table: t, Name: name, KeyType: kt, Concatenation: true, HasTimeout: true}
}

// Registers: the kernel has 16-byte registers 1..4 that alias the 4-byte
// registers 8..23; a concatenation is loaded into consecutive 4-byte
// registers starting at register 1 (= 8).
const (
	reg1 = unix.NFT_REG_1
	reg9 = 9
)

// TCP flags.
const (
	tcpSYN = 0x02
	tcpACK = 0x10
)

// guardRules returns the rules of the guard chain, in order, for the table
// built from cfg (a normalized own-table Config). No rule has a ct
// expression: the table never turns connection tracking on, and decides
// on each packet by itself.
//
//	meta iiftype loopback return                     (unless ProtectLoopback)
//	tcp flags & (syn | ack) != syn return            (only new connections matter)
//	meta l4proto . th dport @protected goto closed
//	tcp dport LO-HI fib daddr type local counter drop (DropKnocks: per knock range)
//	udp dport LO-HI fib daddr type local counter drop
func guardRules(cfg Config, protected *nftables.Set, closed string) [][]expr.Any {
	var rules [][]expr.Any
	if !cfg.ProtectLoopback {
		rules = append(rules, []expr.Any{
			&expr.Meta{Key: expr.MetaKeyIIFTYPE, Register: reg1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: binaryutil.NativeEndian.PutUint16(unix.ARPHRD_LOOPBACK)},
			&expr.Verdict{Kind: expr.VerdictReturn},
		})
	}
	rules = append(rules,
		[]expr.Any{
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{byte(inet.TCP)}},
			&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseTransportHeader, Offset: 13, Len: 1},
			&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 1, Mask: []byte{tcpSYN | tcpACK}, Xor: []byte{0}},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: []byte{tcpSYN}},
			&expr.Verdict{Kind: expr.VerdictReturn},
		},
		[]expr.Any{
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg1},
			loadDport(reg9),
			&expr.Lookup{SourceRegister: reg1, SetName: protected.Name, SetID: protected.ID},
			&expr.Verdict{Kind: expr.VerdictGoto, Chain: closed},
		},
	)
	if cfg.DropKnocks {
		for _, r := range cfg.Knocks {
			rules = append(rules, knockRule(r))
		}
	}
	return rules
}

// closedRules returns the rules of the closed chain, where a packet that
// would start a new connection to a protected endpoint goes: it passes
// with a grant, and is dropped without one if it is addressed to this host.
//
//	ip saddr . meta l4proto . th dport @allowed4 accept
//	ip6 saddr . meta l4proto . th dport @allowed6 accept
//	fib daddr type local counter drop
func closedRules(set4, set6 *nftables.Set) [][]expr.Any {
	return [][]expr.Any{
		grantRule(set4, unix.NFPROTO_IPV4, 12, 4),
		grantRule(set6, unix.NFPROTO_IPV6, 8, 16),
		append(toLocal(), &expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop}),
	}
}

// jumpRule is "jump chain".
func jumpRule(chain string) []expr.Any {
	return []expr.Any{&expr.Verdict{Kind: expr.VerdictJump, Chain: chain}}
}

// toLocal is "fib daddr type local": the packet is addressed to this host
// (before DNAT in prerouting: the address the client dialed). A host that
// routes for others drops nothing of their traffic.
func toLocal() []expr.Any {
	return []expr.Any{
		&expr.Fib{Register: reg1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)},
	}
}

// grantRule is "ip saddr . meta l4proto . th dport @set accept" (or ip6):
// the address is loaded at offset off of the network header, and an inet
// table must first check the family (nft adds that check implicitly).
func grantRule(set *nftables.Set, nfproto uint8, off, n uint32) []expr.Any {
	next := uint32(reg9) + n/4 - 1 // the 4-byte register after the address
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: reg1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{nfproto}},
		&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: next},
		loadDport(next + 1),
		&expr.Lookup{SourceRegister: reg1, SetName: set.Name, SetID: set.ID},
		&expr.Verdict{Kind: expr.VerdictAccept},
	}
}

// knockRule is "tcp dport LO-HI fib daddr type local counter drop" (or
// udp). For TCP the guard chain has already let every segment but a SYN
// without ACK pass.
func knockRule(r inet.Range) []expr.Any {
	e := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{byte(r.Proto)}},
		loadDport(reg1),
	}
	if r.Lo == r.Hi {
		e = append(e, &expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: port(r.Lo)})
	} else {
		e = append(e,
			&expr.Cmp{Op: expr.CmpOpGte, Register: reg1, Data: port(r.Lo)},
			&expr.Cmp{Op: expr.CmpOpLte, Register: reg1, Data: port(r.Hi)},
		)
	}
	e = append(e, toLocal()...)
	return append(e, &expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop})
}

// loadDport loads the transport header's destination port (th dport).
func loadDport(reg uint32) *expr.Payload {
	return &expr.Payload{DestRegister: reg, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2}
}

func port(p uint16) []byte { return binary.BigEndian.AppendUint16(nil, p) }
