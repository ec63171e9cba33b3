package client

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/internal/enrollfile"
	"github.com/tknock/tknock/totpseq"
)

func newStore(t *testing.T) *Store {
	return &Store{Dir: filepath.Join(t.TempDir(), "profiles")}
}

func TestStoreRoundTrip(t *testing.T) {
	s := newStore(t)
	e := testEnrollment(t, "alice", "ssh.example.com", inet.UDP, "ssh", "web")
	e.Exclude = []uint16{10022, 20000}
	p, err := s.Add("work", e, false)
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "work" || p.Path != filepath.Join(s.Dir, "work.uri") {
		t.Errorf("Add = name %q path %q, want work, %s", p.Name, p.Path, filepath.Join(s.Dir, "work.uri"))
	}
	got, err := s.Get("work")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(e, got.Enrollment); diff != "" {
		t.Errorf("Get after Add differs (-want +got):\n%s", diff)
	}
	if string(got.Secret) != string(e.Secret) {
		t.Error("Get returned another secret")
	}
	if runtime.GOOS != "windows" {
		for path, want := range map[string]os.FileMode{s.Dir: 0o700, p.Path: 0o600} {
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if perm := fi.Mode().Perm(); perm != want {
				t.Errorf("%s has mode %04o, want %04o", path, perm, want)
			}
		}
	}
}

func TestStoreAddExisting(t *testing.T) {
	s := newStore(t)
	e := testEnrollment(t, "alice", "a.example.com", inet.TCP)
	if _, err := s.Add("a", e, false); err != nil {
		t.Fatal(err)
	}
	e2 := testEnrollment(t, "bob", "a.example.com", inet.TCP)
	if _, err := s.Add("a", e2, false); !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), "--force") {
		t.Errorf("Add over an existing profile = %v, want ErrExists mentioning --force", err)
	}
	if p, _ := s.Get("a"); p.Name != "a" || p.Enrollment.Name != "alice" {
		t.Errorf("refused Add changed the profile: user %q", p.Enrollment.Name)
	}
	if _, err := s.Add("a", e2, true); err != nil {
		t.Fatalf("Add with replace: %v", err)
	}
	if p, _ := s.Get("a"); p.Enrollment.Name != "bob" {
		t.Errorf("after replace the user is %q, want bob", p.Enrollment.Name)
	}
}

func TestStoreAddInvalid(t *testing.T) {
	s := newStore(t)
	e := testEnrollment(t, "alice", "a.example.com", inet.TCP)
	for _, name := range []string{"", ".hidden", "a/b", `a\b`, "../x", strings.Repeat("x", 65)} {
		if _, err := s.Add(name, e, false); err == nil || !strings.Contains(err.Error(), "profile name") {
			t.Errorf("Add(%q) = %v, want a profile name error", name, err)
		}
	}
	bad := *e
	bad.Period = 1
	if _, err := s.Add("bad", &bad, false); err == nil || !strings.Contains(err.Error(), "parameter period") {
		t.Errorf("Add of an invalid enrollment = %v, want a period error", err)
	}
	if names, _ := s.Names(); len(names) != 0 {
		t.Errorf("failed Adds left profiles %v", names)
	}
}

