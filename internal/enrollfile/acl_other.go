//go:build !windows

package enrollfile

// checkACL is the Windows check; elsewhere the permission bits are.
func checkACL(string) error { return nil }

// restrict is the Windows counterpart of mode 0600; elsewhere Chmod is.
func restrict(string) error { return nil }
