package totpseq

import (
	"crypto/sha256"
	"encoding"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"net/netip"
	"slices"
	"time"
)

// Window returns the time window of t: floor(t / period), t in Unix
// seconds. Times before the Unix epoch are in window 0. period must be
// positive.
func Window(t time.Time, period int) uint64 {
	s := t.Unix()
	if s < 0 || period <= 0 {
		return 0
	}
	return uint64(s) / uint64(period)
}

// WindowStart returns the first second of window w.
func WindowStart(w uint64, period int) time.Time {
	return time.Unix(int64(w*uint64(period)), 0)
}

// IP16 returns the 16 bytes that bind a source address into a sequence: an
// IPv4 address (or an IPv4-mapped IPv6 address) in its IPv4-mapped form,
// an IPv6 address with all bits after v6prefix cleared. A zone is ignored.
func IP16(a netip.Addr, v6prefix int) ([16]byte, error) {
	a = a.WithZone("")
	switch {
	case !a.IsValid():
		return [16]byte{}, errors.New("invalid source address")
	case a.Is4(), a.Is4In6():
		return netip.AddrFrom4(a.Unmap().As4()).As16(), nil
	}
	p, err := a.Prefix(v6prefix)
	if err != nil {
		return [16]byte{}, paramErr("v6prefix", fmt.Sprint(v6prefix), "%v", err)
	}
	return p.Addr().As16(), nil
}

// Message types of PROTOCOL.md section 2.
const (
	msgAnchor = 1
	msgBound  = 2
	maxBlocks = 256
)

// maxMsg bounds a message: H(7) + type(1) + enc(realm)(256) + enc(service)(256) + window(8) + ip16(16) + counter(1).
const maxMsg = 7 + 1 + 256 + 256 + 8 + 16 + 1

// A Deriver computes anchors and sequences for one enrollment. It keeps a
// precomputed HMAC key state and scratch space, so a derivation allocates
// nothing when dst has room. A Deriver is not safe for concurrent use; make
// one per goroutine. Rekey turns it into another enrollment's Deriver in
// place, without allocating: a cache of Derivers for many users recycles
// them rather than leaving one behind for the garbage collector at every
// miss.
type Deriver struct {
	p Params // a validated copy

	// HMAC-SHA256 (RFC 2104) over SHA-256 states: inner and outer are
	// restored from istate and ostate, the states after the key block
	// XOR ipad and XOR opad, at every MAC (as crypto/hmac does), and
	// rekeying rewrites those states in place, which crypto/hmac cannot.
	inner, outer   hash.Hash
	inState        encoding.BinaryUnmarshaler
	outState       encoding.BinaryUnmarshaler
	istate, ostate []byte

	msg   [maxMsg]byte
	block [sha256.Size]byte
	pad   [sha256.BlockSize]byte // the key block while rekeying, cleared after
}

// NewDeriver validates p and returns a Deriver for it. The Deriver keeps
// its own copy of p's slices' headers: the caller must not modify them
// afterwards.
func NewDeriver(p *Params) (*Deriver, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	d := &Deriver{inner: sha256.New(), outer: sha256.New()}
	d.inState = d.inner.(encoding.BinaryUnmarshaler)
	d.outState = d.outer.(encoding.BinaryUnmarshaler)
	d.setKey(p)
	return d, nil
}

// Rekey validates p and makes d p's Deriver, as NewDeriver(p) would, in
// place and without allocating. On error d is unchanged. The same rule
// holds for p's slices as for NewDeriver.
func (d *Deriver) Rekey(p *Params) error {
	if err := p.Validate(); err != nil {
		return err
	}
	d.setKey(p)
	return nil
}

// setKey takes p, validated, and computes the HMAC key states of its
// secret.
func (d *Deriver) setKey(p *Params) {
	d.p = *p
	k := &d.pad // not a local: Write would move it to the heap at every rekey
	clear(k[:])
	if len(p.Secret) > len(k) {
		sum := sha256.Sum256(p.Secret)
		copy(k[:], sum[:])
	} else {
		copy(k[:], p.Secret)
	}
	for i := range k {
		k[i] ^= 0x36
	}
	d.istate = keyState(d.inner, k[:], d.istate)
	for i := range k {
		k[i] ^= 0x36 ^ 0x5c
	}
	d.ostate = keyState(d.outer, k[:], d.ostate)
	clear(k[:])
}

// keyState returns, in buf's memory when it has room, the state of h after
// it hashed block from its start.
func keyState(h hash.Hash, block, buf []byte) []byte {
	h.Reset()
	h.Write(block)
	st, err := h.(encoding.BinaryAppender).AppendBinary(buf[:0])
	if err != nil {
		panic("totpseq: SHA-256 state: " + err.Error()) // crypto/sha256 always marshals
	}
	return st
}