func TestStoreUnknown(t *testing.T) {
	s := newStore(t)
	_, err := s.Get("nope")
	var unk *UnknownProfileError
	if !errors.As(err, &unk) || len(unk.Known) != 0 || !strings.Contains(err.Error(), "tknock enroll") {
		t.Errorf("Get in an empty store = %v, want UnknownProfileError telling how to enroll", err)
	}
	for _, n := range []string{"b", "a"} {
		if _, err := s.Add(n, testEnrollment(t, "alice", n+".example.com", inet.TCP), false); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []func() error{
		func() error { _, err := s.Get("nope"); return err },
		func() error { _, err := s.Find("nope"); return err },
		func() error { return s.Remove("nope") },
	} {
		err := f()
		if !errors.As(err, &unk) || !cmp.Equal(unk.Known, []string{"a", "b"}) {
			t.Errorf("err = %v, want UnknownProfileError listing a, b", err)
		}
		if want := `unknown profile "nope": known profiles: a, b`; err.Error() != want {
			t.Errorf("err = %q, want %q", err, want)
		}
	}
}

func TestStoreBadFiles(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("permission bits mean nothing on Windows")
	}
	s := newStore(t)
	good := testEnrollment(t, "alice", "good.example.com", inet.TCP)
	if _, err := s.Add("good", good, false); err != nil {
		t.Fatal(err)
	}
	loose, _ := s.Add("loose", testEnrollment(t, "alice", "loose.example.com", inet.TCP), false)
	if err := os.Chmod(loose.Path, 0o644); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(s.Dir, "garbage.uri")
	if err := os.WriteFile(garbage, []byte("otpauth://totp/x?secret=JBSWY3DPEHPK3PXP\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Files the store does not own are not profiles.
	for _, f := range []string{"notes.txt", ".hidden.uri"} {
		if err := os.WriteFile(filepath.Join(s.Dir, f), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	_, err := s.Get("loose")
	if !errors.Is(err, enrollfile.ErrLoosePermissions) || !strings.Contains(err.Error(), "chmod 600 "+loose.Path) {
		t.Errorf("Get of a 0644 profile = %v, want ErrLoosePermissions with the chmod fix", err)
	}
	_, err = s.Get("garbage")
	if err == nil || !strings.Contains(err.Error(), garbage) || !strings.Contains(err.Error(), "parameter tknock") {
		t.Errorf("Get of a plain OTP key = %v, want an error naming the file and the tknock parameter", err)
	}

	ps, err := s.List()
	if len(ps) != 1 || ps[0].Name != "good" {
		t.Errorf("List returned %d profiles, want only good", len(ps))
	}
	if err == nil || !strings.Contains(err.Error(), "loose.uri") || !strings.Contains(err.Error(), "garbage.uri") {
		t.Errorf("List error = %v, want both bad files named", err)
	}
	if names, _ := s.Names(); !cmp.Equal(names, []string{"garbage", "good", "loose"}) {
		t.Errorf("Names = %v", names)
	}
}

func TestStoreFind(t *testing.T) {
	s := newStore(t)
	if _, err := s.Find(""); err == nil || !strings.Contains(err.Error(), "no profiles yet") {
		t.Errorf("Find(\"\") in an empty store = %v", err)
	}
	add := func(name, host string) {
		t.Helper()
		if _, err := s.Add(name, testEnrollment(t, "alice", host, inet.TCP), false); err != nil {
			t.Fatal(err)
		}
	}
	add("work", "SSH.Example.com")
	if p, err := s.Find(""); err != nil || p.Name != "work" {
		t.Errorf("Find(\"\") with one profile = %v, %v; want work", p, err)
	}
	add("v6", "[2001:db8::1]")
	add("twin1", "twin.example.com")
	add("twin2", "twin.example.com")
	for _, tc := range []struct{ arg, want, err string }{
		{"work", "work", ""},
		{"ssh.example.com", "work", ""},
		{"ssh.example.com.", "work", ""},
		{"2001:db8::1", "v6", ""},
		{"[2001:DB8::1]", "v6", ""},
		{"twin1", "twin1", ""},
		{"twin.example.com", "", "host twin.example.com is the host of profiles twin1, twin2"},
		{"other.example.com", "", `unknown profile "other.example.com": known profiles: twin1, twin2, v6, work`},
		{"", "", "no profile named and 4 profiles exist"},
	} {
		p, err := s.Find(tc.arg)
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Find(%q) = %v, want error %q", tc.arg, err, tc.err)
			}
		case err != nil:
			t.Errorf("Find(%q): %v", tc.arg, err)
		case p.Name != tc.want:
			t.Errorf("Find(%q) = %s, want %s", tc.arg, p.Name, tc.want)
		}
	}
}

func TestStoreRemove(t *testing.T) {
	s := newStore(t)
	if _, err := s.Add("a", testEnrollment(t, "alice", "a.example.com", inet.TCP), false); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove("a"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get("a"); err == nil {
		t.Error("Get after Remove succeeded")
	}
	if err := s.Remove("../a"); err == nil {
		t.Error("Remove(../a) succeeded")
	}
}

func TestDefaultName(t *testing.T) {
	for host, want := range map[string]string{
		"ssh.example.com":  "ssh.example.com",
		"SSH.Example.COM.": "ssh.example.com",
		"192.0.2.1":        "192.0.2.1",
		"[2001:db8::1]":    "2001-db8--1",
		"fe80::1%eth0":     "fe80--1-eth0",
		"":                 "",
		"_bad":             "",
	} {
		e := &totpseq.Enrollment{Host: host}
		if got := DefaultName(e); got != want {
			t.Errorf("DefaultName(host %q) = %q, want %q", host, got, want)
		}
	}
}
