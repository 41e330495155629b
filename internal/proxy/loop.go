//go:build linux && !ase_portable

package proxy

// The event-loop data path of the data ports (inline mode).
//
// Each loop (one per core) owns its connections from accept to close, as
// an nginx worker does: it reads requests with raw system calls, parses
// them in place (internal/h1), decides, and forwards them over its own
// keep-alive connections to the backends, streaming the response back
// with backpressure. The TLS port's connections join the loops once their
// handshake is done, and are served the same way through their session
// (looptls.go). What the loops do not take — WebSocket APIs, server_ssl APIs, APIs with server quotas or spike
// thresholds (their queue waits), backends named by host name, chunked or
// 100-continue request bodies, and every unusual or malformed request
// shape — it hands, connection and unread bytes, to the fasthttp server,
// which serves that connection from then on exactly as before. The
// answers, access-log records and metrics are the same on both paths.

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/ase-project/ase/internal/accesslog"
	"github.com/ase-project/ase/internal/apidef"
	"github.com/ase-project/ase/internal/dataport"
	"github.com/ase-project/ase/internal/evloop"
	"github.com/ase-project/ase/internal/frontdoor"
	"github.com/ase-project/ase/internal/h1"
	"github.com/ase-project/ase/internal/rawio"
)

const (
	tickPeriod     = 100 * time.Millisecond // timeouts are checked at most this often
	clientBuf      = 4 << 10                // a client connection's first read buffer
	backendBuf     = 16 << 10               // a backend connection's read buffer
	backendIdleMax = 60 * time.Second       // an unused keep-alive connection to a backend is closed after this
)

// FastPath is the plain port's fast path: the event loops, on Linux (see
// loop_other.go for the other systems).
func (p *Proxy) FastPath() dataport.Fast { return p.Loops }

// Loops starts the event loops on the plain port (and, through ServeTLS,
// the TLS port); it is a dataport.Fast.
// It starts one loop per processor (GOMAXPROCS, by default the cores) and
// then raises GOMAXPROCS by one: a loop holds its processor even while it
// waits for events, and everything else (the TLS port, handed-off
// connections, the management API, health checks, the garbage collector)
// runs on the extra one, the kernel sharing the cores between them.
func (p *Proxy) Loops(o dataport.FastOptions) (dataport.FastServer, error) {
	s := &loops{p: p, o: o, fd: o.Listener}
	if s.o.MaxHeader <= 0 {
		s.o.MaxHeader = 8 << 10
	}
	if s.o.MaxBody <= 0 {
		s.o.MaxBody = fasthttp.DefaultMaxRequestBodySize // what 0 means to fasthttp
	}
	n := runtime.GOMAXPROCS(0)
	for range n {
		l, err := evloop.New()
		if err != nil {
			s.abandon()
			return nil, err
		}
		w := &worker{s: s, l: l, idle: map[string][]*bconn{}}
		l.OnPanic = w.panicked
		l.Idle = func() bool { return len(w.clients) == 0 }
		s.workers = append(s.workers, w)
		if err := l.AddListener(o.Listener, acceptor{w}); err != nil {
			s.abandon()
			return nil, err
		}
	}
	runtime.GOMAXPROCS(n + 1)
	for _, w := range s.workers {
		go w.run()
	}
	// A catalog change may leave idle connections to backends no longer
	// used: the loops look at once, not at their next timeout.
	nudge := s.nudge
	p.repooled.Store(&nudge)
	return s, nil
}

type loops struct {
	p       *Proxy
	o       dataport.FastOptions
	fd      int
	workers []*worker
	closing atomic.Bool
	once    sync.Once
	tlsMu   sync.Mutex
	tlsLn   net.Listener // https_wss_port, when the loops serve it (looptls.go)
}

// abandon undoes a start that failed before any loop ran (the listening
// socket is the fast path's to close, even then).
func (s *loops) abandon() {
	syscall.Close(s.fd)
	for _, w := range s.workers {
		w.l.Release()
	}
}

// nudge has every loop run its tick now (it has no timer that would).
func (s *loops) nudge() {
	for _, w := range s.workers {
		w.l.Post(func() { w.l.At(w.now()) })
	}
}

