package main

import (
	"strings"
	"testing"
)

// TestSSHProxyDashHost: ssh hands %h over as it is; after the README's
// "--", a host that starts with '-' is refused by name, never taken for an
// option, and nothing is knocked.
func TestSSHProxyDashHost(t *testing.T) {
	e := newEnv(t)
	for _, host := range []string{"-oProxyCommand=touch /tmp/x", "--help", "-"} {
		code, out, errOut := e.run("ssh-proxy", "--", host, "22")
		if code == 0 || out != "" || !strings.Contains(errOut, "starts with '-'") {
			t.Errorf("ssh-proxy -- %q 22: exit %d, stdout %q, stderr %q; want an error that it starts with '-'", host, code, out, errOut)
		}
	}
	for _, args := range [][]string{{"knock", "--", "-x"}, {"knock", "--host=-x", "ssh.example.com"}} {
		code, _, errOut := e.run(args...)
		if code == 0 || !strings.Contains(errOut, "starts with '-'") {
			t.Errorf("%q: exit %d, stderr %q; want an error that it starts with '-'", args, code, errOut)
		}
	}
	if got := e.net.ports(); len(got) != 0 {
		t.Errorf("knocked %v for a host that starts with '-'", got)
	}
}
