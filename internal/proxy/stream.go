package proxy

import (
	"github.com/ase-project/ase/internal/behave"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/ase-project/ase/internal/accesslog"
)

// smallBody is the largest response body the general server takes whole
// from a backend before answering; a larger one, or one of unknown
// length, streams to the client as it arrives (the backend read only as
// fast as the client takes it), so a download of any size holds no more
// memory than the connections' buffers.
const smallBody = 64 << 10

// bodyRelay streams a backend's response body to the client. The backend's
// connection, its inflight count and its flow-control slot are released
// when the body is done (Close, by the server once it wrote it or the
// client went away), and the access-log line is written then, with the
// bytes sent.
type bodyRelay struct {
	br   *fasthttp.Response
	body io.Reader
	n    int64
	done func() // releases the backend

	mu       sync.Mutex
	closed   bool
	rec      *accesslog.Record // set when Serve returns; logged at Close
	obs      behave.Ticket     // behavioural detection's count of the answer, at Close
	obsVals  behave.Packed     // the values of its identities (the request's memory is gone by then)
	start    time.Time
	p        *Proxy
	closeErr error
}

func (r *bodyRelay) Read(b []byte) (int, error) {
	n, err := r.body.Read(b)
	r.n += int64(n)
	return n, err
}

// Close ends the body without an error to give (the server wrote it all).
func (r *bodyRelay) Close() error { return r.CloseWithError(nil) }

// CloseWithError ends the body; with an error (the client went away) the
// backend's connection is closed rather than reused.
func (r *bodyRelay) CloseWithError(err error) error {
	var cerr error
	if rc, ok := r.body.(fasthttp.ReadCloserWithError); ok {
		cerr = rc.CloseWithError(err)
	} else if c, ok := r.body.(io.Closer); ok {
		cerr = c.Close()
	}
	fasthttp.ReleaseResponse(r.br)
	r.done()
	r.mu.Lock()
	r.closed, r.closeErr = true, err
	rec := r.rec
	r.mu.Unlock()
	if rec != nil {
		r.log(rec)
	}
	return cerr
}

// serveReturned is told the request's record as Serve returns: it is
// logged now if the body is already done, else when it is.
func (r *bodyRelay) serveReturned(rec *accesslog.Record, start time.Time, p *Proxy) {
	c := cloneRecord(rec)
	r.mu.Lock()
	r.start, r.p = start, p
	closed := r.closed
	if !closed {
		r.rec = c
	}
	r.mu.Unlock()
	if closed {
		r.log(c)
	}
}

func (r *bodyRelay) log(rec *accesslog.Record) {
	rec.BytesOut, rec.Latency = r.n, time.Since(r.start)
	r.p.o.Engine.AnsweredTicket(&r.obs, rec.Status, rec.BytesOut, &r.obsVals)
	r.p.o.Log.Write(rec)
	r.p.o.Metrics.Request(rec.APIID, "inline", rec.Decision, rec.Reason, rec.Latency, rec.ClientIP)
}

// cloneRecord copies rec with strings of its own: Serve's record points
// into the request's memory, which the server reuses once Serve returns.
func cloneRecord(rec *accesslog.Record) *accesslog.Record {
	c := *rec
	for _, s := range []*string{&c.Protocol, &c.APIID, &c.Host, &c.Query, &c.UserAgent, &c.RequestID, &c.Username,
		&c.ClientID, &c.Method, &c.Path, &c.Decision, &c.Reason, &c.Backend, &c.CorrelationID, &c.Call} {
		*s = strings.Clone(*s)
	}
	return &c
}

// deliver gives the client br, the backend's response: small bodies
// whole, others streamed (returning the bodyRelay). release is called once
// the backend is no longer needed.
func deliver(ctx *fasthttp.RequestCtx, br *fasthttp.Response, release func()) *bodyRelay {
	br.Header.CopyTo(&ctx.Response.Header)
	stripHopByHop(&ctx.Response.Header)
	s := br.BodyStream()
	n := br.Header.ContentLength()
	if s == nil || (n >= 0 && n <= smallBody) {
		if s != nil {
			ctx.Response.SetBody(br.Body()) // reads and closes the stream
		} else if len(br.Body()) > 0 {
			ctx.Response.SetBody(br.Body())
		}
		fasthttp.ReleaseResponse(br)
		release()
		return nil
	}
	if n < 0 {
		n = -1 // chunked, or until the backend closes: chunked to the client
	}
	r := &bodyRelay{br: br, body: s, done: release}
	ctx.Response.SetBodyStream(r, n)
	return r
}

// idleConn bounds each read from a backend by backend_timeout: the wait
// for a response's head, and every wait for more of its body, but not
// the time the client takes to read what it was sent (during which
// nothing is read from the backend).
type idleConn struct {
	net.Conn
	timeout time.Duration
}

func (c *idleConn) Read(b []byte) (int, error) {
	if err := c.Conn.SetReadDeadline(time.Now().Add(c.timeout)); err != nil {
		return 0, err
	}
	return c.Conn.Read(b)
}
