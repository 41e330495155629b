// Package proxy is ASE's inline data path: a reverse proxy that routes
// each request to its API, asks the engine, and forwards what it allows to
// the API's healthy backend servers over pooled keep-alive connections,
// answering everything else itself (blocks, pattern violations, redirects,
// decoys, rate limits). WebSocket APIs are upgraded and relayed both ways.
//
// The plain data port is served by event loops (loop.go), which proxy at
// nginx's speed; Serve, a fasthttp handler, serves the TLS port and every
// connection the loops hand over (see the README, "The data path").
package proxy

import (
	"bytes"
	"crypto/tls"
	"errors"
	"hash/maphash"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/valyala/fasthttp"

	"github.com/ase-project/ase/internal/accesslog"
	"github.com/ase-project/ase/internal/apidef"
	"github.com/ase-project/ase/internal/catalog"
	"github.com/ase-project/ase/internal/engine"
	"github.com/ase-project/ase/internal/flow"
	"github.com/ase-project/ase/internal/frontdoor"
	"github.com/ase-project/ase/internal/health"
	"github.com/ase-project/ase/internal/metrics"
	"github.com/ase-project/ase/internal/rawio"
	"github.com/ase-project/ase/internal/rfc9110"
	"github.com/ase-project/ase/internal/wire"
)

// Options configure the proxy.
type Options struct {
	Engine     *engine.Engine
	Live       *catalog.Live
	Health     *health.Checker
	Log        *accesslog.Log
	Logger     *slog.Logger
	TrustXFF   bool          // enable_xff: the client is X-Real-IP / the right-most X-Forwarded-For
	BackendTLS *tls.Config   // for server_ssl APIs
	Timeout    time.Duration // backend_timeout
	QueueSize  int           // server_queue_size
	QueueWait  time.Duration // server_queue_timeout
	// Clock is what WebSocket byte throttling reads; the wall clock if nil.
	Clock   flow.Clock
	Metrics *metrics.Metrics
	// Flow, in cluster mode, makes the servers' quotas and spike
	// thresholds hold for the whole cluster; nil standalone.
	Flow *flow.Node
	// TrustedProxies is trusted_proxies: when set, TrustXFF holds for
	// these peers only, and X-Forwarded-For is walked past them.
	TrustedProxies []netip.Prefix
}

// Proxy is the inline handler.
type Proxy struct {
	o     Options
	door  frontdoor.Door
	pools atomic.Pointer[map[string]*pool] // by api_id

	mu       sync.Mutex // rebuilds
	clients  map[clientKey]*fasthttp.HostClient
	gates    map[string]*flow.Gate    // by api_id, kept across rebuilds
	inflight map[string]*atomic.Int64 // by api_id + " " + server, kept across rebuilds
	conns    sync.Map                 // api_id -> *connCount
	seed     maphash.Seed
	stop     chan struct{}
	queued   chan struct{} // a request waits in a gate's queue (see dispatch)
	// repooled, once the event loops run, has them look at the pools
	// again (they keep idle backend connections per address).
	repooled atomic.Pointer[func()]
}

type clientKey struct {
	addr string
	tls  bool
}

// pool is one API's backends.
type pool struct {
	api      *apidef.API
	backends []*backend
	next     atomic.Uint64
	// gate enforces the servers' quotas and spike thresholds; nil when no
	// server has one (then round-robin needs no lock).
	gate *flow.Gate
	// direct is whether every server is an IP address, so the event loops
	// can connect without a name lookup.
	direct bool
}

type backend struct {
	addr     string
	ap       netip.AddrPort // addr, when it is an IP address and port
	up       *atomic.Bool
	client   *fasthttp.HostClient
	inflight *atomic.Int64 // requests (and WebSocket connections) at this server, for the metrics
}

// connCount counts an API's live WebSocket connections.
type connCount struct{ ws, wss atomic.Int64 }

