// Package rawio gives the data path's TCP connections reads and writes
// that the Go scheduler does not count as blocking system calls.
//
// The data ports' sockets are non-blocking: a read or write returns at
// once, with data or EAGAIN, and waiting is done by the runtime's network
// poller. Go still brackets every read and write with entersyscall and
// exitsyscall, and on a busy machine a write to loopback that the kernel
// preempts (it wakes the peer) looks to the runtime's monitor like a
// blocked call: the monitor takes the processor away and starts another
// thread, and it wakes every 20 µs to look again. Measured under the inline
// benchmark, that monitor alone cost 8% of ASE's CPU. Conn issues the same
// read and write system calls as net.TCPConn, raw, and waits through the
// same poller (so deadlines and Close behave exactly as before).
//
// The sockets must stay non-blocking: nothing may call File on them (that
// switches the descriptor to blocking mode, and a raw read would then hold
// its thread and processor until data came). One thing is given up:
// fasthttp writes a response larger than its write buffer (4 KB) with one
// writev only to a *net.TCPConn; through a Conn it makes two writes.
//
// The raw calls are Linux's (where they were measured); on the other
// systems Wrap returns the connection as it is (rawio_other.go).
package rawio
