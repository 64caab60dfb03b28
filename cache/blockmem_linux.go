//go:build linux

package cache

import (
	"syscall"
	"unsafe"
)

// hugePage is the size of an x86-64/arm64 transparent huge page.
const hugePage = 2 << 20

// newBlockBuf allocates a block's buffer and asks the kernel to back the
// memory around it with transparent huge pages (madvise(MADV_HUGEPAGE);
// most systems set THP to "madvise", and Go's runtime no longer asks for
// them itself). A fresh block is first touched by the socket read that
// fills it: with 4 KiB pages a 1 GiB sequential read costs 262,144 page
// faults, which perf showed as a third of ampfs's CPU time (more in a
// virtual machine, where each fault is dearer); a huge page is one fault
// per 2 MiB. The advice is only a hint: the range is rounded out to huge
// page boundaries, so it may cover neighbouring heap memory too, which is
// harmless, and a kernel without THP ignores it (the error is not
// interesting: the block works either way).
func newBlockBuf(n int64) []byte {
	b := make([]byte, n)
	if n >= hugePage/2 {
		start := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
		lo := start &^ (hugePage - 1)
		hi := (start + uintptr(n) + hugePage - 1) &^ (hugePage - 1)
		_, _, _ = syscall.Syscall(syscall.SYS_MADVISE, lo, hi-lo, 14 /* MADV_HUGEPAGE */)
	}
	return b
}
