// Package version says which build of tknock is running: the module
// version and the VCS revision, read from the build information the Go
// linker embeds (runtime/debug.ReadBuildInfo).
//
// go build stamps the revision (vcs.revision, vcs.modified) itself only
// when the module's .git is a directory (not in a git worktree, whose .git
// is a file) and when -buildvcs is not false (GOFLAGS=-buildvcs=false is a
// common setting: stamping fails when root builds a checkout that another
// user owns). -trimpath changes neither. So `make build` also sets the
// revision with the linker's -X flag (the variables revision and
// modified), and the build information wins when it has one.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// Set by the linker: go build -ldflags "-X
// github.com/tknock/tknock/internal/version.revision=REV -X
// github.com/tknock/tknock/internal/version.modified=true".
var (
	revision string
	modified string
)

// Info is what a binary knows about its build. Empty fields are unknown.
type Info struct {
	Module   string // the main module's version: a tag, a pseudo-version, or "(devel)"
	Revision string // the VCS revision (a full commit hash for git)
	Time     string // the revision's commit time, RFC 3339, when go build stamped it
	Modified bool   // the working tree had uncommitted changes
	Go       string // the Go release the binary was built with
}

// Read returns the running binary's build information.
func Read() Info {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return fromLinker(Info{Go: runtime.Version()})
	}
	return fromBuildInfo(bi)
}

func fromBuildInfo(bi *debug.BuildInfo) Info {
	in := Info{Module: bi.Main.Version, Go: bi.GoVersion}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			in.Revision = s.Value
		case "vcs.time":
			in.Time = s.Value
		case "vcs.modified":
			in.Modified = s.Value == "true"
		}
	}
	return fromLinker(in)
}

// fromLinker fills the revision from the -X variables when the build
// information has none.
func fromLinker(in Info) Info {
	if in.Revision == "" && revision != "" {
		in.Revision = revision
		in.Modified = modified == "true"
	}
	return in
}

// String formats in for --version, one line:
//
//	tknock v0.3.1 (revision 1feed4a7a4a3, modified; go1.26.8 linux/amd64)
func (in Info) String(program string) string {
	var b strings.Builder
	mod := in.Module
	if mod == "" {
		mod = "(unknown version)"
	}
	fmt.Fprintf(&b, "%s %s (", program, mod)
	switch {
	case in.Revision == "":
		b.WriteString("revision unknown")
	default:
		b.WriteString("revision " + in.Revision)
	}
	if in.Modified {
		b.WriteString(", modified")
	}
	if in.Time != "" {
		b.WriteString(", " + in.Time)
	}
	fmt.Fprintf(&b, "; %s %s/%s)", in.Go, runtime.GOOS, runtime.GOARCH)
	return b.String()
}
