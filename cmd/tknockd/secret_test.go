package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tknock/tknock/internal/config/configtest"
	"github.com/tknock/tknock/internal/testkit"
)

// leakSecret is the secret of the bad inputs below: base32, as a URI has it.
const leakSecret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXQ"

// TestSecretNeverShown drives the bad-input paths of the users directory
// and the configuration file with a known secret, and fails if any output
// of check-config, users or enroll shows 8 consecutive characters of it:
// a malformed users file, one that runs the secret into another
// parameter, one of the wrong realm, service, mode or strength, one whose
// name differs, and a configuration file that quotes a URI back.
func TestSecretNeverShown(t *testing.T) {
	base := "otpauth://totp/tknock:alice?secret=" + leakSecret + "&issuer=tknock&tknock=1&realm=gw.example.org&len=5"
	files := map[string]struct {
		text string
		mode os.FileMode
	}{
		"bad escape":       {base + "&x=%zz", 0o600},
		"control char":     {"otpauth://totp/tknock:alice\x01?secret=" + leakSecret + "&tknock=1", 0o600},
		"missing &":        {strings.Replace(base, "&len=5", "&len=5secret="+leakSecret, 1), 0o600},
		"in services":      {base + "&services=ssh," + leakSecret, 0o600},
		"in host":          {base + "&host=" + leakSecret + "%01", 0o600},
		"in exclude":       {base + "&exclude=" + leakSecret, 0o600},
		"in proto":         {base + "&proto=" + leakSecret, 0o600},
		"in the name":      {strings.Replace(base, "tknock:alice", "tknock:"+leakSecret+"/x", 1), 0o600},
		"other realm":      {strings.Replace(base, "realm=gw.example.org", "realm=other", 1), 0o600},
		"unknown service":  {base + "&services=db", 0o600},
		"weak":             {strings.Replace(base, "len=5", "len=2", 1), 0o600},
		"loose mode":       {base, 0o644},
		"not a URI":        {leakSecret + "\n", 0o600},
		"secret twice":     {base + "&secret=" + leakSecret, 0o600},
		"lowercase secret": {strings.ToLower(base) + "&x=%zz", 0o600},
	}
	for name, f := range files {
		c := configtest.New(t, "")
		path := filepath.Join(c.UsersDir, "alice.uri")
		if err := os.WriteFile(path, []byte(f.text), f.mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(path, f.mode)
		for _, args := range [][]string{{"check-config"}, {"users"}, {"enroll", "bob", "--no-qr"}} {
			code, out, errOut := runCLI(t, append(args, "-c", c.Path)...)
			if run := testkit.Leaked(out+errOut, leakSecret); run != "" {
				t.Errorf("%s: tknockd %s (exit %d) shows %q of the secret:\n%s%s", name, args[0], code, run, out, errOut)
			}
		}
	}

	// A configuration file where a URI was pasted (a value, a line, a
	// list); a bare secret in it is not known to be one, and not tried.
	for _, extra := range []string{
		"[enroll]\nhost = \"" + base + "\"",
		"[enroll]\nstun = [\"" + base + "\"]",
		"[enroll]\nhost = \"" + strings.ToLower(base) + "\"",
		"[enroll]\nrange = \"" + base + "\"",
		base,                                     // a URI pasted as a line
		"[enroll]\nhost = " + base,               // unquoted
		"[enroll]\nexclude = [\"" + base + "\"]", // a string where a number goes
		"users_dir = \"" + base + "\x01\"",
	} {
		dir := t.TempDir()
		path := filepath.Join(dir, "tknockd.toml")
		doc := "realm = \"gw.example.org\"\n" + extra + "\n[services]\nssh = [\"tcp/22\"]\n"
		if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		code, out, errOut := runCLI(t, "check-config", "-c", path)
		if code == 0 {
			t.Errorf("check-config of %q: exit 0, want an error", extra)
		}
		if run := testkit.Leaked(out+errOut, leakSecret); run != "" {
			t.Errorf("check-config of %q shows %q of the secret:\n%s%s", extra, run, out, errOut)
		}
	}
}
