package main

import (
	"fmt"
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

// logLevel parses a --log-level value; "" means def.
func logLevel(s string, def zerolog.Level) (zerolog.Level, error) {
	switch s {
	case "":
		return def, nil
	case "debug", "info", "warn", "error":
		return zerolog.ParseLevel(s)
	}
	return def, fmt.Errorf("--log-level %q: want debug, info, warn or error", s)
}

// logFormat checks a --log-format value; "" means def.
func logFormat(s, def string) (string, error) {
	switch s {
	case "":
		return def, nil
	case "auto", "json", "console":
		return s, nil
	}
	return def, fmt.Errorf("--log-format %q: want json, console or auto", s)
}
