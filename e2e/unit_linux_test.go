package e2e

import (
	"bufio"
	"fmt"
	"maps"
	"os"
	"os/exec"
	osuser "os/user"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/internal/nstest"
)

// unitPath is the shipped systemd unit, from this package's directory.
const unitPath = "../deploy/tknockd.service"

var buildUnitexec = builder("github.com/tknock/tknock/e2e/unitexec")

// readUnit returns the directives of the [Service] section of the unit
// file at path, each with its assignments in order (an empty assignment
// resets the list, as systemd reads it).
func readUnit(t *testing.T, path string) map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := make(map[string][]string)
	section := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
			continue
		case strings.HasPrefix(line, "["):
			section = strings.Trim(line, "[]")
			continue
		case section != "Service":
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s:%d: %q: want KEY=VALUE", path, n, line)
		}
		if v == "" {
			out[k] = nil
			continue
		}
		out[k] = append(out[k], v)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// sandboxed are the [Service] directives of the unit that the test's
// sandbox carries out (see unitSandbox), and how.
var sandboxed = map[string]string{
	"User":                    "setpriv --reuid/--regid/--clear-groups, to the user nobody (the unit's user is made at install)",
	"Group":                   "with User",
	"ExecStartPre":            "tknockd check-config, run in the sandbox",
	"ExecStart":               "tknockd run, run in the sandbox",
	"ExecReload":              "tknockd reload's SIGHUP to the daemon, then a reload line (the command itself: TestReloadCommand, e2e TestNotify)",
	"KillSignal":              "SIGTERM ends the daemon, with exit status 0 (the e2e's stop)",
	"TimeoutStopSec":          "the e2e's stop waits 5 s for the exit, less than the unit's",
	"AmbientCapabilities":     "setpriv --inh-caps and --ambient-caps; /proc/PID/status checked",
	"CapabilityBoundingSet":   "setpriv --bounding-set; /proc/PID/status checked",
	"NoNewPrivileges":         "setpriv --no-new-privs and unitexec seccomp; /proc/PID/status checked",
	"ProtectSystem":           "unitexec mounts: every mount read-only, /tmp, /var and /etc too",
	"ReadOnlyPaths":           "with ProtectSystem (everything is read-only)",
	"ProtectHome":             "unitexec mounts --protect-home",
	"ProtectKernelTunables":   "with ProtectSystem (/proc/sys and /sys read-only)",
	"ProtectControlGroups":    "with ProtectSystem (/sys/fs/cgroup read-only)",
	"ProtectProc":             "unitexec mounts --proc-subset-pid (hidepid=invisible)",
	"ProcSubset":              "unitexec mounts --proc-subset-pid (subset=pid)",
	"RestrictAddressFamilies": "unitexec seccomp --families: socket(2) of another family fails with EAFNOSUPPORT",
	"RestrictNamespaces":      "unitexec seccomp: unshare, setns and clone with a namespace flag fail",
	"MemoryDenyWriteExecute":  "unitexec seccomp: mmap writable and executable, mprotect executable fail",
	"SystemCallArchitectures": "unitexec seccomp: non-native calls fail",
	"SystemCallFilter":        "unitexec seccomp --syscalls, the sets expanded by systemd-analyze syscall-filter",
	"SystemCallErrorNumber":   "unitexec seccomp: EPERM",
	"UMask":                   "unitexec seccomp --umask",
	"RestrictRealtime":        "with SystemCallFilter (sched_setscheduler is in ~@resources)",
	"StateDirectory":          "unitexec mounts --writable: a directory of the test's (for /var/lib/NAME), a fresh tmpfs owned by the user, named in $STATE_DIRECTORY",
	"StateDirectoryMode":      "with StateDirectory",
	"RuntimeDirectory":        "unitexec mounts --writable: a directory of the test's (for /run/NAME), a fresh tmpfs owned by the user, named in $RUNTIME_DIRECTORY",
	"RuntimeDirectoryMode":    "with RuntimeDirectory",
}

