//go:build !unix

package main

import "io/fs"

// chownLike does nothing: file ownership is a Unix matter.
func chownLike(path string, fi fs.FileInfo) error { return nil }
