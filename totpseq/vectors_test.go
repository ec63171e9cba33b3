package totpseq_test

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
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

// TestVectorsCopy checks that testdata/vectors.json is still the shared
// spec's file, when the spec sits beside the repository (../shared).
func TestVectorsCopy(t *testing.T) {
	spec, err := os.ReadFile("../../shared/spec/vectors.json")
	if errors.Is(err, fs.ErrNotExist) {
		t.Log("../shared/spec/vectors.json is not beside the repository: nothing to compare")
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	ours, err := os.ReadFile("testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(spec, ours) {
		t.Error("testdata/vectors.json differs from ../shared/spec/vectors.json: copy the spec's file again")
	}
}