// notSandboxed are the directives the test does not carry out, and why;
// some are checked another way.
var notSandboxed = map[string]string{
	"Type":                 "systemd's start protocol: needs systemd as PID 1, which this machine lacks",
	"Restart":              "systemd's supervision: needs systemd as PID 1",
	"RestartSec":           "systemd's supervision: needs systemd as PID 1",
	"PrivateTmp":           "the test's files live under /tmp, read-only to the daemon instead (stricter for writes)",
	"PrivateDevices":       "no private /dev; TestUnitSyscalls checks that the daemon opens no device but /dev/null",
	"ProtectKernelModules": "its read-only module directories are in ProtectSystem; its system calls (@module) are in ~@privileged",
	"ProtectKernelLogs":    "/dev/kmsg not hidden (TestUnitSyscalls: no device opened); syslog(2) is outside @system-service",
	"ProtectClock":         "its system calls (@clock) are in ~@privileged; no device policy",
	"ProtectHostname":      "no UTS namespace; sethostname(2) is in ~@privileged",
	"RestrictSUIDSGID":     "nothing is writable, so no file can be made set-user-ID",
	"LockPersonality":      "personality(2) is let through; TestUnitSyscalls checks that the daemon never calls it",
}

// capBits are the capabilities a unit may name.
var capBits = map[string]uint{
	"CAP_NET_ADMIN": unix.CAP_NET_ADMIN, "CAP_NET_RAW": unix.CAP_NET_RAW, "CAP_BPF": unix.CAP_BPF,
	"CAP_PERFMON": unix.CAP_PERFMON, "CAP_SYS_ADMIN": unix.CAP_SYS_ADMIN, "CAP_NET_BIND_SERVICE": unix.CAP_NET_BIND_SERVICE,
	"CAP_DAC_OVERRIDE": unix.CAP_DAC_OVERRIDE, "CAP_DAC_READ_SEARCH": unix.CAP_DAC_READ_SEARCH, "CAP_SYS_RESOURCE": unix.CAP_SYS_RESOURCE,
}

// addressFamilies are the families a unit may name.
var addressFamilies = map[string]int{
	"AF_UNIX": unix.AF_UNIX, "AF_INET": unix.AF_INET, "AF_INET6": unix.AF_INET6,
	"AF_NETLINK": unix.AF_NETLINK, "AF_PACKET": unix.AF_PACKET,
}

// sandbox is how the test runs a command as the unit runs tknockd.
type sandbox struct {
	creds    []string        // unitexec mounts, then setpriv: the command line up to the tracer's place
	filter   []string        // unitexec seccomp: the rest, up to the command
	caps     uint64          // the capability mask the daemon must end up with
	syscalls map[string]bool // the system calls SystemCallFilter lets through, by name
	families []string        // the address families RestrictAddressFamilies lets through (AF_INET...)
}

// argv returns the command line that runs a command in the sandbox,
// under tracer (a command line, as strace's) when it is not nil: the
// tracer runs with the daemon's credentials, outside the system call
// filter.
func (s *sandbox) argv(tracer ...string) []string {
	return slices.Concat(s.creds, tracer, s.filter)
}

