package totpseq

import (
	"math"
	"strings"
	"testing"
)

func TestBits(t *testing.T) {
	tests := []struct {
		length  int
		lo, hi  uint16
		exclude []uint16
		want    float64 // log2 C(n-1, k-1), computed by hand
	}{
		{2, 10000, 10063, nil, math.Log2(63)},
		{4, 10000, 32767, nil, math.Log2(22767.0 * 22766 * 22765 / 6)},
		{5, 10000, 32767, nil, math.Log2(22767.0 * 22766 * 22765 * 22764 / 24)},
		{3, 1, 100, []uint16{5, 6}, math.Log2(97.0 * 96 / 2)},
	}
	for _, tt := range tests {
		p := Defaults()
		p.Length, p.Range, p.Exclude = tt.length, Range{Lo: tt.lo, Hi: tt.hi}, tt.exclude
		if got := p.Bits(); math.Abs(got-tt.want) > 1e-6 {
			t.Errorf("Bits(len %d, range %d-%d, exclude %v) = %.6f, want %.6f", tt.length, tt.lo, tt.hi, tt.exclude, got, tt.want)
		}
		if got, want := p.Odds(), math.Exp2(-tt.want); math.Abs(got-want) > want*1e-6 {
			t.Errorf("Odds = %g, want %g", got, want)
		}
	}
}

func TestCheckStrength(t *testing.T) {
	p := Defaults() // len 4 over 10000-32767: 40.8 bits
	err := p.CheckStrength()
	if err == nil || !strings.Contains(err.Error(), "parameter len: 4: with range 10000-32767 (22768 usable ports) a sequence has 40.8 bits: want at least 48") {
		t.Errorf("CheckStrength(defaults) = %v, want the 40.8-bit error naming len and range", err)
	}
	p.Length = 5
	if err := p.CheckStrength(); err != nil {
		t.Errorf("CheckStrength(len 5) = %v, want nil (53.3 bits)", err)
	}
	p.Length, p.Range = 2, Range{Lo: 10000, Hi: 10063}
	if err := p.CheckStrength(); err == nil || !strings.Contains(err.Error(), "(64 usable ports) a sequence has 6.0 bits") {
		t.Errorf("CheckStrength(len 2, 64 ports) = %v", err)
	}
}
