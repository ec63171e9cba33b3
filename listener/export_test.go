package listener

// DecodeVerdict is Decoder.decode for the external tests: the verdict as
// listenertest.Verdict numbers it (knock 0, ignored 1, malformed 2).
func (d *Decoder) DecodeVerdict(f *Frame, k *Knock) uint8 { return uint8(d.decode(f, k)) }

// ErrHopByHop is errHopByHop, for the reference decoder.
var ErrHopByHop = errHopByHop
