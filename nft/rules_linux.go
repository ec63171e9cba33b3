package nft

import (
	"encoding/binary"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/tknock/tknock/inet"
	"golang.org/x/sys/unix"
)

// Set names and the chain name in own-table mode.
const (
	set4Name      = "allowed4"
	set6Name      = "allowed6"
	protectedName = "protected"
	chainName     = "input"
)

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

// chainRules returns the input chain's rules, in order, for the table built
// from cfg (a normalized own-table Config).
func chainRules(cfg Config, set4, set6, protected *nftables.Set) [][]expr.Any {
	rules := [][]expr.Any{
		// ct state established,related accept
		{
			&expr.Ct{Register: reg1, Key: expr.CtKeySTATE},
			&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4,
				// ct state is in host byte order.
				Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED),
				Xor:  binaryutil.NativeEndian.PutUint32(0)},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: []byte{0, 0, 0, 0}},
			&expr.Verdict{Kind: expr.VerdictAccept},
		},
		grantRule(set4, unix.NFPROTO_IPV4, 12, 4),
		grantRule(set6, unix.NFPROTO_IPV6, 8, 16),
		// meta l4proto . th dport @protected counter drop
		{
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg1},
			loadDport(reg9),
			&expr.Lookup{SourceRegister: reg1, SetName: protected.Name, SetID: protected.ID},
			&expr.Counter{},
			&expr.Verdict{Kind: expr.VerdictDrop},
		},
	}
	if cfg.DropKnocks {
		for _, r := range cfg.Knocks {
			rules = append(rules, knockRule(r))
		}
	}
	return rules
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

// knockRule is "tcp dport LO-HI tcp flags syn / syn,ack counter drop" for a
// TCP range (SYN set, ACK clear), "udp dport LO-HI counter drop" for UDP.
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
	if r.Proto == inet.TCP {
		const syn, ack = 0x02, 0x10
		e = append(e,
			&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseTransportHeader, Offset: 13, Len: 1},
			&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 1, Mask: []byte{syn | ack}, Xor: []byte{0}},
			&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{syn}},
		)
	}
	return append(e, &expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop})
}

// loadDport loads the transport header's destination port (th dport).
func loadDport(reg uint32) *expr.Payload {
	return &expr.Payload{DestRegister: reg, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2}
}

func port(p uint16) []byte { return binary.BigEndian.AppendUint16(nil, p) }
