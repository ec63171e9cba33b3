package client

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/totpseq"
)

func TestMemoryNext(t *testing.T) {
	m := &Memory{Path: filepath.Join(t.TempDir(), "cache", MemoryFile)}
	const period = 30
	t0 := time.Unix(1_800_000_000, 0) // the start of window 60_000_000
	cur := totpseq.Window(t0, period)
	next := func(at time.Time) uint64 {
		t.Helper()
		w, err := m.Next("k", period, at)
		if err != nil {
			t.Fatalf("Next at %v: %v", at.Unix(), err)
		}
		return w
	}
	record := func(w uint64, at time.Time) {
		t.Helper()
		if err := m.Record("k", w, period, at); err != nil {
			t.Fatal(err)
		}
	}

	if w := next(t0); w != cur {
		t.Fatalf("first Next = %d, want the current window %d", w, cur)
	}
	record(cur, t0)
	at := t0.Add(5 * time.Second)
	if w := next(at); w != cur+1 {
		t.Fatalf("Next after using the current window = %d, want %d", w, cur+1)
	}
	record(cur+1, at)
	_, err := m.Next("k", period, at)
	if !errors.Is(err, ErrWindowsUsed) || !strings.Contains(err.Error(), "25s") {
		t.Fatalf("Next after using both windows = %v, want ErrWindowsUsed saying to wait 25s", err)
	}
	// Other services, sources and periods are independent.
	if w, err := m.Next("other", period, at); err != nil || w != cur {
		t.Errorf("Next for another key = %d, %v; want %d", w, err, cur)
	}
	if w, err := m.Next("k", 60, at); err != nil || w != totpseq.Window(at, 60) {
		t.Errorf("Next with another period = %d, %v", w, err)
	}
	// In the next window, cur+1 is the current one and was used.
	at = t0.Add(period * time.Second)
	if w := next(at); w != cur+2 {
		t.Errorf("Next one window later = %d, want %d", w, cur+2)
	}
	// Much later the memory no longer matters.
	if w := next(t0.Add(time.Hour)); w != totpseq.Window(t0.Add(time.Hour), period) {
		t.Errorf("Next an hour later = %d, want the current window", w)
	}
	// A memory written by a clock far ahead does not block a corrected clock.
	record(cur+100, t0)
	if w := next(t0); w != cur {
		t.Errorf("Next with a memory 100 windows ahead = %d, want the current window %d", w, cur)
	}
	if runtime.GOOS != "windows" {
		fi, err := os.Stat(m.Path)
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm != 0o600 {
			t.Errorf("memory file mode %04o, want 0600", perm)
		}
	}
}

func TestMemoryPrunesAndSurvivesCorruption(t *testing.T) {
	m := &Memory{Path: filepath.Join(t.TempDir(), MemoryFile)}
	t0 := time.Unix(1_800_000_000, 0)
	for _, k := range []string{"a", "b", "c"} {
		if err := m.Record(k, totpseq.Window(t0, 30), 30, t0); err != nil {
			t.Fatal(err)
		}
	}
	later := t0.Add(time.Hour)
	if err := m.Record("d", totpseq.Window(later, 30), 30, later); err != nil {
		t.Fatal(err)
	}
	if f := m.read(); len(f.Used) != 1 {
		t.Errorf("after an hour the memory holds %d entries, want 1 (old ones pruned)", len(f.Used))
	}

	if err := os.WriteFile(m.Path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	w, err := m.Next("d", 30, later)
	if err != nil || w != totpseq.Window(later, 30) {
		t.Errorf("Next on a corrupt file = %d, %v; want the current window", w, err)
	}
	if err := m.Record("d", w, 30, later); err != nil {
		t.Fatalf("Record over a corrupt file: %v", err)
	}
	if w, _ := m.Next("d", 30, later); w != totpseq.Window(later, 30)+1 {
		t.Errorf("after Record over a corrupt file Next = %d, want the next window", w)
	}
}

func TestMemoryKey(t *testing.T) {
	e := testEnrollment(t, "alice", "h", inet.TCP)
	e.V6Prefix = 64
	k := func(svc, src string) string {
		t.Helper()
		key, err := MemoryKey(e, svc, netip.MustParseAddr(src))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(key, string(e.Secret)) {
			t.Fatal("the key holds the secret")
		}
		return key
	}
	if k("ssh", "192.0.2.1") != k("ssh", "::ffff:192.0.2.1") {
		t.Error("an IPv4-mapped source has another key than the IPv4 one")
	}
	if k("ssh", "2001:db8::1") != k("ssh", "2001:db8::2") {
		t.Error("two sources in one /64 under v6prefix=64 have different keys")
	}
	if k("ssh", "192.0.2.1") == k("ssh", "192.0.2.2") || k("ssh", "192.0.2.1") == k("web", "192.0.2.1") {
		t.Error("different sources or services share a key")
	}
	if _, err := MemoryKey(e, "ssh", netip.Addr{}); err == nil {
		t.Error("MemoryKey of no address succeeded")
	}
}
