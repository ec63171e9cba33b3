package main

import (
	"strings"
	"testing"

	"github.com/tknock/tknock/internal/config/configtest"
)

// TestCheckConfigMemory: check-config prints the memory estimate, its
// parts and the limit in force, and fails, naming memory_limit, when the
// estimate exceeds it (the daemon would refuse to start).
func TestCheckConfigMemory(t *testing.T) {
	t.Setenv("RUNTIME_DIRECTORY", t.TempDir())
	for _, tt := range []struct {
		name, limit string
		code        int
		want        []string
	}{
		{"not set", "", 0, []string{"\nmemory: about ", "MiB at most (source state 30MiB for state_capacity 2097152, ",
			"capture rings 2MiB for 1 interface", "); memory_limit not set: the daemon limits itself to ", "MiB (the estimate plus a quarter)\n"}},
		{"set", "memory_limit = \"1GiB\"", 0, []string{"\nmemory: about ", "MiB at most (", "); memory_limit 1GiB\n"}},
		{"too small", "memory_limit = \"16MiB\"", 1, []string{"tknockd.toml: field memory_limit: 16MiB: the configuration and its 1 users need about ",
			"MiB (source state 30MiB for state_capacity 2097152, ", "raise memory_limit, or leave it out"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := configtest.New(t, tt.limit)
			configtest.WriteUser(t, c, configtest.Enrollment(t, c, "alice"))
			code, out, errOut := runCLI(t, "check-config", "--config", c.Path)
			rest := out + errOut
			for _, w := range tt.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("check-config: exit %d, output\n%s%s\ndoes not contain %q (in order)", code, out, errOut, w)
				}
				rest = rest[i+len(w):]
			}
			if code != tt.code {
				t.Errorf("check-config: exit %d, want %d\n%s%s", code, tt.code, out, errOut)
			}
		})
	}
}
