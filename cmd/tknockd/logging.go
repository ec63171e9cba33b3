package main

import (
	"io"
	"os"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"
)

// newLogger returns a logger writing to w at level. format is "json",
// "console" (readable, for a person) or "auto": console when w is a
// terminal, JSON otherwise (journald and log shippers read JSON). Every
// line has a timestamp.
func newLogger(w io.Writer, format string, level zerolog.Level) zerolog.Logger {
	if format == "console" || (format == "auto" && isTerminal(w)) {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.DateTime, NoColor: !isTerminal(w)}
	}
	return zerolog.New(w).Level(level).With().Timestamp().Logger()
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}

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
