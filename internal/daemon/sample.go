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

// Sampling of "access opened" lines per user: one enrolled user opening
// from many addresses (its own /64, a script) must not fill the journal
// nor drown the others' lines. The first openBurst lines of a user in each
// openWindow are written, then one in sampleEvery.
const (
	openBurst  = 20
	openWindow = time.Minute
)

// maxOpenSamplers bounds openSampler: beyond it, every user's logger is
// made anew.
const maxOpenSamplers = 1 << 16

// openSampler holds a sampled logger per user. Owned by the goroutine
// that calls emit; its size is bounded by the users ever enrolled in this
// run (a reload's removed users are dropped with the next reset), and by
// maxOpenSamplers.
type openSampler struct {
	by map[string]*zerolog.Logger
}

// user returns the sampled logger of user, made from log when first
// needed.
func (s *openSampler) user(log zerolog.Logger, name string) *zerolog.Logger {
	if l, ok := s.by[name]; ok {
		return l
	}
	if s.by == nil || len(s.by) >= maxOpenSamplers {
		s.by = make(map[string]*zerolog.Logger) // bounded
	}
	l := log.Sample(&zerolog.BurstSampler{Burst: openBurst, Period: openWindow, NextSampler: &zerolog.BasicSampler{N: sampleEvery}})
	s.by[name] = &l
	return &l
}
