//go:build linux

// Package evloop is the event loop under the inline data path: one epoll
// instance per loop, run by one goroutine locked to its thread, over
// non-blocking sockets read and written with raw system calls. It is how
// nginx serves a connection (one worker owns it from accept to close) and
// what lets the data path spend about as much CPU per request as nginx
// does; Go's own network poller costs a goroutine switch and poller
// bookkeeping around every wait (see the README).
//
// Sockets are registered edge-triggered for reading and writing at once,
// so a loop never changes a registration: a handler learns from each
// event which directions became ready and keeps track itself.
package evloop

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// Handler receives one socket's events, on the loop's goroutine.
type Handler interface {
	Event(events uint32)
}

// Event bits.
const (
	In    = syscall.EPOLLIN
	Out   = syscall.EPOLLOUT
	Hup   = syscall.EPOLLHUP | syscall.EPOLLRDHUP
	Err   = syscall.EPOLLERR
	onEdg = 1 << 31 // EPOLLET
)

// Loop is one event loop.
type Loop struct {
	ep       int
	handlers []Handler // by descriptor
	// Now is the time the current batch of events arrived, in Unix
	// nanoseconds: one clock reading serves the whole batch.
	Now  int64
	stop atomic.Bool
	done chan struct{}
	// Idle, if set, tells whether the loop has nothing to serve (then it
	// waits as an ordinary blocking system call at once; see Run).
	Idle func() bool
	// OnPanic is told about a handler's panic (with the handler, possibly
	// nil); it should log it and close what the handler owned.
	OnPanic func(h Handler, v any)

	due       int64 // when tick is due (Unix ns); 0: nothing is (see At)
	lastEvent int64 // when the last events came (see Run)

	efd      int // eventfd: wakes the loop for posted work
	mu       sync.Mutex
	posted   []func()
	finished bool // Run has returned: nothing posted would run
}

// New makes a loop.
func New() (*Loop, error) {
	ep, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	efd, _, e := syscall.RawSyscall(syscall.SYS_EVENTFD2, 0, syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if e != 0 {
		syscall.Close(ep)
		return nil, fmt.Errorf("eventfd2: %w", e)
	}
	l := &Loop{ep: ep, efd: int(efd), done: make(chan struct{}), Now: time.Now().UnixNano()}
	if err := l.Add(l.efd, waker{l}); err != nil {
		syscall.Close(ep)
		syscall.Close(l.efd)
		return nil, err
	}
	return l, nil
}

// Post has fn run on the loop's goroutine, soon; it may be called from
// any goroutine. It reports false, and fn will not run, when the loop has
// already finished (the caller must then undo what fn was to take over).
func (l *Loop) Post(fn func()) bool {
	l.mu.Lock()
	if l.finished {
		l.mu.Unlock()
		return false
	}
	l.posted = append(l.posted, fn)
	l.mu.Unlock()
	one := [8]byte{1}
	Write(l.efd, one[:])
	return true
}

// waker runs what was posted when the eventfd fires.
type waker struct{ l *Loop }

func (w waker) Event(uint32) { w.l.runPosted(false) }

// runPosted runs what was posted; with last, it also closes the queue
// (Post refuses from then on), so nothing posted is ever lost.
func (l *Loop) runPosted(last bool) {
	var b [8]byte
	Read(l.efd, b[:]) // resets the counter
	l.mu.Lock()
	fns := l.posted
	l.posted = nil
	l.finished = last
	l.mu.Unlock()
	for _, fn := range fns {
		fn()
	}
}

// Add registers fd (non-blocking) with h, for reading and writing,
// edge-triggered.
func (l *Loop) Add(fd int, h Handler) error {
	for fd >= len(l.handlers) {
		l.handlers = append(l.handlers, nil)
	}
	l.handlers[fd] = h
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLOUT | syscall.EPOLLRDHUP | onEdg, Fd: int32(fd)}
	if err := syscall.EpollCtl(l.ep, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
		l.handlers[fd] = nil
		return err
	}
	return nil
}

// AddListener registers a listening socket, level-triggered and
// exclusive: a loop accepts one connection per event, and what is left is
// offered again, to whichever loop waits first.
func (l *Loop) AddListener(fd int, h Handler) error {
	for fd >= len(l.handlers) {
		l.handlers = append(l.handlers, nil)
	}
	l.handlers[fd] = h
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | 1<<28 /* EPOLLEXCLUSIVE */, Fd: int32(fd)}
	return syscall.EpollCtl(l.ep, syscall.EPOLL_CTL_ADD, fd, &ev)
}

