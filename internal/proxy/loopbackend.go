//go:build linux && !ase_portable

package proxy

import (
	"bytes"
	"strconv"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/ase-project/ase/internal/evloop"
	"github.com/ase-project/ase/internal/frontdoor"
	"github.com/ase-project/ase/internal/h1"
	"github.com/ase-project/ase/internal/rfc9110"
)

// bconn is a connection to a backend, owned by one loop: in use by one
// client exchange, or idle in the loop's keep-alive pool.
type bconn struct {
	w          *worker
	fd         int
	addr       string
	c          *cconn // the exchange using it; nil when idle
	connecting bool
	reused     bool  // it served an exchange before
	since      int64 // idle since
	in         []byte
	out        []byte // request bytes to write (a view of c.fwd)
	outOff     int
	readReady  bool
	writeReady bool
	hup        bool // the backend closed its side: read until the end even after short reads
	got        bool // a response byte arrived for the current exchange
}

// connectTimeout bounds a connection attempt to a backend, as the fasthttp
// path's dial timeout does: a server that does not answer (rather than
// refusing) costs an idempotent request 5 s before another server is tried.
const connectTimeout = 5 * time.Second

// attempt sends the request to a backend: the one the client sticks to or
// the next in the rotation, skipping servers that already failed it.
func (c *cconn) attempt() {
	b, i := c.w.s.p.pick(c.pl, c.sticky, c.tried)
	if b == nil {
		c.fail(frontdoor.NoServer)
		return
	}
	c.tried |= 1 << i
	c.be = b
	c.rec.Backend = b.addr
	bc := c.w.backendConn(b)
	if bc == nil {
		c.backendFailed(nil, "connect failed")
		return
	}
	b.inflight.Add(1)
	bc.c, c.bc = c, bc
	c.state = stBackend
	c.due = c.w.now() + int64(c.w.s.p.o.Timeout)
	if bc.connecting {
		c.setDeadline(min(c.due, c.w.now()+int64(connectTimeout)))
	} else {
		c.setDeadline(c.due)
	}
	c.started, c.done, c.remain, c.chunks = false, false, 0, h1.Chunks{}
	bc.out, bc.outOff, bc.got = c.fwd, 0, false
	bc.in = bc.in[:0]
	if !bc.connecting {
		bc.flush()
	}
}

// backendConn takes an idle connection to b, or starts a new one (nil if
// the system refuses at once).
func (w *worker) backendConn(b *backend) *bconn {
	if list := w.idle[b.addr]; len(list) > 0 {
		bc := list[len(list)-1]
		w.idle[b.addr] = list[:len(list)-1]
		bc.reused = true
		return bc
	}
	fd, err := evloop.Dial(b.ap)
	if err != nil {
		return nil
	}
	bc := &bconn{w: w, fd: fd, addr: b.addr, connecting: true, in: make([]byte, 0, backendBuf)}
	if err := w.l.Add(fd, bc); err != nil {
		syscall.Close(fd)
		return nil
	}
	return bc
}

func (bc *bconn) Event(ev uint32) {
	if ev&(evloop.In|evloop.Hup|evloop.Err) != 0 {
		bc.readReady = true
	}
	if ev&(evloop.Hup|evloop.Err) != 0 {
		bc.hup = true
	}
	if ev&(evloop.Out|evloop.Err) != 0 {
		bc.writeReady = true
	}
	c := bc.c
	if c == nil {
		// Idle: the backend closed it (or sent something unasked).
		if ev&(evloop.In|evloop.Hup|evloop.Err) != 0 {
			bc.w.forgetIdle(bc)
		}
		return
	}
	if bc.connecting {
		if ev&(evloop.Out|evloop.Err|evloop.Hup) == 0 {
			return
		}
		if err := evloop.ConnectError(bc.fd); err != nil {
			c.backendFailed(err, "connect failed")
			return
		}
		bc.connecting = false
		c.setDeadline(c.due)
	}
	if bc.outOff < len(bc.out) {
		bc.flush()
		if bc.c != c {
			return
		}
	}
	bc.pump()
}

func (w *worker) forgetIdle(bc *bconn) {
	list := w.idle[bc.addr]
	for i, x := range list {
		if x == bc {
			list[i] = list[len(list)-1]
			w.idle[bc.addr] = list[:len(list)-1]
			break
		}
	}
	w.l.Close(bc.fd)
}

