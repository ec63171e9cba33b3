package capture

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	easm "github.com/cilium/ebpf/asm"
	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/listener"
	"github.com/tknock/tknock/listener/internal/ranges"
	"golang.org/x/sys/unix"
)

// Prefilter is an eBPF socket filter that the captures of a daemon share
// in place of the classic Filter. It applies rule 1 of PROTOCOL.md section
// 3 in the kernel, before a frame is copied to any socket: a knock from a
// source the tracker does not follow can only start a sequence at an
// anchor port, so the prefilter passes
//
//   - a knock (as Filter defines it: TCP SYN or UDP into a knock range) to
//     an anchor port of the recent anchor tables, and then marks its source
//     as seen, and
//   - a knock from a source marked seen, to any port of a range,
//
// and drops every other frame. A flood of spoofed sources sprayed over the
// knock range then costs the kernel the filter's run per frame, not a copy
// into the ring and the daemon's work; a flood aimed at the anchor ports
// still costs what it does with Filter.
//
// The prefilter passes a superset of what the tracker needs:
//
//   - the anchors of the latest few tables the tracker built (Publish, fed
//     from Config.Anchors), old and new alike, so that a knock is never
//     dropped for a table the tracker is about to use;
//   - the sources seen are a bit each in a bitmap of 2^20 bits chosen by a
//     hash of the address keyed at load (no one can choose sources that
//     share a bit), in two generations: a source is marked in the
//     current one and looked up in both, and every hold (SetHold: the
//     tracker's SeqTimeout, the longest a sequence may take from its anchor)
//     the older generation is cleared and becomes the current one. A source
//     stays marked for at least a hold after its anchor knock. Two sources
//     may share a bit: the other one's knocks then pass too, and the
//     tracker drops them. A flood aimed at the anchors fills the bitmap, and
//     the prefilter then passes every knock into the ranges, as Filter does.
//
// The bitmaps live in one array map that the process maps into memory
// (BPF_F_MMAPABLE) and writes directly. It needs CAP_BPF (or
// CAP_SYS_ADMIN) besides CAP_NET_RAW, not CAP_PERFMON: the programs pass
// the verifier's checks for an unprivileged loader, at the cost of a
// privileged one (TestPrefilterUnitCaps, BenchmarkPrefilterRun); 290 KiB
// of kernel memory. Its methods may be called from any goroutine.
type Prefilter struct {
	key    [4]uint64    // the seen bitmap's hash multipliers, odd, drawn at load (newKey)
	bits   *ebpf.Map    // one value: pfWords words (the layout at pfRangeOff...)
	mem    *ebpf.Memory // bits' value, mapped
	counts *ebpf.Map    // per-CPU array of pfCounters counters
	progs  map[progKey]*ebpf.Program

	mu      sync.Mutex // guards the fields below and writes to mem
	ranges  [2][1024]uint64
	anchors []listener.AnchorPorts // the latest published, oldest first
	gen     uint64                 // the current generation of the seen bitmap, 0 or 1
	hold    time.Duration
	rotated time.Time
	stop    chan struct{}
	stopped chan struct{}
	gens    atomic.Uint64
}

// PrefilterStats are the prefilter's counters, over every capture it is
// attached to (a frame seen by two captures counts twice: with the
// interfaces "eth0" and "any", say).
type PrefilterStats struct {
	Anchors uint64 // knocks passed at an anchor port (their sources marked)
	Tracked uint64 // knocks passed from a source marked seen
	Dropped uint64 // knocks dropped: not at an anchor, from a source not seen
	Gens    uint64 // generations of the seen bitmap begun (rotations)
}

// The layout of the bits map's value, in 64-bit words: the range bitmaps
// (TCP, UDP), the anchor bitmaps (TCP, UDP), the current generation, and
// the two generations of the seen bitmap.
const (
	pfRangeOff  = 0
	pfAnchorOff = 2048
	pfGenOff    = 4096
	pfDropOff   = 4104 // the drop counter, on a cache line of its own
	pfSeenOff   = 4160
	pfSeenBits  = 20
	pfSeenWords = 1 << (pfSeenBits - 6) // per generation
	pfWords     = pfSeenOff + 2*pfSeenWords

	pfKept     = 3 // published anchor sets kept
	pfCounters = 2 // PrefilterStats.Anchors and Tracked
)

