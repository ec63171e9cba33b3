package main

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/totpseq"
)

// FloodPacket describes one packet template of a trafgen configuration:
// a TCP SYN or a UDP datagram from a spoofed source. trafgen sends the
// templates of a configuration round robin; each template keeps its own
// run-time counters.
type FloodPacket struct {
	DstMAC net.HardwareAddr
	Dst    netip.Addr // the server's address; its family decides IPv4 or IPv6
	Proto  inet.Proto // TCP (a SYN) or UDP
	// Src is the source address. With RandomSrcBits > 0, that many of its
	// low bits are random in every packet (at most 32, whole bytes are
	// randomised, so it must be a multiple of 8). With CountSrc, the low 32
	// bits count up from Src's value instead, one per packet, so every
	// packet of a run has a distinct source (IPv6 only: an IPv4 source has
	// no room for a prefix that keeps the sources inside a test range).
	Src           netip.Addr
	RandomSrcBits int
	CountSrc      bool
	// Ports: the destination port is Lo when Lo == Hi, else random in
	// [Lo, Hi] in every packet.
	Ports totpseq.Range
}

// Validate checks that the template can be written.
func (p FloodPacket) Validate() error {
	var errs []error
	if len(p.DstMAC) != 6 {
		errs = append(errs, fmt.Errorf("destination MAC %q: want 6 bytes", p.DstMAC))
	}
	if !p.Dst.IsValid() || !p.Src.IsValid() {
		errs = append(errs, errors.New("source and destination addresses are both required"))
	} else if p.Dst.Is4() != p.Src.Is4() {
		errs = append(errs, fmt.Errorf("source %v and destination %v: different families", p.Src, p.Dst))
	}
	if p.Proto != inet.TCP && p.Proto != inet.UDP {
		errs = append(errs, fmt.Errorf("protocol %d: want tcp or udp", p.Proto))
	}
	if p.Ports.Lo == 0 || p.Ports.Lo > p.Ports.Hi {
		errs = append(errs, fmt.Errorf("port range %v: want 1 <= lo <= hi", p.Ports))
	}
	if p.RandomSrcBits < 0 || p.RandomSrcBits > 32 || p.RandomSrcBits%8 != 0 {
		errs = append(errs, fmt.Errorf("random source bits %d: want 0, 8, 16, 24 or 32", p.RandomSrcBits))
	}
	if p.CountSrc && p.RandomSrcBits > 0 {
		errs = append(errs, errors.New("a source cannot both count and be random"))
	}
	if p.CountSrc && p.Src.Is4() {
		errs = append(errs, errors.New("counting sources needs IPv6"))
	}
	return errors.Join(errs...)
}

// TrafgenConfig writes a trafgen (netsniff-ng 0.6) packet configuration
// with one template per packet. trafgen fills in the checksums of headers
// written with its protocol functions, and recomputes them when a field
// changes at run time.
func TrafgenConfig(pkts []FloodPacket) (string, error) {
	if len(pkts) == 0 {
		return "", errors.New("trafgen config: no packet")
	}
	var b strings.Builder
	for i, p := range pkts {
		if err := p.Validate(); err != nil {
			return "", fmt.Errorf("trafgen config: packet %d: %w", i, err)
		}
		b.WriteString("{\n")
		fmt.Fprintf(&b, "  eth(da=%s),\n", p.DstMAC)
		ip := "ipv4"
		if p.Dst.Is6() {
			ip = "ipv6"
		}
		var src string
		switch {
		case p.CountSrc:
			src = fmt.Sprintf("sa=%s, sa=dinc()", p.Src)
		case p.RandomSrcBits > 0:
			n := p.Src.BitLen() / 8
			src = fmt.Sprintf("sa=%s", p.Src)
			for k := n - p.RandomSrcBits/8; k < n; k++ {
				src += fmt.Sprintf(", sa[%d]=drnd()", k)
			}
		default:
			src = fmt.Sprintf("sa=%s", p.Src)
		}
		if p.Dst.Is4() {
			fmt.Fprintf(&b, "  %s(%s, da=%s, ttl=64),\n", ip, src, p.Dst)
		} else {
			fmt.Fprintf(&b, "  %s(%s, da=%s, hoplimit=64),\n", ip, src, p.Dst)
		}
		dp := fmt.Sprintf("dp=%d", p.Ports.Lo)
		if p.Ports.Hi > p.Ports.Lo {
			dp = fmt.Sprintf("dp=drnd(%d, %d)", p.Ports.Lo, p.Ports.Hi)
		}
		if p.Proto == inet.TCP {
			fmt.Fprintf(&b, "  tcp(sp=drnd(1024, 65535), %s, seq=drnd(), syn, win=64240)\n", dp)
		} else {
			fmt.Fprintf(&b, "  udp(sp=drnd(1024, 65535), %s),\n  \"knock\"\n", dp)
		}
		b.WriteString("}\n")
	}
	return b.String(), nil
}
