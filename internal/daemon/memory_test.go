package daemon

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rs/zerolog"

	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/internal/config"
	"github.com/tknock/tknock/internal/config/configtest"
	"github.com/tknock/tknock/internal/testkit"
	"github.com/tknock/tknock/listener"
	"github.com/tknock/tknock/listener/capture/capturetest"
	"github.com/tknock/tknock/totpseq"
)

// TestEstimateMemoryParts fills the daemon's own parts of the estimate
// (the tracker's are TestEstimateMemory's, in listener) and compares the
// heap's growth with them: the users loaded from their files, the failed
// attempts of 65 536 sources, a sampler per user, and the replay record's
// lines for state_dir.
func TestEstimateMemoryParts(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 1000 users files")
	}
	c := configtest.New(t, fmt.Sprintf("state_dir = %q\nreplay_capacity = 512", t.TempDir()))
	const n = 1000
	for i := range n {
		e := configtest.Enrollment(t, c, fmt.Sprintf("user%04d", i))
		switch i % 4 {
		case 1:
			e.STUN = []string{"stun.example.net:3478", "[2001:db8::3]:3478"}
		case 2:
			e.Services = []string{"ssh", "web"}
			e.Exclude = []uint16{20022, 20080}
		case 3:
			e.Name = fmt.Sprintf("user%04d@example.org", i)
			if err := e.SetCheck(totpseq.CheckPort{Service: "ssh", Proto: inet.TCP, Port: 22}); err != nil {
				t.Fatal(err)
			}
		}
		configtest.WriteUser(t, c, e)
	}
	base := testkit.HeapAlloc()
	users, err := config.LoadUsers(c)
	if err != nil {
		t.Fatal(err)
	}
	got := testkit.HeapAlloc() - base
	m := EstimateMemory(c, users)
	testkit.CheckEstimate(t, "users loaded", got, m.Users, true)

	mark := testkit.HeapAlloc()
	fw := newFailWatch(zerolog.Nop())
	at := time.Now()
	for i := range maxFailSources {
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], 0x0a000000+uint32(i))
		fw.failed(netip.AddrFrom4(a), at)
	}
	testkit.CheckEstimate(t, "failed attempts of 65536 sources", testkit.HeapAlloc()-mark, m.Failures, true)

	mark = testkit.HeapAlloc()
	var s openSampler
	for _, u := range users {
		s.user(zerolog.Nop(), u.Name)
	}
	testkit.CheckEstimate(t, "a sampler per user", testkit.HeapAlloc()-mark, m.Openings, true)

	// The replay file's lines: the most a rewrite leaves (twice the live
	// records, 512), each with its source's text. The estimate also counts
	// the file's text, which only a rewrite or the start holds: an upper
	// bound, not tight.
	tr, err := listener.NewTracker(c.Tracker(), trackerUsers(users), at, func(listener.Event) {})
	if err != nil {
		t.Fatal(err)
	}
	periods := func() map[string]int64 { return map[string]int64{} }
	st := openReplayState(c.StateDir, tr, periods, at, zerolog.Nop())
	defer st.close()
	mark = testkit.HeapAlloc()
	for i := range minCompact - 1 {
		src := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(i), 14: byte(i >> 8)})
		ev := listener.Event{Kind: listener.Opened, User: users[i%n].Name, Service: "ssh", Src: src, Window: 1, Time: at}
		if err := st.add(&ev); err != nil {
			t.Fatal(err)
		}
	}
	testkit.CheckEstimate(t, "the replay file's lines", testkit.HeapAlloc()-mark, m.ReplayFile, false)
	runtime.KeepAlive(users)
	runtime.KeepAlive(fw)
	runtime.KeepAlive(&s)
}

// TestMemoryLimitStart: a daemon whose estimate exceeds memory_limit does
// not start, and says why: the limit, the estimate and its largest parts.
// Nothing is opened: the check comes before the interfaces, the capture
// and the firewall.
func TestMemoryLimitStart(t *testing.T) {
	c := configtest.New(t, "memory_limit = \"16MiB\"")
	configtest.WriteUser(t, c, configtest.Enrollment(t, c, "alice"))
	users, err := config.LoadUsers(c)
	if err != nil {
		t.Fatal(err)
	}
	n, fw := capturetest.NewNet(), newFakeFirewall()
	var limits []int64
	d := deps{openCapture: n.OpenWith, openFirewall: fw.open, checkInterfaces: func(*config.Config) error { return nil },
		listen: net.Listen, now: time.Now, hup: make(chan os.Signal), setMemoryLimit: func(l int64) { limits = append(limits, l) }}
	// A daemon that started would run until the context ends.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = runDaemon(ctx, c, users, nil, d, zerolog.Nop())
	want := c.Path + ": field memory_limit: 16MiB: the configuration and its 1 users need about "
	if err == nil || !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), "(source state 30MiB for state_capacity 2097152, ") {
		t.Fatalf("runDaemon with memory_limit 16MiB: %v, want an error starting %q and naming the largest part", err, want)
	}
	if len(fw.all()) > 0 || len(n.Opened) > 0 || len(limits) > 0 {
		t.Errorf("a refused start used the firewall (%q), the capture (%d) or set a memory limit (%v)", fw.all(), len(n.Opened), limits)
	}
}