// unitSandbox returns the sandbox that runs a command as the unit runs
// tknockd, as far as this machine allows without systemd as PID 1 (see
// sandboxed and notSandboxed). It fails the test on a directive it does
// not know or a value it cannot carry out, so a new promise of the unit
// gets a check.
func unitSandbox(t *testing.T, unit map[string][]string, uid, gid int, dir string) *sandbox {
	t.Helper()
	one := func(k, want string) {
		t.Helper()
		if v := unit[k]; len(v) != 1 || v[0] != want {
			t.Fatalf("%s: %s=%q; the test's sandbox carries out %s=%s only: extend it", unitPath, k, v, k, want)
		}
	}
	for k := range unit {
		if sandboxed[k] == "" && notSandboxed[k] == "" {
			t.Fatalf("%s: %s is neither carried out by the test's sandbox nor listed as not carried out: add it to sandboxed or notSandboxed", unitPath, k)
		}
	}
	for _, k := range []string{"ReadWritePaths", "CacheDirectory", "LogsDirectory"} {
		if len(unit[k]) > 0 {
			t.Fatalf("%s: %s=%q: the sandbox makes everything read-only; make these writable in unitexec", unitPath, k, unit[k])
		}
	}
	// StateDirectory= and RuntimeDirectory=: the directories systemd makes
	// for the service, owned by its user, writable in its read-only world,
	// and named to it in $STATE_DIRECTORY and $RUNTIME_DIRECTORY. Here they
	// are the test's own (under dir), so that nothing of the host is
	// touched.
	var writable, env []string
	for _, k := range []string{"StateDirectory", "RuntimeDirectory"} {
		mode := "0755"
		if v := unit[k+"Mode"]; len(v) > 0 {
			mode = v[len(v)-1]
		}
		var paths []string
		for _, v := range unit[k] {
			for name := range strings.FieldsSeq(v) {
				d := filepath.Join(dir, strings.ToLower(k), name)
				if err := os.MkdirAll(d, 0o755); err != nil {
					t.Fatal(err)
				}
				writable = append(writable, "--writable", fmt.Sprintf("%s:%d:%d:%s", d, uid, gid, mode))
				paths = append(paths, d)
			}
		}
		if len(paths) > 0 {
			env = append(env, strings.ToUpper(strings.TrimSuffix(k, "Directory"))+"_DIRECTORY="+strings.Join(paths, ":"))
		}
	}
	one("ProtectSystem", "strict")
	one("ProtectHome", "yes")
	one("ProtectProc", "invisible")
	one("ProcSubset", "pid")
	one("NoNewPrivileges", "yes")
	one("RestrictNamespaces", "yes")
	one("MemoryDenyWriteExecute", "yes")
	one("SystemCallArchitectures", "native")
	one("SystemCallErrorNumber", "EPERM")
	one("KillSignal", "SIGTERM")
	if v := unit["ExecReload"]; len(v) != 1 || !strings.Contains(v[0], "tknockd reload ") {
		t.Fatalf("%s: ExecReload=%q; the test reloads as tknockd reload does (SIGHUP, then the result): extend it", unitPath, v)
	}
	for k, cmd := range map[string]string{"ExecStart": " run ", "ExecStartPre": " check-config "} {
		if v := unit[k]; len(v) != 1 || !strings.Contains(v[0], cmd) {
			t.Fatalf("%s: %s=%q; the test runs tknockd%s only: extend it", unitPath, k, v, cmd)
		}
	}
	if v := unit["TimeoutStopSec"]; len(v) != 1 {
		t.Fatalf("%s: TimeoutStopSec=%q: want one", unitPath, v)
	} else if d, err := time.ParseDuration(v[0]); err != nil || d < 5*time.Second {
		t.Fatalf("%s: TimeoutStopSec=%s: the test's stop allows 5 s (%v)", unitPath, v[0], err)
	}

	capList := func(k string) (names []string, mask uint64) {
		t.Helper()
		for _, v := range unit[k] {
			for c := range strings.FieldsSeq(v) {
				bit, ok := capBits[c]
				if !ok {
					t.Fatalf("%s: %s: unknown capability %s", unitPath, k, c)
				}
				names = append(names, "+"+strings.ToLower(strings.TrimPrefix(c, "CAP_")))
				mask |= 1 << bit
			}
		}
		return names, mask
	}
	ambient, ambMask := capList("AmbientCapabilities")
	bounding, bndMask := capList("CapabilityBoundingSet")
	if ambMask&^bndMask != 0 {
		t.Fatalf("%s: ambient capabilities %v outside the bounding set %v", unitPath, ambient, bounding)
	}

	var families, afNames []string
	for _, v := range unit["RestrictAddressFamilies"] {
		for af := range strings.FieldsSeq(v) {
			n, ok := addressFamilies[af]
			if !ok {
				t.Fatalf("%s: RestrictAddressFamilies: unknown family %s", unitPath, af)
			}
			families = append(families, strconv.Itoa(n))
			afNames = append(afNames, af)
		}
	}
	syscalls, nrs := unitSyscalls(t, unit["SystemCallFilter"])
	umask := "0022"
	if v := unit["UMask"]; len(v) > 0 {
		umask = v[len(v)-1]
	}

	ue, err := buildUnitexec()
	if err != nil {
		t.Fatal(err)
	}
	return &sandbox{
		creds: append(append([]string{ue, "mounts", "--protect-home", "--proc-subset-pid"}, writable...), "--",
			"setpriv", "--reuid", strconv.Itoa(uid), "--regid", strconv.Itoa(gid), "--clear-groups",
			"--inh-caps", "-all,"+strings.Join(ambient, ","),
			"--ambient-caps", "-all,"+strings.Join(ambient, ","),
			"--bounding-set", "-all,"+strings.Join(bounding, ","),
			"--no-new-privs",
		),
		filter:   append([]string{ue, "seccomp", "--syscalls", strings.Join(nrs, ","), "--families", strings.Join(families, ","), "--umask", umask, "--", "env"}, env...),
		caps:     ambMask,
		syscalls: syscalls,
		families: afNames,
	}
}

