//go:build linux && !ase_portable

package rawio

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"unsafe"
)

// maxRW caps one read or write, as internal/poll does.
const maxRW = 1 << 30

// Conn is a *net.TCPConn whose Read and Write are raw system calls.
type Conn struct {
	*net.TCPConn
	rc syscall.RawConn

	rmu   sync.Mutex // one Read at a time uses rbuf/rn/rerr
	rbuf  []byte
	rn    int
	rerr  syscall.Errno
	rfunc func(uintptr) bool // c.read, bound once so a Read allocates nothing

	wmu   sync.Mutex
	wbuf  []byte
	wn    int
	werr  syscall.Errno
	wfunc func(uintptr) bool
}

// Wrap returns c with raw reads and writes when it is a TCP connection,
// else c itself.
func Wrap(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	w := &Conn{TCPConn: tc, rc: rc}
	w.rfunc, w.wfunc = w.read, w.write
	return w
}

func (c *Conn) read(fd uintptr) bool {
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(unsafe.SliceData(c.rbuf))), uintptr(len(c.rbuf)))
		switch e {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		}
		if e != 0 {
			n = 0 // the call's result is -1 on error
		}
		c.rn, c.rerr = int(n), e
		return true
	}
}

func (c *Conn) write(fd uintptr) bool {
	for c.wn < len(c.wbuf) {
		b := c.wbuf[c.wn:]
		if len(b) > maxRW {
			b = b[:maxRW]
		}
		n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)))
		switch {
		case e == 0 && n == 0:
			c.werr = syscall.EIO // a socket that takes nothing and reports no error: give up, as internal/poll does
			return true
		case e == 0:
			c.wn += int(n)
		case e == syscall.EINTR:
		case e == syscall.EAGAIN:
			return false
		default:
			c.werr = e
			return true
		}
	}
	return true
}

// Read reads like net.TCPConn.Read.
func (c *Conn) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	if len(b) > maxRW {
		b = b[:maxRW]
	}
	c.rmu.Lock()
	defer c.rmu.Unlock()
	c.rbuf, c.rn, c.rerr = b, 0, 0
	err := c.rc.Read(c.rfunc)
	c.rbuf = nil
	if err == nil && c.rerr == 0 && c.rn == 0 {
		return 0, io.EOF
	}
	return c.result("read", c.rn, err, c.rerr)
}

// Write writes like net.TCPConn.Write: all of b, or an error.
func (c *Conn) Write(b []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.wbuf, c.wn, c.werr = b, 0, 0
	err := c.rc.Write(c.wfunc)
	c.wbuf = nil
	return c.result("write", c.wn, err, c.werr)
}

// result returns n and the error of a read or write: err from the poller
// (deadline, Close) or errno from the system call, named as net.TCPConn
// names them ("read", not "raw-read") so that callers see the errors they
// always saw.
func (c *Conn) result(op string, n int, err error, errno syscall.Errno) (int, error) {
	switch {
	case err != nil:
		if oe, ok := err.(*net.OpError); ok {
			err = oe.Err
		}
	case errno != 0:
		err = os.NewSyscallError(op, errno)
	default:
		return n, nil
	}
	return n, &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}
