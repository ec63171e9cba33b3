package listener

import "golang.org/x/sys/unix"

// adviseHuge asks the kernel to back b with huge pages (MADV_HUGEPAGE: the
// transparent huge pages setting "madvise", Debian's default, gives them
// only to memory that asks). A refusal only costs speed.
func adviseHuge(b []byte) { _ = unix.Madvise(b, unix.MADV_HUGEPAGE) }
