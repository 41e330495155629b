package lists

import (
	"syscall"
	"unsafe"
)

// hugePageSize is the x86-64 and arm64 transparent huge page.
const hugePageSize = 2 << 20

// madvHugePage is MADV_HUGEPAGE, which package syscall does not name.
const madvHugePage = 14

// hugePages asks the kernel to back the whole 2 MiB pages of a big table's
// array with transparent huge pages. A lookup in a table of millions of
// entries misses the cache anyway; with 4 KiB pages it also misses the
// TLB, and the page walk adds further misses. A 2 MiB page keeps the walk
// short: BenchmarkDecide is faster by the figures in the README.
//
// It is a hint: with /sys/kernel/mm/transparent_hugepage/enabled at
// "madvise" (the common default) it turns huge pages on for these arrays
// only; at "never" it does nothing, at "always" they have them already.
// The array is Go heap memory, freshly mapped for an allocation this size
// and not yet touched, so the pages are huge from their first fault; the
// garbage collector frees it as any other. Only arrays of several huge
// pages are hinted, so that a small table never holds a whole one.
func hugePages(p unsafe.Pointer, size uintptr) { hugePagesFrom(p, size, 4*hugePageSize) }

// HugePages is hugePages for other packages' big arrays read at random on
// the data path (behavioural detection's tracked identities).
func HugePages(p unsafe.Pointer, size uintptr) { hugePages(p, size) }

// hugePagesFrom is hugePages for arrays of at least min bytes. A table's
// filter (flat.go) is hinted from one huge page up: it is read all over
// on every decision, and is too small to hold a page it does not fill.
func hugePagesFrom(p unsafe.Pointer, size, min uintptr) {
	if size < min {
		return
	}
	start := (uintptr(p) + hugePageSize - 1) &^ (hugePageSize - 1)
	end := (uintptr(p) + size) &^ (hugePageSize - 1)
	if end > start {
		// Advice only: an error (an old kernel, THP compiled out)
		// leaves the array as it was.
		_, _, _ = syscall.Syscall(syscall.SYS_MADVISE, start, end-start, madvHugePage)
	}
}
