//go:build unix

package enrollfile

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestStage: two stagings of one path use two fresh temporary names (no
// fixed name another process could hold or pre-create), nothing is at the
// path before Commit, Abort leaves nothing, and Commit puts the file in
// place.
func TestStage(t *testing.T) {
	e := enrollment(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "alice.uri")
	a, err := Stage(path, e, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Stage(path, e, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a.tmp == b.tmp {
		t.Errorf("two stagings share the temporary name %s", a.tmp)
	}
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Errorf("Lstat(%s) before Commit: %v, want not exist", path, err)
	}
	b.Abort()
	if err := a.Commit(); err != nil {
		t.Fatal(err)
	}
	a.Abort() // after Commit: nothing
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 || ents[0].Name() != "alice.uri" {
		t.Errorf("directory after Commit and Abort: %v, want only alice.uri", ents)
	}
	if _, err := Read(path); err != nil {
		t.Error(err)
	}
}

// TestStageOwner: as root, a staged file is given to its owner through the
// open file, before it has its name.
func TestStageOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("this test needs root (chown); CI=true, so it fails rather than skips")
		}
		t.Skip("skipping: needs root (chown)")
	}
	e := enrollment(t)
	path := filepath.Join(t.TempDir(), "alice.uri")
	s, err := Stage(path, e, &Owner{UID: 65534, GID: 65533})
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(s.tmp)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != 65534 || st.Gid != 65533 {
		t.Errorf("staged file owned by %d:%d, want 65534:65533", st.Uid, st.Gid)
	}
	if err := s.Commit(); err != nil {
		t.Fatal(err)
	}
}
