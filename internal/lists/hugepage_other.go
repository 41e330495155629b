//go:build !linux

package lists

import "unsafe"

// hugePages does nothing where transparent huge pages are not asked for
// with madvise (hugepage_linux.go).
func hugePages(p unsafe.Pointer, size uintptr) {}
