package capture

import (
	"fmt"

	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/listener"
	"github.com/tknock/tknock/listener/internal/ranges"
	"golang.org/x/net/bpf"
)

// SnapLen is the number of bytes of a knock frame the filter keeps. It
// covers the largest headers a knock has: Ethernet with two VLAN tags (22),
// IPv4 with options (60) or IPv6 (40), and TCP with options (60).
const SnapLen = 256

// Filter returns the classic BPF program that accepts exactly the knock
// frames of ranges and drops everything else:
//
//   - IPv4 (not a non-first fragment, header length >= 20) or IPv6 (the
//     transport header right after the fixed header: extension headers are
//     not followed),
//   - inside up to two inline 802.1Q/802.1ad tags for listener.LinkEthernet (a tag the
//     kernel has moved out of the frame is invisible here, and the frame is
//     seen with its inner ethertype),
//   - TCP with SYN set and ACK clear, or UDP,
//   - destination port inside a range of that protocol.
//
// An accepted frame is cut to SnapLen bytes. With no ranges the program
// drops every frame. Ranges may overlap; they are merged. An invalid range
// (lo > hi, a protocol other than TCP or UDP) is an error naming it.
//
// A listener.LinkIP frame has no link header: the program takes it for IPv4
// or IPv6 by the version in its first byte, and only if the frame's
// protocol field (sll_protocol, the kernel's skb->protocol, which the
// program loads with the SKF_AD_PROTOCOL extension) is ETH_P_IP or
// ETH_P_IPV6 to match. A frame of another protocol whose payload looks like
// a knock (one injected as EtherType 0x88b5, or as IPv6 with an IPv4 packet
// inside) is dropped. A listener.LinkEthernet frame carries its EtherType,
// and the program goes by it alone, as the decoder does: the kernel sets the
// protocol field of a received frame from that EtherType.
//
// golang.org/x/net/bpf's VM runs the listener.LinkEthernet program as the
// kernel does; it knows no extension, so the listener.LinkIP program runs
// there only with the protocol load replaced (bpf_test.go's filterVM).
// Outgoing frames are skipped by the capture socket itself, with
// PACKET_IGNORE_OUTGOING.
func Filter(rs []inet.Range, link listener.LinkType) ([]bpf.RawInstruction, error) {
	t, err := ranges.New(rs)
	if err != nil {
		return nil, fmt.Errorf("filter: %w", err)
	}
	return filter(t, link)
}

