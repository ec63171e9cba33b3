// Command unitexec runs a command under the parts of a systemd unit's
// sandbox that systemd itself sets up, for tests on a machine where
// systemd is not PID 1: the end-to-end tests run tknockd with it as
// deploy/tknockd.service would. It is a test tool, not shipped.
//
//	unitexec mounts [--protect-home] [--proc-subset-pid] -- CMD [ARG]...
//
// (as root) enters a new mount namespace in which every mount is read-only
// (ProtectSystem=strict, ReadOnlyPaths: nothing may be written),
// --protect-home hides /home, /root and /run/user under empty read-only
// directories (ProtectHome=yes), --proc-subset-pid mounts a fresh /proc with
// hidepid=invisible,subset=pid (ProtectProc=invisible, ProcSubset=pid); then
// executes CMD.
//
//	unitexec seccomp --syscalls N,... --families N,... [--umask MODE] -- CMD [ARG]...
//
// sets no_new_privs and installs a seccomp filter, then executes CMD. The
// filter takes native system calls only (SystemCallArchitectures=native);
// of those the listed numbers (SystemCallFilter=), where socket(2) must
// name a listed address family (RestrictAddressFamilies=, else
// EAFNOSUPPORT), mmap(2) may not ask for memory both writable and
// executable, nor mprotect(2) and pkey_mprotect(2) for executable memory
// (MemoryDenyWriteExecute=yes), and clone(2) may not create namespaces,
// nor may unshare(2) and setns(2) be called (RestrictNamespaces=yes); every
// other call fails with EPERM (SystemCallErrorNumber=EPERM). --umask sets
// the umask (UMask=).
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "unitexec: %v\n", err)
		os.Exit(2)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return errors.New("usage: unitexec mounts|seccomp [FLAGS] -- CMD [ARGS]")
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	var (
		writable                stringList
		protectHome, procSubset bool
		syscalls, families      string
		umask                   string
	)
	switch args[0] {
	case "mounts":
		fs.BoolVar(&protectHome, "protect-home", false, "hide /home, /root and /run/user")
		fs.BoolVar(&procSubset, "proc-subset-pid", false, "a /proc of processes only, others' invisible")
		fs.Var(&writable, "writable", "DIR:UID:GID:MODE, an existing directory that stays writable: a fresh tmpfs owned by UID:GID (repeat)")
	case "seccomp":
		fs.StringVar(&syscalls, "syscalls", "", "system call numbers allowed, comma-separated")
		fs.StringVar(&families, "families", "", "address families socket(2) may name, comma-separated")
		fs.StringVar(&umask, "umask", "", "umask, octal")
	default:
		return fmt.Errorf("unknown mode %q: want mounts or seccomp", args[0])
	}
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	cmd := fs.Args()
	if len(cmd) == 0 {
		return errors.New("no command to run")
	}
	path, err := exec.LookPath(cmd[0])
	if err != nil {
		return err
	}
	// Mount namespaces, no_new_privs and seccomp filters belong to the
	// thread; the exec below replaces the process from this one.
	runtime.LockOSThread()
	switch args[0] {
	case "mounts":
		err = mounts(protectHome, procSubset, writable)
	case "seccomp":
		err = filter(syscalls, families, umask)
	}
	if err != nil {
		return err
	}
	return syscall.Exec(path, cmd, os.Environ())
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

// mounts sets up the mount namespace: every mount read-only but the
// writable directories, each a fresh tmpfs as systemd's StateDirectory=
// and RuntimeDirectory= give a service (a state directory's contents do not
// outlive the sandbox here).
func mounts(protectHome, procSubset bool, writable []string) error {
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("unshare mount namespace: %w", err)
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make / private: %w", err)
	}
	if procSubset {
		if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "hidepid=invisible,subset=pid"); err != nil {
			return fmt.Errorf("mount /proc: %w", err)
		}
	}
	if protectHome {
		for _, dir := range []string{"/home", "/root", "/run/user"} {
			if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=000"); err != nil {
				return fmt.Errorf("hide %s: %w", dir, err)
			}
		}
	}
	if err := unix.MountSetattr(-1, "/", unix.AT_RECURSIVE, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}); err != nil {
		return fmt.Errorf("make every mount read-only: %w", err)
	}
	for _, w := range writable {
		f := strings.Split(w, ":")
		if len(f) != 4 {
			return fmt.Errorf("--writable %q: want DIR:UID:GID:MODE", w)
		}
		opts := fmt.Sprintf("mode=%s,uid=%s,gid=%s", f[3], f[1], f[2])
		if err := unix.Mount("tmpfs", f[0], "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, opts); err != nil {
			return fmt.Errorf("writable %s: %w", f[0], err)
		}
	}
	return nil
}

