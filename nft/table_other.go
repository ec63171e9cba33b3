//go:build !linux

package nft

import (
	"context"
	"errors"
	"net/netip"
	"runtime"
	"time"
)

// Table is the daemon's handle on its nftables table. nftables exists only
// on Linux: elsewhere Open always fails, so no Table is ever usable.
type Table struct{}

var errNotLinux = errors.New("nft: nftables needs Linux, not " + runtime.GOOS)

// Open fails on this OS: nftables needs Linux.
func Open(cfg Config, opts ...Option) (*Table, error) { return nil, errNotLinux }

// Apply fails on this OS.
func (t *Table) Apply(cfg Config) error { return errNotLinux }

// Watch fails on this OS.
func (t *Table) Watch(ctx context.Context) error { return errNotLinux }

// Allow fails on this OS.
func (t *Table) Allow(src netip.Addr, svc Service, ttl time.Duration) error { return errNotLinux }

// Grants fails on this OS.
func (t *Table) Grants() ([]Grant, error) { return nil, errNotLinux }

// Teardown fails on this OS.
func (t *Table) Teardown() error { return errNotLinux }

// Close does nothing on this OS.
func (t *Table) Close() error { return nil }

// CheckHost fails on this OS.
func CheckHost(cfg Config, opts ...Option) ([]string, error) { return nil, errNotLinux }
