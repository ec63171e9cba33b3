package enrollfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/tknock/tknock/internal/testkit"
	"github.com/tknock/tknock/totpseq"
)

func enrollment(t *testing.T) *totpseq.Enrollment {
	t.Helper()
	return testkit.Enrollment(t, "alice", "ssh.example.com", func(p *totpseq.Params) { p.Realm = "ssh.example.com" })
}

func TestWriteRead(t *testing.T) {
	e := enrollment(t)
	path := filepath.Join(t.TempDir(), "alice.uri")
	if err := Write(path, e); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("Write made mode %04o, want 0600", perm)
	}
	got, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(e, got); diff != "" {
		t.Errorf("Read(Write(e)) mismatch (-want +got):\n%s", diff)
	}
	// Write replaces an existing file and leaves no temporary behind.
	if err := Write(path, e); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(filepath.Dir(path)); len(ents) != 1 {
		t.Errorf("directory holds %d entries after two writes, want 1", len(ents))
	}
}

func TestReadLoosePermissions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "alice.uri")
	if err := Write(path, enrollment(t)); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660, 0o602} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		_, err := Read(path)
		if !errors.Is(err, ErrLoosePermissions) || !strings.Contains(err.Error(), "chmod 600 "+path) {
			t.Errorf("mode %04o: Read error = %v, want loose permissions and the chmod fix", mode, err)
		}
	}
	if err := os.Chmod(path, 0o400); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(path); err != nil {
		t.Errorf("mode 0400: %v", err)
	}
}

func TestReadBadFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		path string
		want string
	}{
		{filepath.Join(dir, "missing.uri"), "no such file"},
		{dir, "not a regular file"},
		{write("empty.uri", "\n"), "empty"},
		{write("garbage.uri", "hello"), "scheme"},
		{write("big.uri", strings.Repeat("a", MaxSize+10)), "larger than"},
		{write("badlen.uri", "otpauth://totp/tknock:a?secret=AEBAGBAFAYDQQCIKBMGA2DQPCA&tknock=1&realm=r&len=1"), "parameter len"},
	}
	for _, tt := range tests {
		_, err := Read(tt.path)
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), tt.path) {
			t.Errorf("Read(%s) error = %v, want it to name the file and contain %q", tt.path, err, tt.want)
		}
	}
}

func TestParseReader(t *testing.T) {
	e := enrollment(t)
	got, err := Parse("stdin", strings.NewReader(e.URI()+"\n"))
	if err != nil || got.Name != "alice" {
		t.Errorf("Parse = %v, %v", got, err)
	}
	if _, err := Parse("stdin", strings.NewReader("")); err == nil || !strings.HasPrefix(err.Error(), "stdin: ") {
		t.Errorf("Parse(empty) error = %v", err)
	}
}
