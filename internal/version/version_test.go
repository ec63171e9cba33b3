package version

import (
	"runtime"
	"runtime/debug"
	"testing"
)

func TestFromBuildInfo(t *testing.T) {
	platform := runtime.GOOS + "/" + runtime.GOARCH
	stamped := &debug.BuildInfo{
		GoVersion: "go1.26.8",
		Main:      debug.Module{Path: "github.com/tknock/tknock", Version: "v0.0.0-20261204134946-1feed4a7a4a3+dirty"},
		Settings: []debug.BuildSetting{
			{Key: "-trimpath", Value: "true"},
			{Key: "vcs", Value: "git"},
			{Key: "vcs.revision", Value: "1feed4a7a4a3a07cea2f8fd624e902a4fae50f02"},
			{Key: "vcs.time", Value: "2026-12-04T13:49:46Z"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	unstamped := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/tknock/tknock", Version: "(devel)"}}

	tests := []struct {
		name             string
		bi               *debug.BuildInfo
		linkRev, linkMod string
		want             string
	}{
		{"stamped by go build", stamped, "", "",
			"tknock v0.0.0-20261204134946-1feed4a7a4a3+dirty (revision 1feed4a7a4a3a07cea2f8fd624e902a4fae50f02, modified, 2026-12-04T13:49:46Z; go1.26.8 " + platform + ")"},
		{"stamped wins over -X", stamped, "0000000000000000000000000000000000000000", "false",
			"tknock v0.0.0-20261204134946-1feed4a7a4a3+dirty (revision 1feed4a7a4a3a07cea2f8fd624e902a4fae50f02, modified, 2026-12-04T13:49:46Z; go1.26.8 " + platform + ")"},
		{"worktree: -X only", unstamped, "be9b66e1f2a3be9b66e1f2a3be9b66e1f2a3be9b", "false",
			"tknock (devel) (revision be9b66e1f2a3be9b66e1f2a3be9b66e1f2a3be9b; go1.26.8 " + platform + ")"},
		{"-X, modified", unstamped, "be9b66e1f2a3be9b66e1f2a3be9b66e1f2a3be9b", "true",
			"tknock (devel) (revision be9b66e1f2a3be9b66e1f2a3be9b66e1f2a3be9b, modified; go1.26.8 " + platform + ")"},
		{"nothing known", unstamped, "", "",
			"tknock (devel) (revision unknown; go1.26.8 " + platform + ")"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			revision, modified = tt.linkRev, tt.linkMod
			t.Cleanup(func() { revision, modified = "", "" })
			if got := fromBuildInfo(tt.bi).String("tknock"); got != tt.want {
				t.Errorf("String =\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}
