//go:build linux && !ase_portable

package proxy

// TLS on the event loops (https_wss_port in inline mode).
//
// A connection's handshake runs as Go's crypto/tls runs it: in a goroutine
// of its own, blocking, bounded by read_timeout (handshakeTimeout when
// that is off). Once the session is established, the socket leaves Go's
// poller and joins the loop with the fewest connections, and from then on
// it is served exactly as a plain connection is (one data path: the same
// parsing, decisions, forwarding and streaming with backpressure), its
// bytes passing through the session: tls.Conn reads its records from the
// socket through tlsIO, which in loop mode issues the loop's raw
// non-blocking reads and reports "would block" as a temporary error (which
// tls.Conn keeps no record of, and resumes after); records it writes go
// to the socket at once, and what the socket does not take waits in
// tlsIO until the loop sees it writable again. A connection the loops
// leave to the general server (WebSocket APIs, and the other shapes named
// at the top of loop.go) goes on in the same TLS session over a Go
// connection: tlsIO turns back to blocking reads and writes on it.

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"

	"github.com/ase-project/ase/internal/evloop"
	"github.com/ase-project/ase/internal/rawio"
)

// handshakeTimeout bounds a TLS handshake when read_timeout is off: a
// client that connects and says nothing must not hold a goroutine forever.
const handshakeTimeout = 30 * time.Second

// tlsWriteChunk is how much of a response is encrypted at a time: what
// waits for a slow client is at most this much ciphertext.
const tlsWriteChunk = 64 << 10

// errWouldBlock is what tlsIO's Read returns in loop mode when the socket
// has nothing more: tls.Conn returns it and keeps what it had read.
var errWouldBlock = wouldBlock{}

type wouldBlock struct{}

func (wouldBlock) Error() string   { return "the socket would block" }
func (wouldBlock) Timeout() bool   { return false }
func (wouldBlock) Temporary() bool { return true }

// tlsIO is the connection under a loop's tls.Conn.
type tlsIO struct {
	conn net.Conn // blocking mode: the handshake's connection, or the general server's after a handoff
	fd   int      // loop mode: the socket

	drained bool   // loop mode: the last read found the socket empty (the loop's next readable event clears it)
	pending []byte // loop mode: ciphertext the socket did not take yet
	off     int
	failed  syscall.Errno // loop mode: a write failed; the connection is aborted at the next write
	peer    net.Addr
	local   net.Addr
}

func (t *tlsIO) Read(b []byte) (int, error) {
	if t.conn != nil {
		return t.conn.Read(b)
	}
	if t.drained || len(b) == 0 {
		return 0, errWouldBlock
	}
	n, e := evloop.Read(t.fd, b)
	switch {
	case e == syscall.EAGAIN:
		t.drained = true
		return 0, errWouldBlock
	case e != 0:
		return 0, e
	case n == 0:
		return 0, io.EOF
	}
	if n < len(b) {
		t.drained = true // as the plain path: a short read emptied the socket
	}
	return n, nil
}

func (t *tlsIO) Write(b []byte) (int, error) {
	if t.conn != nil {
		if len(t.pending) > t.off {
			if _, err := t.conn.Write(t.pending[t.off:]); err != nil {
				return 0, err
			}
			t.pending, t.off = nil, 0
		}
		return t.conn.Write(b)
	}
	if t.failed != 0 {
		return len(b), nil // the connection is being aborted
	}
	rest := b
	if len(t.pending) == t.off {
		for len(rest) > 0 {
			n, e := evloop.Write(t.fd, rest)
			if e == syscall.EAGAIN {
				break
			}
			if e != 0 {
				t.failed = e
				return len(b), nil
			}
			rest = rest[n:]
		}
	}
	if len(rest) > 0 {
		t.pending = append(t.pending, rest...)
	}
	return len(b), nil
}

// flush writes the ciphertext waiting; it reports whether none is left.
func (t *tlsIO) flush() (bool, syscall.Errno) {
	for t.off < len(t.pending) {
		n, e := evloop.Write(t.fd, t.pending[t.off:])
		if e == syscall.EAGAIN {
			return false, 0
		}
		if e != 0 {
			return false, e
		}
		t.off += n
	}
	t.pending, t.off = t.pending[:0], 0
	if cap(t.pending) > 2*tlsWriteChunk {
		t.pending = nil
	}
	return true, t.failed
}

func (t *tlsIO) Close() error {
	if t.conn != nil {
		return t.conn.Close()
	}
	return nil // the loop closes the socket
}

func (t *tlsIO) LocalAddr() net.Addr  { return t.local }
func (t *tlsIO) RemoteAddr() net.Addr { return t.peer }

func (t *tlsIO) SetDeadline(d time.Time) error {
	if t.conn != nil {
		return t.conn.SetDeadline(d)
	}
	return nil // the loop keeps the time
}

func (t *tlsIO) SetReadDeadline(d time.Time) error {
	if t.conn != nil {
		return t.conn.SetReadDeadline(d)
	}
	return nil
}

func (t *tlsIO) SetWriteDeadline(d time.Time) error {
	if t.conn != nil {
		return t.conn.SetWriteDeadline(d)
	}
	return nil
}

