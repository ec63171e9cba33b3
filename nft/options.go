package nft

import (
	"time"

	"github.com/mdlayher/netlink/nltest"
	"github.com/rs/zerolog"
)

// Option changes how Open connects and logs.
type Option func(*options)

type options struct {
	netnsFd int // 0: the caller's network namespace
	log     zerolog.Logger
	dial    nltest.Func // tests only: a fake kernel; nil: the real one
	timeout time.Duration
}

// WithNetNSFd makes the table live in the network namespace that fd refers
// to (an open /run/netns/NAME) instead of the caller's. The caller keeps fd
// open for as long as the Table is in use.
func WithNetNSFd(fd int) Option {
	return func(o *options) { o.netnsFd = fd }
}

// WithTimeout bounds each operation of the Table (Ensure, Update, Allow,
// Grants) on its netlink socket: past d without the kernel's answer, the
// operation fails, and the socket is replaced, since a late answer would
// be taken for the next one's (if it cannot be reopened, the Table is
// closed: ErrClosed). Default DefaultTimeout. The deadline covers the
// waits for the kernel's answers; a send that the kernel holds up (its
// nftables lock taken by another process's commit) is not cut short.
func WithTimeout(d time.Duration) Option {
	return func(o *options) { o.timeout = d }
}

// DefaultTimeout is the deadline of each operation without WithTimeout:
// a grant takes some 50µs, a whole table a few milliseconds.
const DefaultTimeout = 5 * time.Second

// WithLogger sets the logger; the default discards everything.
func WithLogger(l zerolog.Logger) Option {
	return func(o *options) { o.log = l }
}
