//go:build !linux

package capture

import (
	"errors"

	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/listener"
)

var errNotLinux = errors.New("capture: AF_PACKET capture is only available on Linux")

// Conn is the AF_PACKET capture; it exists only on Linux. Elsewhere
// Listen returns an error and the methods do nothing.
type Conn struct{}

// Listen returns an error: AF_PACKET capture is only available on Linux.
func Listen(cfg Config) (*Conn, error) { return nil, errNotLinux }

// Link returns 0.
func (c *Conn) Link() listener.LinkType { return 0 }

// ReadFrame returns listener.ErrClosed.
func (c *Conn) ReadFrame() (listener.Frame, error) { return listener.Frame{}, listener.ErrClosed }

// ReadFrames returns listener.ErrClosed.
func (c *Conn) ReadFrames(fs []listener.Frame) (int, error) { return 0, listener.ErrClosed }

// Close does nothing.
func (c *Conn) Close() error { return nil }

// Stats returns zero counters.
func (c *Conn) Stats() Stats { return Stats{} }

// SetRanges returns an error: AF_PACKET capture is only available on Linux.
func (c *Conn) SetRanges(rs []inet.Range) error { return errNotLinux }
