package main

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/tknock/tknock/internal/nstest"
)

// zbarimgCheck decodes the PNG at path with Debian's zbarimg and compares
// the text with uri.
func zbarimgCheck(t *testing.T, path, uri string) {
	t.Run("zbarimg", func(t *testing.T) {
		nstest.RequireTool(t, "zbarimg")
		zout, err := exec.Command("zbarimg", "--quiet", "--raw", path).Output()
		if err != nil {
			t.Fatalf("zbarimg: %v", err)
		}
		if got := strings.TrimRight(string(zout), "\n"); got != uri {
			t.Errorf("zbarimg reads\n%q\nwant\n%q", got, uri)
		}
	})
}
