package packaging

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tknock/tknock/internal/nstest"
)

const pkg = "tknock"

// The files the package installs (besides the documentation), as
// dpkg-deb -c and rpm -qlp list them.
var installed = []string{
	"/usr/sbin/tknockd",
	"/usr/bin/tknock",
	"/usr/lib/systemd/system/tknockd.service",
	"/etc/tknock/tknockd.toml",
	"/usr/lib/sysusers.d/tknock.conf",
	"/usr/lib/tmpfiles.d/tknock.conf",
	"/usr/share/man/man1/tknock.1.gz",
	"/usr/share/man/man8/tknockd.8.gz",
	"/usr/share/bash-completion/completions/tknock",
	"/usr/share/bash-completion/completions/tknockd",
	"/usr/share/zsh/vendor-completions/_tknock",
	"/usr/share/zsh/vendor-completions/_tknockd",
	"/usr/share/fish/vendor_completions.d/tknock.fish",
	"/usr/share/fish/vendor_completions.d/tknockd.fish",
	"/usr/share/doc/tknock/copyright",
	"/etc/fail2ban/filter.d/tknockd.conf",
	"/usr/share/doc/tknock/examples/fail2ban-jail.conf",
}

// wantConffiles are the package's configuration files, kept on upgrade
// when edited, as dpkg-deb and rpm list them.
const wantConffiles = "/etc/fail2ban/filter.d/tknockd.conf\n/etc/tknock/tknockd.toml"

// Made at install time (sysusers.d, tmpfiles.d), removed by a purge.
var runtimeDirs = []string{"/etc/tknock/users", "/var/lib/tknock", "/etc/tknock"}