func filter(t *ranges.Table, link listener.LinkType) ([]bpf.RawInstruction, error) {
	const (
		etherIPv4   = 0x0800
		etherIPv6   = 0x86dd
		ether8021Q  = 0x8100
		ether8021AD = 0x88a8
	)
	var a asm
	if len(t.TCP)+len(t.UDP) == 0 {
		a.emit(bpf.RetConstant{Val: 0})
		return a.assemble()
	}

	// Find the IP header and leave its offset in X.
	switch link {
	case listener.LinkEthernet:
		a.emit(bpf.LoadAbsolute{Off: 12, Size: 2})
		a.jumpIf(bpf.JumpEqual, etherIPv4, "ip4@14", "")
		a.jumpIf(bpf.JumpEqual, etherIPv6, "ip6@14", "")
		a.jumpIf(bpf.JumpEqual, ether8021Q, "vlan1", "")
		a.jumpIf(bpf.JumpEqual, ether8021AD, "vlan1", "drop")
		a.label("vlan1")
		a.emit(bpf.LoadAbsolute{Off: 16, Size: 2})
		a.jumpIf(bpf.JumpEqual, etherIPv4, "ip4@18", "")
		a.jumpIf(bpf.JumpEqual, etherIPv6, "ip6@18", "")
		a.jumpIf(bpf.JumpEqual, ether8021Q, "vlan2", "")
		a.jumpIf(bpf.JumpEqual, ether8021AD, "vlan2", "drop")
		a.label("vlan2")
		a.emit(bpf.LoadAbsolute{Off: 20, Size: 2})
		a.jumpIf(bpf.JumpEqual, etherIPv4, "ip4@22", "")
		a.jumpIf(bpf.JumpEqual, etherIPv6, "ip6@22", "drop")
		for _, off := range []uint32{14, 18, 22} {
			a.label(fmt.Sprintf("ip4@%d", off))
			a.emit(bpf.LoadConstant{Dst: bpf.RegX, Val: off})
			a.jump("ip4")
			a.label(fmt.Sprintf("ip6@%d", off))
			a.emit(bpf.LoadConstant{Dst: bpf.RegX, Val: off})
			a.jump("ip6")
		}
	case listener.LinkIP:
		// The IP version in the first byte, then the frame's protocol
		// field, which must name that version.
		a.emit(bpf.LoadAbsolute{Off: 0, Size: 1})
		a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpShiftRight, Val: 4})
		a.emit(bpf.LoadConstant{Dst: bpf.RegX, Val: 0})
		a.jumpIf(bpf.JumpEqual, 4, "proto4", "")
		a.jumpIf(bpf.JumpEqual, 6, "proto6", "drop")
		a.label("proto4")
		a.emit(bpf.LoadExtension{Num: bpf.ExtProto}) // host order
		a.jumpIf(bpf.JumpEqual, etherIPv4, "ip4", "drop")
		a.label("proto6")
		a.emit(bpf.LoadExtension{Num: bpf.ExtProto})
		a.jumpIf(bpf.JumpEqual, etherIPv6, "ip6", "drop")
	default:
		return nil, fmt.Errorf("filter: unknown link type %v", link)
	}

	tcpTarget, udpTarget := "drop", "drop"
	if len(t.TCP) > 0 {
		tcpTarget = "tcp"
	}
	if len(t.UDP) > 0 {
		udpTarget = "udp"
	}

	// IPv4 at X: skip non-first fragments, dispatch on the protocol, then
	// X = X + IHL*4 (at least 20).
	a.label("ip4")
	a.emit(bpf.LoadIndirect{Off: 6, Size: 2})
	a.jumpIf(bpf.JumpBitsSet, 0x1fff, "drop", "")
	a.emit(bpf.LoadIndirect{Off: 9, Size: 1})
	a.jumpIf(bpf.JumpEqual, 6, "ip4tcp", "")
	a.jumpIf(bpf.JumpEqual, 17, "ip4udp", "drop")
	for _, p := range []struct{ label, target string }{{"ip4tcp", tcpTarget}, {"ip4udp", udpTarget}} {
		a.label(p.label)
		a.emit(bpf.LoadIndirect{Off: 0, Size: 1})
		a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0x0f})
		a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpShiftLeft, Val: 2})
		a.jumpIf(bpf.JumpLessThan, 20, "drop", "")
		a.emit(bpf.ALUOpX{Op: bpf.ALUOpAdd})
		a.emit(bpf.TAX{})
		a.jump(p.target)
	}

	// IPv6 at X: the next header must be TCP or UDP; X = X + 40.
	a.label("ip6")
	a.emit(bpf.LoadIndirect{Off: 6, Size: 1})
	a.jumpIf(bpf.JumpEqual, 6, "ip6tcp", "")
	a.jumpIf(bpf.JumpEqual, 17, "ip6udp", "drop")
	for _, p := range []struct{ label, target string }{{"ip6tcp", tcpTarget}, {"ip6udp", udpTarget}} {
		a.label(p.label)
		a.emit(bpf.TXA{})
		a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAdd, Val: 40})
		a.emit(bpf.TAX{})
		a.jump(p.target)
	}

	a.label("drop")
	a.emit(bpf.RetConstant{Val: 0})

	// Transport header at X. These blocks end in returns and use only
	// short local jumps, so the number of ranges never overflows the 8-bit
	// conditional jump offsets.
	if len(t.TCP) > 0 {
		a.label("tcp")
		a.emit(bpf.LoadIndirect{Off: 13, Size: 1})
		a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0x12}) // SYN|ACK
		a.emit(bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0x02, SkipTrue: 1})
		a.emit(bpf.RetConstant{Val: 0})
		a.emit(bpf.LoadIndirect{Off: 2, Size: 2})
		a.ports(t.TCP)
	}
	if len(t.UDP) > 0 {
		a.label("udp")
		a.emit(bpf.LoadIndirect{Off: 2, Size: 2})
		a.ports(t.UDP)
	}
	return a.assemble()
}

