package totpseq_test

import (
	"slices"
	"testing"

	"github.com/tknock/tknock/internal/vectors"
	"github.com/tknock/tknock/totpseq"
)

func TestVectors(t *testing.T) {
	vs, err := vectors.Load("testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range vs {
		p, src, err := v.Params()
		if err != nil {
			t.Fatalf("vector %d: %v", i, err)
		}
		got, err := totpseq.Sequence(&p, v.Service, v.Window, src)
		if err != nil {
			t.Errorf("vector %d: Sequence: %v", i, err)
			continue
		}
		if !slices.Equal(got, v.Sequence) {
			t.Errorf("vector %d: Sequence(realm %.20q, %s, window %d, %s, /%d) = %v, want %v",
				i, v.Realm, v.Service, v.Window, v.IP, v.V6Prefix, got, v.Sequence)
		}
		anchor, err := totpseq.Anchor(&p, v.Service, v.Window)
		if err != nil || anchor != v.Sequence[0] {
			t.Errorf("vector %d: Anchor = %d, %v; want %d", i, anchor, err, v.Sequence[0])
		}
	}
}
