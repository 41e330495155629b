//go:build !linux

package lists

import "unsafe"

// hugePages does nothing where transparent huge pages are not asked for
// with madvise (hugepage_linux.go).
func hugePages(p unsafe.Pointer, size uintptr) {}

// HugePages does nothing either.
func HugePages(p unsafe.Pointer, size uintptr) {}

// hugePageSize is the size hugepage_linux.go hints from.
const hugePageSize = 2 << 20

// hugePagesFrom does nothing either.
func hugePagesFrom(p unsafe.Pointer, size, min uintptr) {}
