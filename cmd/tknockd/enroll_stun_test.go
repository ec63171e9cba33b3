package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/tknock/tknock/internal/config"
	"github.com/tknock/tknock/internal/config/configtest"
	"github.com/tknock/tknock/internal/enrollfile"
)

// TestEnrollSTUN: [enroll] stun reaches the enrollment tknockd enroll
// writes and prints, in canonical form (TestConfigSTUNErrors has the bad
// servers).
func TestEnrollSTUN(t *testing.T) {
	c := configtest.New(t, "[enroll]\nstun = [\"STUN.example.org:3478\", \"[2001:db8::53]:3478\"]")
	want := []string{"stun.example.org:3478", "[2001:db8::53]:3478"}
	if !slices.Equal(c.Enroll.STUN, want) {
		t.Errorf("config [enroll] stun = %q, want %q", c.Enroll.STUN, want)
	}
	code, out, errOut := runCLI(t, "enroll", "alice", "--no-qr", "-c", c.Path)
	if code != 0 {
		t.Fatalf("enroll: exit %d: %s", code, errOut)
	}
	e, err := enrollfile.Read(config.UserFile(c.UsersDir, "alice"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(e.STUN, want) {
		t.Errorf("enrollment STUN = %q, want %q", e.STUN, want)
	}
	if !strings.Contains(out, "&stun=stun.example.org:3478,%5B2001:db8::53%5D:3478") {
		t.Errorf("enroll output lacks the stun parameter:\n%s", out)
	}

}