// MinPrefilterHold is the shortest hold SetHold takes.
const MinPrefilterHold = 10 * time.Millisecond

// NewPrefilter loads the prefilter's programs, with sources held for hold
// (at least MinPrefilterHold: normally the tracker's SeqTimeout). It passes
// nothing until SetRanges and Publish give it ranges and anchors. Close
// unloads it.
func NewPrefilter(hold time.Duration) (*Prefilter, error) {
	if hold < MinPrefilterHold {
		return nil, fmt.Errorf("prefilter: hold %v, want at least %v", hold, MinPrefilterHold)
	}
	p := &Prefilter{progs: make(map[progKey]*ebpf.Program), hold: hold, stop: make(chan struct{}), stopped: make(chan struct{})}
	if err := p.newKey(); err != nil {
		return nil, err
	}
	var err error
	defer func() {
		if err != nil {
			p.unload()
		}
	}()
	if p.bits, err = ebpf.NewMap(&ebpf.MapSpec{Name: "tknock_bits", Type: ebpf.Array, KeySize: 4, ValueSize: pfWords * 8, MaxEntries: 1, Flags: unix.BPF_F_MMAPABLE}); err != nil {
		return nil, fmt.Errorf("prefilter: bitmaps: %w", err)
	}
	if p.mem, err = p.bits.Memory(); err != nil {
		return nil, fmt.Errorf("prefilter: map the bitmaps: %w", err)
	}
	if p.counts, err = ebpf.NewMap(&ebpf.MapSpec{Name: "tknock_counts", Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: pfCounters}); err != nil {
		return nil, fmt.Errorf("prefilter: counters: %w", err)
	}
	for _, k := range []progKey{{listener.LinkEthernet, false}, {listener.LinkEthernet, true}, {listener.LinkIP, false}, {listener.LinkIP, true}} {
		var prog *ebpf.Program
		prog, err = ebpf.NewProgramWithOptions(&ebpf.ProgramSpec{
			Name:         "tknock_" + k.link.String(),
			Type:         ebpf.SocketFilter,
			License:      "GPL",
			Instructions: p.program(k.link, !k.express),
		}, ebpf.ProgramOptions{LogSizeStart: 1 << 16})
		if err != nil {
			var ve *ebpf.VerifierError
			if errors.As(err, &ve) {
				err = fmt.Errorf("%w\n%+v", err, ve)
			}
			return nil, fmt.Errorf("prefilter: load the %s program: %w", k.link, err)
		}
		p.progs[k] = prog
	}
	p.rotated = time.Now()
	go p.rotate()
	return p, nil
}

// Close unloads the prefilter. Sockets it is attached to keep their
// program until they close.
func (p *Prefilter) Close() error {
	p.mu.Lock()
	select {
	case <-p.stop:
		p.mu.Unlock()
		return nil
	default:
		close(p.stop)
	}
	p.mu.Unlock()
	<-p.stopped
	p.unload()
	return nil
}

func (p *Prefilter) unload() {
	for _, prog := range p.progs {
		prog.Close()
	}
	for _, m := range []*ebpf.Map{p.bits, p.counts} {
		if m != nil {
			m.Close()
		}
	}
}

// SetHold replaces the hold (a reload changed the tracker's SeqTimeout).
// It takes effect at the next rotation.
func (p *Prefilter) SetHold(hold time.Duration) error {
	if hold < MinPrefilterHold {
		return fmt.Errorf("prefilter: hold %v, want at least %v", hold, MinPrefilterHold)
	}
	p.mu.Lock()
	p.hold = hold
	p.mu.Unlock()
	return nil
}

// Hold returns the hold: how long a source stays marked at least.
func (p *Prefilter) Hold() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.hold
}