// Close closes fd and forgets it.
func (l *Loop) Close(fd int) {
	if fd < len(l.handlers) {
		l.handlers[fd] = nil
	}
	syscall.Close(fd)
}

// Detach stops watching fd without closing it.
func (l *Loop) Detach(fd int) {
	if fd < len(l.handlers) {
		l.handlers[fd] = nil
	}
	syscall.EpollCtl(l.ep, syscall.EPOLL_CTL_DEL, fd, nil)
}

// quiet is how long a loop with connections but no events keeps waiting
// as a raw call before it waits as one the scheduler knows about.
const quiet = 100 * time.Millisecond

// At has Run call tick at t (Unix ns) or soon after; 0 asks for nothing.
// Only the loop's goroutine calls it (a handler, posted work, tick).
// The earliest time asked for stands: a tick that finds nothing due yet
// returns the next time something will be.
func (l *Loop) At(t int64) {
	if t != 0 && (l.due == 0 || t < l.due) {
		l.due = t
	}
}

// Run serves events until Stop. tick runs on the loop's goroutine when a
// time asked for with At has come, and returns the next such time (0:
// none): the loop has no timer of its own, and one with nothing due
// sleeps until an event. Run locks the goroutine to its thread: the
// loop's sockets, buffers and caches stay on one core's thread, as an
// nginx worker's do.
func (l *Loop) Run(tick func(now int64) (next int64)) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer close(l.done)
	evs := make([]syscall.EpollEvent, 256)
	l.lastEvent = l.Now
	for !l.stop.Load() {
		ms := -1 // until an event
		if l.due != 0 {
			ms = int(min(max(l.due-l.Now+int64(time.Millisecond)-1, 0)/int64(time.Millisecond), math.MaxInt32))
		}
		// The wait is a raw system call while traffic flows: the loop
		// keeps its processor while it waits, as an nginx worker keeps
		// its core. A wait the scheduler knew about would hand the
		// processor back after 20 µs, and every wake-up would have to
		// take one again; measured under the inline benchmark, that and
		// the monitor thread it kept busy cost about 10% of the CPU per
		// request. The runtime can still stop the loop when it must
		// (garbage collection, fairness after 10 ms): its preemption
		// signal interrupts the wait. The program needs one processor
		// more than it has loops (see proxy.Loops).
		//
		// With nothing to serve, or no event for a while, the loop waits
		// as a system call the scheduler knows about instead, so an idle
		// loop holds no processor and keeps no monitor awake: it wakes
		// for an event, a Post or the next time due, and for nothing else.
		var n int
		if (l.Idle != nil && l.Idle()) || l.Now-l.lastEvent >= int64(quiet) {
			var err error
			if n, err = syscall.EpollWait(l.ep, evs, ms); err != nil && !errors.Is(err, syscall.EINTR) {
				panic(fmt.Sprintf("epoll_wait: %v", err))
			}
		} else {
			if q := int(quiet / time.Millisecond); ms < 0 || ms > q {
				ms = q
			}
			n = poll(l.ep, evs, ms)
		}
		l.Now = time.Now().UnixNano()
		if n > 0 {
			l.lastEvent = l.Now
		}
		for i := 0; i < n; {
			i = l.dispatch(evs[i:n], i)
		}
		if l.due != 0 && l.Now >= l.due {
			l.due = 0
			l.At(tick(l.Now))
		}
	}
	l.runPosted(true) // work posted meanwhile still runs (and sees Stopping)
}

// Release closes the loop's own descriptors, once it has stopped (Done)
// or if it never ran.
func (l *Loop) Release() {
	syscall.Close(l.ep)
	syscall.Close(l.efd)
}

// Stopping reports whether Stop was called.
func (l *Loop) Stopping() bool { return l.stop.Load() }

// dispatch hands events to their handlers and returns the index after the
// last one handled. A handler that panics does not take the loop (and
// every connection on it) down: OnPanic is told, and the loop goes on with
// the next event.
func (l *Loop) dispatch(evs []syscall.EpollEvent, base int) (next int) {
	next = base
	defer func() {
		if v := recover(); v != nil {
			var h Handler
			if fd := int(evs[next-base].Fd); fd < len(l.handlers) {
				h = l.handlers[fd]
			}
			next++
			if l.OnPanic != nil {
				l.OnPanic(h, v)
			}
		}
	}()
	for i := range evs {
		next = base + i
		fd := int(evs[i].Fd)
		if fd < len(l.handlers) {
			if h := l.handlers[fd]; h != nil {
				h.Event(evs[i].Events)
			}
		}
	}
	return base + len(evs)
}

