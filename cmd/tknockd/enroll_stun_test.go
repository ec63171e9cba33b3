package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/tknock/tknock/internal/enrollfile"
)

// TestEnrollSTUN: [enroll] stun reaches the enrollment tknockd enroll
// writes and prints, in canonical form; a bad server is an error that
// names enroll.stun and the server.
func TestEnrollSTUN(t *testing.T) {
	c := testConfig(t, "[enroll]\nstun = [\"STUN.example.org:3478\", \"[2001:db8::53]:3478\"]")
	want := []string{"stun.example.org:3478", "[2001:db8::53]:3478"}
	if !slices.Equal(c.Enroll.STUN, want) {
		t.Errorf("config [enroll] stun = %q, want %q", c.Enroll.STUN, want)
	}
	code, out, errOut := runCLI(t, "enroll", "alice", "--no-qr", "-c", c.Path)
	if code != 0 {
		t.Fatalf("enroll: exit %d: %s", code, errOut)
	}
	e, err := enrollfile.Read(userFile(c.UsersDir, "alice"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(e.STUN, want) {
		t.Errorf("enrollment STUN = %q, want %q", e.STUN, want)
	}
	if !strings.Contains(out, "&stun=stun.example.org:3478,%5B2001:db8::53%5D:3478") {
		t.Errorf("enroll output lacks the stun parameter:\n%s", out)
	}

	for _, tt := range []struct{ stun, want string }{
		{`["stun.example.org"]`, `field enroll.stun: "stun.example.org": want HOST:PORT`},
		{`["a.example:1", "a.example:1"]`, `field enroll.stun: "a.example:1": listed twice`},
		{`["a.example:99999"]`, `field enroll.stun: "a.example:99999": "99999" is not a port`},
	} {
		_, err := parseConfig("f.toml", []byte(minimal+"[enroll]\nstun = "+tt.stun+"\n"))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("stun = %s: error %v, want one containing %q", tt.stun, err, tt.want)
		}
	}
}