// TestPackage builds the packages with `make package`, checks the .deb
// with lintian, installs it with dpkg, checks what it installed (files,
// modes, the user, tknockd check-config against the installed example,
// systemd-analyze verify of the installed unit, --version), purges it and
// checks that nothing is left but the system user. The .rpm's file list is
// checked with rpm -qlp.
//
// It installs a package on this machine: it refuses to run when tknock is
// installed already, or /etc/tknock exists, and it purges the package when
// it ends, also on failure. Two runs at once (two checkouts) wait for each
// other on a lock file; dpkg's own lock, held by another apt-get or dpkg,
// is waited for too.
func TestPackage(t *testing.T) {
	nstest.RequireRoot(t)
	for _, tool := range []string{"make", "git", "dpkg", "dpkg-deb", "lintian", "systemd-analyze", "setpriv", "man"} {
		nstest.RequireTool(t, tool)
	}
	lock(t, "/run/lock/tknock-package-test.lock")
	if st := status(t); st != "" && st != "not-installed" {
		t.Fatalf("package %s is on this machine already (status %s): this test would replace and purge it; dpkg --purge %s first", pkg, st, pkg)
	}
	if _, err := os.Lstat("/etc/tknock"); err == nil {
		t.Fatalf("/etc/tknock exists (a manual install?): this test would purge it; move it away first")
	}

	dist := t.TempDir()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	run(t, "make", "-C", root, "--no-print-directory", "package", "DIST="+dist)
	deb, rpm := only(t, dist, "*.deb"), only(t, dist, "*.rpm")

	t.Run("lintian", func(t *testing.T) {
		// --fail-on warning: every warning is fixed or overridden in
		// packaging/lintian-overrides, with the reason.
		out, err := exec.Command("lintian", "--no-cfg", "--fail-on", "error,warning", "--display-info", deb).CombinedOutput()
		if err != nil {
			t.Errorf("lintian %s: %v\n%s", filepath.Base(deb), err, out)
		}
	})
	t.Run("deb contents", func(t *testing.T) {
		files := list(t, "dpkg-deb", "-c", deb)
		for _, f := range append(slices.Clone(installed), "/usr/share/doc/tknock/changelog.Debian.gz") {
			if !slices.Contains(files, f) {
				t.Errorf("the .deb lacks %s", f)
			}
		}
		conffiles := run(t, "dpkg-deb", "-I", deb, "conffiles")
		if strings.TrimSpace(conffiles) != wantConffiles {
			t.Errorf("conffiles = %q, want %q", conffiles, wantConffiles)
		}
	})
	t.Run("rpm", func(t *testing.T) {
		nstest.RequireTool(t, "rpm")
		files := list(t, "rpm", "-qlp", rpm)
		for _, f := range installed {
			if !slices.Contains(files, f) {
				t.Errorf("the .rpm lacks %s (rpm -qlp lists %q)", f, files)
			}
		}
		if cfg := run(t, "rpm", "-qcp", rpm); strings.TrimSpace(cfg) != wantConffiles {
			t.Errorf("rpm config files = %q, want %q", cfg, wantConffiles)
		}
		if s := run(t, "rpm", "-qp", "--scripts", rpm); !strings.Contains(s, "systemd-sysusers tknock.conf") {
			t.Errorf("the .rpm's scripts do not create the user:\n%s", s)
		}
	})

	// What exists before the install stays after the purge; what the
	// package brought goes.
	before := map[string]bool{}
	for _, f := range append(list(t, "dpkg-deb", "-c", deb), runtimeDirs...) {
		before[f] = exists(f)
	}
	t.Cleanup(func() {
		if out, err := dpkg("--purge", pkg); err != nil {
			t.Errorf("cleanup: dpkg --purge %s: %v\n%s", pkg, err, out)
		}
	})
	if out, err := dpkg("-i", deb); err != nil {
		t.Fatalf("dpkg -i %s: %v\n%s", filepath.Base(deb), err, out)
	}

	t.Run("installed", func(t *testing.T) {
		u, err := user.Lookup("tknock")
		if err != nil {
			t.Fatalf("the system user: %v", err)
		}
		g, err := user.LookupGroup("tknock")
		if err != nil {
			t.Fatalf("the group: %v", err)
		}
		for _, c := range []struct {
			path     string
			mode     fs.FileMode
			uid, gid string
		}{
			{"/etc/tknock", fs.ModeDir | 0o750, "0", g.Gid},
			{"/etc/tknock/tknockd.toml", 0o640, "0", g.Gid},
			{"/etc/tknock/users", fs.ModeDir | 0o700, u.Uid, g.Gid},
			{"/var/lib/tknock", fs.ModeDir | 0o750, u.Uid, g.Gid},
			{"/usr/sbin/tknockd", 0o755, "0", "0"},
			{"/usr/bin/tknock", 0o755, "0", "0"},
		} {
			fi, err := os.Stat(c.path)
			if err != nil {
				t.Error(err)
				continue
			}
			st := fi.Sys().(*syscall.Stat_t)
			if fi.Mode() != c.mode || fmt.Sprint(st.Uid) != c.uid || fmt.Sprint(st.Gid) != c.gid {
				t.Errorf("%s: %v %d:%d, want %v %s:%s", c.path, fi.Mode(), st.Uid, st.Gid, c.mode, c.uid, c.gid)
			}
		}
		// Neither enabled nor started by the package.
		if m, _ := filepath.Glob("/etc/systemd/system/*/tknockd.service"); len(m) > 0 {
			t.Errorf("the package enabled the daemon: %v", m)
		}
	})
	t.Run("check-config", func(t *testing.T) {
		run(t, "/usr/sbin/tknockd", "check-config", "--config", "/etc/tknock/tknockd.toml")
		// As the unit's ExecStartPre runs it: as the user tknock,
		// which must read the configuration and the users directory.
		run(t, "setpriv", "--reuid=tknock", "--regid=tknock", "--init-groups", "--",
			"/usr/sbin/tknockd", "check-config", "--config", "/etc/tknock/tknockd.toml")
	})
	t.Run("systemd-analyze verify", func(t *testing.T) {
		// It also checks that ExecStart's binary exists: the unit
		// points at the packaged /usr/sbin/tknockd.
		run(t, "systemd-analyze", "verify", "/usr/lib/systemd/system/tknockd.service")
	})
	t.Run("version", func(t *testing.T) {
		rev := strings.TrimSpace(run(t, "git", "-C", root, "rev-parse", "HEAD"))
		for _, bin := range []string{"/usr/sbin/tknockd", "/usr/bin/tknock"} {
			if out := run(t, bin, "--version"); !strings.Contains(out, "revision "+rev) {
				t.Errorf("%s --version = %q, want revision %s", bin, out, rev)
			}
		}
	})
	t.Run("man", func(t *testing.T) {
		for _, page := range []string{"tknock", "tknockd"} {
			path := strings.TrimSpace(run(t, "man", "-w", page))
			if !strings.HasPrefix(path, "/usr/share/man/") {
				t.Errorf("man -w %s = %q", page, path)
			}
			cmd := exec.Command("man", "--warnings", "-l", path)
			cmd.Env = append(os.Environ(), "MANPAGER=cat", "MANWIDTH=100")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if out, err := cmd.Output(); err != nil || stderr.Len() > 0 || !bytes.Contains(out, []byte("--version")) {
				t.Errorf("man %s: %v, warnings %q, %d bytes", page, err, stderr.String(), len(out))
			}
		}
	})
	// An enrollment, which the purge must remove with the rest (it holds
	// a secret).
	run(t, "/usr/sbin/tknockd", "enroll", "alice", "--no-qr", "--config", "/etc/tknock/tknockd.toml")

	if out, err := dpkg("--purge", pkg); err != nil {
		t.Fatalf("dpkg --purge: %v\n%s", err, out)
	}
	if st := status(t); st != "" && st != "not-installed" {
		t.Errorf("after the purge, dpkg reports %s as %s", pkg, st)
	}
	for f, was := range before {
		if !was && exists(f) {
			t.Errorf("%s is left after the purge", f)
		}
	}
	// Debian's practice for system users: a purge leaves the user (files
	// it owns may survive elsewhere; its id must not go to another user).
	if _, err := user.Lookup("tknock"); err != nil {
		t.Errorf("the purge removed the system user tknock: %v", err)
	}
}