// New returns the proxy and starts following the catalog.
func New(o Options) *Proxy {
	if o.Timeout == 0 {
		o.Timeout = 60 * time.Second
	}
	if o.Clock == nil {
		o.Clock = flow.RealClock
	}
	p := &Proxy{o: o, door: frontdoor.Door{Engine: o.Engine, TrustXFF: o.TrustXFF, Trusted: o.TrustedProxies}, clients: map[clientKey]*fasthttp.HostClient{}, gates: map[string]*flow.Gate{}, inflight: map[string]*atomic.Int64{},
		seed: maphash.MakeSeed(), stop: make(chan struct{}), queued: make(chan struct{}, 1)}
	empty := map[string]*pool{}
	p.pools.Store(&empty)
	o.Live.Watch(p.sync)
	go p.dispatch()
	return p
}

// Close stops the proxy's background work.
func (p *Proxy) Close() { close(p.stop) }

// dispatchEvery is how often queued requests are looked at while some
// wait.
const dispatchEvery = 5 * time.Millisecond

// dispatch serves queued requests whose server became eligible with time
// (a spike threshold) and refuses those that waited too long; releases
// serve the queue at once on their own. Its ticker runs only while
// requests wait: a gate tells when one starts to (noteQueued).
func (p *Proxy) dispatch() {
	for {
		select {
		case <-p.stop:
			return
		case <-p.queued:
		}
		t := time.NewTicker(dispatchEvery)
		for waiting := true; waiting; {
			select {
			case <-p.stop:
				t.Stop()
				return
			case <-t.C:
			}
			waiting = false
			for _, pl := range *p.pools.Load() {
				if pl.gate != nil && pl.gate.Waiting() > 0 {
					pl.gate.Dispatch()
					waiting = waiting || pl.gate.Waiting() > 0
				}
			}
		}
		t.Stop()
	}
}

// noteQueued wakes dispatch: a request waits in a gate's queue.
func (p *Proxy) noteQueued() {
	select {
	case p.queued <- struct{}{}:
	default:
	}
}

// sync rebuilds the pools of a catalog snapshot. Connection pools of
// backends that stay are kept, so a change to one API does not drop the
// keep-alive connections of the others.
func (p *Proxy) sync(snap *catalog.Snapshot) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pools := make(map[string]*pool, len(snap.APIs))
	used := map[clientKey]bool{}
	for id, a := range snap.APIs {
		pl := &pool{api: a, direct: true}
		limits := make([]flow.ServerLimits, 0, len(a.Servers))
		for _, s := range a.Servers {
			k := clientKey{addr: s.Addr(), tls: a.ServerSSL}
			used[k] = true
			c := p.clients[k]
			if c == nil {
				c = p.newClient(k)
				p.clients[k] = c
			}
			fk := id + " " + k.addr
			if p.inflight[fk] == nil {
				p.inflight[fk] = new(atomic.Int64)
			}
			b := &backend{addr: k.addr, up: p.o.Health.State(id, k.addr), client: c, inflight: p.inflight[fk]}
			if ap, err := netip.ParseAddrPort(k.addr); err == nil {
				b.ap = ap
			} else {
				pl.direct = false
			}
			pl.backends = append(pl.backends, b)
			limits = append(limits, flow.ServerLimits{Addr: b.addr, Quota: s.ConnectionQuota, Spike: s.SpikeThreshold, Up: b.up})
		}
		opts := flow.GateOptions{Queueing: a.FlowControl.ServerConnectionQueueing, MaxQueue: p.o.QueueSize, MaxWait: p.o.QueueWait,
			Cluster: p.o.Flow, API: id, Queued: p.noteQueued}
		if g := p.gates[id]; g != nil {
			g.Update(limits, opts) // in-flight counts carry over
			pl.gate = g
		} else if flow.Limited(limits) {
			pl.gate = flow.NewGate(limits, opts)
			p.gates[id] = pl.gate
		}
		pools[id] = pl
	}
	for id := range p.gates {
		if pools[id] == nil {
			delete(p.gates, id)
		}
	}
	for k := range p.inflight {
		id, addr, _ := strings.Cut(k, " ")
		if pl := pools[id]; pl == nil || !slices.ContainsFunc(pl.backends, func(b *backend) bool { return b.addr == addr }) {
			delete(p.inflight, k)
		}
	}
	for k, c := range p.clients {
		if !used[k] {
			c.CloseIdleConnections()
			delete(p.clients, k)
		}
	}
	p.pools.Store(&pools)
	if f := p.repooled.Load(); f != nil {
		(*f)()
	}
}