// ServeTLS takes the TLS port's connections (dataport.FastTLS): each is
// handshaken in a goroutine and then served by a loop. It returns at once;
// the listener is closed by Shutdown.
func (s *loops) ServeTLS(ln net.Listener, cfg *tls.Config) {
	s.tlsMu.Lock()
	s.tlsLn = ln
	s.tlsMu.Unlock()
	go func() {
		var delay time.Duration
		for {
			nc, err := ln.Accept()
			if err != nil {
				if errors.Is(err, net.ErrClosed) || s.closing.Load() {
					return
				}
				// Out of descriptors or the like: wait a little, as
				// net/http does, rather than spin.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			delay = 0
			go s.handshake(nc, cfg)
		}
	}()
}

// handshake establishes a connection's TLS session and gives it to a loop.
func (s *loops) handshake(nc net.Conn, cfg *tls.Config) {
	tcp, ok := nc.(*net.TCPConn)
	if !ok {
		nc.Close()
		return
	}
	tio := &tlsIO{conn: nc, peer: nc.RemoteAddr(), local: nc.LocalAddr()}
	tc := tls.Server(tio, cfg)
	limit := s.o.ReadTimeout
	if limit <= 0 {
		limit = handshakeTimeout
	}
	nc.SetDeadline(time.Now().Add(limit))
	if err := tc.Handshake(); err != nil {
		nc.Close()
		return
	}
	nc.SetDeadline(time.Time{})
	// The socket leaves Go's poller: a copy of its descriptor (which
	// shares its non-blocking mode) goes to the loop, and the Go
	// connection is closed.
	fd := -1
	var derr error
	if rc, err := tcp.SyscallConn(); err == nil {
		err = rc.Control(func(raw uintptr) { fd, derr = dupCloexec(int(raw)) })
		if err != nil {
			derr = err
		}
	} else {
		derr = err
	}
	nc.Close()
	if derr != nil {
		s.o.Log.Warn("could not give a TLS connection to the event loops", "error", derr)
		if fd >= 0 {
			syscall.Close(fd)
		}
		return
	}
	tio.conn, tio.fd = nil, fd
	var peer netip.Addr
	if a, ok := tio.peer.(*net.TCPAddr); ok {
		peer = a.AddrPort().Addr().Unmap()
	}
	to := s.workers[0]
	for _, x := range s.workers[1:] {
		if x.open.Load() < to.open.Load() {
			to = x
		}
	}
	to.open.Add(1)
	if !to.l.Post(func() { to.adoptTLS(fd, peer, tc, tio) }) {
		to.open.Add(-1) // that loop has stopped (shutting down)
		syscall.Close(fd)
	}
}

func dupCloexec(fd int) (int, error) {
	nfd, err := fcntlDup(fd)
	if err != nil {
		return -1, os.NewSyscallError("fcntl", err)
	}
	return nfd, nil
}

// fcntlDup duplicates fd, close-on-exec.
func fcntlDup(fd int) (int, error) {
	r, _, e := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_DUPFD_CLOEXEC, 0)
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

// adoptTLS starts serving an established TLS connection on w's loop.
func (w *worker) adoptTLS(fd int, peer netip.Addr, tc *tls.Conn, tio *tlsIO) {
	if !w.adopt(fd, peer) {
		return
	}
	c := w.clients[len(w.clients)-1]
	c.tc, c.tio = tc, tio
	// The client's request may have come with its Finished message, and
	// be waiting in the session already: it is read now, not at the next
	// readable event (which may never come).
	c.readReady = true
	c.readRequest()
}

// tlsRead reads plaintext from a TLS connection: n > 0 bytes, 0 at the end
// of the stream, or EAGAIN when the socket has nothing more.
func (c *cconn) tlsRead(b []byte) (int, syscall.Errno) {
	n, err := c.tc.Read(b)
	c.flushTLSQuietly() // a post-handshake message may have had an answer
	switch {
	case n > 0:
		return n, 0
	case err == nil || err == io.EOF:
		return 0, 0
	case errors.Is(err, errWouldBlock):
		return 0, syscall.EAGAIN
	}
	var e syscall.Errno
	if errors.As(err, &e) {
		return 0, e
	}
	return 0, syscall.ECONNABORTED // a bad record, an alert: the session is over
}

// flushTLSQuietly writes what ciphertext waits, if the socket takes it.
func (c *cconn) flushTLSQuietly() {
	if len(c.tio.pending) > c.tio.off {
		c.tio.flush()
	}
}

// tlsWrite is write for a TLS connection: it encrypts c.out a chunk at a
// time, never more while ciphertext waits for the socket.
func (c *cconn) tlsWrite() bool {
	for {
		done, e := c.tio.flush()
		if e != 0 {
			c.abort()
			return false
		}
		if !done {
			c.writeReady = false
			return false
		}
		if c.outOff == len(c.out) {
			return true
		}
		chunk := c.out[c.outOff:]
		if len(chunk) > tlsWriteChunk {
			chunk = chunk[:tlsWriteChunk]
		}
		if _, err := c.tc.Write(chunk); err != nil {
			c.abort()
			return false
		}
		c.outOff += len(chunk)
	}
}

// closeTLS tells the client the session ends (close_notify), as far as
// the socket takes it at once, before the socket is closed.
func (c *cconn) closeTLS() {
	if c.tio.failed == 0 {
		c.tc.CloseWrite()
	}
}

// handoffTLS gives a TLS connection, its session and the plaintext read
// of it to the general server.
func (c *cconn) handoffTLS(nc net.Conn) net.Conn {
	c.tio.conn = rawio.Wrap(nc)
	c.tio.drained = false
	return &tlsHandoff{prefixConn: prefixConn{Conn: c.tc, buf: c.in}, tc: c.tc}
}

// tlsHandoff is a handed-off TLS connection: fasthttp tells TLS by these
// methods (and X-Forwarded-Proto, the https scheme of protocol_allowed,
// follow from it).
type tlsHandoff struct {
	prefixConn
	tc *tls.Conn
}

func (t *tlsHandoff) Handshake() error                     { return t.tc.Handshake() }
func (t *tlsHandoff) ConnectionState() tls.ConnectionState { return t.tc.ConnectionState() }
