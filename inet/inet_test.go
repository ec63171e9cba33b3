package inet

import (
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseProto(t *testing.T) {
	for _, p := range []Proto{TCP, UDP} {
		got, err := ParseProto(p.String())
		if err != nil || got != p {
			t.Errorf("ParseProto(%q) = %v, %v, want %v", p.String(), got, err, p)
		}
	}
	if _, err := ParseProto("icmp"); err == nil {
		t.Errorf("ParseProto(icmp): no error")
	}
	if got := Proto(1).String(); got != "proto(1)" {
		t.Errorf("Proto(1).String() = %q", got)
	}
}

func TestRangeString(t *testing.T) {
	for _, tc := range []struct {
		r    Range
		want string
	}{
		{Range{TCP, 10000, 32767}, "tcp/10000-32767"},
		{Range{UDP, 53, 53}, "udp/53"},
	} {
		if got := tc.r.String(); got != tc.want {
			t.Errorf("%#v.String() = %q, want %q", tc.r, got, tc.want)
		}
	}
}

func TestMerge(t *testing.T) {
	in := []Range{{UDP, 5, 9}, {TCP, 10, 20}, {TCP, 21, 30}, {TCP, 1, 3}, {TCP, 2, 4}, {UDP, 9, 9}, {TCP, 9, 8}, {TCP, 65535, 65535}, {TCP, 40, 65535}}
	orig := append([]Range(nil), in...)
	want := []Range{{TCP, 1, 4}, {TCP, 10, 30}, {TCP, 40, 65535}, {UDP, 5, 9}}
	if diff := cmp.Diff(want, Merge(in)); diff != "" {
		t.Errorf("Merge: -want +got:\n%s", diff)
	}
	if diff := cmp.Diff(orig, in); diff != "" {
		t.Errorf("Merge modified its argument: %s", diff)
	}
	if got := Merge(nil); got != nil {
		t.Errorf("Merge(nil) = %v, want nil", got)
	}
}

// bitmap is the set of ports of rs minus excluded, one protocol at a time,
// as firewall code computed it before Without.
func bitmap(rs []Range, excluded []uint16) map[Proto][]bool {
	m := map[Proto][]bool{}
	for _, r := range rs {
		if m[r.Proto] == nil {
			m[r.Proto] = make([]bool, 512) // the test ranges stay below 512
		}
		for p := int(r.Lo); p <= int(r.Hi); p++ {
			m[r.Proto][p] = true
		}
	}
	for _, b := range m {
		for _, x := range excluded {
			b[x] = false
		}
	}
	return m
}

func TestWithoutMatchesBitmap(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 300 {
		var rs []Range
		for range rng.IntN(5) {
			lo := uint16(rng.IntN(200))
			rs = append(rs, Range{[]Proto{TCP, UDP}[rng.IntN(2)], lo, lo + uint16(rng.IntN(40))})
		}
		var ex []uint16
		for range rng.IntN(8) {
			ex = append(ex, uint16(rng.IntN(250)))
		}
		got := Without(rs, ex)
		if diff := cmp.Diff(bitmap(rs, ex), bitmap(got, nil)); diff != "" {
			t.Fatalf("case %d: Without(%v, %v) = %v: ports differ", i, rs, ex, got)
		}
		if diff := cmp.Diff(Merge(got), got); diff != "" {
			// Without's result is sorted and disjoint; adjacent pieces only
			// where an excluded port lies between them, so Merge keeps it.
			t.Fatalf("case %d: Without(%v, %v) = %v is not merged: %s", i, rs, ex, got, diff)
		}
	}
}