// unitSyscalls returns the system calls the unit's SystemCallFilter
// assignments allow, in systemd's reading: the first sets an allow list, a
// later one adds to it, one starting with ~ takes away. Sets
// (@system-service) are expanded with systemd-analyze. It returns them by
// name, and by number as golang.org/x/sys/unix's table gives them (names
// this architecture lacks are dropped).
func unitSyscalls(t *testing.T, filters []string) (names map[string]bool, nrs []string) {
	t.Helper()
	nstest.RequireTool(t, "systemd-analyze")
	if len(filters) == 0 || strings.HasPrefix(filters[0], "~") {
		t.Fatalf("%s: SystemCallFilter=%q: the sandbox carries out an allow list only", unitPath, filters)
	}
	allowed := make(map[string]bool)
	for _, f := range filters {
		remove := strings.HasPrefix(f, "~")
		for name := range strings.FieldsSeq(strings.TrimPrefix(f, "~")) {
			for _, sc := range expandSyscalls(t, name) {
				if remove {
					delete(allowed, sc)
				} else {
					allowed[sc] = true
				}
			}
		}
	}
	table := syscallTable(t)
	for name := range allowed {
		if nr, ok := table[name]; ok {
			nrs = append(nrs, strconv.Itoa(nr))
		}
	}
	slices.Sort(nrs)
	return allowed, nrs
}

// expandSyscalls expands a system call set (@name) with systemd-analyze,
// nested sets too; a plain name is itself.
func expandSyscalls(t *testing.T, name string) []string {
	t.Helper()
	if !strings.HasPrefix(name, "@") {
		return []string{name}
	}
	out, err := exec.Command("systemd-analyze", "syscall-filter", name).Output()
	if err != nil {
		t.Fatalf("systemd-analyze syscall-filter %s: %v", name, err)
	}
	var names []string
	for i, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		if i == 0 || line == "" || line[0] == '#' {
			continue
		}
		names = append(names, expandSyscalls(t, line)...)
	}
	return names
}

