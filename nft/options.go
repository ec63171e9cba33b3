package nft

import (
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
