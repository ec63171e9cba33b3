package client

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/tknock/tknock/totpseq"
)

// ErrWindowsUsed is wrapped by Memory.Next's error when the current time
// window and the next one have both been used for a knock already: the
// daemon would take a third knock as a replay.
var ErrWindowsUsed = errors.New("the current and the next time window were both used by earlier knocks")

// Memory remembers, per enrollment, service and source address, the last
// time window a knock used, so that a second knock within one window uses
// the next window (PROTOCOL.md section 3) instead of being refused as a
// replay. It is one small JSON file, mode 0600, rewritten atomically; two
// knocks at the same instant by the same user may still pick the same
// window, which costs one of them a retry.
type Memory struct {
	Path string // the file; its directory is created (0700) on first write
}

// MemoryFile is the name of the memory's file inside the cache directory.
const MemoryFile = "windows.json"

type memFile struct {
	Version int                 `json:"version"`
	Used    map[string]memEntry `json:"used"`
}

type memEntry struct {
	Window uint64 `json:"window"`
	Period int    `json:"period"`
}

// MemoryKey names the (enrollment, service, source) whose windows the
// memory tracks: the daemon's replay record is per user, service, window
// and source address. The key holds no secret.
func MemoryKey(e *totpseq.Enrollment, service string, src netip.Addr) (string, error) {
	ip, err := totpseq.IP16(src, e.V6Prefix)
	if err != nil {
		return "", err
	}
	return strconv.Quote(e.Realm) + " " + strconv.Quote(e.Name) + " " + service + " " + hex.EncodeToString(ip[:]), nil
}

// Next returns the window to knock in at now: the current one, or the next
// one when the current one was used. When both were used it returns an
// error wrapping ErrWindowsUsed that says how long to wait. A memory
// recorded by a clock far ahead of this one is ignored. An unreadable or
// corrupt file counts as empty: it is a cache.
func (m *Memory) Next(key string, period int, now time.Time) (uint64, error) {
	cur := totpseq.Window(now, period)
	f := m.read()
	last, ok := f.Used[key]
	if !ok || last.Period != period || last.Window < cur || last.Window > cur+1 {
		return cur, nil
	}
	if last.Window == cur {
		return cur + 1, nil
	}
	wait := totpseq.WindowStart(cur+1, period).Sub(now).Round(time.Second)
	return 0, fmt.Errorf("%w: the next knock can go in %v (the door opened by the earlier knock may still be open)", ErrWindowsUsed, wait)
}

// Record records that a knock used window. Entries whose windows have
// passed are dropped, so the file stays small.
func (m *Memory) Record(key string, window uint64, period int, now time.Time) error {
	f := m.read()
	for k, e := range f.Used {
		if e.Period <= 0 || e.Window < totpseq.Window(now, e.Period) {
			delete(f.Used, k)
		}
	}
	f.Used[key] = memEntry{Window: window, Period: period}
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(m.Path, append(b, '\n')); err != nil {
		return fmt.Errorf("window memory: %w", err)
	}
	return nil
}

func (m *Memory) read() *memFile {
	f := &memFile{}
	if b, err := os.ReadFile(m.Path); err == nil {
		if json.Unmarshal(b, f) != nil || f.Version != 1 {
			f = &memFile{}
		}
	}
	f.Version = 1
	if f.Used == nil {
		f.Used = map[string]memEntry{}
	}
	return f
}

// writeFileAtomic writes b to path with mode 0600 through a temporary file
// in the same directory and a rename, creating the directory (0700).
func writeFileAtomic(path string, b []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after the rename this fails harmlessly
	if err := f.Chmod(0o600); err != nil && !isWindows {
		f.Close()
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
