package daemon

import (
	"time"

	"github.com/rs/zerolog"

	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/listener"
	"github.com/tknock/tknock/listener/capture"
)

// filters are the parts in front of the tracker that follow what it
// matches: the eBPF prefilter passes the knocks at the tracker's anchor
// ports (and from the sources seen at one), the decoder and the captures
// the knocks into its knock ranges. The tracker's anchors and ranges reach
// them here and nowhere else: anchors from the tracker's table builder
// (Config.Anchors), ranges at start and after a reload.
type filters struct {
	log  zerolog.Logger
	pf   *capture.Prefilter // nil: the captures have the classic filter
	dec  *listener.Decoder
	feed *capture.Group
}

// anchors hands the anchors of a new anchor table to the prefilter: the
// tracker's Config.Anchors when there is one. Publish writes them to
// memory the kernel shares with the process and has no error short of a
// bug; should one come, the prefilter keeps the anchors it had, knocks at
// the new ones are dropped until the next table, and it is logged as an
// error.
func (f *filters) anchors(a listener.AnchorPorts) {
	if err := f.pf.Publish(a); err != nil {
		f.log.Error().Err(err).Msg("prefilter: anchors not updated")
	}
}

// follow makes the filters follow a reload that is in force: the
// prefilter holds sources for seq_timeout, the decoder and the captures
// take the new ranges. What the kernel refuses is logged; the reload
// stands.
func (f *filters) follow(seqTimeout time.Duration, ranges []inet.Range) {
	if f.pf != nil {
		// Sources are held for at least the longest sequence. A shorter
		// hold takes effect at the next generation; until then sources are
		// held as long as before.
		if err := f.pf.SetHold(seqTimeout); err != nil {
			f.log.Error().Err(err).Msg("reload: prefilter hold not updated")
		}
	}
	f.dec.SetRanges(ranges)
	if err := f.feed.SetRanges(ranges); err != nil {
		// The users are in; the kernel filter may still pass the old
		// ranges only. Rare (the kernel refused a filter it took before).
		f.log.Error().Err(err).Msg("reload: capture filter not updated")
	}
}
