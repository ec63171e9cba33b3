package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tknock/tknock/internal/config"
	"github.com/tknock/tknock/internal/config/configtest"
	"github.com/tknock/tknock/internal/enrollfile"
)

func TestLoadUsers(t *testing.T) {
	c := configtest.New(t, "")
	configtest.WriteUser(t, c, configtest.Enrollment(t, c, "bob", "web"))
	configtest.WriteUser(t, c, configtest.Enrollment(t, c, "alice", "ssh", "web"))
	// Ignored: other extensions, hidden files, directories.
	for name, content := range map[string]string{"README": "hello", "alice.uri~": "junk", ".carol.uri.tmp123": "junk", ".dave.uri": "junk"} {
		if err := os.WriteFile(filepath.Join(c.UsersDir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(c.UsersDir, "old.uri"), 0o700); err != nil {
		t.Fatal(err)
	}
	users, err := config.LoadUsers(c)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, u := range users {
		names = append(names, u.Name+":"+strings.Join(u.Services, ","))
	}
	if got, want := strings.Join(names, " "), "alice:ssh,web bob:web"; got != want {
		t.Errorf("users = %s, want %s", got, want)
	}
}

func TestLoadUsersErrors(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, c *config.Config)
		want  []string
	}{
		{"no directory", func(t *testing.T, c *config.Config) { os.Remove(c.UsersDir) },
			[]string{"users directory: ", "no such file", "set users_dir in"}},
		{"loose mode", func(t *testing.T, c *config.Config) {
			configtest.WriteUser(t, c, configtest.Enrollment(t, c, "alice"))
			os.Chmod(config.UserFile(c.UsersDir, "alice"), 0o644)
		}, []string{"alice.uri: permissions are too open", "chmod 600"}},
		{"empty file", func(t *testing.T, c *config.Config) {
			os.WriteFile(config.UserFile(c.UsersDir, "alice"), nil, 0o600)
		}, []string{"alice.uri: empty"}},
		{"not a uri", func(t *testing.T, c *config.Config) {
			os.WriteFile(config.UserFile(c.UsersDir, "alice"), []byte("hello\n"), 0o600)
		}, []string{"alice.uri: enrollment URI"}},
		{"bad parameter", func(t *testing.T, c *config.Config) {
			uri := strings.Replace(configtest.Enrollment(t, c, "alice").URI(), "len=5", "len=99", 1)
			os.WriteFile(config.UserFile(c.UsersDir, "alice"), []byte(uri), 0o600)
		}, []string{"alice.uri: parameter len: 99"}},
		{"weak parameters", func(t *testing.T, c *config.Config) {
			uri := strings.Replace(configtest.Enrollment(t, c, "alice").URI(), "len=5", "len=3", 1)
			os.WriteFile(config.UserFile(c.UsersDir, "alice"), []byte(uri), 0o600)
		}, []string{"alice.uri: parameter len: 3: with range 10000-32767 (22768 usable ports) a sequence has 27.9 bits: want at least 48", "tknockd enroll --force alice"}},
		{"plain otp key", func(t *testing.T, c *config.Config) {
			os.WriteFile(config.UserFile(c.UsersDir, "alice"), []byte("otpauth://totp/x:alice?secret=JBSWY3DPEHPK3PXP&issuer=x"), 0o600)
		}, []string{"alice.uri: parameter tknock: missing"}},
		{"name differs", func(t *testing.T, c *config.Config) {
			e := configtest.Enrollment(t, c, "alice")
			enrollfile.Write(config.UserFile(c.UsersDir, "bob"), e)
		}, []string{"bob.uri: account name \"alice\" differs from the file name"}},
		{"realm differs", func(t *testing.T, c *config.Config) {
			e := configtest.Enrollment(t, c, "alice")
			e.Realm = "other.example.org"
			configtest.WriteUser(t, c, e)
		}, []string{"alice.uri: parameter realm: \"other.example.org\" differs from the configured realm \"gw.example.org\""}},
		{"unknown service", func(t *testing.T, c *config.Config) {
			configtest.WriteUser(t, c, configtest.Enrollment(t, c, "alice", "ssh", "db"))
		}, []string{"alice.uri: parameter services: \"db\" is not in [services]"}},
		{"two bad files, both named", func(t *testing.T, c *config.Config) {
			configtest.WriteUser(t, c, configtest.Enrollment(t, c, "alice", "db"))
			configtest.WriteUser(t, c, configtest.Enrollment(t, c, "bob"))
			os.WriteFile(config.UserFile(c.UsersDir, "carol"), []byte("x"), 0o600)
		}, []string{"alice.uri: parameter services", "carol.uri: enrollment URI"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := configtest.New(t, "")
			tt.setup(t, c)
			users, err := config.LoadUsers(c)
			if err == nil {
				t.Fatalf("LoadUsers accepted the directory (%d users)", len(users))
			}
			rest := err.Error()
			for _, w := range tt.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("error\n%v\ndoes not contain %q (in order)", err, w)
				}
				rest = rest[i+len(w):]
			}
		})
	}
}

// TestLoadUsersDirError: a users directory that cannot be read is told
// apart (ErrUsersDir: no user is known) from bad files beside good ones
// (the good users come back).
func TestLoadUsersDirError(t *testing.T) {
	c := configtest.New(t, "")
	configtest.WriteUser(t, c, configtest.Enrollment(t, c, "alice", "ssh"))
	if err := os.WriteFile(config.UserFile(c.UsersDir, "mallory"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	users, err := config.LoadUsers(c)
	if err == nil || errors.Is(err, config.ErrUsersDir) || len(users) != 1 || users[0].Name != "alice" {
		t.Errorf("LoadUsers with a bad file: %d users, %v; want alice, and an error that is not ErrUsersDir", len(users), err)
	}
	if err := os.RemoveAll(c.UsersDir); err != nil {
		t.Fatal(err)
	}
	users, err = config.LoadUsers(c)
	if !errors.Is(err, config.ErrUsersDir) || users != nil || !strings.Contains(err.Error(), "users directory: ") {
		t.Errorf("LoadUsers without the directory: %v, %v; want ErrUsersDir", users, err)
	}
}
