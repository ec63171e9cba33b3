//go:build unix

package main

import (
	"io/fs"
	"os"
	"syscall"

	"github.com/tknock/tknock/internal/enrollfile"
)

// ownerOf returns the owner and group of dir (described by fi), to give a
// new file in it to, when root runs this and the directory belongs to
// another user; nil otherwise.
func ownerOf(fi fs.FileInfo) *enrollfile.Owner {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || os.Geteuid() != 0 || st.Uid == 0 {
		return nil
	}
	return &enrollfile.Owner{UID: int(st.Uid), GID: int(st.Gid)}
}
