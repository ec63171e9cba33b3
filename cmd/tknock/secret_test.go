package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tknock/tknock/internal/testkit"
)

// TestSecretNeverShown drives the client's bad-input paths (an enrollment
// URI pasted on standard input, an enrollment file, a profile) with a
// known secret, and fails if any output shows 8 consecutive characters of
// it.
func TestSecretNeverShown(t *testing.T) {
	const secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXQ"
	base := "otpauth://totp/tknock:alice?secret=" + secret + "&issuer=tknock&tknock=1&host=ssh.example.com"
	bad := []string{
		base + "&x=%zz",
		"otpauth://totp/tknock:alice\x01?secret=" + secret + "&tknock=1",
		strings.Replace(base, "&issuer", "&len=4secret="+secret+"&issuer", 1),
		base + "&services=ssh," + secret,
		base + "&exclude=" + secret,
		base + "&proto=" + secret,
		base + "&check=" + secret,
		base + "&stun=" + secret,
		strings.Replace(base, "host=ssh.example.com", "host="+secret+"%01", 1),
		strings.Replace(base, "tknock:alice", "tknock:"+secret+"/x", 1),
		base + "&secret=" + secret,
		strings.ToLower(base) + "&x=%zz",
		secret,
	}
	e := newEnv(t)
	e.literalURI = true
	dir := t.TempDir()
	for i, uri := range bad {
		path := filepath.Join(dir, "bad.uri")
		if err := os.WriteFile(path, []byte(uri), 0o600); err != nil {
			t.Fatal(err)
		}
		e.stdin = uri
		for _, args := range [][]string{
			{"enroll", "--uri", "-"},
			{"enroll", "--file", path},
			{"knock", "--enrollment", path, "ssh.example.com"},
			{"knock", "--enrollment", "-", "ssh.example.com"},
			{"print", "--enrollment", path, "--service", "ssh", "--source", "192.0.2.1"},
			{"ssh-proxy", "--enrollment", path, "ssh.example.com", "22"},
		} {
			code, out, errOut := e.run(args...)
			if code == 0 {
				t.Errorf("bad URI %d: tknock %s: exit 0, want an error", i, strings.Join(args, " "))
			}
			if run := testkit.Leaked(out+errOut, secret); run != "" {
				t.Errorf("bad URI %d: tknock %s shows %q of the secret:\n%s%s", i, strings.Join(args, " "), run, out, errOut)
			}
		}
	}
}
