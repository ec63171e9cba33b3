package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/internal/enrollfile"
	"github.com/tknock/tknock/internal/nstest"
	"github.com/tknock/tknock/totpseq"
)

// TestReload sends SIGHUP after breaking the configuration file, then after
// breaking the users directory: the daemon logs the error, keeps running
// on what it had, and knocks keep working. A good reload then adds a user
// enrolled with `tknockd enroll`, who can knock at once.
func TestReload(t *testing.T) {
	forFamilies(t, func(t *testing.T, e *env) {
		e.serve(sshPort)
		users := []*user{
			e.enroll("alice", params{Proto: inet.TCP}),
			e.enroll("bob", params{Proto: inet.UDP}),
		}
		cfg := e.writeConfig(config{DropKnocks: ptr(true), Metrics: true})
		good, err := os.ReadFile(cfg)
		if err != nil {
			t.Fatal(err)
		}
		d := e.startDaemon(cfg)
		usersDir := filepath.Dir(users[0].serverFile)

		for i, tc := range []struct {
			name   string
			break_ func()
			mend   func()
		}{
			{
				name: "config",
				break_: func() {
					e.writeFile("etc/tknockd.toml", strings.Replace(string(good), `open_for = "30s"`, `open_for = "soon"`, 1), 0o600)
				},
				mend: func() { e.writeFile("etc/tknockd.toml", string(good), 0o600) },
			},
			{
				name: "users dir",
				break_: func() {
					e.writeFile("etc/users/mallory.uri", "otpauth://totp/tknock:mallory?secret=NOTBASE32!&tknock=1\n", 0o600)
				},
				mend: func() { os.Remove(filepath.Join(usersDir, "mallory.uri")) },
			},
		} {
			t.Run(tc.name, func(t *testing.T) {
				e := e.in(t)
				tc.break_()
				defer tc.mend()
				m := d.mark()
				d.signal(syscall.SIGHUP)
				l, err := d.waitFrom(m, 5*time.Second, "a reload error", func(l logLine) bool { return l.str("level") == "error" })
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("reload error: %s", l.raw)
				if !d.alive() {
					t.Fatalf("tknockd exited after a broken reload (%v); want it running", d.waitErr)
				}
				u := users[i]
				e.knock(u, "ssh")
				if _, err := d.waitFrom(m, 5*time.Second, "an opening after the broken reload", isOpen(u.enr.Name, "ssh")); err != nil {
					t.Fatal(err)
				}
			})
		}

		t.Run("good", func(t *testing.T) {
			e := e.in(t)
			carol := e.enrollByDaemon(cfg, "carol")
			m := d.mark()
			d.signal(syscall.SIGHUP)
			if _, err := d.waitFrom(m, 5*time.Second, "a reload line", func(l logLine) bool {
				return strings.Contains(l.str("message"), "reload")
			}); err != nil {
				t.Fatal(err)
			}
			if got := d.since(m, func(l logLine) bool { return l.str("level") == "error" }); len(got) != 0 {
				t.Fatalf("good reload logged an error: %s", got[0].raw)
			}
			e.knock(carol, "ssh")
			if _, err := d.waitFrom(m, 5*time.Second, "an opening for carol, added by the reload", isOpen("carol", "ssh")); err != nil {
				t.Fatal(err)
			}
			metrics := d.metrics()
			for name, want := range map[string]float64{
				`tknock_reloads_total{result="ok"}`:    1,
				`tknock_reloads_total{result="error"}`: 2,
				`tknock_users`:                         3,
			} {
				if got := metrics[name]; got != want {
					t.Errorf("%s = %v, want %v", name, got, want)
				}
			}
		})
	})
}

