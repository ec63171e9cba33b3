package totpseq

import (
	"encoding/base32"
	"encoding/json"
	"net/netip"
	"os"
	"slices"
	"testing"
)

// vector is one entry of testdata/vectors.json, a copy of the shared spec's.
type vector struct {
	SecretB32 string    `json:"secret_b32"`
	Realm     string    `json:"realm"`
	Service   string    `json:"service"`
	Window    uint64    `json:"window"`
	IP        string    `json:"ip"`
	V6Prefix  int       `json:"v6prefix"`
	Length    int       `json:"length"`
	Range     [2]uint16 `json:"range"`
	Exclude   []uint16  `json:"exclude"`
	Sequence  []uint16  `json:"sequence"`
}

func loadVectors(t testing.TB) []vector {
	t.Helper()
	b, err := os.ReadFile("testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var vs []vector
	if err := json.Unmarshal(b, &vs); err != nil {
		t.Fatalf("testdata/vectors.json: %v", err)
	}
	if len(vs) == 0 {
		t.Fatal("testdata/vectors.json holds no vectors")
	}
	return vs
}

func (v vector) params(t testing.TB) Params {
	t.Helper()
	secret, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(v.SecretB32)
	if err != nil {
		t.Fatalf("secret_b32 %q: %v", v.SecretB32, err)
	}
	p := Defaults()
	p.Secret = secret
	p.Realm = v.Realm
	p.Services = []string{v.Service}
	p.Length = v.Length
	p.Range = Range{v.Range[0], v.Range[1]}
	p.Exclude = slices.Sorted(slices.Values(v.Exclude))
	p.V6Prefix = v.V6Prefix
	return p
}

func TestVectors(t *testing.T) {
	for i, v := range loadVectors(t) {
		p := v.params(t)
		src, err := netip.ParseAddr(v.IP)
		if err != nil {
			t.Fatalf("vector %d: ip %q: %v", i, v.IP, err)
		}
		got, err := Sequence(&p, v.Service, v.Window, src)
		if err != nil {
			t.Errorf("vector %d: Sequence: %v", i, err)
			continue
		}
		if !slices.Equal(got, v.Sequence) {
			t.Errorf("vector %d: Sequence(realm %.20q, %s, window %d, %s, /%d) = %v, want %v",
				i, v.Realm, v.Service, v.Window, v.IP, v.V6Prefix, got, v.Sequence)
		}
		anchor, err := Anchor(&p, v.Service, v.Window)
		if err != nil || anchor != v.Sequence[0] {
			t.Errorf("vector %d: Anchor = %d, %v; want %d", i, anchor, err, v.Sequence[0])
		}
	}
}