// Shutdown stops accepting, lets the exchanges in flight finish (until
// ctx ends; idle keep-alive connections are closed at once) and closes
// every connection.
func (s *loops) Shutdown(ctx context.Context) error {
	s.closing.Store(true)
	s.tlsMu.Lock()
	if s.tlsLn != nil {
		s.tlsLn.Close()
	}
	s.tlsMu.Unlock()
	s.nudge()
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	var err error
wait:
	for {
		busy := int64(0)
		for _, w := range s.workers {
			busy += w.open.Load()
		}
		if busy == 0 {
			break
		}
		select {
		case <-ctx.Done():
			err = ctx.Err()
			break wait
		case <-t.C:
		}
	}
	s.once.Do(func() {
		for _, w := range s.workers {
			w.l.Stop()
		}
		for _, w := range s.workers {
			<-w.l.Done()
			w.l.Release()
		}
		// Only now: a descriptor closed while a loop still watched it
		// could be reused under it.
		syscall.Close(s.fd)
	})
	return err
}

// worker is one loop and what it owns.
type worker struct {
	s        *loops
	l        *evloop.Loop
	clients  []*cconn            // open client connections (for timeouts)
	idle     map[string][]*bconn // keep-alive backend connections by address
	open     atomic.Int64        // len(clients), for Shutdown
	pools    *map[string]*pool   // the pools idle connections were checked against
	dateSec  int64
	date     []byte // "Date: ...\r\n", renewed each second
	accepts  bool   // the listener is watched
	acceptAt int64  // when a paused loop watches it again
	warned   int64  // when running out of descriptors was last logged
}

func (w *worker) run() {
	w.accepts = true
	w.l.Run(w.tick)
	for len(w.clients) > 0 {
		w.clients[len(w.clients)-1].close()
	}
	for _, list := range w.idle {
		for _, b := range list {
			syscall.Close(b.fd)
		}
	}
}

// now is the loop's clock (read once per batch of events).
func (w *worker) now() int64 { return w.l.Now }

func (w *worker) dateLine() []byte {
	if sec := w.now() / int64(time.Second); sec != w.dateSec || w.date == nil {
		w.dateSec = sec
		w.date = append(fasthttp.AppendHTTPDate(append(w.date[:0], "Date: "...), time.Unix(sec, 0)), "\r\n"...)
	}
	return w.date
}

// tick enforces the timeouts, drops idle backend connections that are no
// longer wanted, and, while shutting down, stops accepting and closes idle
// clients. It runs when something is due (see evloop.Loop.At: a deadline
// set, a connection put in the idle pool, a pause in accepting, a
// catalog change, the shutdown) and returns when something next is:
// nothing at all on a loop without connections, so an idle loop sleeps.
// Ticks come at most every tickPeriod, one tick serving every deadline
// that passed by then.
func (w *worker) tick(now int64) int64 {
	next := int64(0)
	due := func(t int64) {
		if t != 0 && (next == 0 || t < next) {
			next = t
		}
	}
	closing := w.s.closing.Load()
	if closing && w.accepts {
		w.accepts = false
		w.l.Detach(w.s.fd)
	}
	if !closing && !w.accepts {
		if now >= w.acceptAt {
			if err := w.l.AddListener(w.s.fd, acceptor{w}); err == nil {
				w.accepts = true
			} else {
				w.acceptAt = now + int64(acceptPause)
			}
		}
		if !w.accepts {
			due(w.acceptAt)
		}
	}
	if closing && len(w.clients) > 0 {
		due(now + int64(tickPeriod)) // exchanges in flight end; connections accepted meanwhile close
	}
	for i := 0; i < len(w.clients); {
		c := w.clients[i]
		switch {
		case closing && (c.state == stIdle || c.awaiting):
			c.close()
		case c.deadline != 0 && now >= c.deadline:
			w.guard(c, c.timeout)
		default:
			c.closeAfter = c.closeAfter || closing
			due(c.deadline)
			i++
			continue
		}
		if i < len(w.clients) && w.clients[i] == c {
			due(c.deadline)
			i++ // still open (a timeout answered)
		}
	}
	pools := w.s.p.pools.Load()
	for addr, list := range w.idle {
		keep := list[:0]
		for _, b := range list {
			if now-b.since > int64(backendIdleMax) || pools != w.pools && !wanted(*pools, addr) {
				w.l.Close(b.fd)
				continue
			}
			due(b.since + int64(backendIdleMax) + 1)
			keep = append(keep, b)
		}
		if len(keep) == 0 {
			delete(w.idle, addr)
		} else {
			w.idle[addr] = keep
		}
	}
	w.pools = pools
	if next != 0 {
		next = max(next, now+int64(tickPeriod))
	}
	return next
}

