package totpseq

import (
	"fmt"
	"math"
	"strconv"
)

// MinBits is the least strength, in bits, that a server accepts for an
// enrollment's sequences (Params.Bits). Below it, an attacker who knows the
// window's anchor (any knock seen on the wire shows it) opens the door by
// guessing with too few attempts.
const MinBits = 48

// Bits returns the strength of p's sequences: log2 of the number of bound
// port sets that an attacker who knows the anchor chooses from, C(n-1, k-1)
// for n usable ports and length k. The bound ports may arrive in any order
// (PROTOCOL.md section 3), so it is the set that counts, not the order;
// the anchor adds nothing, since it does not depend on the source.
func (p *Params) Bits() float64 {
	n := p.Range.Size() - len(p.Exclude)
	return log2Choose(n-1, p.Length-1)
}

// Odds returns the probability that one attempt (an anchor and k-1 guessed
// bound ports, the anchor known) opens one given candidate: 2^-Bits.
func (p *Params) Odds() float64 { return math.Exp2(-p.Bits()) }

// CheckStrength returns a *ParamError naming len and range when p's
// sequences are weaker than MinBits.
func (p *Params) CheckStrength() error {
	bits := p.Bits()
	if bits >= MinBits {
		return nil
	}
	usable := p.Range.Size() - len(p.Exclude)
	return &ParamError{Param: "len", Value: strconv.Itoa(p.Length), Err: fmt.Errorf(
		"with range %v (%d usable ports) a sequence has %.1f bits: want at least %d; raise len or widen the range",
		p.Range, usable, bits, MinBits)}
}

// log2Choose returns log2 of the binomial coefficient C(n, k), 0 <= k <= n.
func log2Choose(n, k int) float64 {
	if k < 0 || n < k {
		return 0
	}
	a, _ := math.Lgamma(float64(n + 1))
	b, _ := math.Lgamma(float64(k + 1))
	c, _ := math.Lgamma(float64(n - k + 1))
	return (a - b - c) / math.Ln2
}
