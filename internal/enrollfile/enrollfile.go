// Package enrollfile reads and writes enrollment files: one enrollment URI
// (totpseq.ParseURI) per file, mode 0600. Both the client's profiles and the
// daemon's users directory are made of them.
//
// Like ssh with a private key, Read refuses a file that its group or other
// users can read or write, and says how to fix it.
package enrollfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"

	"github.com/tknock/tknock/totpseq"
)

// MaxSize bounds an enrollment file; a real one is a few hundred bytes.
const MaxSize = 64 << 10

// ErrLoosePermissions is wrapped by Read's error for a file that group or
// others may access.
var ErrLoosePermissions = errors.New("permissions are too open")

// Read reads and parses the enrollment file at path. Errors start with the
// path. On Windows, where Unix permission bits mean nothing, the file's
// access control list is checked instead.
func Read(path string) (*totpseq.Enrollment, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err // *PathError names the file
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if err := CheckMode(path, fi); err != nil {
		return nil, err
	}
	return parse(path, f)
}

// CheckMode returns an error when fi is not a regular file, or when its
// group or others have any access: on Windows, when its access control
// list lets anyone but its owner, the system and the administrators read
// it.
func CheckMode(path string, fi fs.FileInfo) error {
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s: not a regular file", path)
	}
	if runtime.GOOS == "windows" {
		return checkACL(path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("%s: %w: mode %04o lets other users read the secret; fix it with: chmod 600 %s",
			path, ErrLoosePermissions, perm, path)
	}
	return nil
}

// Parse parses an enrollment from r (standard input, say); name is used in
// errors.
func Parse(name string, r io.Reader) (*totpseq.Enrollment, error) { return parse(name, r) }

func parse(name string, r io.Reader) (*totpseq.Enrollment, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(b) > MaxSize {
		return nil, fmt.Errorf("%s: larger than %d bytes: not an enrollment file", name, MaxSize)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, fmt.Errorf("%s: empty: want an enrollment URI (otpauth://totp/...)", name)
	}
	e, err := totpseq.ParseURI(string(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return e, nil
}

// Owner is the user and group a written file is given.
type Owner struct{ UID, GID int }

// Write writes e's URI to path with mode 0600, atomically: a temporary
// file in the same directory is written, synced and renamed over path.
// The directory must exist.
func Write(path string, e *totpseq.Enrollment) error {
	s, err := Stage(path, e, nil)
	if err != nil {
		return err
	}
	return s.Commit()
}

// Staged is an enrollment file written and synced under a fresh temporary
// name beside its final path, waiting for Commit or Abort.
type Staged struct {
	tmp, path string
}

// Stage writes e's URI, mode 0600, to a new temporary file (a random name,
// created exclusively) in path's directory, which must exist. When owner
// is not nil, the open file is given to owner (fchown) before it is
// closed: whoever else may write the directory cannot swap in a link that
// would make the caller chown another file. Nothing is at path until
// Commit.
func Stage(path string, e *totpseq.Enrollment, owner *Owner) (*Staged, error) {
	if err := e.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp*")
	if err != nil {
		return nil, err
	}
	s := &Staged{tmp: f.Name(), path: path}
	err = write(f, e, owner)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		s.Abort()
		return nil, err
	}
	return s, nil
}

func write(f *os.File, e *totpseq.Enrollment, owner *Owner) error {
	if runtime.GOOS == "windows" {
		if err := restrict(f.Name()); err != nil {
			return fmt.Errorf("%s: make it private: %w", f.Name(), err)
		}
	} else if err := f.Chmod(0o600); err != nil {
		return err
	}
	if owner != nil {
		if err := f.Chown(owner.UID, owner.GID); err != nil {
			return fmt.Errorf("give %s to uid %d gid %d: %w", f.Name(), owner.UID, owner.GID, err)
		}
	}
	if _, err := io.WriteString(f, e.URI()+"\n"); err != nil {
		return err
	}
	return f.Sync()
}

// Commit renames the staged file to its final path, replacing what is
// there.
func (s *Staged) Commit() error {
	if err := os.Rename(s.tmp, s.path); err != nil {
		s.Abort()
		return err
	}
	s.tmp = ""
	return nil
}

// Abort removes the staged file. It may be called after Commit, and does
// nothing then.
func (s *Staged) Abort() {
	if s.tmp != "" {
		os.Remove(s.tmp)
	}
	s.tmp = ""
}
