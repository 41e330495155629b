//go:build !linux

package engine

// threadCPU is only measured on Linux (RUSAGE_THREAD).
func threadCPU() (int64, bool) { return 0, false }