// flush writes the request.
func (bc *bconn) flush() {
	for bc.outOff < len(bc.out) {
		n, e := evloop.Write(bc.fd, bc.out[bc.outOff:])
		if e == syscall.EAGAIN {
			bc.writeReady = false
			return
		}
		if e != 0 {
			bc.c.backendFailed(e, "write failed")
			return
		}
		bc.outOff += n
	}
}

// pump reads the response and passes it on, as long as the client takes
// it (backpressure: nothing more is read while response bytes wait for
// the client).
func (bc *bconn) pump() {
	c := bc.c
	for c != nil && bc.c == c && bc.readReady && c.outOff == len(c.out) && !c.done {
		if len(bc.in) == cap(bc.in) {
			c.backendBad("response head too large")
			return
		}
		space := cap(bc.in) - len(bc.in)
		n, e := evloop.Read(bc.fd, bc.in[len(bc.in):cap(bc.in)])
		if e == syscall.EAGAIN {
			bc.readReady = false
			return
		}
		if e != 0 || n == 0 {
			bc.eof(e)
			return
		}
		if n < space && !bc.hup {
			bc.readReady = false // drained; but data and the end can come in one event
		}
		bc.got = true
		bc.in = bc.in[:len(bc.in)+n]
		c.relay()
	}
}

// eof handles the end of the backend's stream (or a read error).
func (bc *bconn) eof(e syscall.Errno) {
	c := bc.c
	switch {
	case !bc.got:
		// Nothing came back: the connection failed (a keep-alive one may
		// have been closed by the backend meanwhile).
		var err error = errClosed
		if e != 0 {
			err = e
		}
		c.backendFailed(err, "no response")
	case c.started && c.body == bodyClose:
		c.closeAfter = true
		c.done = true
		c.releaseBackend(false)
		c.flush()
	default:
		c.w.s.p.o.Logger.Warn("backend closed the connection in the middle of a response", "api_id", c.pl.api.ID, "server", bc.addr)
		c.abort()
	}
}

type closedError struct{}

func (closedError) Error() string { return "connection closed before a response" }

var errClosed error = closedError{}

// relay passes what the backend sent (bc.in) to the client.
func (c *cconn) relay() {
	bc := c.bc
	data := bc.in
	if !c.started {
		for {
			switch h1.ParseResponse(data, &c.resp) {
			case h1.More:
				compact(bc, data)
				return
			case h1.Other:
				c.backendBad("malformed response head")
				return
			}
			code := c.resp.Code
			if code >= 100 && code < 200 && code != 101 {
				data = data[c.resp.HeadLen:] // an interim response: not passed on
				continue
			}
			if code == 101 {
				c.backendBad("unrequested protocol switch")
				return
			}
			break
		}
		c.started = true
		c.rec.Status = c.resp.Code
		c.w.s.p.o.Engine.Answering(&c.x.Req) // counted once the answer is out (log)
		switch {
		case c.headReq || c.resp.Code == 204 || c.resp.Code == 304:
			c.body = bodyNone
		case c.resp.Chunked:
			c.body = bodyChunked
		case c.resp.ContentLength >= 0:
			c.body, c.remain = bodyLength, c.resp.ContentLength
		default:
			c.body = bodyClose
			c.closeAfter = true
		}
		c.out = c.responseHead(c.out[:0])
		data = data[c.resp.HeadLen:]
	}
	var k int
	switch c.body {
	case bodyNone:
		c.done = true
	case bodyLength:
		k = int(min(int64(len(data)), c.remain))
		c.remain -= int64(k)
		c.done = c.remain == 0
		c.rec.BytesOut += int64(k)
	case bodyChunked:
		var bad bool
		k, c.done, bad = c.chunks.Scan(data)
		if bad {
			c.w.s.p.o.Logger.Warn("backend sent malformed chunked framing", "api_id", c.pl.api.ID, "server", bc.addr)
			c.abort()
			return
		}
		c.rec.BytesOut = c.chunks.Data
	case bodyClose:
		k = len(data)
		c.rec.BytesOut += int64(k)
	}
	c.out = append(c.out, data[:k]...)
	extra := k < len(data) // the backend sent more than the response: not reusable
	bc.in = bc.in[:0]
	if c.done {
		c.releaseBackend(!c.resp.Close && !extra)
	}
	if c.state != stWriting {
		c.enterWriting()
	}
	// No pump from here: the pump loop this runs in goes on reading
	// while the client keeps up.
	if c.write() {
		c.out, c.outOff = c.out[:0], 0
		if c.done {
			c.finish()
		}
	}
}