// mac returns HMAC-SHA256(secret, msg) in d.block.
func (d *Deriver) mac(msg []byte) []byte {
	d.inState.UnmarshalBinary(d.istate)
	d.inner.Write(msg)
	in := d.inner.Sum(d.block[:0])
	d.outState.UnmarshalBinary(d.ostate)
	d.outer.Write(in)
	return d.outer.Sum(d.block[:0])
}

// Params returns the parameters the Deriver was made with.
func (d *Deriver) Params() *Params { return &d.p }

// header writes H || type || enc(realm) || enc(service) || u64(window) into
// d.msg and returns its length.
func (d *Deriver) header(typ byte, service string, window uint64) (int, error) {
	if !ValidService(service) {
		return 0, paramErr("services", fmt.Sprintf("%q", service), "bad service name: want [a-z0-9][a-z0-9._-]{0,62}")
	}
	b := d.msg[:0]
	b = append(b, "tknock"...)
	b = append(b, Version, typ, byte(len(d.p.Realm)))
	b = append(b, d.p.Realm...)
	b = append(b, byte(len(service)))
	b = append(b, service...)
	b = binary.BigEndian.AppendUint64(b, window)
	return len(b), nil
}

// draw appends count ports drawn from the port stream of d.msg[:n] to dst,
// skipping ports in taken (dst[start:] counts as taken too).
func (d *Deriver) draw(dst []uint16, n, count int, taken uint16) ([]uint16, error) {
	size := uint32(d.p.Range.Size())
	limit := 65536 - 65536%size
	start := len(dst)
	for ctr := 0; ctr < maxBlocks; ctr++ {
		d.msg[n] = byte(ctr)
		sum := d.mac(d.msg[:n+1])
		for i := 0; i+1 < len(sum); i += 2 {
			w := uint32(sum[i])<<8 | uint32(sum[i+1])
			if w >= limit {
				continue
			}
			port := d.p.Range.Lo + uint16(w%size)
			if port == taken || slices.Contains(dst[start:], port) {
				continue
			}
			if _, excluded := slices.BinarySearch(d.p.Exclude, port); excluded {
				continue
			}
			dst = append(dst, port)
			if len(dst)-start == count {
				return dst, nil
			}
		}
	}
	return dst[:start], ErrExhausted
}

// Anchor returns the first port of the sequence of service in window. It
// does not depend on the source address.
func (d *Deriver) Anchor(service string, window uint64) (uint16, error) {
	n, err := d.header(msgAnchor, service, window)
	if err != nil {
		return 0, err
	}
	var one [1]uint16
	out, err := d.draw(one[:0], n, 1, 0)
	if err != nil {
		return 0, fmt.Errorf("anchor of %s in window %d: %w", service, window, err)
	}
	return out[0], nil
}

// AppendBound appends the Length-1 ports that follow anchor in the sequence
// of service in window for source address src, and returns the extended
// slice. anchor must be the value Anchor returns for (service, window).
func (d *Deriver) AppendBound(dst []uint16, service string, window uint64, anchor uint16, src netip.Addr) ([]uint16, error) {
	ip, err := IP16(src, d.p.V6Prefix)
	if err != nil {
		return dst, err
	}
	n, err := d.header(msgBound, service, window)
	if err != nil {
		return dst, err
	}
	n += copy(d.msg[n:], ip[:])
	out, err := d.draw(dst, n, d.p.Length-1, anchor)
	if err != nil {
		return dst, fmt.Errorf("sequence of %s in window %d: %w", service, window, err)
	}
	return out, nil
}

// AppendSequence appends the whole sequence (anchor first, Length ports)
// of service in window for source address src to dst.
func (d *Deriver) AppendSequence(dst []uint16, service string, window uint64, src netip.Addr) ([]uint16, error) {
	anchor, err := d.Anchor(service, window)
	if err != nil {
		return dst, err
	}
	return d.AppendBound(append(dst, anchor), service, window, anchor, src)
}

// Sequence returns the knock sequence of service in window for source
// address src under parameters p.
func Sequence(p *Params, service string, window uint64, src netip.Addr) ([]uint16, error) {
	d, err := NewDeriver(p)
	if err != nil {
		return nil, err
	}
	return d.AppendSequence(make([]uint16, 0, p.Length), service, window, src)
}

// Anchor returns the anchor port of service in window under parameters p.
func Anchor(p *Params, service string, window uint64) (uint16, error) {
	d, err := NewDeriver(p)
	if err != nil {
		return 0, err
	}
	return d.Anchor(service, window)
}
