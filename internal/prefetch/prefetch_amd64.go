package prefetch

import "unsafe"

// Lines prefetches the 64-byte cache lines of p+64*i for every bit i set
// in mask (lines 0 to 31 from p).
//
//go:noescape
func Lines(p unsafe.Pointer, mask uint32)
