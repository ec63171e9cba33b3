package main

import (
	"encoding/base32"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tknock/tknock/internal/enrollfile"
	"github.com/tknock/tknock/totpseq"
)

// vector is one entry of the protocol's test vectors.
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

// TestPrintVectors writes each vector as an enrollment file and checks
// that `tknock print` prints exactly its sequence: the ports, space
// separated, on one line, and nothing else.
func TestPrintVectors(t *testing.T) {
	b, err := os.ReadFile("../../totpseq/testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var vs []vector
	if err := json.Unmarshal(b, &vs); err != nil {
		t.Fatalf("vectors.json: %v", err)
	}
	if len(vs) == 0 {
		t.Fatal("no vectors")
	}
	e := newEnv(t)
	dir := t.TempDir()
	for i, v := range vs {
		secret, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(v.SecretB32)
		if err != nil {
			t.Fatalf("vector %d: secret: %v", i, err)
		}
		p := totpseq.Defaults()
		p.Secret = secret
		p.Realm = v.Realm
		p.Services = []string{v.Service}
		p.Length = v.Length
		p.Range = totpseq.Range{Lo: v.Range[0], Hi: v.Range[1]}
		p.Exclude = slices.Sorted(slices.Values(v.Exclude))
		p.V6Prefix = v.V6Prefix
		path := filepath.Join(dir, fmt.Sprintf("v%d.uri", i))
		if err := enrollfile.Write(path, &totpseq.Enrollment{Name: "vector", Params: p}); err != nil {
			t.Fatalf("vector %d: %v", i, err)
		}
		at := fmt.Sprint(v.Window * uint64(p.Period))
		code, out, errOut := e.run("print", "--enrollment", path, "--service", v.Service, "--source", v.IP, "--at", at)
		want := strings.Trim(fmt.Sprint(v.Sequence), "[]") + "\n"
		if code != 0 || out != want || errOut != "" {
			t.Errorf("vector %d: tknock print ... --source %s --at %s: exit %d, stdout %q, stderr %q; want %q",
				i, v.IP, at, code, out, errOut, want)
		}
	}
}
