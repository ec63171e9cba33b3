//go:build !linux

package capture

import (
	"errors"
	"time"

	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/listener"
)

var errPrefilterNotLinux = errors.New("prefilter: eBPF socket filters are only available on Linux")

// Prefilter is the eBPF prefilter; it exists only on Linux. Elsewhere
// NewPrefilter returns an error.
type Prefilter struct{}

// PrefilterStats are the prefilter's counters.
type PrefilterStats struct {
	Anchors, Tracked, Dropped, Gens uint64
}

// MinPrefilterHold is the shortest hold SetHold takes.
const MinPrefilterHold = 10 * time.Millisecond

// NewPrefilter returns an error: eBPF is only available on Linux.
func NewPrefilter(hold time.Duration) (*Prefilter, error) { return nil, errPrefilterNotLinux }

// Close does nothing.
func (p *Prefilter) Close() error { return nil }

// Hold returns 0.
func (p *Prefilter) Hold() time.Duration { return 0 }

// SetHold returns an error.
func (p *Prefilter) SetHold(hold time.Duration) error { return errPrefilterNotLinux }

// SetRanges returns an error.
func (p *Prefilter) SetRanges(rs []inet.Range) error { return errPrefilterNotLinux }

// Publish returns an error.
func (p *Prefilter) Publish(a listener.AnchorPorts) error { return errPrefilterNotLinux }

// Stats returns an error.
func (p *Prefilter) Stats() (PrefilterStats, error) { return PrefilterStats{}, errPrefilterNotLinux }
