package nft

import "errors"

// Errors that callers may branch on. Errors returned by this package wrap
// them (test with errors.Is) together with the kernel's errno.
var (
	// ErrPermission: the process lacks CAP_NET_ADMIN.
	ErrPermission = errors.New("permission denied: tknockd needs CAP_NET_ADMIN (run as root or grant the capability)")
	// ErrNotSupported: the kernel has no nftables, or lacks a feature the
	// table needs.
	ErrNotSupported = errors.New("the kernel has no nftables support (nf_tables module not loaded?)")
	// ErrMissing: the table or a set is gone, for instance after
	// `nft flush ruleset`; in own-table mode, Apply and Watch build it
	// again.
	ErrMissing = errors.New("table or set missing (ruleset flushed?)")
	// ErrClosed: the Table is closed, or its netlink socket failed and could
	// not be reopened; every later call fails too. Open a new Table (the
	// daemon exits so that its service manager restarts it).
	ErrClosed = errors.New("table handle is closed")
)

// kernelError says in plain words what the kernel's errno means here. It
// wraps both one of the sentinels above and the errno.
type kernelError struct {
	msg   string
	kind  error // ErrPermission, ErrNotSupported or ErrMissing
	errno error
}

func newKernelError(kind, errno error) *kernelError {
	return &kernelError{msg: kind.Error(), kind: kind, errno: errno}
}

func (e *kernelError) Error() string   { return e.msg }
func (e *kernelError) Unwrap() []error { return []error{e.kind, e.errno} }
