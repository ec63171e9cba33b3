// Package vectors loads the protocol's test vectors (docs/PROTOCOL.md section 6,
// kept in testdata/vectors.json at the top of the repository) for the tests of every
// package that must reproduce them.
package vectors

import (
	"encoding/base32"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"slices"

	"github.com/tknock/tknock/totpseq"
)

// Vector is one entry of vectors.json.
type Vector struct {
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

// Load reads the vectors at path; an empty list is an error.
func Load(path string) ([]Vector, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var vs []Vector
	if err := json.Unmarshal(b, &vs); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(vs) == 0 {
		return nil, fmt.Errorf("%s: no vectors", path)
	}
	return vs, nil
}

// Params returns the vector's enrollment parameters (its service is the
// only one) and its source address.
func (v Vector) Params() (totpseq.Params, netip.Addr, error) {
	secret, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(v.SecretB32)
	if err != nil {
		return totpseq.Params{}, netip.Addr{}, fmt.Errorf("secret_b32: %w", err)
	}
	src, err := netip.ParseAddr(v.IP)
	if err != nil {
		return totpseq.Params{}, netip.Addr{}, fmt.Errorf("ip: %w", err)
	}
	p := totpseq.Defaults()
	p.Secret = secret
	p.Realm = v.Realm
	p.Services = []string{v.Service}
	p.Length = v.Length
	p.Range = totpseq.Range{Lo: v.Range[0], Hi: v.Range[1]}
	p.Exclude = slices.Sorted(slices.Values(v.Exclude))
	p.V6Prefix = v.V6Prefix
	return p, src, nil
}
