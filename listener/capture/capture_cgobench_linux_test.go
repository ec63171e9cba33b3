//go:build cgobench

// The side-by-side benchmark with gopacket's cgo TPACKET_V3 ring. It needs
// cgo (CGO_ENABLED=1 and a C compiler), so it only builds with
// "go test -tags cgobench"; the shipped binaries never import afpacket.

package capture

import (
	"errors"
	"os"
	"testing"
	"time"

	"github.com/google/gopacket/afpacket"
	"github.com/tknock/tknock/listener"
)

// BenchmarkAfpacketFlood is BenchmarkCaptureFlood with
// github.com/google/gopacket/afpacket reading instead of Capture: the same
// floods, ring geometry, block timeout and BPF program, frames read with
// ZeroCopyReadPacketData (no copy) and decoded by the same listener.Decoder.
func BenchmarkAfpacketFlood(b *testing.B) {
	for i, fl := range floods {
		b.Run(fl.name, func(b *testing.B) {
			tb, conf := newFloodBed(b, i)
			prog, err := Filter(sysRanges, listener.LinkEthernet)
			must(b, err)
			var last floodResult
			for b.Loop() {
				var tp *afpacket.TPacket
				must(b, tb.srv.Do(func() error {
					var err error
					tp, err = afpacket.NewTPacket(
						afpacket.OptInterface(tb.srvIf),
						afpacket.OptTPacketVersion(afpacket.TPacketVersion3),
						afpacket.OptFrameSize(2048),
						afpacket.OptBlockSize(DefaultBlockSize),
						afpacket.OptNumBlocks(DefaultNumBlocks),
						afpacket.OptBlockTimeout(DefaultBlockTimeout),
						afpacket.OptPollTimeout(50*time.Millisecond), // its Close does not unblock a read
					)
					if err != nil {
						return err
					}
					return tp.SetBPF(prog)
				}))
				// afpacket binds before it attaches the filter, and its
				// counters add up: count from here.
				_, s0, err := tp.SocketStats()
				must(b, err)
				res := runFlood(b, tb, conf, floodReader{
					read: func() (listener.Frame, error) {
						data, ci, err := tp.ZeroCopyReadPacketData()
						if errors.Is(err, afpacket.ErrTimeout) {
							return listener.Frame{}, os.ErrDeadlineExceeded
						}
						return listener.Frame{Data: data, Time: ci.Timestamp, Link: listener.LinkEthernet, Ifindex: ci.InterfaceIndex}, err
					},
					interrupt: func() {},
					stats: func() (uint64, uint64) {
						_, s1, err := tp.SocketStats()
						if err != nil {
							b.Error(err)
						}
						return uint64(s1.Packets() - s0.Packets()), uint64(s1.Drops() - s0.Drops())
					},
					close: tp.Close,
				})
				res.report(b)
				last = res
			}
			if !fl.matching && last.read != 0 {
				b.Errorf("%d frames of a non-matching flood reached user space", last.read)
			}
		})
	}
}
