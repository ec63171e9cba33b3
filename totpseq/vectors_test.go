package totpseq_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"slices"
	"testing"

	"github.com/tknock/tknock/internal/vectors"
	"github.com/tknock/tknock/totpseq"
)

func TestVectors(t *testing.T) {
	vs, err := vectors.Load("../testdata/vectors.json")
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

// derivationSHA256 pins section 2 of docs/PROTOCOL.md, the derivation,
// byte for byte: it never changes, because every vector holds forever. A
// change to the section's text that does not change the derivation (a typo)
// still needs a new protocol version or a very good reason.
const derivationSHA256 = "47237dd597e4b01ade39c1cd713642034610f6c3fd7ccafa1ac58bb465438c2b"

// TestDerivationUnchanged checks the pin above.
func TestDerivationUnchanged(t *testing.T) {
	doc, err := os.ReadFile("../docs/PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	start := bytes.Index(doc, []byte("## 2. Derivation"))
	end := bytes.Index(doc, []byte("## 3."))
	if start < 0 || end < start {
		t.Fatal("docs/PROTOCOL.md: no section 2 (\"## 2. Derivation\" up to \"## 3.\")")
	}
	sum := sha256.Sum256(doc[start:end])
	if got := hex.EncodeToString(sum[:]); got != derivationSHA256 {
		t.Errorf("docs/PROTOCOL.md section 2 has SHA-256 %s, want %s: the derivation never changes", got, derivationSHA256)
	}
}
