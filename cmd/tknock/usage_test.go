package main

import (
	"strings"
	"testing"
)

// TestUsageAlternatives: the usage line shows --uri, --file and --qr as
// alternatives, not as three required flags.
func TestUsageAlternatives(t *testing.T) {
	e := newEnv(t)
	code, out, _ := e.run("enroll", "--help")
	first, _, _ := strings.Cut(out, "\n")
	want := "Usage: tknock enroll (--uri=- | --file=FILE | --qr=IMAGE) [flags]"
	if code != 0 || first != want {
		t.Errorf("enroll --help: exit %d, first line %q, want %q", code, first, want)
	}
}
