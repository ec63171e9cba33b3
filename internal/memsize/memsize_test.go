package memsize

import (
	"runtime"
	"testing"
	"unsafe"

	"github.com/tknock/tknock/internal/testkit"
)

// TestMap: maps grown one insertion at a time take at most what Map says,
// and at least 40 % of it: Map bounds the map right after its tables
// split, when they are least full.
func TestMap(t *testing.T) {
	type key [7]uint64 // 56 bytes, as the replay record's
	// 256*896+1: the tables of a map of random uint64 keys have just split
	// in a wave (256 full tables of 1024 slots became 512).
	for _, n := range []int{100, 1000, 5000, 65536, 200_000, 256*896 + 1} {
		base := testkit.HeapAlloc()
		small := make(map[uint64]uint64)
		for i := range n {
			small[uint64(i)*0x9e3779b97f4a7c15] = 1
		}
		got := testkit.HeapAlloc() - base
		check(t, "map[uint64]uint64", n, got, Map(n, 8, 8))
		runtime.KeepAlive(small)

		base = testkit.HeapAlloc()
		big := make(map[key]int64)
		for i := range n {
			big[key{uint64(i)}] = 1
		}
		got = testkit.HeapAlloc() - base
		check(t, "map[56 bytes]int64", n, got, Map(n, int(unsafe.Sizeof(key{})), 8))
		runtime.KeepAlive(big)
	}
}

func check(t *testing.T, what string, n, got, est int) {
	t.Helper()
	t.Logf("%s of %d: %d bytes, estimated %d (%.2fx)", what, n, got, est, float64(est)/float64(max(1, got)))
	if got > est+16<<10 || est > 5*got/2 {
		t.Errorf("%s of %d entries: the heap grew by %d bytes, Map says %d: want at least that and at most 2.5 times it", what, n, got, est)
	}
}

// TestSlice: a slice appended to one element at a time never takes more
// than Slice says, and no object more than Alloc says.
func TestSlice(t *testing.T) {
	for _, size := range []int{1, 8, 24, 56, 168} {
		var b []byte
		for n := 1; n <= 1<<18/size; n++ {
			b = append(b, make([]byte, size)...)
			if c := cap(b); c > Slice(n, size) {
				t.Fatalf("%d elements of %d bytes: %d bytes, Slice says at most %d", n, size, c, Slice(n, size))
			}
		}
	}
	for n := 0; n < 70_000; n += 1 + n/512 {
		// append rounds the capacity up to the size of the allocation.
		if c := cap(append([]byte(nil), make([]byte, n)...)); c > Alloc(n) || Alloc(n) < n {
			t.Fatalf("%d bytes appended to nothing: capacity %d, Alloc says %d", n, c, Alloc(n))
		}
	}
}