// syscallTable maps system call names to numbers for this architecture,
// read from golang.org/x/sys/unix's zsysnum file in the module cache.
var syscallTable = func() func(t *testing.T) map[string]int {
	var (
		once  sync.Once
		table map[string]int
		err   error
	)
	return func(t *testing.T) map[string]int {
		t.Helper()
		once.Do(func() {
			var dir []byte
			dir, err = exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "golang.org/x/sys").Output()
			if err != nil {
				err = fmt.Errorf("go list golang.org/x/sys: %w", err)
				return
			}
			var src []byte
			src, err = os.ReadFile(filepath.Join(strings.TrimSpace(string(dir)), "unix", "zsysnum_linux_"+runtime.GOARCH+".go"))
			if err != nil {
				return
			}
			table = make(map[string]int)
			for _, m := range regexp.MustCompile(`(?m)^\s*SYS_([A-Z0-9_]+)\s*=\s*(\d+)`).FindAllStringSubmatch(string(src), -1) {
				n, _ := strconv.Atoi(m[2])
				table[strings.ToLower(m[1])] = n
			}
		})
		if err != nil {
			t.Fatalf("system call table: %v", err)
		}
		return table
	}
}()

// sandboxUser is the unprivileged user the sandboxed daemon runs as.
func sandboxUser(t *testing.T) (uid, gid int) {
	t.Helper()
	u, err := osuser.Lookup("nobody")
	if err != nil {
		t.Fatalf("the sandbox runs the daemon as nobody: %v", err)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return uid, gid
}

// giveTo makes the test's server files readable by uid (the users
// directory and the configuration), and the directories on the way to
// them and to the binaries passable.
func (e *env) giveTo(uid, gid int) {
	t := e.t
	t.Helper()
	if err := filepath.Walk(filepath.Join(e.dir, "etc"), func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Chown(p, uid, gid)
	}); err != nil {
		t.Fatal(err)
	}
	bin, err := binDir()
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{e.dir, filepath.Dir(e.dir), bin} {
		if err := os.Chmod(dir, 0o711); err != nil {
			t.Fatal(err)
		}
	}
}

// procStatus returns the fields of /proc/PID/status.
func procStatus(t *testing.T, pid int) map[string]string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	m := make(map[string]string)
	for line := range strings.Lines(string(b)) {
		k, v, _ := strings.Cut(line, ":")
		m[k] = strings.TrimSpace(v)
	}
	return m
}

