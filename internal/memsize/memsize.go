// Package memsize bounds what the Go runtime's allocator takes for an
// object, a slice grown by append and a map, for the memory estimates of
// listener (EstimateMemory) and internal/daemon. The bounds follow the
// runtime's layout (runtime/sizeclasses.go, runtime/slice.go,
// internal/runtime/maps) without depending on its exact size classes:
// the tests that compare an estimate with the heap check them.
package memsize

import "math/bits"

// Sizes of the Go allocator: objects up to maxSmall bytes take a size
// class, every power of two among them; larger ones take whole pages.
const (
	page     = 8 << 10
	maxSmall = 32 << 10
)

// Alloc is an upper bound of what the allocator takes for an object of n
// bytes; 0 for n <= 0. A small object takes a size class: up to 128
// bytes a multiple of 16 (or 8, 24), above that no class is more than
// about 19 % larger than the class below it, and every power of two is
// one; a large object takes whole pages.
func Alloc(n int) int {
	switch {
	case n <= 0:
		return 0
	case n <= 8:
		return 8
	case n <= 128:
		return (n + 15) / 16 * 16
	case n <= maxSmall:
		return min(1<<bits.Len(uint(n-1)), (n*5/4+15)/16*16)
	}
	return (n + page - 1) / page * page
}

// Slice bounds what a slice of elements of elemSize bytes that grew to n
// elements one append at a time takes (runtime.growslice: the capacity
// doubles up to 256 elements, then grows by about a quarter, and is
// rounded up to the allocation's size).
func Slice(n, elemSize int) int {
	if n <= 0 {
		return 0
	}
	capacity := 2 * n
	if n > 256 {
		capacity = n + (n+3*256)/4
	}
	return Alloc(capacity * elemSize)
}

// Shape of the Go runtime's maps (internal/runtime/maps, Go 1.24 on):
// groups of groupSlots slots and a control word; a table holds at most
// tableSlots slots, at most 7/8 full, and splits in two when it is full,
// so that each of the two is about 7/16 full after a split.
const (
	groupSlots = 8
	tableSlots = 1024
	mapBytes   = 64 // the map's header
	tableBytes = 64 // a table's header
	// perTable is the fewest entries a table holds on average: a table
	// splits when it holds 7/8 of its slots, 896 entries, and the two
	// halves hold them all, so that the tables of a map hold at least 448
	// each on average (all of them right after a wave of splits: a map
	// of random keys fills its tables evenly, and they split together).
	perTable = 448
)

// Map bounds the memory of a map of n entries, keys of keySize bytes and
// values of elemSize bytes, grown one insertion at a time: every table at
// its least fill after a split, and the directory of tables.
func Map(n, keySize, elemSize int) int {
	group := 8 + groupSlots*(keySize+elemSize)
	if n*8 <= tableSlots*7 {
		// One table, doubled each time it was 7/8 full.
		slots := groupSlots
		for slots*7/8 < n {
			slots *= 2
		}
		return mapBytes + tableBytes + Alloc(slots/groupSlots*group) + 8
	}
	tables := (n + perTable - 1) / perTable
	full := tableBytes + Alloc(tableSlots/groupSlots*group)
	// The directory doubles when a table as deep as it splits: at most
	// twice the tables, a pointer each.
	return mapBytes + tables*full + Alloc(2*tables*8)
}
