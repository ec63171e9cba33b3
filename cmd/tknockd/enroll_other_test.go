//go:build !linux

package main

import "testing"

// zbarimgCheck is a Linux test (zbar-tools from Debian).
func zbarimgCheck(t *testing.T, path, uri string) {}