// startInUnit starts the daemon of e in the unit's sandbox, with the
// tracer's command line before the system call filter (nil: none), with
// prefilter = "on" and the metrics on; it enrolls alice first. It checks
// check-config in the same sandbox, that the prefilter loaded, and the
// daemon's credentials.
func startInUnit(t *testing.T, e *env, tracer ...string) (*daemon, *user, *sandbox) {
	t.Helper()
	nstest.RequireTool(t, "setpriv")
	unit := readUnit(t, unitPath)
	uid, gid := sandboxUser(t)
	sb := unitSandbox(t, unit, uid, gid, e.dir)
	for _, k := range slices.Sorted(maps.Keys(unit)) {
		if notSandboxed[k] != "" {
			t.Logf("not carried out: %s: %s", k, notSandboxed[k])
		}
	}

	alice := e.enroll("alice", params{Proto: inet.TCP})
	cfg := e.writeConfig(config{Prefilter: "on", Metrics: true, MetricsDebug: true, DropKnocks: ptr(true)}) // debug: the test reads the prefilter's per-knock counter
	e.giveTo(uid, gid)
	e.sandbox = sb.argv()
	if out, errOut, code := e.tknockd("check-config", "--config", cfg); code != 0 {
		t.Fatalf("tknockd check-config in the unit's sandbox: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	e.sandbox = sb.argv(tracer...)
	d := e.startDaemon(cfg)
	if _, err := d.waitFor(time.Second, "the prefilter loaded", func(l logLine) bool {
		return strings.HasPrefix(l.str("message"), "prefilter loaded")
	}); err != nil {
		t.Error(err)
	}
	if ready := d.since(0, logLine.isReady); len(ready) != 1 || ready[0].str("prefilter") != "true" {
		t.Errorf("ready lines %v, want one with prefilter true", ready)
	}

	pid := d.cmd.Process.Pid
	if len(tracer) > 0 {
		pid = onlyChild(t, pid)
	}
	st := procStatus(t, pid)
	wantCaps := fmt.Sprintf("%016x", sb.caps)
	for k, want := range map[string]string{
		"CapEff": wantCaps, "CapPrm": wantCaps, "CapAmb": wantCaps, "CapBnd": wantCaps,
		"NoNewPrivs": "1", "Seccomp": "2",
		"Uid": fmt.Sprintf("%d\t%[1]d\t%[1]d\t%[1]d", uid), "Gid": fmt.Sprintf("%d\t%[1]d\t%[1]d\t%[1]d", gid),
	} {
		if st[k] != want {
			t.Errorf("tknockd's %s: %q, want %q", k, st[k], want)
		}
	}
	return d, alice, sb
}

// onlyChild returns the one child process of pid.
func onlyChild(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%[1]d/children", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b))
	if len(f) != 1 {
		t.Fatalf("process %d has children %q, want one", pid, f)
	}
	child, err := strconv.Atoi(f[0])
	if err != nil {
		t.Fatal(err)
	}
	return child
}

// knockInUnit knocks as alice: the port opens for the client only, the
// prefilter counted the anchor, and a reload (SIGHUP to pid, the unit's
// ExecReload) succeeds.
func knockInUnit(t *testing.T, e *env, d *daemon, pid int, alice *user) {
	t.Helper()
	e.mustRefuse(e.client, sshPort)
	m := d.mark()
	e.knock(alice, "ssh")
	if _, err := d.waitFrom(m, 5*time.Second, "an opening for alice", isOpen("alice", "ssh")); err != nil {
		t.Fatal(err)
	}
	e.mustConnect(e.client, sshPort)
	e.mustRefuse(e.stranger, sshPort)
	mt := d.metrics()
	if mt["tknock_prefilter_active"] != 1 {
		t.Errorf("tknock_prefilter_active %v, want 1", mt["tknock_prefilter_active"])
	}
	if anchors := mt[`tknock_prefilter_passed_total{reason="anchor"}`]; anchors < 1 {
		t.Errorf("prefilter anchors passed %v, want at least the knock's", anchors)
	}

	m = d.mark()
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if _, err := d.waitFrom(m, 5*time.Second, "a reload line", func(l logLine) bool { return l.event() == "reload" }); err != nil {
		t.Error(err)
	}
	if bad := d.since(0, func(l logLine) bool { return l.str("level") == "error" || l.str("level") == "warn" }); len(bad) > 0 {
		t.Errorf("warnings or errors in the unit's sandbox: %s", bad[0].raw)
	}
}

// TestUnitSandbox runs the daemon as deploy/tknockd.service does, as far
// as this machine allows (systemd is not PID 1 here: see sandboxed and
// notSandboxed for what is carried out and what is not): as an
// unprivileged user with only the unit's capabilities (read from the
// unit), no new privileges, every file system read-only, the unit's
// system call filter and address families, with prefilter = "on". The
// prefilter loads, check-config passes, a knock opens for the client
// only, a reload works, and SIGTERM ends it cleanly (the e2e's stop).
func TestUnitSandbox(t *testing.T) {
	forFamilies(t, func(t *testing.T, e *env) {
		e.serve(sshPort)
		d, alice, _ := startInUnit(t, e)
		knockInUnit(t, e, d, d.cmd.Process.Pid, alice)
	})
}

// TestUnitSyscalls runs TestUnitSandbox's daemon and knock (IPv4) under
// strace, which sees what the filter hides when a call fails quietly:
// every system call the daemon made is one the unit's SystemCallFilter
// lets through, every socket it opened of a family the unit allows, no
// call failed for a read-only file system (the unit lets it write
// nothing), it opened no device but /dev/null (PrivateDevices) and never
// changed its personality (LockPersonality).
func TestUnitSyscalls(t *testing.T) {
	t.Parallel()
	nstest.RequireTool(t, "strace")
	e := newEnv(t, v4)
	e.serve(sshPort)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex // guards trace
		trace strings.Builder
		read  = make(chan struct{})
	)
	go func() {
		defer close(read)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			mu.Lock()
			trace.WriteString(sc.Text())
			trace.WriteByte('\n')
			mu.Unlock()
		}
	}()
	// strace, as the daemon's user, opens the pipe again by /dev/fd/3.
	uid, gid := sandboxUser(t)
	if err := w.Chown(uid, gid); err != nil {
		t.Fatal(err)
	}
	e.sandboxFiles = []*os.File{w}
	d, alice, sb := startInUnit(t, e, "strace", "-f", "-qq", "-s", "0", "-o", "/dev/fd/3", "--")
	w.Close()
	// strace keeps signals to itself: the daemon gets them.
	pid := onlyChild(t, d.cmd.Process.Pid)
	knockInUnit(t, e, d, pid, alice)
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-d.done:
	case <-time.After(10 * time.Second):
		t.Fatal("tknockd under strace did not exit within 10 s of SIGTERM")
	}
	if d.waitErr != nil {
		t.Errorf("tknockd under strace after SIGTERM: %v; want exit status 0", d.waitErr)
	}
	<-read
	mu.Lock()
	lines := strings.Split(trace.String(), "\n")
	mu.Unlock()
	checkTrace(t, lines, tknockdBin(t), sb)
}