// filter sets the umask and no_new_privs and installs the seccomp filter.
func filter(syscalls, families, umask string) error {
	nrs, err := numbers(syscalls)
	if err != nil {
		return fmt.Errorf("--syscalls: %w", err)
	}
	afs, err := numbers(families)
	if err != nil {
		return fmt.Errorf("--families: %w", err)
	}
	if umask != "" {
		m, err := strconv.ParseUint(umask, 8, 32)
		if err != nil {
			return fmt.Errorf("--umask %q: %w", umask, err)
		}
		unix.Umask(int(m))
	}
	prog, err := program(nrs, afs)
	if err != nil {
		return err
	}
	raw := make([]unix.SockFilter, len(prog))
	for i, ins := range prog {
		raw[i] = unix.SockFilter{Code: ins.Op, Jt: ins.Jt, Jf: ins.Jf, K: ins.K}
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("no_new_privs: %w", err)
	}
	fprog := unix.SockFprog{Len: uint16(len(raw)), Filter: &raw[0]}
	if _, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, 0, uintptr(unsafe.Pointer(&fprog))); errno != 0 {
		return fmt.Errorf("seccomp: %w", errno)
	}
	return nil
}

func numbers(s string) ([]uint32, error) {
	var out []uint32
	for f := range strings.SplitSeq(s, ",") {
		if f == "" {
			continue
		}
		n, err := strconv.ParseUint(f, 10, 32)
		if err != nil {
			return nil, err
		}
		out = append(out, uint32(n))
	}
	return out, nil
}

// Offsets in struct seccomp_data, and the return values.
const (
	offNr   = 0
	offArch = 4
	offArg0 = 16 // low 32 bits on little-endian
	offArg2 = 32

	retAllow = unix.SECCOMP_RET_ALLOW
	retEPERM = unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)
	retNoAF  = unix.SECCOMP_RET_ERRNO | uint32(unix.EAFNOSUPPORT)
)

// program is the filter: see the package comment.
func program(nrs, afs []uint32) ([]bpf.RawInstruction, error) {
	arch, ok := auditArch[runtime.GOARCH]
	if !ok {
		return nil, fmt.Errorf("no audit architecture known for %s", runtime.GOARCH)
	}
	const nsFlags = unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC | unix.CLONE_NEWUSER |
		unix.CLONE_NEWPID | unix.CLONE_NEWNET | unix.CLONE_NEWCGROUP | unix.CLONE_NEWTIME
	var p []bpf.Instruction
	p = append(p,
		bpf.LoadAbsolute{Off: offArch, Size: 4},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: arch, SkipTrue: 1},
		bpf.RetConstant{Val: retEPERM},
		bpf.LoadAbsolute{Off: offNr, Size: 4},
		// x32 system calls on amd64 have bit 30 set; others have none.
		bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: 0x40000000, SkipFalse: 1},
		bpf.RetConstant{Val: retEPERM},
	)
	// The argument checks, each ending in a verdict; A holds the number.
	special := func(nr uint32, body ...bpf.Instruction) {
		p = append(p, bpf.JumpIf{Cond: bpf.JumpEqual, Val: nr, SkipFalse: uint8(len(body))})
		p = append(p, body...)
	}
	allowed := make(map[uint32]bool)
	for _, nr := range nrs {
		allowed[nr] = true
	}
	if allowed[unix.SYS_SOCKET] {
		body := []bpf.Instruction{bpf.LoadAbsolute{Off: offArg0, Size: 4}}
		for i, af := range afs {
			body = append(body, bpf.JumpIf{Cond: bpf.JumpEqual, Val: af, SkipTrue: uint8(len(afs) - i)})
		}
		body = append(body, bpf.RetConstant{Val: retNoAF}, bpf.RetConstant{Val: retAllow})
		special(unix.SYS_SOCKET, body...)
	}
	if allowed[unix.SYS_MMAP] {
		special(unix.SYS_MMAP,
			bpf.LoadAbsolute{Off: offArg2, Size: 4},
			bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: unix.PROT_WRITE | unix.PROT_EXEC},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.PROT_WRITE | unix.PROT_EXEC, SkipFalse: 1},
			bpf.RetConstant{Val: retEPERM},
			bpf.RetConstant{Val: retAllow})
	}
	for _, nr := range []uint32{unix.SYS_MPROTECT, unix.SYS_PKEY_MPROTECT} {
		if allowed[nr] {
			special(nr,
				bpf.LoadAbsolute{Off: offArg2, Size: 4},
				bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: unix.PROT_EXEC, SkipFalse: 1},
				bpf.RetConstant{Val: retEPERM},
				bpf.RetConstant{Val: retAllow})
		}
	}
	if allowed[unix.SYS_CLONE] {
		special(unix.SYS_CLONE,
			bpf.LoadAbsolute{Off: offArg0, Size: 4},
			bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: nsFlags, SkipFalse: 1},
			bpf.RetConstant{Val: retEPERM},
			bpf.RetConstant{Val: retAllow})
	}
	for _, nr := range nrs {
		switch nr {
		case unix.SYS_SOCKET, unix.SYS_MMAP, unix.SYS_MPROTECT, unix.SYS_PKEY_MPROTECT, unix.SYS_CLONE, unix.SYS_UNSHARE, unix.SYS_SETNS:
			continue
		}
		p = append(p, bpf.JumpIf{Cond: bpf.JumpEqual, Val: nr, SkipFalse: 1}, bpf.RetConstant{Val: retAllow})
	}
	p = append(p, bpf.RetConstant{Val: retEPERM})
	return bpf.Assemble(p)
}

// auditArch is AUDIT_ARCH_* of the architectures the tests run on.
var auditArch = map[string]uint32{
	"amd64": unix.AUDIT_ARCH_X86_64,
	"arm64": unix.AUDIT_ARCH_AARCH64,
}
