package daemon

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/rs/zerolog"

	"github.com/tknock/tknock/listener"
	"github.com/tknock/tknock/totpseq"
)

// replayFileName is the replay record's file in the state directory.
const replayFileName = "replay.jsonl"

// replayLine is one line of the replay file: an accepted sequence. It holds
// no port and no secret.
type replayLine struct {
	User    string `json:"user"`
	Service string `json:"service"`
	Window  uint64 `json:"window"`
	Src     string `json:"src"`
}

// replayState persists the tracker's replay record in the state directory,
// so that a restart (a crash, kill -9, an upgrade) refuses as replays the
// sequences accepted before it (PROTOCOL.md section 3 rule 6).
//
// Every opening is appended, with one write(2), before the firewall opens:
// once the write returned the record survives the process (kill -9 too),
// though not a power loss, as nothing is synced per opening (what that
// costs: BenchmarkReplayStateAdd). The file is rewritten without its
// expired records when it has grown to twice its live records.
//
// A missing, unreadable or partly corrupt file never stops the daemon: it
// is logged and the daemon starts with what it could read (deploy/README.md
// says why it fails open).
//
// Owned by the goroutine that calls Tracker.Knock (emit); the zero value
// and nil (no state directory) persist nothing.
type replayState struct {
	path    string
	f       *os.File
	log     zerolog.Logger
	periods func() map[string]int64 // user -> period in seconds, for expiry
	recs    []replayLine            // written since the last rewrite, and the live ones before
	limit   int                     // rewrite when recs reach it
}

// minCompact is the smallest number of lines at which the file is
// rewritten.
const minCompact = 1024

// openReplayState loads the replay file of dir into tr, rewrites it with
// the records still live at now and opens it for appending. It returns
// the zero replayState (persisting nothing) when dir is "", and logs, not
// returns, every problem with the file.
func openReplayState(dir string, tr *listener.Tracker, periods func() map[string]int64, now time.Time, log zerolog.Logger) *replayState {
	s := &replayState{log: log, periods: periods}
	if dir == "" {
		return s
	}
	s.path = filepath.Join(dir, replayFileName)
	recs, bad, err := readReplayFile(s.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		log.Info().Str("event", "state").Str("path", s.path).Msg("no replay record to restore")
	case err != nil:
		log.Error().Err(err).Str("event", "state_unreadable").Str("path", s.path).
			Str("risk", "sequences accepted shortly before this start may open again from their source").
			Msg("replay record not restored")
	default:
		acc := make([]listener.Accepted, 0, len(recs))
		for _, r := range recs {
			a, err := netip.ParseAddr(r.Src)
			if err != nil {
				bad++
				continue
			}
			acc = append(acc, listener.Accepted{User: r.User, Service: r.Service, Window: r.Window, Src: a})
		}
		n := tr.Restore(acc, now)
		ev := log.Info()
		if bad > 0 {
			ev = log.Warn().Int("unreadable_lines", bad)
		}
		ev.Str("event", "state").Str("path", s.path).Int("restored", n).Int("read", len(recs)).Msg("replay record restored")
	}
	s.recs = recs
	if err := s.rewrite(now); err != nil {
		log.Error().Err(err).Str("event", "state_unwritable").Str("path", s.path).
			Str("risk", "a restart may open again what this run accepts").Msg("replay record not persisted")
	}
	return s
}

// readReplayFile returns the records of the replay file at path and the
// number of lines it could not decode (a torn last line after a crash, a
// damaged file).
func readReplayFile(path string) ([]replayLine, int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, err
	}
	var (
		recs []replayLine
		bad  int
	)
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r replayLine
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil || r.User == "" || r.Service == "" {
			bad++
			continue
		}
		recs = append(recs, r)
	}
	if sc.Err() != nil {
		bad++
	}
	return recs, bad, nil
}

// add persists an opening before it is applied. It returns an error if the
// record could not be written; the opening goes ahead (the caller logs it).
func (s *replayState) add(ev *listener.Event) error {
	if s == nil || s.f == nil {
		if s == nil || s.path == "" {
			return nil
		}
		return errors.New("state: replay file not open")
	}
	r := replayLine{User: ev.User, Service: ev.Service, Window: ev.Window, Src: ev.Src.String()}
	line, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	if _, err := s.f.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("state: append to %s: %w", s.path, err)
	}
	s.recs = append(s.recs, r)
	if len(s.recs) >= s.limit {
		return s.rewrite(ev.Time)
	}
	return nil
}

// rewrite replaces the file with the records still live at now, atomically
// (a new file renamed over the old one), and opens it for appending.
func (s *replayState) rewrite(now time.Time) error {
	periods := s.periods()
	live := s.recs[:0]
	for _, r := range s.recs {
		p, ok := periods[r.User]
		if ok && int64(r.Window)+listener.MaxSkew >= int64(totpseq.Window(now, int(p))) {
			live = append(live, r)
		}
	}
	clear(s.recs[len(live):])
	s.recs = live
	s.limit = max(minCompact, 2*len(live))
	if s.f != nil {
		s.f.Close()
		s.f = nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for _, r := range live {
		if err := enc.Encode(r); err != nil {
			return fmt.Errorf("state: %w", err)
		}
	}
	tmp, err := os.CreateTemp(filepath.Dir(s.path), replayFileName+".*")
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	_, err = tmp.Write(buf.Bytes())
	if err == nil {
		err = tmp.Sync()
	}
	if err == nil {
		err = tmp.Close()
	} else {
		tmp.Close()
	}
	if err == nil {
		err = os.Rename(tmp.Name(), s.path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("state: rewrite %s: %w", s.path, err)
	}
	if d, err := os.Open(filepath.Dir(s.path)); err == nil {
		d.Sync() // the rename itself survives a power loss
		d.Close()
	}
	f, err := os.OpenFile(s.path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	s.f = f
	return nil
}

// close closes the file.
func (s *replayState) close() {
	if s != nil && s.f != nil {
		s.f.Close()
		s.f = nil
	}
}

// periods returns the period of every user in force, by name.
func (d *daemon) periods() map[string]int64 {
	users := *d.users.Load()
	m := make(map[string]int64, len(users))
	for _, u := range users {
		m[u.Name] = int64(u.Params.Period)
	}
	return m
}
