package listener

import (
	"unsafe"

	"github.com/tknock/tknock/internal/hugepage"
)

// hugePage is the size of a huge page (amd64, arm64 with 4 KiB pages).
const hugePage = 2 << 20

// largeSlice returns a zeroed slice of n Ts, where T holds no pointers.
// From two huge pages on, the slice starts on a huge page boundary (it
// takes up to one huge page more of address space, never touched) and the
// kernel is asked to back it with huge pages where it can (hugepage.Advise): the
// source stores are read at random, a cache line or two per knock, and
// with 4 KiB pages nearly each of those reads would also miss the TLB.
func largeSlice[T any](n int) []T {
	var z T
	size := n * int(unsafe.Sizeof(z))
	if size < 2*hugePage {
		return make([]T, n)
	}
	buf := make([]byte, size+hugePage)
	off := (hugePage - int(uintptr(unsafe.Pointer(&buf[0]))%hugePage)) % hugePage
	hugepage.Advise(buf[off : off+size])
	return unsafe.Slice((*T)(unsafe.Pointer(&buf[off])), n)
}

// largeBytes is the memory that largeSlice takes for n bytes of slice.
func largeBytes(n int) int {
	if n < 2*hugePage {
		return n
	}
	return n + hugePage
}