func (p *Proxy) newClient(k clientKey) *fasthttp.HostClient {
	c := &fasthttp.HostClient{
		Addr:                     k.addr,
		Name:                     "ase",
		NoDefaultUserAgentHeader: true,
		IsTLS:                    k.tls,
		MaxConns:                 4096,
		MaxIdleConnDuration:      60 * time.Second,
		// backend_timeout bounds each wait for the backend (idleConn), not
		// the whole response: a body streams as fast as the client reads.
		WriteTimeout:                  p.o.Timeout,
		StreamResponseBody:            true,
		DisableHeaderNamesNormalizing: true,
		DisablePathNormalizing:        true,
		ReadBufferSize:                16 << 10,
		// Retried across servers by the proxy, which knows whether the
		// request is idempotent; within one server, only a keep-alive
		// connection the server closed meanwhile is retried.
		MaxIdemponentCallAttempts: 2,
		Dial: func(addr string) (net.Conn, error) {
			c, err := fasthttp.DialTimeout(addr, 5*time.Second)
			if err != nil {
				return nil, err
			}
			return &idleConn{Conn: rawio.Wrap(c), timeout: p.o.Timeout}, nil
		},
	}
	if k.tls {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if p.o.BackendTLS != nil {
			tc = p.o.BackendTLS.Clone()
		}
		host, _, _ := net.SplitHostPort(k.addr)
		tc.ServerName = host
		c.TLSConfig = tc
	}
	return c
}

// Backends describes every backend server for the metrics.
func (p *Proxy) Backends() []metrics.Backend {
	var out []metrics.Backend
	for id, pl := range *p.pools.Load() {
		for _, b := range pl.backends {
			out = append(out, metrics.Backend{APIID: id, Server: b.addr, Health: p.o.Health.Health(id, b.addr), InFlight: b.inflight.Load()})
		}
	}
	return out
}

// WebSockets returns the open WebSocket connections by API and scheme.
func (p *Proxy) WebSockets() map[[2]string]int64 {
	out := map[[2]string]int64{}
	p.conns.Range(func(k, v any) bool {
		c := v.(*connCount)
		out[[2]string{k.(string), "ws"}] = c.ws.Load()
		out[[2]string{k.(string), "wss"}] = c.wss.Load()
		return true
	})
	return out
}

// Connections returns an API's live WebSocket connection counts.
func (p *Proxy) Connections(apiID string) wire.ConnectionCount {
	v, ok := p.conns.Load(apiID)
	if !ok {
		return wire.ConnectionCount{}
	}
	c := v.(*connCount)
	return wire.ConnectionCount{WS: c.ws.Load(), WSS: c.wss.Load()}
}

func (p *Proxy) counter(apiID string) *connCount {
	v, _ := p.conns.LoadOrStore(apiID, &connCount{})
	return v.(*connCount)
}