// poll waits for events, up to ms milliseconds, as a raw call.
func poll(ep int, evs []syscall.EpollEvent, ms int) int {
	n, _, e := syscall.RawSyscall6(syscall.SYS_EPOLL_PWAIT, uintptr(ep), uintptr(unsafe.Pointer(&evs[0])), uintptr(len(evs)), uintptr(ms), 0, 0)
	if e != 0 {
		if e != syscall.EINTR {
			panic(fmt.Sprintf("epoll_pwait: %v", e))
		}
		return 0
	}
	return int(n)
}

// Stop makes Run return.
func (l *Loop) Stop() {
	l.stop.Store(true)
	l.Post(func() {}) // wakes a loop waiting without a tick
}

// Done is closed when Run has returned.
func (l *Loop) Done() <-chan struct{} { return l.done }

// Read reads into b with a raw system call: n > 0 bytes, n == 0 at the end
// of the stream, or an errno (EAGAIN when there is nothing to read).
func Read(fd int, b []byte) (int, syscall.Errno) {
	if len(b) == 0 {
		return 0, syscall.ENOBUFS
	}
	n, _, e := syscall.RawSyscall(syscall.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	if e != 0 {
		return 0, e
	}
	return int(n), 0
}

// Write writes b with a raw system call.
func Write(fd int, b []byte) (int, syscall.Errno) {
	if len(b) == 0 {
		return 0, 0
	}
	n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	if e != 0 {
		return 0, e
	}
	return int(n), 0
}

// Accept takes one pending connection from a listening socket: its
// descriptor (non-blocking, TCP_NODELAY) and peer address.
func Accept(ln int) (int, netip.Addr, error) {
	fd, sa, err := syscall.Accept4(ln, syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC)
	if err != nil {
		return -1, netip.Addr{}, err
	}
	syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
	return fd, sockaddrIP(sa), nil
}

func sockaddrIP(sa syscall.Sockaddr) netip.Addr {
	switch a := sa.(type) {
	case *syscall.SockaddrInet4:
		return netip.AddrFrom4(a.Addr)
	case *syscall.SockaddrInet6:
		return netip.AddrFrom16(a.Addr).Unmap()
	}
	return netip.Addr{}
}

// Dial starts a non-blocking connection to addr; it completes (or fails)
// when the socket becomes writable: see ConnectError.
func Dial(addr netip.AddrPort) (int, error) {
	family := syscall.AF_INET
	var sa syscall.Sockaddr
	if a := addr.Addr().Unmap(); a.Is4() {
		sa = &syscall.SockaddrInet4{Port: int(addr.Port()), Addr: a.As4()}
	} else {
		family = syscall.AF_INET6
		sa = &syscall.SockaddrInet6{Port: int(addr.Port()), Addr: a.As16()}
	}
	fd, err := syscall.Socket(family, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
	if err := syscall.Connect(fd, sa); err != nil && !errors.Is(err, syscall.EINPROGRESS) {
		syscall.Close(fd)
		return -1, err
	}
	return fd, nil
}

// ConnectError returns how a non-blocking connect ended (nil: connected).
func ConnectError(fd int) error {
	v, err := syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_ERROR)
	if err != nil {
		return err
	}
	if v != 0 {
		return syscall.Errno(v)
	}
	return nil
}

// ListenerFD returns a non-blocking duplicate of ln's socket for the
// loops; ln can then be closed. Every loop may watch the one socket (with
// EPOLLEXCLUSIVE, so a new connection wakes one loop, not all); which
// loop then serves a connection is the caller's choice (see Post).
// SO_REUSEPORT would spread connections over per-loop sockets but would
// also let a second process of the same user bind the port unnoticed.
func ListenerFD(ln *net.TCPListener) (int, error) {
	rc, err := ln.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	cerr := rc.Control(func(s uintptr) { fd, err = syscall.Dup(int(s)) })
	if cerr != nil {
		return -1, cerr
	}
	if err != nil {
		return -1, err
	}
	syscall.CloseOnExec(fd)
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return -1, err
	}
	return fd, nil
}