// ports emits the range checks of the port in A against sorted, disjoint
// spans: below a span's lo means below every later span too (drop); at most
// its hi means inside (accept); otherwise try the next span.
func (a *asm) ports(spans []ranges.Span) {
	for _, s := range spans {
		if s.Lo > 0 {
			a.emit(bpf.JumpIf{Cond: bpf.JumpGreaterOrEqual, Val: uint32(s.Lo), SkipTrue: 1})
			a.emit(bpf.RetConstant{Val: 0})
		}
		a.emit(bpf.JumpIf{Cond: bpf.JumpGreaterThan, Val: uint32(s.Hi), SkipTrue: 1})
		a.emit(bpf.RetConstant{Val: SnapLen})
	}
	a.emit(bpf.RetConstant{Val: 0})
}

// asm is a tiny assembler with forward labels for classic BPF, whose jumps
// are relative skip counts.
type asm struct {
	prog   []bpf.Instruction
	labels map[string]int
	fixes  []fix
}

// fix is a jump at prog[at] whose targets are labels ("" = next instruction).
type fix struct {
	at          int
	to, ifFalse string
}

func (a *asm) emit(ins bpf.Instruction) { a.prog = append(a.prog, ins) }

func (a *asm) label(name string) {
	if a.labels == nil {
		a.labels = make(map[string]int)
	}
	a.labels[name] = len(a.prog)
}

// jumpIf emits a conditional jump to label t when the condition holds, to
// label f otherwise.
func (a *asm) jumpIf(cond bpf.JumpTest, val uint32, t, f string) {
	a.fixes = append(a.fixes, fix{at: len(a.prog), to: t, ifFalse: f})
	a.emit(bpf.JumpIf{Cond: cond, Val: val})
}

// jump emits an unconditional jump to label to.
func (a *asm) jump(to string) {
	a.fixes = append(a.fixes, fix{at: len(a.prog), to: to})
	a.emit(bpf.Jump{})
}

func (a *asm) skip(at int, label string, limit int) (int, error) {
	if label == "" {
		return 0, nil
	}
	target, ok := a.labels[label]
	if !ok {
		return 0, fmt.Errorf("filter: internal error: undefined label %q", label)
	}
	n := target - at - 1
	if n < 0 || n > limit {
		return 0, fmt.Errorf("filter: internal error: jump from %d to %q (%d) out of range", at, label, target)
	}
	return n, nil
}

func (a *asm) assemble() ([]bpf.RawInstruction, error) {
	for _, f := range a.fixes {
		switch ins := a.prog[f.at].(type) {
		case bpf.JumpIf:
			t, err := a.skip(f.at, f.to, 255)
			if err != nil {
				return nil, err
			}
			e, err := a.skip(f.at, f.ifFalse, 255)
			if err != nil {
				return nil, err
			}
			ins.SkipTrue, ins.SkipFalse = uint8(t), uint8(e)
			a.prog[f.at] = ins
		case bpf.Jump:
			t, err := a.skip(f.at, f.to, 1<<31)
			if err != nil {
				return nil, err
			}
			ins.Skip = uint32(t)
			a.prog[f.at] = ins
		}
	}
	if len(a.prog) > 4096 {
		return nil, fmt.Errorf("filter: %d instructions, the kernel takes at most 4096", len(a.prog))
	}
	raw, err := bpf.Assemble(a.prog)
	if err != nil {
		return nil, fmt.Errorf("filter: %w", err)
	}
	return raw, nil
}