// rotate begins a new generation of the seen bitmap every hold, until
// Close.
func (p *Prefilter) rotate() {
	defer close(p.stopped)
	p.mu.Lock()
	timer := time.NewTimer(p.hold)
	p.mu.Unlock()
	defer timer.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-timer.C:
		}
		p.mu.Lock()
		if wait := p.hold - time.Since(p.rotated); wait > 0 {
			p.mu.Unlock()
			timer.Reset(wait)
			continue
		}
		p.nextGen()
		next := p.hold
		p.mu.Unlock()
		timer.Reset(next)
	}
}

// nextGen clears the older generation and makes it the current one; with
// p.mu held. A source marked in it is then a hold old at least.
func (p *Prefilter) nextGen() {
	g := p.gen ^ 1
	zero := make([]byte, pfSeenWords*8)
	p.mem.WriteAt(zero, int64(pfSeenOff+int(g)*pfSeenWords)*8)
	var w [8]byte
	binary.NativeEndian.PutUint64(w[:], g)
	p.mem.WriteAt(w[:], pfGenOff*8)
	p.gen = g
	p.rotated = time.Now()
	p.gens.Add(1)
}

// progKey names one of the prefilter's programs: for a link type, and for
// a capture's ring or its express socket. The express socket's copy of a
// frame is not counted (PrefilterStats counts each frame once).
type progKey struct {
	link    listener.LinkType
	express bool
}

// attach gives the socket fd the program for link, for a ring or an
// express socket.
func (p *Prefilter) attach(fd int, link listener.LinkType, express bool) error {
	prog, ok := p.progs[progKey{link, express}]
	if !ok {
		return fmt.Errorf("prefilter: no program for link type %v", link)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ATTACH_BPF, prog.FD()); err != nil {
		return fmt.Errorf("attach prefilter: %w", err)
	}
	return nil
}