// b2s views b as a string for the duration of a request.
func b2s(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// fieldsPool holds the header field slices of the general server's
// requests.
var fieldsPool = sync.Pool{New: func() any { s := make([]frontdoor.Field, 0, 32); return &s }}

// Serve is the fasthttp handler of the data ports in inline mode: the TLS
// port, and the plain port's connections the event loops hand over (or
// all of them with inline_event_loops=false). The request is read from
// the header section as received (never from trailers), through the same
// front door as the loops'.
func (p *Proxy) Serve(ctx *fasthttp.RequestCtx) {
	start := ctx.Time() // fasthttp stamps each request as it reads it
	// The record is written before Serve returns, while these views of the
	// request are still valid.
	var rec accesslog.Record
	var streaming *bodyRelay // a response body that streams after Serve returns
	var x *frontdoor.Inline
	defer func() {
		rec.Time, rec.Latency = start, time.Since(start)
		if rec.Status == 0 {
			rec.Status = ctx.Response.StatusCode()
		}
		rec.BytesIn = int64(len(ctx.Request.Body()))
		if streaming != nil {
			streaming.obs = x.Req.Obs
			if streaming.obs.Observed() {
				streaming.obsVals.Pack(&x.Req.ID)
			}
			streaming.serveReturned(&rec, start, p) // logged when the body is done
			return
		}
		if !ctx.IsHead() && rec.Status != fasthttp.StatusSwitchingProtocols {
			rec.BytesOut = int64(len(ctx.Response.Body()))
		}
		if x != nil && rec.Backend != "" && rec.Status != fasthttp.StatusSwitchingProtocols {
			p.o.Engine.Answered(&x.Req, rec.Status, rec.BytesOut) // behavioural detection counts the answer
		}
		p.o.Log.Write(&rec)
		p.o.Metrics.Request(rec.APIID, "inline", rec.Decision, rec.Reason, rec.Latency, rec.ClientIP)
	}()
	hd := &ctx.Request.Header
	fp := fieldsPool.Get().(*[]frontdoor.Field)
	defer func() {
		if cap(*fp) <= 1024 {
			*fp = (*fp)[:0]
			fieldsPool.Put(fp)
		}
	}()
	x = &frontdoor.Inline{
		Request: frontdoor.Request{Method: hd.Method(), Target: hd.RequestURI(), Framing: true},
		Peer:    peer(ctx), TLS: ctx.IsTLS(), Now: start.UnixNano(),
	}
	fields, ok := frontdoor.ParseFields(hd.RawHeaders(), (*fp)[:0])
	*fp = fields
	x.Fields = fields
	var out frontdoor.Outcome
	var rp frontdoor.Reply
	if !ok {
		rec = accesslog.Record{Protocol: "inline", Method: b2s(hd.Method()), Path: b2s(frontdoor.RawPath(hd.RequestURI())), ClientIP: x.Peer}
		rec.Decision, rec.Reason = "refuse", frontdoor.BadRequest.LogReason()
		out, rp = frontdoor.Answer, frontdoor.BadRequest.Reply()
	} else {
		out, rp = p.door.Decide(x, &rec, func(api *apidef.API) bool { return api.Protocol == apidef.WS && isWebSocket(x) }, nil)
		frontdoor.LogUser(&rec, x.API, &x.Req.ID, x.Fields, x.Reading.Query)
	}
	if out == frontdoor.Answer {
		reply(ctx, rp)
		return
	}
	pl := (*p.pools.Load())[x.API.ID]
	if pl == nil || len(pl.backends) == 0 {
		fail(ctx, &rec, frontdoor.NoServer)
		return
	}
	if x.Req.Scheme == "ws" || x.Req.Scheme == "wss" {
		p.websocket(ctx, pl, x, &rec)
		return
	}
	streaming = p.forward(ctx, pl, x, &rec)
}

func peer(ctx *fasthttp.RequestCtx) netip.Addr {
	if a, ok := netip.AddrFromSlice(ctx.RemoteIP()); ok {
		return a.Unmap()
	}
	return netip.Addr{}
}

// reply gives one of ASE's own answers.
func reply(ctx *fasthttp.RequestCtx, r frontdoor.Reply) {
	ctx.SetStatusCode(r.Code)
	if r.Reason != "" {
		ctx.Response.Header.SetStatusMessage([]byte(r.Reason))
	}
	if r.HName != "" {
		ctx.Response.Header.Set(r.HName, r.HValue)
	}
	ctx.SetContentType("text/plain; charset=utf-8")
	ctx.SetBodyString(r.Body)
	if r.Close {
		ctx.SetConnectionClose()
	}
}

// fail answers a failure, naming it in the access log.
func fail(ctx *fasthttp.RequestCtx, rec *accesslog.Record, f frontdoor.Failure) {
	rec.Reason = f.LogReason()
	reply(ctx, f.Reply())
}

// pick chooses a healthy backend: by the client's cookie when the API
// keeps clients on one server (rendezvous hashing, so a client moves only
// when its server goes down), else round-robin. skip excludes servers
// already tried.
func (p *Proxy) pick(pl *pool, cookie string, skip uint64) (*backend, int) {
	n := len(pl.backends)
	if n > 64 {
		n = 64 // skip is a bit set; more servers than that are not retried
	}
	if pl.api.CookiePersistenceEnabled && cookie != "" {
		best, bestI, bestW := (*backend)(nil), -1, uint64(0)
		for i, b := range pl.backends[:n] {
			if skip&(1<<i) != 0 || !b.up.Load() {
				continue
			}
			var h maphash.Hash
			h.SetSeed(p.seed)
			h.WriteString(cookie)
			h.WriteString(b.addr)
			if w := h.Sum64(); best == nil || w > bestW {
				best, bestI, bestW = b, i, w
			}
		}
		return best, bestI
	}
	start := int(pl.next.Add(1) % uint64(n))
	for k := 0; k < n; k++ {
		i := (start + k) % n
		if b := pl.backends[i]; skip&(1<<i) == 0 && b.up.Load() {
			return b, i
		}
	}
	return nil, -1
}

// acquire picks a backend for one request, within the servers' quotas and
// spike thresholds when the API has any (possibly waiting in its queue).
func (p *Proxy) acquire(pl *pool, cookie string, tried uint64) (*backend, int, error) {
	if pl.gate == nil {
		b, i := p.pick(pl, cookie, tried)
		if b == nil {
			return nil, -1, flow.ErrNoServer
		}
		return b, i, nil
	}
	prefer := -1
	if pl.api.CookiePersistenceEnabled && cookie != "" {
		_, prefer = p.pick(pl, cookie, tried)
	}
	i, err := pl.gate.Acquire(prefer, tried)
	if err != nil {
		return nil, -1, err
	}
	return pl.backends[i], i, nil
}

func (p *Proxy) release(pl *pool, b *backend) {
	if pl.gate != nil {
		pl.gate.ReleaseAddr(b.addr)
	}
}

// idempotent methods may be sent again to another server when the first
// connection fails.
func idempotent(m []byte) bool {
	switch string(m) {
	case "GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE":
		return true
	}
	return false
}

// forward sends the request to a backend and answers with its response,
// returning the bodyRelay when the body streams on after Serve returns.
func (p *Proxy) forward(ctx *fasthttp.RequestCtx, pl *pool, x *frontdoor.Inline, rec *accesslog.Record) *bodyRelay {
	out := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(out)
	body := ctx.Request.Body()
	head := frontdoor.AppendHead(nil, &x.Reading, &frontdoor.Head{Method: x.Method, Fields: x.Fields, API: x.API, Peer: x.Peer, TLS: x.TLS, BodyLen: int64(len(body)), RequestID: x.RequestID[:]})
	loadHead(out, head, pl.api.ServerSSL)
	out.SetBodyRaw(body)
	cookie := ""
	if pl.api.CookiePersistenceEnabled {
		cookie = x.Req.ID.Cookie
	}
	retry := idempotent(x.Method)
	var tried uint64
	for {
		b, i, err := p.acquire(pl, cookie, tried)
		if err != nil {
			fail(ctx, rec, frontdoor.NoServer)
			return nil
		}
		tried |= 1 << i
		rec.Backend = b.addr
		b.inflight.Add(1)
		br := fasthttp.AcquireResponse()
		err = b.client.Do(out, br)
		release := func() {
			b.inflight.Add(-1)
			p.release(pl, b)
		}
		if err == nil {
			return deliver(ctx, br, release)
		}
		fasthttp.ReleaseResponse(br)
		release()
		if timedOut(err) {
			fail(ctx, rec, frontdoor.GatewayTimeout)
			return nil
		}
		if !retry || !connectionFailed(err) {
			p.o.Logger.Warn("backend request failed", "api_id", pl.api.ID, "server", b.addr, "error", err)
			fail(ctx, rec, frontdoor.BadGateway)
			return nil
		}
		p.o.Logger.Warn("backend connection failed; trying another server", "api_id", pl.api.ID, "server", b.addr, "error", err)
	}
}

// loadHead makes out send exactly head (written by frontdoor.AppendHead):
// fasthttp's own header handling (a default User-Agent and Content-Type,
// its merging of Cookie fields, the Host of a parsed URI) is switched off.
func loadHead(out *fasthttp.Request, head []byte, tls bool) {
	hd := &out.Header
	hd.DisableNormalizing()
	hd.DisableSpecialHeader()
	hd.SetNoDefaultContentType(true)
	out.UseHostHeader = true
	line, rest, _ := bytes.Cut(head, []byte("\r\n"))
	method, line, _ := bytes.Cut(line, []byte(" "))
	target := line[:bytes.LastIndexByte(line, ' ')]
	hd.SetMethodBytes(method)
	hd.SetRequestURIBytes(target)
	for len(rest) > 2 {
		line, rest, _ = bytes.Cut(rest, []byte("\r\n"))
		name, value, _ := bytes.Cut(line, []byte(": "))
		hd.AddBytesKV(name, value)
	}
	// The scheme is the backend's (server_ssl), not the client's.
	if tls {
		out.URI().SetScheme("https")
	} else {
		out.URI().SetScheme("http")
	}
}

// timedOut reports whether err is the backend not answering within
// backend_timeout (a read past idleConn's deadline, or fasthttp's own).
func timedOut(err error) bool {
	var ne net.Error
	return errors.Is(err, fasthttp.ErrTimeout) || errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// connectionFailed reports whether err is a failure to reach the server
// (so that an idempotent request may go to another one).
func connectionFailed(err error) bool {
	var ne *net.OpError
	return errors.As(err, &ne) || errors.Is(err, fasthttp.ErrDialTimeout) || errors.Is(err, fasthttp.ErrConnectionClosed) ||
		strings.Contains(err.Error(), "connection refused") || strings.Contains(err.Error(), "connection reset")
}

// stripHopByHop removes from a backend's response the hop-by-hop headers
// and those its Connection header names. Names keep the backend's
// spelling (the backend client does not normalize them): they are matched
// case-insensitively, in one scan that allocates nothing when, as usual,
// there is nothing to remove.
func stripHopByHop(hd *fasthttp.ResponseHeader) {
	conn := hd.Peek("Connection")
	var found [8]string
	n := 0
	for k := range hd.All() {
		if n == len(found) || bytes.EqualFold(k, []byte("Connection")) {
			continue
		}
		if frontdoor.HopByHop(k) || (len(conn) > 0 && rfc9110.HasToken(conn, k)) {
			found[n] = string(k)
			n++
		}
	}
	for _, k := range found[:n] {
		hd.Del(k)
	}
}

// isWebSocket reports whether a request asks for a WebSocket.
func isWebSocket(x *frontdoor.Inline) bool {
	var upgrade, conn bool
	for _, f := range x.Fields {
		switch {
		case bytes.EqualFold(f.Name, []byte("Upgrade")):
			upgrade = upgrade || bytes.EqualFold(f.Value, []byte("websocket"))
		case bytes.EqualFold(f.Name, []byte("Connection")):
			conn = conn || rfc9110.HasToken(f.Value, []byte("upgrade"))
		}
	}
	return upgrade && conn
}