// traceLine is a line of strace -f: PID, then a call, its resumption, or
// a signal or exit note.
var traceLine = regexp.MustCompile(`^\d+\s+(?:<\.\.\. )?([a-z0-9_]+)(?:\(| resumed>)(.*)$`)

// checkTrace checks the system calls of strace -f's lines made after the
// daemon's binary bin was executed; see TestUnitSyscalls.
func checkTrace(t *testing.T, lines []string, bin string, sb *sandbox) {
	t.Helper()
	start := slices.IndexFunc(lines, func(l string) bool { return strings.Contains(l, `execve("`+bin+`"`) })
	if start < 0 {
		t.Fatalf("no execve of %s in the trace (%d lines)", bin, len(lines))
	}
	calls := make(map[string]int)
	outside := make(map[string]string) // name -> first line
	for _, l := range lines[start+1:] {
		m := traceLine.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		name, rest := m[1], m[2]
		if !strings.Contains(l, " <... ") {
			calls[name]++
		}
		if !sb.syscalls[name] {
			if _, ok := outside[name]; !ok {
				outside[name] = l
			}
		}
		switch {
		case strings.Contains(rest, "EROFS"):
			t.Errorf("a call failed for the read-only file system (the unit lets the daemon write nothing): %s", l)
		case name == "socket" && !strings.Contains(l, "resumed>") && !slices.ContainsFunc(sb.families, func(af string) bool { return strings.HasPrefix(rest, af+",") }):
			t.Errorf("a socket of a family the unit does not allow (%v): %s", sb.families, l)
		case (name == "openat" || name == "open") && strings.Contains(rest, `"/dev/`) && !strings.Contains(rest, `"/dev/null"`):
			t.Errorf("a device opened (PrivateDevices gives the daemon none): %s", l)
		case name == "personality":
			t.Errorf("personality(2) called (LockPersonality): %s", l)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(outside)) {
		t.Errorf("system call %s, outside the unit's SystemCallFilter: %s", name, outside[name])
	}
	var summary []string
	for _, name := range slices.Sorted(maps.Keys(calls)) {
		summary = append(summary, fmt.Sprintf("%s %d", name, calls[name]))
	}
	t.Logf("system calls of tknockd (%d kinds): %s", len(calls), strings.Join(summary, ", "))
}
