package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/tknock/tknock/internal/enrollfile"
	"github.com/tknock/tknock/totpseq"
)

// userExt is the extension of an enrollment file in the users directory;
// files without it (a README, an editor's backup) are ignored, and so are
// hidden files (enrollfile.Write's temporary files start with a dot).
const userExt = ".uri"

// ErrUsersDir is wrapped by LoadUsers's error when the users directory
// itself cannot be read: no user is known then, unlike a bad file, which
// leaves the others in use.
var ErrUsersDir = errors.New("users directory")

// UserFile is the path of user name's enrollment file in dir.
func UserFile(dir, name string) string { return filepath.Join(dir, name+userExt) }

// LoadUsers reads every enrollment file of c's users directory and checks
// it against c: the file's name is the user's name, the realm is c's, and
// every service is in c's service map. The error lists every bad file,
// each naming it; the users of the good files come back in every case,
// sorted by name. When the directory cannot be read, the error wraps
// ErrUsersDir and no user comes back.
func LoadUsers(c *Config) ([]*totpseq.Enrollment, error) {
	entries, err := os.ReadDir(c.UsersDir)
	if err != nil {
		return nil, fmt.Errorf("%w: %w (set users_dir in %s, or create it)", ErrUsersDir, err, c.Path)
	}
	var users []*totpseq.Enrollment
	var errs []error
	for _, ent := range entries {
		base := ent.Name()
		name, ok := strings.CutSuffix(base, userExt)
		if !ok || strings.HasPrefix(base, ".") || ent.IsDir() {
			continue
		}
		path := filepath.Join(c.UsersDir, base)
		e, err := enrollfile.Read(path)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := checkUser(c, path, name, e); err != nil {
			errs = append(errs, err)
			continue
		}
		users = append(users, e)
	}
	slices.SortFunc(users, func(a, b *totpseq.Enrollment) int { return strings.Compare(a.Name, b.Name) })
	return users, errors.Join(errs...)
}

// checkUser checks one parsed enrollment file against the configuration.
func checkUser(c *Config, path, name string, e *totpseq.Enrollment) error {
	if e.Name != name {
		return fmt.Errorf("%s: account name %q differs from the file name: the file of user %q must be %s%s",
			path, e.Name, e.Name, e.Name, userExt)
	}
	if err := e.Validate(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := e.CheckStrength(); err != nil {
		return fmt.Errorf("%s: %w (enroll the user again: tknockd enroll --force %s)", path, err, e.Name)
	}
	if e.Realm != c.Realm {
		return fmt.Errorf("%s: parameter realm: %q differs from the configured realm %q", path, e.Realm, c.Realm)
	}
	for _, s := range e.Services {
		if _, ok := c.Services[s]; !ok {
			return fmt.Errorf("%s: parameter services: %q is not in [services] of %s", path, s, c.Path)
		}
	}
	return nil
}
