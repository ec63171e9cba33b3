package main

import (
	"os"
	"os/signal"
	"syscall"

	"github.com/rs/zerolog"

	"github.com/tknock/tknock/internal/config"
	"github.com/tknock/tknock/internal/daemon"
)

type runCmd struct{}

// Run runs the daemon until SIGINT or SIGTERM; SIGHUP reloads. A bad
// users file is logged and left out; errors that stop the daemon are
// logged (JSON unless on a terminal) on stderr, and exit non-zero.
func (cmd *runCmd) Run(e *env) error {
	format, err := logFormat(e.cli.LogFormat, "auto")
	if err != nil {
		return err
	}
	level, err := logLevel(e.cli.LogLevel, zerolog.InfoLevel)
	if err != nil {
		return err
	}
	log := newLogger(e.stderr, format, level)

	c, err := config.Load(e.cli.Config)
	if err != nil {
		log.Error().Err(err).Str("event", "exit").Msg("configuration rejected")
		return silentError{err}
	}
	format, _ = logFormat(e.cli.LogFormat, c.LogFormat)
	level, _ = logLevel(e.cli.LogLevel, c.LogLevel)
	log = newLogger(e.stderr, format, level)

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	if err := daemon.Run(e.ctx, c, hup, log); err != nil {
		log.Error().Err(err).Str("event", "exit").Msg("stopped on an error")
		return silentError{err}
	}
	return nil
}
