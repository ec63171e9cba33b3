//go:build !linux

package listener

import (
	"errors"

	"github.com/tknock/tknock/inet"
)

var errNotLinux = errors.New("capture: AF_PACKET capture is only available on Linux")

// Capture is the AF_PACKET capture; it exists only on Linux. Elsewhere
// Listen returns an error and the methods do nothing.
type Capture struct{}

// Listen returns an error: AF_PACKET capture is only available on Linux.
func Listen(cfg CaptureConfig) (*Capture, error) { return nil, errNotLinux }

// Link returns 0.
func (c *Capture) Link() LinkType { return 0 }

// ReadFrame returns ErrClosed.
func (c *Capture) ReadFrame() (Frame, error) { return Frame{}, ErrClosed }

// ReadFrames returns ErrClosed.
func (c *Capture) ReadFrames(fs []Frame) (int, error) { return 0, ErrClosed }

// Close does nothing.
func (c *Capture) Close() error { return nil }

// Stats returns zero counters.
func (c *Capture) Stats() CaptureStats { return CaptureStats{} }

// SetRanges returns an error: AF_PACKET capture is only available on Linux.
func (c *Capture) SetRanges(ranges []inet.Range) error { return errNotLinux }
