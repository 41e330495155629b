//go:build !amd64

package prefetch

import "unsafe"

// Lines does nothing on this architecture (see the package comment).
func Lines(p unsafe.Pointer, mask uint32) {}