// TestMemoryLimitReload: the daemon gives the Go runtime its limit at
// start, less the code and the capture ring; a reload whose estimate
// exceeds memory_limit is refused as a whole (the users in force stay,
// revocations apply all the same), and a good one sets the new limit,
// derived from the estimate when memory_limit is left out.
func TestMemoryLimitReload(t *testing.T) { synctest.Test(t, testMemoryLimitReload) }

func testMemoryLimitReload(t *testing.T) {
	c0 := configtest.New(t, "")
	alice := configtest.Enrollment(t, c0, "alice", "ssh")
	bob := configtest.Enrollment(t, c0, "bob", "web")
	carol := configtest.Enrollment(t, c0, "carol", "ssh")
	awayFromBoundary(alice.Period, 8*time.Second)
	var (
		mu     sync.Mutex
		limits []int64
	)
	last := func() int64 {
		mu.Lock()
		defer mu.Unlock()
		if len(limits) == 0 {
			return 0
		}
		return limits[len(limits)-1]
	}
	h := startHarnessDeps(t, "memory_limit = \"256MiB\"", func(dp *deps) {
		dp.setMemoryLimit = func(l int64) {
			mu.Lock()
			limits = append(limits, l)
			mu.Unlock()
		}
	}, alice, bob)
	ring := int64(2 << 20) // one capture, on every interface
	if got, want := last(), int64(256<<20)-ring-codeBytes; got != want {
		t.Errorf("Go memory limit at start: %d, want 256MiB less the ring and the code, %d", got, want)
	}
	if l := h.waitLog("the ready line", event("ready")); l["memory_limit"] != "256MiB" || !strings.HasSuffix(fmt.Sprint(l["memory_estimate"]), "MiB") {
		t.Errorf("ready line: %v, want memory_limit 256MiB and the estimate", l)
	}

	// memory_limit lowered under the estimate, carol added, bob removed:
	// refused, except bob's revocation.
	good, err := os.ReadFile(h.cfg.Path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(h.cfg.Path, []byte(strings.Replace(string(good), "256MiB", "32MiB", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	configtest.WriteUser(t, h.cfg, carol)
	os.Remove(config.UserFile(h.cfg.UsersDir, "bob"))
	m := h.mark()
	h.hup <- os.Interrupt
	l := h.waitLogFrom(m, "a reload error", event("reload_failed"))
	if e := fmt.Sprint(l["error"]); !strings.Contains(e, "field memory_limit: 32MiB: the configuration and its 2 users need about ") ||
		l["applied"] != "only the revocations (1 users removed; nothing else changed)" {
		t.Errorf("reload over memory_limit: %v, want the memory_limit error and only the revocation applied", l)
	}
	if got, want := last(), int64(256<<20)-ring-codeBytes; got != want {
		t.Errorf("Go memory limit after a refused reload: %d, want the one in force, %d", got, want)
	}
	m = h.mark()
	h.knock(bob, "web", 0, other)
	h.knock(carol, "ssh", 0, client6)
	synctest.Wait() // the daemon has handled the knocks
	if got := h.linesFrom(m, event("open")); len(got) != 0 {
		t.Errorf("after a refused reload, revoked bob or refused carol opened: %v", got)
	}
	h.knock(alice, "ssh", 0, client)
	h.waitAllow(1)

	// memory_limit left out: the limit is the estimate plus a quarter.
	if err := os.WriteFile(h.cfg.Path, []byte(strings.Replace(string(good), "memory_limit = \"256MiB\"", "", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	m = h.mark()
	h.hup <- os.Interrupt
	l = h.waitLogFrom(m, "a reload line", event("reload"))
	c, err := config.Load(h.cfg.Path)
	if err != nil {
		t.Fatal(err)
	}
	users, err := config.LoadUsers(c)
	if err != nil {
		t.Fatal(err)
	}
	mem := EstimateMemory(c, users)
	limit := mem.Limit(c)
	if limit < mem.Total()*5/4 || limit > mem.Total()*5/4+1<<20 || limit%(1<<20) != 0 {
		t.Errorf("derived limit %d for an estimate of %d: want the estimate plus a quarter, rounded up to a MiB", limit, mem.Total())
	}
	if got, want := last(), limit-ring-codeBytes; got != want {
		t.Errorf("Go memory limit after a reload without memory_limit: %d, want %d", got, want)
	}
	if l["memory_limit"] != config.FormatSize(limit) || l["users"] != 2.0 {
		t.Errorf("reload line: %v, want memory_limit %s and 2 users", l, config.FormatSize(limit))
	}
	h.knock(carol, "ssh", 0, client6)
	h.waitAllow(2)
}