// SetRanges replaces the knock ranges. An invalid range is an error naming
// it, and changes nothing.
func (p *Prefilter) SetRanges(rs []inet.Range) error {
	t, err := ranges.New(rs)
	if err != nil {
		return fmt.Errorf("prefilter: %w", err)
	}
	var bits [2][1024]uint64
	for pi, spans := range [][]ranges.Span{t.TCP, t.UDP} {
		for _, s := range spans {
			for port := int(s.Lo); port <= int(s.Hi); port++ {
				bits[pi][port>>6] |= 1 << (port & 63)
			}
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	old := p.ranges
	p.ranges = bits
	if err := p.store(); err != nil {
		p.ranges = old
		return err
	}
	return nil
}

// Publish adds the anchors of a table the tracker built: the prefilter
// passes the anchors of the latest pfKept tables published. It is
// Config.Anchors's function for a tracker whose captures share p.
func (p *Prefilter) Publish(a listener.AnchorPorts) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	old := p.anchors
	if len(p.anchors) == pfKept {
		p.anchors = append(p.anchors[:0:0], p.anchors[1:]...)
	}
	p.anchors = append(p.anchors, a)
	if err := p.store(); err != nil {
		p.anchors = old
		return err
	}
	return nil
}

// store writes the range and anchor bitmaps into the mapped value; with
// p.mu held. A program reading meanwhile may see words of the old bitmaps
// beside words of the new: every port that matters in both (the anchors of
// the table in use are in both) is set in both. Anchors outside the ranges
// are never passed: the range test comes first.
func (p *Prefilter) store() error {
	var v [2 * 2048]uint64
	copy(v[0:1024], p.ranges[0][:])
	copy(v[1024:2048], p.ranges[1][:])
	for _, a := range p.anchors {
		for pi := range 2 {
			for i, w := range a.Ports[pi] {
				v[2048+pi*1024+i] |= w
			}
		}
	}
	if _, err := p.mem.WriteAt(unsafe.Slice((*byte)(unsafe.Pointer(&v)), len(v)*8), pfRangeOff*8); err != nil {
		return fmt.Errorf("prefilter: write bitmaps: %w", err)
	}
	return nil
}

// dropped returns the count of knocks dropped so far, read from the
// mapped value: no system call.
func (p *Prefilter) dropped() uint64 {
	var w [8]byte
	p.mem.ReadAt(w[:], pfDropOff*8)
	return binary.NativeEndian.Uint64(w[:])
}

// Stats returns the counters, summed over the CPUs.
func (p *Prefilter) Stats() (PrefilterStats, error) {
	var s PrefilterStats
	s.Gens, s.Dropped = p.gens.Load(), p.dropped()
	for i, dst := range []*uint64{&s.Anchors, &s.Tracked} {
		var per []uint64
		if err := p.counts.Lookup(uint32(i), &per); err != nil {
			return PrefilterStats{}, fmt.Errorf("prefilter: counters: %w", err)
		}
		for _, n := range per {
			*dst += n
		}
	}
	return s, nil
}

// program returns the prefilter's program for link. Its header walk is
// Filter's: the same frames reach the port test (see Filter), and a frame
// shorter than a load drops it (the kernel's LD_ABS/LD_IND end the
// program with 0).
//
// On listener.LinkIP the frame's protocol field must name the IP version
// the packet starts with, as in Filter: a frame that fails this check is
// dropped before the port test, and counts in no counter (it is no knock).
//
// Registers: R6 the skb (LD_ABS/LD_IND need it there); R7 the IP
// header's offset, then the port, then whether it is an anchor; R8 the
// protocol index (0 TCP, 1 UDP), then the seen bitmap's generation, then
// the counter; R9 the frame's protocol field (listener.LinkIP), then the
// transport header's offset, then the bitmaps' address.
// The stack holds the source address at fp-16 (IPv4 as IPv4-mapped IPv6,
// so both spellings of an address are one source; the words in host order,
// as LD_IND leaves them: the hash only has to be the same on every frame),
// the bitmap map's key at fp-20 and a counter's index at fp-28, all inside
// the bytes fastIPv4's copy wrote first.
func (p *Prefilter) program(link listener.LinkType, count bool) easm.Instructions {
	const (
		etherIPv4   = 0x0800
		etherIPv6   = 0x86dd
		ether8021Q  = 0x8100
		ether8021AD = 0x88a8
	)
	var in easm.Instructions
	emit := func(is ...easm.Instruction) { in = append(in, is...) }
	label := func(name string, i easm.Instruction) easm.Instruction { return i.WithSymbol(name) }

	emit(easm.Mov.Reg(easm.R6, easm.R1))
	if link == listener.LinkIP {
		// No link header: the frame's protocol field, skb->protocol (a
		// big-endian 16-bit value in a 32-bit field), in host order.
		emit(easm.LoadMem(easm.R9, easm.R6, skbProtocol, easm.Word),
			easm.HostTo(easm.BE, easm.R9, easm.Half))
	}
	p.fastIPv4(&in, link)
	switch link {
	case listener.LinkEthernet:
		for i, off := range []int32{12, 16, 20} {
			ins := easm.LoadAbs(off, easm.Half)
			switch i {
			case 0:
				ins = label("slow", ins)
			default:
				ins = label(fmt.Sprintf("vlan%d", i), ins)
			}
			emit(ins, easm.Mov.Imm(easm.R7, off+2),
				easm.JEq.Imm(easm.R0, etherIPv4, "ip4"),
				easm.JEq.Imm(easm.R0, etherIPv6, "ip6"))
			if i < 2 {
				next := fmt.Sprintf("vlan%d", i+1)
				emit(easm.JEq.Imm(easm.R0, ether8021Q, next), easm.JEq.Imm(easm.R0, ether8021AD, next))
			}
			emit(easm.Ja.Label("drop"))
		}
	case listener.LinkIP:
		// The IP version in the first byte, and the frame's protocol
		// field (in R9) must name it, as in Filter. IPv4 falls through
		// to "ip4".
		emit(label("slow", easm.LoadAbs(0, easm.Byte)), easm.RSh.Imm(easm.R0, 4), easm.Mov.Imm(easm.R7, 0),
			easm.JNE.Imm(easm.R0, 6, "proto4"),
			easm.JNE.Imm(easm.R9, etherIPv6, "drop"),
			easm.Ja.Label("ip6"),
			label("proto4", easm.JNE.Imm(easm.R0, 4, "drop")),
			easm.JNE.Imm(easm.R9, etherIPv4, "drop"))
	}

	// IPv4 at R7: not a non-first fragment, TCP or UDP, header >= 20.
	emit(label("ip4", easm.LoadInd(easm.R0, easm.R7, 6, easm.Half)),
		easm.And.Imm(easm.R0, 0x1fff),
		easm.JNE.Imm(easm.R0, 0, "drop"),
		easm.LoadInd(easm.R0, easm.R7, 9, easm.Byte),
		easm.Mov.Imm(easm.R8, 0),
		easm.JEq.Imm(easm.R0, 6, "ip4p"),
		easm.Mov.Imm(easm.R8, 1),
		easm.JNE.Imm(easm.R0, 17, "drop"),
		label("ip4p", easm.LoadInd(easm.R0, easm.R7, 0, easm.Byte)),
		easm.And.Imm(easm.R0, 0x0f),
		easm.LSh.Imm(easm.R0, 2),
		easm.JLT.Imm(easm.R0, 20, "drop"),
		easm.Mov.Reg(easm.R9, easm.R7),
		easm.Add.Reg(easm.R9, easm.R0),
		easm.Mov.Imm(easm.R1, 0),
		easm.StoreMem(easm.RFP, -16, easm.R1, easm.DWord),
		easm.StoreImm(easm.RFP, -8, 0x0000ffff, easm.Word),
		easm.LoadInd(easm.R0, easm.R7, 12, easm.Word),
		easm.StoreMem(easm.RFP, -4, easm.R0, easm.Word),
		easm.Ja.Label("transport"))

	// IPv6 at R7: the next header TCP or UDP.
	emit(label("ip6", easm.LoadInd(easm.R0, easm.R7, 6, easm.Byte)),
		easm.Mov.Imm(easm.R8, 0),
		easm.JEq.Imm(easm.R0, 6, "ip6p"),
		easm.Mov.Imm(easm.R8, 1),
		easm.JNE.Imm(easm.R0, 17, "drop"))
	for i := range int32(4) {
		ins := easm.LoadInd(easm.R0, easm.R7, 8+4*i, easm.Word)
		if i == 0 {
			ins = label("ip6p", ins)
		}
		emit(ins, easm.StoreMem(easm.RFP, int16(-16+4*i), easm.R0, easm.Word))
	}
	emit(easm.Mov.Reg(easm.R9, easm.R7), easm.Add.Imm(easm.R9, 40))

	// Transport header at R9: TCP with SYN and not ACK, or UDP; the port
	// into R7.
	emit(label("transport", easm.JNE.Imm(easm.R8, 0, "port")),
		easm.LoadInd(easm.R0, easm.R9, 13, easm.Byte),
		easm.And.Imm(easm.R0, 0x12),
		easm.JNE.Imm(easm.R0, 0x02, "drop"),
		label("port", easm.LoadInd(easm.R0, easm.R9, 2, easm.Half)),
		easm.Mov.Reg(easm.R7, easm.R0),
		easm.And.Imm(easm.R7, 0xffff))

	// bit leaves in word the index of the 64-bit word that holds bit idx
	// of a bitmap, and in mask the bit's mask there (tmp is clobbered).
	bit := func(idx, word, mask, tmp easm.Register) {
		emit(easm.Mov.Reg(word, idx),
			easm.RSh.Imm(word, 6),
			easm.Mov.Reg(tmp, idx),
			easm.And.Imm(tmp, 63),
			easm.Mov.Imm(mask, 1),
			easm.LSh.Reg(mask, tmp))
	}

	// The bitmaps, at R9: the range word of (R8, R7) at R3, its bit in R2.
	// The word's offset within a protocol's bitmap is added to the
	// pointer as a scalar, the protocol's bitmap as an immediate: an
	// unprivileged verifier (CAP_BPF without CAP_PERFMON, as the unit
	// runs) masks a scalar added to a pointer against Spectre v1, and
	// refuses the add unless the scalar has the same bounds on every path
	// that reaches it (R8 is a different constant on the TCP and UDP
	// paths: "tried to add from different maps, paths or scalars").
	emit(label("bitmaps", easm.StoreImm(easm.RFP, -20, 0, easm.Word)),
		easm.LoadMapPtr(easm.R1, p.bits.FD()),
		easm.Mov.Reg(easm.R2, easm.RFP),
		easm.Add.Imm(easm.R2, -20),
		easm.FnMapLookupElem.Call(),
		easm.JEq.Imm(easm.R0, 0, "drop"),
		easm.Mov.Reg(easm.R9, easm.R0))
	bit(easm.R7, easm.R1, easm.R2, easm.R5)
	emit(easm.And.Imm(easm.R1, 1023),
		easm.LSh.Imm(easm.R1, 3),
		easm.Mov.Reg(easm.R3, easm.R9),
		easm.JEq.Imm(easm.R8, 0, "rangeword"),
		easm.Add.Imm(easm.R3, 1024*8),
		label("rangeword", easm.Add.Reg(easm.R3, easm.R1)),
		easm.LoadMem(easm.R4, easm.R3, pfRangeOff*8, easm.DWord),
		easm.And.Reg(easm.R4, easm.R2),
		easm.JEq.Imm(easm.R4, 0, "drop"),
		easm.LoadMem(easm.R7, easm.R3, pfAnchorOff*8, easm.DWord),
		easm.And.Reg(easm.R7, easm.R2)) // R7: non-zero at an anchor

	// The source's bit in the seen bitmap: R3 its word's index in a
	// generation, R4 its mask; R8 the current generation.
	// The hash is keyed (p.key, drawn at load): whoever knows the program
	// but not the key cannot pick sources that share a bit with another.
	emit(easm.LoadMem(easm.R1, easm.RFP, -16, easm.Word),
		easm.LoadImm(easm.R2, imm64(p.key[0]), easm.DWord),
		easm.Mul.Reg(easm.R1, easm.R2),
		easm.LoadMem(easm.R3, easm.RFP, -12, easm.Word),
		easm.LoadImm(easm.R2, imm64(p.key[1]), easm.DWord),
		easm.Mul.Reg(easm.R3, easm.R2),
		easm.Add.Reg(easm.R1, easm.R3),
		easm.LoadMem(easm.R3, easm.RFP, -8, easm.Word),
		easm.LoadImm(easm.R2, imm64(p.key[2]), easm.DWord),
		easm.Mul.Reg(easm.R3, easm.R2),
		easm.Add.Reg(easm.R1, easm.R3),
		easm.LoadMem(easm.R3, easm.RFP, -4, easm.Word),
		easm.Add.Reg(easm.R1, easm.R3),
		easm.LoadImm(easm.R2, imm64(p.key[3]), easm.DWord),
		easm.Mul.Reg(easm.R1, easm.R2),
		easm.RSh.Imm(easm.R1, 64-pfSeenBits))
	bit(easm.R1, easm.R3, easm.R4, easm.R5)
	emit(easm.Mov.Reg(easm.R0, easm.R9),
		easm.Add.Imm(easm.R0, pfGenOff*8),
		easm.LoadMem(easm.R8, easm.R0, 0, easm.DWord),
		easm.And.Imm(easm.R8, 1))

	// seenWord leaves in R2 the address of the word R3 of generation R1
	// (clobbered).
	seenWord := func() {
		emit(easm.LSh.Imm(easm.R1, pfSeenBits-6),
			easm.Add.Reg(easm.R1, easm.R3),
			easm.And.Imm(easm.R1, 2*pfSeenWords-1),
			easm.LSh.Imm(easm.R1, 3),
			easm.Mov.Reg(easm.R2, easm.R9),
			easm.Add.Imm(easm.R2, pfSeenOff*8),
			easm.Add.Reg(easm.R2, easm.R1))
	}

	// An anchor: mark the source in the current generation, pass.
	emit(easm.JEq.Imm(easm.R7, 0, "tracked"),
		easm.Mov.Reg(easm.R1, easm.R8))
	seenWord()
	emit(atomicOr(easm.R2, easm.R4),
		easm.Mov.Imm(easm.R8, 0),
		easm.Ja.Label("pass"))

	// Elsewhere in a range: pass if the source is marked in either
	// generation.
	emit(label("tracked", easm.Mov.Reg(easm.R1, easm.R8)))
	seenWord()
	emit(easm.LoadMem(easm.R5, easm.R2, 0, easm.DWord),
		easm.Mov.Reg(easm.R1, easm.R8),
		easm.Xor.Imm(easm.R1, 1))
	seenWord()
	emit(easm.LoadMem(easm.R0, easm.R2, 0, easm.DWord),
		easm.Or.Reg(easm.R5, easm.R0),
		easm.And.Reg(easm.R5, easm.R4),
		easm.Mov.Imm(easm.R8, 1),
		easm.JNE.Imm(easm.R5, 0, "pass"))
	if count {
		// Dropped: counted in the mapped value, where a capture reads
		// it without a system call (Prefilter.dropped).
		emit(easm.Mov.Reg(easm.R1, easm.R9),
			easm.Add.Imm(easm.R1, pfDropOff*8),
			easm.Mov.Imm(easm.R2, 1),
			easm.AddAtomic.Mem(easm.R1, easm.R2, easm.DWord, 0))
	}
	emit(easm.Ja.Label("drop"))

	// Passed: count (counter R8) and take SnapLen bytes.
	emit(label("pass", easm.Mov.Imm(easm.R0, 0))) // a no-op target
	if count {
		emit(easm.StoreMem(easm.RFP, -28, easm.R8, easm.Word),
			easm.LoadMapPtr(easm.R1, p.counts.FD()),
			easm.Mov.Reg(easm.R2, easm.RFP),
			easm.Add.Imm(easm.R2, -28),
			easm.FnMapLookupElem.Call(),
			easm.JEq.Imm(easm.R0, 0, "verdict"),
			easm.LoadMem(easm.R1, easm.R0, 0, easm.DWord),
			easm.Add.Imm(easm.R1, 1),
			easm.StoreMem(easm.R0, 0, easm.R1, easm.DWord))
	}
	emit(label("verdict", easm.Mov.Imm(easm.R0, SnapLen)),
		easm.Return(),
		label("drop", easm.Mov.Imm(easm.R0, 0)),
		easm.Return())
	return in
}

// fastIPv4 emits the prefilter's fast path, for the common knock: IPv4
// with a 20-byte header, not behind a VLAN tag, in a frame long enough to
// hold a TCP header. It copies the headers to the stack with one
// bpf_skb_load_bytes and reads them there: a flood's frames keep their
// headers in page fragments, where each LD_IND of the slow path is a call
// that walks the fragments (measured: most of the program's cost). Any
// other frame, or one too short for the copy, goes to "slow", the header
// walk from the start; the fast path leaves the same registers and key as
// the slow one (see program) and jumps to "bitmaps", or to "drop". On
// listener.LinkIP it drops IPv4 whose protocol field (R9) is not ETH_P_IP.
func (p *Prefilter) fastIPv4(in *easm.Instructions, link listener.LinkType) {
	// The copy ends at the frame pointer, where the IPv4 source lands on a
	// 4-byte boundary (the verifier wants stack loads aligned), below the
	// key. It covers the key and the indexes: the copy runs first on every
	// path, so every later store to the stack goes to bytes a helper has
	// written. An unprivileged verifier (the unit's CAP_BPF without
	// CAP_PERFMON) puts a speculation barrier after each store to stack
	// bytes nothing wrote before (Spectre v4); here it puts none.
	buf, ip, n := int16(-40), int16(0), int32(40)
	if link == listener.LinkEthernet {
		buf, ip, n = -54, 14, 54
	}
	b := buf + ip // the IPv4 header on the stack
	emit := func(is ...easm.Instruction) { *in = append(*in, is...) }
	emit(easm.Mov.Reg(easm.R1, easm.R6),
		easm.Mov.Imm(easm.R2, 0),
		easm.Mov.Reg(easm.R3, easm.RFP),
		easm.Add.Imm(easm.R3, int32(buf)),
		easm.Mov.Imm(easm.R4, n),
		easm.FnSkbLoadBytes.Call(),
		easm.JNE.Imm(easm.R0, 0, "slow"))
	if link == listener.LinkEthernet {
		// The ethertype 0x0800, its bytes read as a little-endian word.
		emit(easm.LoadMem(easm.R0, easm.RFP, buf+12, easm.Half),
			easm.JNE.Imm(easm.R0, 0x0008, "slow"))
	}
	emit(easm.LoadMem(easm.R0, easm.RFP, b, easm.Byte),
		easm.JNE.Imm(easm.R0, 0x45, "slow")) // version 4, header length 20
	if link == listener.LinkIP {
		// IPv4 in a frame whose protocol field says otherwise.
		emit(easm.JNE.Imm(easm.R9, unix.ETH_P_IP, "drop"))
	}
	emit(easm.LoadMem(easm.R0, easm.RFP, b+6, easm.Half),
		easm.HostTo(easm.BE, easm.R0, easm.Half),
		easm.And.Imm(easm.R0, 0x1fff),
		easm.JNE.Imm(easm.R0, 0, "drop"), // a non-first fragment
		easm.LoadMem(easm.R0, easm.RFP, b+9, easm.Byte),
		easm.Mov.Imm(easm.R8, 0),
		easm.JEq.Imm(easm.R0, 6, "fast_tcp"),
		easm.Mov.Imm(easm.R8, 1),
		easm.JNE.Imm(easm.R0, 17, "drop"),
		easm.Ja.Label("fast_port"),
		easm.LoadMem(easm.R0, easm.RFP, b+20+13, easm.Byte).WithSymbol("fast_tcp"),
		easm.And.Imm(easm.R0, 0x12), // SYN|ACK
		easm.JNE.Imm(easm.R0, 0x02, "drop"),
		easm.LoadMem(easm.R7, easm.RFP, b+20+2, easm.Half).WithSymbol("fast_port"),
		easm.HostTo(easm.BE, easm.R7, easm.Half),
		easm.And.Imm(easm.R7, 0xffff),
		// The key, as the slow path leaves it: the source in host order
		// (what LD_IND loads), IPv4-mapped.
		easm.Mov.Imm(easm.R1, 0),
		easm.StoreMem(easm.RFP, -16, easm.R1, easm.DWord),
		easm.StoreImm(easm.RFP, -8, 0x0000ffff, easm.Word),
		easm.LoadMem(easm.R0, easm.RFP, b+12, easm.Word),
		easm.HostTo(easm.BE, easm.R0, easm.Word),
		easm.StoreMem(easm.RFP, -4, easm.R0, easm.Word),
		easm.Ja.Label("bitmaps"))
}

// atomicOr is *(u64 *)dst |= src, atomically. (cilium/ebpf v0.22.0's
// OrAtomic.Mem marshals as an atomic add: Instruction.Marshal takes the
// immediate from Constant before it sets the operation there, so the
// operation must be in Constant already. An add would carry a source's
// second mark into the next bit.)
func atomicOr(dst, src easm.Register) easm.Instruction {
	ins := easm.AddAtomic.Mem(dst, src, easm.DWord, 0)
	ins.Constant = int64(easm.Or)
	return ins
}

// skbProtocol is the offset of protocol in struct __sk_buff, after len,
// pkt_type, mark and queue_mapping: the frame's EtherType, sll_protocol.
const skbProtocol = 16

// imm64 is the 64-bit immediate of v.
func imm64(v uint64) int64 { return int64(v) }

// newKey draws the seen bitmap's hash key: four odd 64-bit multipliers
// from crypto/rand. A fixed key would let anyone who reads this source
// choose spoofed sources that share a bit with a client's, or with each
// other.
func (p *Prefilter) newKey() error {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return fmt.Errorf("prefilter: hash key: %w", err)
	}
	for i := range p.key {
		p.key[i] = binary.LittleEndian.Uint64(b[8*i:]) | 1
	}
	return nil
}
