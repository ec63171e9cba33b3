// Package testkit holds the helpers that tests of several packages share,
// so each exists once. It is imported by tests only, never by a binary.
package testkit

import (
	"bytes"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tknock/tknock/totpseq"
)

// SyncBuffer is a bytes.Buffer safe for concurrent use: a logger's
// destination that a test reads while the code under test writes. The
// zero value is an empty buffer.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns what was written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// AwayFromBoundary waits, when needed, so that the current window of the
// given period (seconds) has at least room left and began at least settle
// ago: steps of a test that must happen inside one window then do. It
// returns the time it waited until. It reads the real clock: for tests
// that run real daemons; code under testing/synctest does not need it.
func AwayFromBoundary(period int, room, settle time.Duration) time.Time {
	p := time.Duration(period) * time.Second
	into := time.Duration(time.Now().UnixNano() % int64(p))
	switch {
	case into < settle:
		time.Sleep(settle - into)
	case p-into < room:
		time.Sleep(p - into + settle)
	}
	return time.Now()
}

// Secret is the shared secret of the enrollments Enrollment builds.
const Secret = "0123456789abcdef0123456789abcdef"

// Enrollment returns a valid enrollment of name at host: totpseq.Defaults
// with Secret and the realm "realm.example.org", then changed by edit (if
// not nil). It fails the test if the result is not valid.
func Enrollment(t testing.TB, name, host string, edit func(*totpseq.Params)) *totpseq.Enrollment {
	t.Helper()
	p := totpseq.Defaults()
	p.Secret = []byte(Secret)
	p.Realm = "realm.example.org"
	if edit != nil {
		edit(&p)
	}
	e := &totpseq.Enrollment{Name: name, Host: host, Params: p}
	if err := e.Validate(); err != nil {
		t.Fatalf("test enrollment %s: %v", name, err)
	}
	return e
}

// LeakRun is the shortest run of a secret's characters that Leaked takes
// for the secret showing: 8 base32 characters are 40 bits of it.
const LeakRun = 8

// Leaked returns the first LeakRun consecutive characters of secret (its
// base32 text, compared without case) that s contains, or "".
func Leaked(s, secret string) string {
	s, secret = strings.ToLower(s), strings.ToLower(secret)
	for i := 0; i+LeakRun <= len(secret); i++ {
		if strings.Contains(s, secret[i:i+LeakRun]) {
			return secret[i : i+LeakRun]
		}
	}
	return ""
}

// HeapAlloc returns the live heap after two full collections (the second
// frees what the first's finalizers left), for tests that compare a memory
// estimate with what a structure takes.
func HeapAlloc() int {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int(ms.HeapAlloc)
}

// HeapNoise is what the heap may grow by between two HeapAlloc calls
// without the test's doing (the runtime's and the testing package's own
// allocations).
const HeapNoise = 64 << 10

// CheckEstimate fails t unless est, an estimate of part's memory, is an
// upper bound of got, the heap growth measured (give or take HeapNoise),
// and, when tight, at most twice it. It logs both either way.
func CheckEstimate(t testing.TB, part string, got, est int, tight bool) {
	t.Helper()
	t.Logf("%-46s measured %9d bytes, estimated %9d (%.2fx)", part, got, est, float64(est)/float64(max(got, 1)))
	if got > est+HeapNoise || tight && est > 2*got {
		t.Errorf("%s: the heap grew by %d bytes; the estimate, %d, must be at least that (and at most twice it: %v)", part, got, est, tight)
	}
}
