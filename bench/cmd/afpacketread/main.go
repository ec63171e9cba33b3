//go:build cgobench && linux

// Command afpacketread reads knock frames from an interface with
// github.com/google/gopacket/afpacket, gopacket's cgo TPACKET_V3 ring, the
// reference reader of the benchmarks' capture target: the same ring
// geometry, block timeout and BPF program as tknockd's capture, each frame
// decoded by the same decoder. It runs until SIGINT or SIGTERM, then
// prints what it read. knockbench runs it under the unlimited flood, as it
// runs tcpdump. It needs cgo, so it only builds with the cgobench tag; the
// shipped binaries never import afpacket.
//
//	afpacketread -i IFACE -tcp LO-HI
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/gopacket/afpacket"

	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/listener"
	"github.com/tknock/tknock/listener/capture"
)

func main() {
	iface := flag.String("i", "", "interface to read")
	tcp := flag.String("tcp", "", "TCP knock range LO-HI")
	flag.Parse()
	if err := run(*iface, *tcp); err != nil {
		fmt.Fprintln(os.Stderr, "afpacketread:", err)
		os.Exit(1)
	}
}

func run(iface, tcp string) error {
	if iface == "" {
		return errors.New("-i IFACE is required")
	}
	lo, hi, ok := strings.Cut(tcp, "-")
	l, err1 := strconv.ParseUint(lo, 10, 16)
	h, err2 := strconv.ParseUint(hi, 10, 16)
	if !ok || err1 != nil || err2 != nil {
		return fmt.Errorf("-tcp %q: want LO-HI, two ports", tcp)
	}
	ranges := []inet.Range{{Proto: inet.TCP, Lo: uint16(l), Hi: uint16(h)}}
	prog, err := capture.Filter(ranges, listener.LinkEthernet)
	if err != nil {
		return err
	}
	tp, err := afpacket.NewTPacket(
		afpacket.OptInterface(iface),
		afpacket.OptTPacketVersion(afpacket.TPacketVersion3),
		afpacket.OptFrameSize(2048),
		afpacket.OptBlockSize(capture.DefaultBlockSize),
		afpacket.OptNumBlocks(capture.DefaultNumBlocks),
		afpacket.OptBlockTimeout(capture.DefaultBlockTimeout),
		afpacket.OptPollTimeout(50*time.Millisecond),
	)
	if err != nil {
		return fmt.Errorf("open %s: %w", iface, err)
	}
	defer tp.Close()
	if err := tp.SetBPF(prog); err != nil {
		return fmt.Errorf("filter: %w", err)
	}
	var stop atomic.Bool
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() { <-sig; stop.Store(true) }()
	fmt.Println("listening")

	dec := listener.NewDecoder(ranges)
	var frames, knocks uint64
	for !stop.Load() {
		data, ci, err := tp.ZeroCopyReadPacketData()
		if errors.Is(err, afpacket.ErrTimeout) {
			continue
		}
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
		frames++
		if _, ok := dec.Decode(listener.Frame{Data: data, Time: ci.Timestamp, Link: listener.LinkEthernet, Ifindex: ci.InterfaceIndex}); ok {
			knocks++
		}
	}
	_, st, err := tp.SocketStats()
	if err != nil {
		return err
	}
	fmt.Printf("frames %d knocks %d drops %d\n", frames, knocks, st.Drops())
	return nil
}
