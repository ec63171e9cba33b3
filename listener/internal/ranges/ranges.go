// Package ranges is the knock ports table that the decoder
// (listener) and the kernel filters (listener/capture) share: the knock
// ranges validated and merged per protocol, with a lookup.
package ranges

import (
	"errors"
	"fmt"

	"github.com/tknock/tknock/inet"
)

// Span is a merged, validated port range of one protocol.
type Span struct{ Lo, Hi uint16 }

// Table is the union of the knock ranges, per protocol, as sorted,
// disjoint, non-adjacent spans. It is immutable once built.
type Table struct {
	TCP, UDP []Span
}

// MaxSpans bounds the merged spans of a table, so that the BPF program
// stays far below the kernel's limit of 4096 instructions.
const MaxSpans = 512

// New validates and merges ranges. Invalid entries are left out
// of the table and reported, all of them, in the error; the table of the
// valid entries is returned in every case.
func New(ranges []inet.Range) (*Table, error) {
	valid := make([]inet.Range, 0, len(ranges))
	var errs []error
	for i, r := range ranges {
		switch {
		case r.Lo > r.Hi:
			errs = append(errs, fmt.Errorf("knock range %d (%v): lo > hi", i, r))
		case r.Proto != inet.TCP && r.Proto != inet.UDP:
			errs = append(errs, fmt.Errorf("knock range %d (%v): protocol %v: want tcp or udp", i, r, r.Proto))
		default:
			valid = append(valid, r)
		}
	}
	t := &Table{}
	for _, r := range inet.Merge(valid) {
		if r.Proto == inet.TCP {
			t.TCP = append(t.TCP, Span{r.Lo, r.Hi})
		} else {
			t.UDP = append(t.UDP, Span{r.Lo, r.Hi})
		}
	}
	if n := len(t.TCP) + len(t.UDP); n > MaxSpans {
		errs = append(errs, fmt.Errorf("knock ranges: %d disjoint ranges after merging, at most %d", n, MaxSpans))
	}
	return t, errors.Join(errs...)
}

// Contains reports whether port is a knock port of proto.
func (t *Table) Contains(proto inet.Proto, port uint16) bool {
	var s []Span
	switch proto {
	case inet.TCP:
		s = t.TCP
	case inet.UDP:
		s = t.UDP
	default:
		return false
	}
	// Binary search for the last span with lo <= port.
	lo, hi := 0, len(s)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if s[m].Lo <= port {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo > 0 && port <= s[lo-1].Hi
}
