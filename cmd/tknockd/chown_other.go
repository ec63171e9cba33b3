//go:build !unix

package main

import (
	"io/fs"

	"github.com/tknock/tknock/internal/enrollfile"
)

// ownerOf returns nil: file ownership is a Unix matter.
func ownerOf(fi fs.FileInfo) *enrollfile.Owner { return nil }
