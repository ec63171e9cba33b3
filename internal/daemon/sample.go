package daemon

import (
	"time"

	"github.com/rs/zerolog"
)

// Sampling of lines that an attacker can provoke at will, so a flood
// cannot fill a disk: per source-triggered line kind, the first
// sampleBurst lines of each sampleWindow are written, then one in
// sampleEvery. fail2ban still sees every source that keeps trying.
const (
	sampleBurst  = 50
	sampleWindow = time.Second
	sampleEvery  = 100
)

func newSampler() zerolog.Sampler {
	return &zerolog.BurstSampler{
		Burst:       sampleBurst,
		Period:      sampleWindow,
		NextSampler: &zerolog.BasicSampler{N: sampleEvery},
	}
}
