package nft

import (
	"errors"

	"github.com/mdlayher/netlink/nltest"
	"github.com/rs/zerolog"
)

// Option changes how Open connects and logs.
type Option func(*options)

type options struct {
	netnsFd int // 0: the caller's network namespace
	log     zerolog.Logger
	dial    nltest.Func // tests only: a fake kernel; nil: the real one
}

// WithNetNSFd makes the table live in the network namespace that fd refers
// to (an open /run/netns/NAME) instead of the caller's. The caller keeps fd
// open for as long as the Table is in use.
func WithNetNSFd(fd int) Option {
	return func(o *options) { o.netnsFd = fd }
}

// WithLogger sets the logger; the default discards everything.
func WithLogger(l zerolog.Logger) Option {
	return func(o *options) { o.log = l }
}

// Errors that callers may branch on. Errors returned by this package wrap
// them (test with errors.Is) together with the kernel's errno.
var (
	// ErrPermission: the process lacks CAP_NET_ADMIN.
	ErrPermission = errors.New("permission denied: tknockd needs CAP_NET_ADMIN (run as root or grant the capability)")
	// ErrNotSupported: the kernel has no nftables, or not a feature the
	// table needs.
	ErrNotSupported = errors.New("the kernel has no nftables support (nf_tables module not loaded?)")
	// ErrMissing: the table or a set is gone, for instance after
	// `nft flush ruleset`; in own-table mode, Ensure builds it again.
	ErrMissing = errors.New("table or set missing (ruleset flushed? Ensure recreates our table)")
)

// kernelError is a plain-words sentinel wrapped around the kernel's errno.
type kernelError struct {
	plain error
	errno error
}

func (e *kernelError) Error() string   { return e.plain.Error() }
func (e *kernelError) Unwrap() []error { return []error{e.plain, e.errno} }