func wanted(pools map[string]*pool, addr string) bool {
	for _, pl := range pools {
		for _, b := range pl.backends {
			if b.addr == addr {
				return true
			}
		}
	}
	return false
}

// guard runs f, which serves c, and contains its panic as the loop does a
// handler's.
func (w *worker) guard(c *cconn, f func()) {
	defer func() {
		if v := recover(); v != nil {
			w.panicked(c, v)
		}
	}()
	f()
}

// panicked keeps one request's panic from taking the loop (and every
// connection on it) down: it is logged with its stack, the client gets a
// 500 if nothing of a response was sent yet, and the connections of the
// exchange are closed.
func (w *worker) panicked(h evloop.Handler, v any) {
	w.s.o.Log.Error("data path panic", "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
	var c *cconn
	switch x := h.(type) {
	case *cconn:
		c = x
	case *bconn:
		if c = x.c; c == nil {
			w.forgetIdle(x)
			return
		}
	default:
		return
	}
	if c.fd < 0 {
		return
	}
	if !c.started && c.outOff == 0 {
		answer := []byte("HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
		if c.tc != nil {
			c.tc.Write(answer)
		} else {
			evloop.Write(c.fd, answer)
		}
	}
	func() {
		defer func() {
			if recover() != nil {
				syscall.Close(c.fd) // the state is beyond repair: at least the socket goes
			}
		}()
		c.close()
	}()
}

// acceptor takes new connections and gives each to the loop with the
// fewest: a busy loop polls more often and would otherwise take most of a
// burst of connections itself (as one nginx worker can).
type acceptor struct{ w *worker }

func (a acceptor) Event(uint32) {
	w := a.w
	fd, peer, err := evloop.Accept(w.s.fd)
	if err != nil {
		switch {
		case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE), errors.Is(err, syscall.ENOBUFS), errors.Is(err, syscall.ENOMEM):
			w.pauseAccepting(err)
		}
		return // EAGAIN (another loop took it), or the client left
	}
	to := w
	for _, x := range w.s.workers {
		if x.open.Load() < to.open.Load() {
			to = x
		}
	}
	to.open.Add(1)
	if to == w {
		w.adopt(fd, peer)
		return
	}
	if !to.l.Post(func() { to.adopt(fd, peer) }) {
		to.open.Add(-1) // that loop has stopped (shutting down)
		syscall.Close(fd)
	}
}

// acceptPause is how long a loop stops accepting when the process is out
// of descriptors (or memory): the listener would otherwise report the
// waiting connection again at once, and the loop would spin. Connections
// wait in the kernel's queue meanwhile.
const acceptPause = 100 * time.Millisecond

func (w *worker) pauseAccepting(err error) {
	if !w.accepts {
		return
	}
	w.accepts = false
	w.l.Detach(w.s.fd)
	w.acceptAt = w.now() + int64(acceptPause)
	w.l.At(w.acceptAt)
	if w.now()-w.warned > int64(10*time.Second) {
		w.warned = w.now()
		w.s.o.Log.Warn("cannot accept connections on http_ws_port; pausing", "error", err, "pause", acceptPause)
	}
}

// adopt starts serving a connection on w's loop (its open count already
// includes it).
func (w *worker) adopt(fd int, peer netip.Addr) bool {
	if w.l.Stopping() {
		w.open.Add(-1)
		syscall.Close(fd)
		return false
	}
	c := &cconn{w: w, fd: fd, peer: peer, idx: len(w.clients), in: make([]byte, 0, clientBuf)}
	if err := w.l.Add(fd, c); err != nil {
		w.open.Add(-1)
		syscall.Close(fd)
		return false
	}
	w.clients = append(w.clients, c)
	w.s.p.o.Metrics.InlineConnection("accepted")
	c.enterIdle()
	if t := w.s.o.ReadTimeout; t > 0 {
		// The first request is awaited for read_timeout, not idle_timeout
		// (which is for the time between requests), and answered 408 if
		// it does not come, as the general server does.
		c.state, c.awaiting = stReading, true
		c.setDeadline(w.now() + int64(t))
	}
	return true
}

// Client connection states.
const (
	stIdle    = iota // between requests, nothing buffered
	stReading        // part of a request read
	stBackend        // the request is at a backend, no response yet
	stWriting        // answering: response bytes are being written
)

// cconn is a client connection.
type cconn struct {
	w        *worker
	fd       int
	tc       *tls.Conn // the TLS session of a connection to https_wss_port (looptls.go); nil on the plain port
	tio      *tlsIO
	peer     netip.Addr
	idx      int // in w.clients
	state    int
	deadline int64 // when the current state times out; 0 = never
	due      int64 // when the backend's answer is due (backend_timeout)

	in         []byte // read, not yet consumed
	readReady  bool   // readable since the last short read
	writeReady bool
	hup        bool // the client closed its side: read until the end even after short reads
	inRead     bool // inside readRequest (no re-entry)
	awaiting   bool // a new connection: its first byte has not come yet
	scanned    int  // how much of an unfinished head was looked at

	req        h1.Request
	x          frontdoor.Inline // what the front door made of req
	reqLen     int              // head and body of the current request
	closeAfter bool
	start      int64
	rec        accesslog.Record

	out    []byte // response bytes not yet written
	outOff int

	// forwarding
	pl      *pool
	be      *backend
	bc      *bconn
	fwd     []byte // the request as the backend gets it (kept for retries)
	tried   uint64
	stale   bool // a reused connection already failed once
	idem    bool
	resp    h1.Response
	started bool  // the response head was received
	done    bool  // the whole response was received
	remain  int64 // Content-Length bytes still to come
	body    int   // how the response body ends: bodyNone, bodyLength, bodyChunked, bodyClose
	chunks  h1.Chunks
	headReq bool
	sticky  string // the cookie value backends are picked by
}

const (
	bodyNone = iota
	bodyLength
	bodyChunked
	bodyClose
)

func (c *cconn) Event(ev uint32) {
	if ev&(evloop.In|evloop.Hup|evloop.Err) != 0 {
		c.readReady = true
		if c.tio != nil {
			c.tio.drained = false
		}
	}
	if ev&(evloop.Hup|evloop.Err) != 0 {
		c.hup = true
	}
	if ev&(evloop.Out|evloop.Err) != 0 {
		c.writeReady = true
	}
	switch c.state {
	case stIdle, stReading:
		c.readRequest()
	case stWriting:
		c.flush()
	}
}

func (c *cconn) enterIdle() {
	c.state = stIdle
	c.deadline = 0
	if t := c.w.s.o.IdleTimeout; t > 0 {
		c.setDeadline(c.w.now() + int64(t))
	}
}

// setDeadline sets when the current state times out (0: never) and has
// the loop tick then.
func (c *cconn) setDeadline(t int64) {
	c.deadline = t
	c.w.l.At(t)
}

// readRequest reads and serves requests until one is at a backend, the
// client must be waited for, or the connection ends.
func (c *cconn) readRequest() {
	if c.inRead {
		return
	}
	c.inRead = true
	defer func() { c.inRead = false }()
	o := &c.w.s.o
	for c.state == stIdle || c.state == stReading {
		if len(c.in) > 0 {
			if c.awaiting {
				c.awaiting, c.start = false, c.w.now()
			}
			if c.state == stIdle {
				c.state = stReading
				c.start = c.w.now()
				c.deadline = 0
				if o.ReadTimeout > 0 {
					c.setDeadline(c.start + int64(o.ReadTimeout))
				}
			}
			st := h1.More
			if end, bad := h1.HeadEnd(c.in, c.scanned); bad {
				// A line ended by a bare LF: refused at once, as the
				// general server's guard does (dataport), rather than
				// waited on for a CRLF that never comes.
				c.closeAfter, c.headReq, c.scanned = true, false, 0
				c.rec = accesslog.Record{Protocol: "inline", ClientIP: c.peer, Decision: "refuse"}
				c.reqLen = len(c.in)
				c.fail(frontdoor.BadRequest)
				return
			} else if end >= 0 {
				st = h1.ParseRequest(c.in, &c.req)
			} else {
				c.scanned = len(c.in)
			}
			switch st {
			case h1.Other:
				c.handoff()
				return
			case h1.Done:
				if c.req.ContentLength > int64(o.MaxBody) {
					c.handoff() // the general server answers 413
					return
				}
				need := c.req.HeadLen + int(c.req.ContentLength)
				if len(c.in) >= need {
					c.reqLen, c.scanned = need, 0
					c.serve()
					continue
				}
				if len(c.in) == cap(c.in) {
					// The buffer grows as the body arrives, not to the
					// length a client announces.
					c.in = append(make([]byte, 0, min(2*cap(c.in), need)), c.in...)
				}
			case h1.More:
				if len(c.in) >= o.MaxHeader {
					c.handoff() // the general server answers 431
					return
				}
				if len(c.in) == cap(c.in) {
					c.in = append(make([]byte, 0, min(2*cap(c.in), o.MaxHeader)), c.in...)
				}
			}
		}
		if !c.readReady {
			return
		}
		if len(c.in) == cap(c.in) {
			c.in = append(make([]byte, 0, 2*cap(c.in)), c.in...)
		}
		space := cap(c.in) - len(c.in)
		var n int
		var e syscall.Errno
		if c.tc != nil {
			n, e = c.tlsRead(c.in[len(c.in):cap(c.in)])
		} else {
			n, e = evloop.Read(c.fd, c.in[len(c.in):cap(c.in)])
		}
		if e == syscall.EAGAIN {
			c.readReady = false
			return
		}
		if e != 0 || n == 0 {
			c.close()
			return
		}
		// Over TLS, a short read of plaintext says nothing of the socket
		// (the session may hold more records): tlsRead tells EAGAIN.
		if n < space && !c.hup && c.tc == nil {
			c.readReady = false // drained: the next data brings a new edge
		}
		c.in = c.in[:len(c.in)+n]
	}
}

// serve decides one complete request (in c.in[:c.reqLen]) and answers it
// or sends it to a backend.
func (c *cconn) serve() {
	s := c.w.s
	p := s.p
	r := &c.req
	c.started, c.done = false, false
	c.closeAfter = c.closeAfter || r.Close || !s.o.KeepAlive || s.closing.Load()
	c.headReq = string(r.Method) == "HEAD"
	if testPanicPath != "" && string(r.Path) == testPanicPath {
		panic("ASE_TEST_PANIC_PATH " + testPanicPath)
	}
	if s.o.Health && string(r.Path) == "/ase" {
		c.handoff()
		return
	}
	c.rec = accesslog.Record{}
	x := &c.x
	*x = frontdoor.Inline{Request: frontdoor.Request{Method: r.Method, Target: r.Target, Fields: r.Fields, Framing: true}, Peer: c.peer, TLS: c.tc != nil, Now: c.start}
	var pl *pool
	out, rp := p.door.Decide(x, &c.rec, nil, func(api *apidef.API) bool {
		// What the loops leave to the general server (see the top of
		// this file).
		pl = (*p.pools.Load())[api.ID]
		return api.Protocol == apidef.WS || api.ServerSSL || pl != nil && (pl.gate != nil || !pl.direct)
	})
	frontdoor.LogUser(&c.rec, x.API, &x.Req.ID, x.Fields, x.Reading.Query)
	switch out {
	case frontdoor.Handoff:
		c.rec = accesslog.Record{}
		c.handoff()
		return
	case frontdoor.Answer:
		c.reply(rp)
		return
	}
	if pl == nil || len(pl.backends) == 0 {
		c.fail(frontdoor.NoServer)
		return
	}
	c.pl = pl
	c.fwd = frontdoor.AppendHead(c.fwd[:0], &x.Reading, &frontdoor.Head{Method: r.Method, Fields: r.Fields, API: x.API, Peer: c.peer, TLS: c.tc != nil, BodyLen: r.ContentLength, RequestID: x.RequestID[:]})
	c.fwd = append(c.fwd, c.in[r.HeadLen:c.reqLen]...)
	c.tried, c.stale = 0, false
	c.idem = idempotent(r.Method)
	c.cookie(x.Req.ID.Cookie)
	c.attempt()
}

// stickyCookie is the cookie value backends are picked by, when the API
// keeps clients on one server.
func (c *cconn) cookie(v string) {
	c.rec.Backend = ""
	if !c.pl.api.CookiePersistenceEnabled {
		v = ""
	}
	c.sticky = v
}

// reply gives one of ASE's own answers.
func (c *cconn) reply(r frontdoor.Reply) {
	c.closeAfter = c.closeAfter || r.Close
	c.answer(r.Code, r.Reason, r.Body, r.HName, r.HValue)
}

// fail answers a failure, naming it in the access log.
func (c *cconn) fail(f frontdoor.Failure) {
	c.rec.Reason = f.LogReason()
	c.reply(f.Reply())
}

// answer gives ASE's own response: code, reason phrase (the standard one
// if empty), a text body and at most one more header.
func (c *cconn) answer(code int, reason, body, hname, hvalue string) {
	c.dropBackend()
	if reason == "" {
		reason = fasthttp.StatusMessage(code)
	}
	b := c.out[:0]
	b = append(strconv.AppendInt(append(b, "HTTP/1.1 "...), int64(code), 10), ' ')
	b = append(append(b, reason...), "\r\n"...)
	b = append(b, c.w.dateLine()...)
	b = append(b, "Content-Type: text/plain; charset=utf-8\r\nContent-Length: "...)
	b = append(strconv.AppendInt(b, int64(len(body)), 10), "\r\n"...)
	if hname != "" {
		b = append(append(append(append(b, hname...), ": "...), hvalue...), "\r\n"...)
	}
	if c.closeAfter {
		b = append(b, "Connection: close\r\n"...)
	}
	b = append(b, "\r\n"...)
	if !c.headReq {
		b = append(b, body...)
		c.rec.BytesOut = int64(len(body))
	}
	c.out, c.outOff = b, 0
	c.rec.Status = code
	c.done = true
	c.startWriting()
}

// startWriting enters the writing state and writes what it can.
func (c *cconn) startWriting() {
	c.enterWriting()
	c.flush()
}

// enterWriting starts the response's write timeout (the backend's, when
// write_timeout is off and a backend is still sending).
func (c *cconn) enterWriting() {
	c.state = stWriting
	c.deadline = 0
	if t := c.w.s.o.WriteTimeout; t > 0 {
		c.setDeadline(c.w.now() + int64(t))
	} else if c.bc != nil {
		c.setDeadline(c.w.now() + int64(c.w.s.p.o.Timeout))
	}
}

// flush writes pending response bytes; when they are all out, it either
// lets the backend go on (more of the response to come) or finishes the
// exchange.
func (c *cconn) flush() {
	if !c.write() {
		return
	}
	c.out, c.outOff = c.out[:0], 0
	if c.done {
		c.finish()
		return
	}
	if c.bc != nil {
		c.bc.pump()
	}
}

// write writes what it can of c.out; it reports whether all of it is out
// (false also when the connection failed and was closed).
func (c *cconn) write() bool {
	if c.tc != nil {
		return c.tlsWrite()
	}
	for c.outOff < len(c.out) {
		n, e := evloop.Write(c.fd, c.out[c.outOff:])
		if e == syscall.EAGAIN {
			c.writeReady = false
			return false
		}
		if e != 0 {
			c.abort()
			return false
		}
		c.outOff += n
	}
	return true
}

// finish ends an exchange whose response is all written: it is logged,
// and the connection goes on to the next request or closes.
func (c *cconn) finish() {
	c.log()
	if c.closeAfter {
		c.close()
		return
	}
	rest := copy(c.in, c.in[c.reqLen:])
	c.in = c.in[:rest]
	// Buffers a large exchange grew are not kept for the next one.
	if cap(c.in) > 64<<10 && rest < clientBuf {
		c.in = append(make([]byte, 0, clientBuf), c.in...)
	}
	if cap(c.fwd) > 64<<10 {
		c.fwd = nil
	}
	if cap(c.out) > 64<<10 {
		c.out = nil
	}
	c.reqLen = 0
	c.enterIdle()
	c.readRequest()
}

// log writes the exchange's access log record, once.
func (c *cconn) log() {
	rec := &c.rec
	if rec.Protocol == "" {
		return
	}
	p := c.w.s.p
	rec.Time, rec.Latency = time.Unix(0, c.start), time.Duration(c.w.now()-c.start)
	if c.started { // the backend answered: behavioural detection counts it
		p.o.Engine.Answered(&c.x.Req, rec.Status, rec.BytesOut)
	}
	p.o.Log.Write(rec)
	p.o.Metrics.Request(rec.APIID, "inline", rec.Decision, rec.Reason, rec.Latency, rec.ClientIP)
	rec.Protocol = ""
}

// timeout ends the current state: a request read too slowly is answered
// 408, a backend too slow 504; an idle or unwritable connection closes.
func (c *cconn) timeout() {
	switch c.state {
	case stReading:
		c.closeAfter, c.headReq, c.scanned = true, false, 0
		c.rec = accesslog.Record{Protocol: "inline", ClientIP: c.peer, Decision: "refuse"}
		c.reqLen = len(c.in)
		c.fail(frontdoor.RequestTimeout)
	case stBackend:
		if c.bc != nil && c.bc.connecting {
			c.backendFailed(syscall.ETIMEDOUT, "connect timed out")
			return
		}
		c.w.s.p.o.Logger.Warn("backend timed out", "api_id", c.pl.api.ID, "server", c.be.addr)
		c.fail(frontdoor.GatewayTimeout)
	default:
		c.abort()
	}
}

// abort ends the connection in the middle of an exchange.
func (c *cconn) abort() {
	if c.rec.Protocol != "" && c.rec.Status == 0 {
		c.rec.Status = fasthttp.StatusBadGateway
	}
	c.log()
	c.close()
}

func (c *cconn) close() {
	if c.tc != nil {
		c.closeTLS()
	}
	c.dropBackend()
	c.forget()
	c.w.l.Close(c.fd)
	c.fd = -1
}

// forget takes c off its loop's list of clients.
func (c *cconn) forget() {
	w := c.w
	last := w.clients[len(w.clients)-1]
	w.clients[c.idx] = last
	last.idx = c.idx
	w.clients = w.clients[:len(w.clients)-1]
	w.open.Add(-1)
	c.state = -1
}

// handoff gives the connection, with what was read of it, to the fasthttp
// server.
func (c *cconn) handoff() {
	w := c.w
	fd := c.fd
	w.l.Detach(fd)
	c.forget()
	c.fd = -1
	f := os.NewFile(uintptr(fd), "")
	nc, err := net.FileConn(f)
	f.Close()
	if err != nil {
		w.s.o.Log.Warn("could not hand a connection to the general server", "error", err)
		return
	}
	w.s.p.o.Metrics.InlineConnection("handed_off")
	var conn net.Conn
	switch {
	case c.tc != nil:
		conn = c.handoffTLS(nc)
	case len(c.in) > 0:
		conn = &prefixConn{Conn: rawio.Wrap(nc), buf: bytes.Clone(c.in)}
	default:
		conn = rawio.Wrap(nc)
	}
	w.s.o.Handoff(conn)
}

// prefixConn reads buf before the connection.
type prefixConn struct {
	net.Conn
	buf []byte
}

func (p *prefixConn) Read(b []byte) (int, error) {
	if len(p.buf) > 0 {
		n := copy(b, p.buf)
		p.buf = p.buf[n:]
		return n, nil
	}
	return p.Conn.Read(b)
}
