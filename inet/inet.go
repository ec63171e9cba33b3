// Package inet is tknock's vocabulary for what a knock is sent to (the
// names follow nftables' inet_proto and inet_service): the
// transport protocol (Proto), a range of ports of one protocol (Range), and
// the union of ranges (Merge, Without). totpseq, listener and nft share it.
// It imports only the standard library and holds no state.
package inet

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
)

// Proto is what a knock is: a TCP SYN or a UDP datagram. The values are the
// IP protocol numbers (IPPROTO_TCP and IPPROTO_UDP on every OS).
type Proto uint8

// Knock protocols.
const (
	TCP Proto = 6
	UDP Proto = 17
)

// String returns "tcp", "udp" or "proto(N)".
func (p Proto) String() string {
	switch p {
	case TCP:
		return "tcp"
	case UDP:
		return "udp"
	}
	return "proto(" + strconv.Itoa(int(p)) + ")"
}

// ParseProto parses "tcp" or "udp".
func ParseProto(s string) (Proto, error) {
	switch s {
	case "tcp":
		return TCP, nil
	case "udp":
		return UDP, nil
	}
	return 0, fmt.Errorf("%q: want tcp or udp", s)
}

// Range is the ports Lo..Hi, both included, of one protocol. The zero value
// is port 0 of protocol 0; Range checks nothing: its users validate what
// they take (nft wants Lo >= 1, totpseq Lo < Hi).
type Range struct {
	Proto  Proto
	Lo, Hi uint16
}

// String returns "tcp/lo-hi", or "tcp/lo" when the range is one port.
func (r Range) String() string {
	if r.Lo == r.Hi {
		return r.Proto.String() + "/" + strconv.Itoa(int(r.Lo))
	}
	return fmt.Sprintf("%v/%d-%d", r.Proto, r.Lo, r.Hi)
}

// Contains reports whether port of proto is inside r.
func (r Range) Contains(proto Proto, port uint16) bool {
	return proto == r.Proto && r.Lo <= port && port <= r.Hi
}

// Compare orders ranges by protocol, then by Lo, then by Hi.
func Compare(a, b Range) int {
	return cmp.Or(cmp.Compare(a.Proto, b.Proto), cmp.Compare(a.Lo, b.Lo), cmp.Compare(a.Hi, b.Hi))
}

// Merge returns the union of rs as few ranges as possible: sorted by
// Compare, disjoint and not adjacent within a protocol. Ranges with Lo > Hi
// are empty and left out. rs is not modified; the result is a new slice, nil
// when it is empty.
func Merge(rs []Range) []Range {
	sorted := make([]Range, 0, len(rs))
	for _, r := range rs {
		if r.Lo <= r.Hi {
			sorted = append(sorted, r)
		}
	}
	slices.SortFunc(sorted, Compare)
	var out []Range
	for _, r := range sorted {
		if n := len(out); n > 0 && out[n-1].Proto == r.Proto && uint32(r.Lo) <= uint32(out[n-1].Hi)+1 {
			out[n-1].Hi = max(out[n-1].Hi, r.Hi)
			continue
		}
		out = append(out, r)
	}
	return out
}

// Without returns Merge(rs) with every port in excluded taken out of the
// ranges of every protocol, splitting a range where a port in its middle
// is excluded.
func Without(rs []Range, excluded []uint16) []Range {
	out := Merge(rs)
	if len(excluded) == 0 {
		return out
	}
	ex := slices.Clone(excluded)
	slices.Sort(ex)
	ex = slices.Compact(ex)
	var res []Range
	for _, r := range out {
		lo := uint32(r.Lo)
		for _, x := range ex {
			if uint32(x) < lo || x > r.Hi {
				continue
			}
			if uint32(x) > lo {
				res = append(res, Range{r.Proto, uint16(lo), x - 1})
			}
			lo = uint32(x) + 1
		}
		if lo <= uint32(r.Hi) {
			res = append(res, Range{r.Proto, uint16(lo), r.Hi})
		}
	}
	return res
}
