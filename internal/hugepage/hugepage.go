// Package hugepage asks the kernel to back memory with huge pages. It is
// the one operating-system call of the matching code (listener), kept out
// of it so that listener stays free of Linux-only files.
package hugepage

// Advise asks the kernel to back b with huge pages where it can (on Linux,
// MADV_HUGEPAGE: the transparent huge pages setting "madvise", Debian's
// default, gives them only to memory that asks). Elsewhere it does
// nothing. A refusal only costs speed, so it returns nothing.
func Advise(b []byte) { advise(b) }
