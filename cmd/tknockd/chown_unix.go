//go:build unix

package main

import (
	"io/fs"
	"os"
	"syscall"
)

// chownLike gives path to the owner and group of dir (described by fi)
// when root runs this and the directory belongs to another user.
func chownLike(path string, fi fs.FileInfo) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || os.Geteuid() != 0 || st.Uid == 0 {
		return nil
	}
	return os.Chown(path, int(st.Uid), int(st.Gid))
}
