package nft

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/google/nftables"
)

// BenchmarkAllow measures one Allow (one element, one batch of add, delete,
// add, and the kernel's ack) in a fresh namespace.
func BenchmarkAllow(b *testing.B) {
	b.Run("new", func(b *testing.B) {
		tb := open(b, newNS(b), testConfig)
		ensure(b, tb)
		i := 0
		for b.Loop() {
			i++
			src := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 12: byte(i >> 24), 13: byte(i >> 16), 14: byte(i >> 8), 15: byte(i)})
			if err := tb.Allow(src, ssh, time.Minute); err != nil {
				b.Fatal(err)
			}
		}
	})
	// One grant after a quiet spell, as a knock daemon makes them: the
	// time per op is what a lone opening costs (caches cold, CPUs idle).
	b.Run("idle", func(b *testing.B) {
		tb := open(b, newNS(b), testConfig)
		ensure(b, tb)
		i := 0
		for b.Loop() {
			b.StopTimer()
			time.Sleep(20 * time.Millisecond)
			i++
			src := netip.AddrFrom4([4]byte{198, 51, byte(i >> 8), byte(i)})
			b.StartTimer()
			if err := tb.Allow(src, ssh, time.Minute); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("refresh", func(b *testing.B) {
		tb := open(b, newNS(b), testConfig)
		ensure(b, tb)
		src := netip.MustParseAddr("192.0.2.7")
		for b.Loop() {
			if err := tb.Allow(src, ssh, time.Minute); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkApply measures rebuilding the table, empty and with live grants
// to carry over (a daemon restart).
func BenchmarkApply(b *testing.B) {
	for _, n := range []int{0, 1000} {
		b.Run(fmt.Sprintf("grants=%d", n), func(b *testing.B) {
			tb := open(b, newNS(b), testConfig)
			ensure(b, tb)
			for i := range n {
				src := netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
				if err := tb.Allow(src, ssh, time.Hour); err != nil {
					b.Fatal(err)
				}
			}
			for b.Loop() {
				if err := tb.Apply(tb.cfg); err != nil {
					b.Fatal(err)
				}
			}
			if got := len(grants(b, tb)); got != n {
				b.Errorf("%d grants after the Ensures, want %d", got, n)
			}
		})
	}
}

// BenchmarkHeal measures, per op, how long the protected ports stay open
// after a `flush ruleset` (sent over netlink by another connection): from
// the moment the kernel has committed the flush to the moment the table is
// back, rebuilt by Watch with its live grants (polled every 100µs by
// listing the tables), for 0 and 1 000 grants to restore.
func BenchmarkHeal(b *testing.B) {
	for _, n := range []int{0, 1000} {
		b.Run(fmt.Sprintf("grants=%d", n), func(b *testing.B) {
			ns := newNS(b)
			tb := open(b, ns, testConfig)
			ensure(b, tb)
			for i := range n {
				allow(b, tb, netip.AddrFrom4([4]byte{198, 51, byte(i >> 8), byte(i)}).String(), ssh, time.Hour)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- tb.Watch(ctx) }()
			defer func() {
				cancel()
				if err := <-done; err != nil {
					b.Error(err)
				}
			}()
			c, err := nftables.New(nftables.WithNetNSFd(ns.Fd(b)))
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				// A quiet spell: the monitor has read the notifications of
				// the previous rebuild, as between two real flushes (with
				// 1 000 grants, that takes the monitor tens of ms: flushes
				// back to back heal more slowly).
				b.StopTimer()
				time.Sleep(200 * time.Millisecond)
				c.FlushRuleset()
				if err := c.Flush(); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				for {
					tables, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
					if err != nil {
						b.Fatal(err)
					}
					if len(tables) == 1 {
						break
					}
					time.Sleep(100 * time.Microsecond)
				}
			}
			b.StopTimer()
			if got := len(grants(b, tb)); got != n {
				b.Errorf("%d grants after the heals, want %d", got, n)
			}
		})
	}
}