// lock takes an exclusive lock on path until t ends, waiting for another
// holder.
func lock(t *testing.T, path string) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatalf("lock %s: %v", path, err)
	}
	t.Cleanup(func() { f.Close() }) // closing releases the lock
}

// dpkg runs dpkg with args, waiting up to two minutes while another dpkg
// or apt-get holds the dpkg lock.
func dpkg(args ...string) ([]byte, error) {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		cmd := exec.Command("dpkg", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		out, err := cmd.CombinedOutput()
		if err == nil || !bytes.Contains(out, []byte("lock")) || time.Now().After(deadline) {
			return out, err
		}
		time.Sleep(2 * time.Second)
	}
}

// status is the package's dpkg status ("installed", "config-files", ...)
// or "" when dpkg does not know it.
func status(t *testing.T) string {
	out, err := exec.Command("dpkg-query", "-W", "-f=${db:Status-Status}", pkg).Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ""
	}
	if err != nil {
		t.Fatalf("dpkg-query: %v", err)
	}
	return strings.TrimSpace(string(out))
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

func only(t *testing.T, dir, pattern string) string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, pattern))
	if len(m) != 1 {
		t.Fatalf("make package made %d files %s in %s, want 1", len(m), pattern, dir)
	}
	return m[0]
}

// list returns the absolute paths a package listing names: dpkg-deb -c
// prints tar lines ending in ./PATH, rpm -qlp one path a line.
func list(t *testing.T, name string, args ...string) []string {
	t.Helper()
	var out []string
	for l := range strings.Lines(run(t, name, args...)) {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		p := strings.TrimSuffix(strings.TrimPrefix(f[len(f)-1], "."), "/")
		if strings.HasPrefix(p, "/") && p != "/" {
			out = append(out, p)
		}
	}
	return out
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}
