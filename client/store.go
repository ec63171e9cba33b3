package client

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/tknock/tknock/internal/enrollfile"
	"github.com/tknock/tknock/totpseq"
)

// profileExt is the file name extension of a profile in the store.
const profileExt = ".uri"

// Store is the profile store: one enrollment file per profile, Dir/NAME.uri,
// mode 0600, in a directory of mode 0700. A Store is a path, so it is safe
// for concurrent use as far as the file system is: Add writes atomically.
type Store struct {
	Dir string
}

// Profile is one stored enrollment.
type Profile struct {
	Name    string    // profile name, the file name without .uri
	Path    string    // the file
	ModTime time.Time // when the file was last written, by the local clock
	*totpseq.Enrollment
}

// UnknownProfileError is returned for a profile name or host that matches
// no profile. Known lists every profile in the store, sorted.
type UnknownProfileError struct {
	Name  string
	Known []string
}

func (e *UnknownProfileError) Error() string {
	what := fmt.Sprintf("unknown profile %q", e.Name)
	if e.Name == "" {
		what = "no profile given"
	}
	if len(e.Known) == 0 {
		return what + ": there are no profiles yet; add one with: tknock enroll --uri URI (or --file FILE, --qr IMAGE)"
	}
	return what + ": known profiles: " + strings.Join(e.Known, ", ")
}

// ErrExists is wrapped by Add's error when the profile exists and replace
// is false.
var ErrExists = errors.New("profile exists")

// DefaultName returns the profile name for an enrollment: its host, with
// the characters a file name cannot hold (an IPv6 address's colons)
// replaced by '-'. It returns "" when the host is empty or no valid name
// comes out of it.
func DefaultName(e *totpseq.Enrollment) string {
	h := normalHost(e.Host)
	h = strings.NewReplacer(":", "-", "%", "-").Replace(h)
	h = strings.Trim(h, "-")
	if !totpseq.ValidName(h) {
		return ""
	}
	return h
}

// normalHost lowercases h and drops IPv6 brackets and a trailing dot, so
// "[2001:DB8::1]" matches "2001:db8::1" and "Example.COM." matches
// "example.com".
func normalHost(h string) string {
	h = strings.ToLower(strings.TrimSpace(h))
	h = strings.TrimPrefix(h, "[")
	h = strings.TrimSuffix(h, "]")
	return strings.TrimSuffix(h, ".")
}

func checkName(name string) error {
	if !totpseq.ValidName(name) {
		return fmt.Errorf("profile name %q: want [A-Za-z0-9][A-Za-z0-9._@-]{0,63}", name)
	}
	return nil
}

func (s *Store) path(name string) string { return filepath.Join(s.Dir, name+profileExt) }

// Add validates e and stores it as profile name. With replace false, an
// existing profile of that name is an error wrapping ErrExists. The store's
// directory is created (mode 0700) when missing.
func (s *Store) Add(name string, e *totpseq.Enrollment, replace bool) (*Profile, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	if err := e.Validate(); err != nil {
		return nil, fmt.Errorf("profile %s: %w", name, err)
	}
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("profile store: %w", err)
	}
	p := s.path(name)
	if !replace {
		if _, err := os.Lstat(p); err == nil {
			return nil, fmt.Errorf("profile %s: %w (%s); replace it with --force, or choose another --name", name, ErrExists, p)
		}
	}
	if err := enrollfile.Write(p, e); err != nil {
		return nil, fmt.Errorf("profile %s: %w", name, err)
	}
	return s.Get(name)
}

// Get reads profile name. A missing profile is an *UnknownProfileError; a
// file that others may read is an error wrapping
// enrollfile.ErrLoosePermissions that says how to fix it.
func (s *Store) Get(name string) (*Profile, error) {
	if err := checkName(name); err != nil {
		return nil, s.unknown(name)
	}
	p := s.path(name)
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, s.unknown(name)
	}
	if err != nil {
		return nil, err
	}
	e, err := enrollfile.Read(p)
	if err != nil {
		return nil, err
	}
	return &Profile{Name: name, Path: p, ModTime: fi.ModTime(), Enrollment: e}, nil
}

func (s *Store) unknown(name string) error {
	names, _ := s.Names()
	return &UnknownProfileError{Name: name, Known: names}
}

// Names returns the names of the profiles in the store, sorted, without
// reading them. A missing store holds no profiles.
func (s *Store) Names() ([]string, error) {
	ents, err := os.ReadDir(s.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("profile store: %w", err)
	}
	var names []string
	for _, ent := range ents {
		name, ok := strings.CutSuffix(ent.Name(), profileExt)
		if ok && ent.Type().IsRegular() && totpseq.ValidName(name) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names, nil
}

// List reads every profile, sorted by name. Profiles that cannot be read
// are left out and their errors joined into the error, so a caller can
// show the good ones and report the rest.
func (s *Store) List() ([]*Profile, error) {
	names, err := s.Names()
	if err != nil {
		return nil, err
	}
	var ps []*Profile
	var errs []error
	for _, name := range names {
		p, err := s.Get(name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		ps = append(ps, p)
	}
	return ps, errors.Join(errs...)
}

// Find returns the profile named arg or, failing that, the one profile
// whose host is arg (compared without case, IPv6 brackets or a trailing
// dot). An empty arg finds the only profile when there is exactly one.
// No match is an *UnknownProfileError.
func (s *Store) Find(arg string) (*Profile, error) {
	if arg == "" {
		names, err := s.Names()
		if err != nil {
			return nil, err
		}
		if len(names) != 1 {
			if len(names) == 0 {
				return nil, &UnknownProfileError{}
			}
			return nil, fmt.Errorf("no profile named and %d profiles exist: name one of %s", len(names), strings.Join(names, ", "))
		}
		return s.Get(names[0])
	}
	if totpseq.ValidName(arg) {
		if _, err := os.Stat(s.path(arg)); err == nil {
			return s.Get(arg)
		}
	}
	ps, _ := s.List() // unreadable profiles cannot match a host; Get reports them by name
	var match []*Profile
	for _, p := range ps {
		if p.Host != "" && normalHost(p.Host) == normalHost(arg) {
			match = append(match, p)
		}
	}
	switch len(match) {
	case 0:
		return nil, s.unknown(arg)
	case 1:
		return match[0], nil
	}
	return nil, fmt.Errorf("host %s is the host of profiles %s: name one of them", arg, profileNames(match))
}

// Remove deletes profile name. A missing profile is an
// *UnknownProfileError.
func (s *Store) Remove(name string) error {
	if err := checkName(name); err != nil {
		return s.unknown(name)
	}
	err := os.Remove(s.path(name))
	if errors.Is(err, fs.ErrNotExist) {
		return s.unknown(name)
	}
	if err != nil {
		return fmt.Errorf("remove profile %s: %w", name, err)
	}
	return nil
}
