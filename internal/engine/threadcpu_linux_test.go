package engine

import "syscall"

// threadCPU is the CPU time the calling thread has used (user and system),
// in nanoseconds: unlike the wall clock a benchmark reports, it does not
// count the time the thread waited while other processes had the core.
func threadCPU() (int64, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru); err != nil {
		return 0, false
	}
	return ru.Utime.Nano() + ru.Stime.Nano(), true
}