// compact moves an unfinished head to the front of the buffer.
func compact(bc *bconn, data []byte) {
	if len(data) == len(bc.in) {
		return
	}
	bc.in = bc.in[:copy(bc.in[:cap(bc.in)], data)]
}

// responseHead writes the response head the client gets: the backend's
// status and headers, hop-by-hop ones (and those its Connection names)
// left out.
func (c *cconn) responseHead(b []byte) []byte {
	r := &c.resp
	b = append(strconv.AppendInt(append(b, "HTTP/1.1 "...), int64(r.Code), 10), ' ')
	if len(r.Reason) > 0 {
		b = append(b, r.Reason...)
	} else {
		b = append(b, fasthttp.StatusMessage(r.Code)...)
	}
	b = append(b, "\r\n"...)
	for i := range r.Fields {
		f := &r.Fields[i]
		if frontdoor.HopByHop(f.Name) || len(r.Connection) > 0 && rfc9110.HasToken(r.Connection, f.Name) ||
			r.Chunked && bytes.EqualFold(f.Name, []byte("Content-Length")) {
			continue
		}
		b = append(append(append(append(b, f.Name...), ": "...), f.Value...), "\r\n"...)
	}
	if c.closeAfter {
		b = append(b, "Connection: close\r\n"...)
	}
	return append(b, "\r\n"...)
}

// releaseBackend ends the backend's part of the exchange: its connection
// goes back to the loop's pool when it can carry another request.
func (c *cconn) releaseBackend(reuse bool) {
	bc := c.bc
	if bc == nil {
		return
	}
	c.bc = nil
	c.be.inflight.Add(-1)
	bc.c = nil
	if reuse && bc.outOff == len(bc.out) && !bc.hup && !c.w.s.closing.Load() && bc.drained() {
		bc.out, bc.in, bc.since = nil, bc.in[:0], c.w.now()
		c.w.idle[bc.addr] = append(c.w.idle[bc.addr], bc)
		c.w.l.At(bc.since + int64(backendIdleMax) + 1)
		return
	}
	c.w.l.Close(bc.fd)
}

// drained reports whether the backend sent nothing after the response
// (which would make the connection unusable), reading once if the last
// read left that open.
func (bc *bconn) drained() bool {
	if !bc.readReady {
		return true
	}
	var b [1]byte
	_, e := evloop.Read(bc.fd, b[:])
	bc.readReady = false
	return e == syscall.EAGAIN
}

// dropBackend abandons the backend connection of an exchange that is being
// answered otherwise (or ends).
func (c *cconn) dropBackend() {
	if c.bc != nil {
		c.releaseBackend(false)
	}
}

// backendFailed handles a connection that failed before any response:
// like the fasthttp path, an idempotent request goes to another server (a
// reused keep-alive connection first gets one more try on a new
// connection to the same server); any other gets 502.
func (c *cconn) backendFailed(err error, what string) {
	reused := c.bc != nil && c.bc.reused
	c.dropBackend()
	p := c.w.s.p
	if c.idem {
		if reused && !c.stale {
			c.stale = true
			c.tried &^= 1 << c.index(c.be)
		} else {
			p.o.Logger.Warn("backend connection failed; trying another server", "api_id", c.pl.api.ID, "server", c.be.addr, "error", errText(err, what))
		}
		c.attempt()
		return
	}
	p.o.Logger.Warn("backend request failed", "api_id", c.pl.api.ID, "server", c.be.addr, "error", errText(err, what))
	c.fail(frontdoor.BadGateway)
}

func errText(err error, what string) string {
	if err == nil {
		return what
	}
	return what + ": " + err.Error()
}

func (c *cconn) index(b *backend) int {
	for i, x := range c.pl.backends {
		if x == b {
			return i
		}
	}
	return 63
}

// backendBad answers 502 for a backend that broke the protocol.
func (c *cconn) backendBad(why string) {
	c.w.s.p.o.Logger.Warn("backend request failed", "api_id", c.pl.api.ID, "server", c.be.addr, "error", why)
	if c.started {
		c.rec.Reason = frontdoor.BadGateway.LogReason()
		c.abort()
		return
	}
	c.fail(frontdoor.BadGateway)
}
