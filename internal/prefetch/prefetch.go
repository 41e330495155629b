// Package prefetch asks the CPU to start loading memory the caller is
// about to read, so that several cache misses overlap instead of waiting
// one after another. A data path that looks a request's identities up in
// several big tables (the deny lists, behavioural detection's trackers)
// first prefetches every line it will touch, then reads them: the misses
// cost about one memory latency together instead of one each.
//
// A prefetch is a hint: it never faults (any address may be given), has
// no effect a program can observe but speed, and is not a memory access
// for the Go memory model or the race detector. On amd64 it is
// PREFETCHT0; on other architectures it does nothing.
package prefetch