// TestBadConfig starts the daemon (and check-config) with broken
// configurations: each exits non-zero with a message naming the problem,
// and the firewall is exactly as it was, a foreign table included. A bad
// users file is not a broken configuration: check-config names it as a
// warning and passes (the daemon starts without that user: TestBadUsersFile).
func TestBadConfig(t *testing.T) {
	t.Parallel()
	nstest.RequireTool(t, "nft")
	e := newEnv(t, v4)
	e.enroll("alice", params{Proto: inet.TCP})
	good := config{DropKnocks: ptr(true)}.toml(filepath.Join(e.dir, "etc", "users"))

	// Users directories, each with one bad file beside a good user.
	badUsers := func(name string, write func(dir string)) string {
		dir := filepath.Join(e.dir, "bad-users", name)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(filepath.Join(e.dir, "etc", "users", "alice.uri"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "alice.uri"), data, 0o600); err != nil {
			t.Fatal(err)
		}
		write(dir)
		return strings.Replace(good, `users_dir = "`+filepath.Join(e.dir, "etc", "users")+`"`, `users_dir = "`+dir+`"`, 1)
	}
	writeUser := func(dir string, mutate func(*totpseq.Params), mode os.FileMode) {
		p := totpseq.Defaults()
		p.Realm = realm
		p.Length = 5 // over the default range: 53.3 bits, above totpseq.MinBits
		mutate(&p)
		enr, err := totpseq.NewEnrollment("mallory", "", p, nil)
		if err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(dir, "mallory.uri")
		if err := enrollfile.Write(f, enr); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(f, mode); err != nil {
			t.Fatal(err)
		}
	}

	replace := func(old, new string) string {
		if !strings.Contains(good, old) {
			t.Fatalf("configuration has no %q to replace", old)
		}
		return strings.Replace(good, old, new, 1)
	}
	cases := []struct {
		name     string
		config   string // the file's content; "" for a missing file
		want     []string
		userFile bool // a bad users file: a warning, the rest is used
	}{
		{"missing file", "", []string{"no-such-config.toml"}, false},
		{"syntax", replace("skew = 1", "skew = "), []string{"tknockd.toml", "line"}, false},
		{"unknown key", replace("skew = 1", "skew = 1\nopen_fro = \"30s\""), []string{"tknockd.toml", "open_fro"}, false},
		{"bad duration", replace(`open_for = "30s"`, `open_for = "soon"`), []string{"tknockd.toml", "open_for"}, false},
		{"skew out of range", replace("skew = 1", "skew = 9"), []string{"tknockd.toml", "skew"}, false},
		{"bad endpoint", replace(`"tcp/2222"`, `"tcp/99999"`), []string{"tknockd.toml", "99999"}, false},
		{"missing interface", replace(`interfaces = ["any"]`, `interfaces = ["nosuch0"]`), []string{"nosuch0"}, false},
		{"bad memory_limit", replace("skew = 1", "skew = 1\nmemory_limit = \"64MB\""), []string{"tknockd.toml", "memory_limit", "64MB"}, false},
		{"memory_limit under the estimate", replace("skew = 1", "skew = 1\nmemory_limit = \"16MiB\""),
			[]string{"tknockd.toml", "field memory_limit: 16MiB: the configuration and its 1 users need about"}, false},
		{"bad users file", badUsers("garbage", func(dir string) {
			os.WriteFile(filepath.Join(dir, "mallory.uri"), []byte("this is not an enrollment\n"), 0o600)
		}), []string{"mallory.uri"}, true},
		{"loose permissions", badUsers("loose", func(dir string) {
			writeUser(dir, func(*totpseq.Params) {}, 0o644)
		}), []string{"mallory.uri", "permissions"}, true},
		{"unknown service", badUsers("service", func(dir string) {
			writeUser(dir, func(p *totpseq.Params) { p.Services = []string{"ftp"} }, 0o600)
		}), []string{"mallory.uri", "ftp"}, true},
		{"other realm", badUsers("realm", func(dir string) {
			writeUser(dir, func(p *totpseq.Params) { p.Realm = "elsewhere.test" }, 0o600)
		}), []string{"mallory.uri", "realm"}, true},
	}

	e.server.MustRun(t, "nft", "add", "table", "inet", "foreign")
	e.server.MustRun(t, "nft", "add", "chain", "inet", "foreign", "input", "{ type filter hook input priority 0; policy accept; }")
	before := e.server.MustRun(t, "nft", "list", "ruleset")

	// The unmodified configuration is good: the cases fail for their one
	// change only.
	if _, errOut, code := e.tknockd("check-config", "--config", e.writeFile("etc/tknockd.toml", good, 0o600)); code != 0 {
		t.Fatalf("check-config on the good configuration: exit %d: %s", code, errOut)
	}

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := e.in(t)
			path := filepath.Join(e.dir, "etc", "no-such-config.toml")
			if tc.config != "" {
				path = e.writeFile("etc/tknockd.toml", tc.config, 0o600)
			}
			cmds := []string{"check-config", "run"}
			if tc.userFile {
				cmds = cmds[:1]
			}
			for _, cmd := range cmds {
				_, errOut, code := e.tknockd(cmd, "--config", path)
				t.Logf("tknockd %s: exit %d: %s", cmd, code, strings.TrimSpace(errOut))
				if code == 0 && !tc.userFile {
					t.Errorf("tknockd %s: exit 0; want non-zero", cmd)
				}
				if tc.userFile && (code != 0 || !strings.Contains(errOut, "warning: ")) {
					t.Errorf("tknockd %s with a bad users file: exit %d; want 0 and a warning", cmd, code)
				}
				for _, w := range tc.want {
					if !strings.Contains(errOut, w) {
						t.Errorf("tknockd %s: stderr %q; want it to name %q", cmd, errOut, w)
					}
				}
				if after := e.server.MustRun(t, "nft", "list", "ruleset"); after != before {
					t.Fatalf("tknockd %s with a bad configuration changed the firewall:\nbefore:\n%s\nafter:\n%s", cmd, before, after)
				}
			}
		})
	}
}
