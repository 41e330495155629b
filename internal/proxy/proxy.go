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
	"slices"
	"strconv"
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
}

// Proxy is the inline handler.
type Proxy struct {
	o     Options
	pools atomic.Pointer[map[string]*pool] // by api_id

	mu       sync.Mutex // rebuilds
	clients  map[clientKey]*fasthttp.HostClient
	gates    map[string]*flow.Gate    // by api_id, kept across rebuilds
	inflight map[string]*atomic.Int64 // by api_id + " " + server, kept across rebuilds
	conns    sync.Map                 // api_id -> *connCount
	seed     maphash.Seed
	stop     chan struct{}
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
	p := &Proxy{o: o, clients: map[clientKey]*fasthttp.HostClient{}, gates: map[string]*flow.Gate{}, inflight: map[string]*atomic.Int64{},
		seed: maphash.MakeSeed(), stop: make(chan struct{})}
	empty := map[string]*pool{}
	p.pools.Store(&empty)
	o.Live.Watch(p.sync)
	go p.dispatch()
	return p
}

// Close stops the proxy's background work.
func (p *Proxy) Close() { close(p.stop) }

// dispatch serves queued requests whose server became eligible with time
// (a spike threshold) and refuses those that waited too long; releases
// serve the queue at once on their own.
func (p *Proxy) dispatch() {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
		for _, pl := range *p.pools.Load() {
			if pl.gate != nil && pl.gate.Waiting() > 0 {
				pl.gate.Dispatch()
			}
		}
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
		opts := flow.GateOptions{Queueing: a.FlowControl.ServerConnectionQueueing, MaxQueue: p.o.QueueSize, MaxWait: p.o.QueueWait}
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
}

func (p *Proxy) newClient(k clientKey) *fasthttp.HostClient {
	c := &fasthttp.HostClient{
		Addr:                          k.addr,
		Name:                          "ase",
		NoDefaultUserAgentHeader:      true,
		IsTLS:                         k.tls,
		MaxConns:                      4096,
		MaxIdleConnDuration:           60 * time.Second,
		ReadTimeout:                   p.o.Timeout,
		WriteTimeout:                  p.o.Timeout,
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
			return rawio.Wrap(c), nil
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
			out = append(out, metrics.Backend{APIID: id, Server: b.addr, Up: b.up.Load(), InFlight: b.inflight.Load()})
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

// Serve is the fasthttp handler of the data ports in inline mode: the TLS
// port, and the plain port's connections the event loops hand over.
func (p *Proxy) Serve(ctx *fasthttp.RequestCtx) {
	start := ctx.Time() // fasthttp stamps each request as it reads it
	// The record is written before Serve returns, while these views of the
	// request are still valid.
	rec := accesslog.Record{Protocol: "inline", Method: b2s(ctx.Method()), Path: b2s(ctx.Path())}
	defer func() {
		rec.Time, rec.Latency = start, time.Since(start)
		if rec.Status == 0 {
			rec.Status = ctx.Response.StatusCode()
		}
		p.o.Log.Write(&rec)
		p.o.Metrics.Request(rec.APIID, "inline", rec.Decision, rec.Reason, rec.Latency)
	}()
	hd := &ctx.Request.Header
	peerIP := peer(ctx)
	rec.ClientIP = peerIP
	if why := badFraming(hd.RawHeaders()); why != "" {
		rec.Decision, rec.Reason = "refuse", "malformed"
		ctx.SetConnectionClose()
		plain(ctx, fasthttp.StatusBadRequest, "Error: Bad Request")
		return
	}
	path := b2s(ctx.Path())
	api, rerr := p.o.Engine.Route(b2s(hd.Host()), path)
	if api == nil {
		rec.Decision, rec.Reason = "refuse", "unknown_api"
		plain(ctx, fasthttp.StatusServiceUnavailable, rerr.Message())
		return
	}
	rec.APIID = api.ID
	upgrade := api.Protocol == apidef.WS && isWebSocket(hd)
	scheme := "http"
	if ctx.IsTLS() {
		scheme = "https"
	}
	if upgrade {
		scheme = map[string]string{"http": "ws", "https": "wss"}[scheme]
	}
	raw := engine.Raw{
		Peer:          peerIP,
		XRealIP:       b2s(hd.Peek("X-Real-IP")),
		XForwardedFor: b2s(hd.Peek("X-Forwarded-For")),
		Cookie:        b2s(hd.Peek("Cookie")),
		Authorization: b2s(hd.Peek("Authorization")),
		RawQuery:      b2s(ctx.URI().QueryString()),
	}
	if api.APIKeyHeader != "" {
		raw.APIKeyHeader = b2s(hd.Peek(api.APIKeyHeader))
	}
	req := engine.Request{
		Now: start.UnixNano(),
		API: api, Path: path, Method: b2s(ctx.Method()), Scheme: scheme,
		ContentType: b2s(hd.ContentType()), HasBody: len(ctx.Request.Body()) > 0,
		ID: engine.Identify(api, &raw, p.o.TrustXFF),
	}
	rec.ClientIP = req.ID.IP
	d := p.o.Engine.Decide(&req)
	rec.Decision, rec.Reason, rec.Monitor = d.Action.String(), d.Reason.String(), d.Monitor
	if r, ok := decisionReply(&d, api, ctx.RequestURI()); ok {
		if r.hname != "" {
			ctx.Response.Header.Set(r.hname, r.hvalue)
		}
		answer(ctx, r.code, r.reason, r.body)
		return
	}
	pl := (*p.pools.Load())[api.ID]
	if pl == nil || len(pl.backends) == 0 {
		rec.Reason = "no_server"
		plain(ctx, fasthttp.StatusServiceUnavailable, "Error: No Server Available")
		return
	}
	if upgrade {
		p.websocket(ctx, pl, &req, scheme, &rec)
		return
	}
	p.forward(ctx, pl, &req, scheme, peerIP, &rec)
}

func peer(ctx *fasthttp.RequestCtx) netip.Addr {
	if a, ok := netip.AddrFromSlice(ctx.RemoteIP()); ok {
		return a.Unmap()
	}
	return netip.Addr{}
}

// plain answers with a text body (the vendor's "Error: ..." sentences).
func plain(ctx *fasthttp.RequestCtx, code int, body string) {
	ctx.SetStatusCode(code)
	ctx.SetContentType("text/plain; charset=utf-8")
	ctx.SetBodyString(body)
}

// answer gives a configured response: code, reason phrase, body.
func answer(ctx *fasthttp.RequestCtx, code int, reason, body string) {
	ctx.SetStatusCode(code)
	if reason != "" {
		ctx.Response.Header.SetStatusMessage([]byte(reason))
	}
	ctx.SetContentType("text/plain; charset=utf-8")
	ctx.SetBodyString(body)
}

// reply is an answer ASE gives itself: status code, reason phrase (the
// standard one if empty), text body and at most one more header.
type reply struct {
	code                        int
	reason, body, hname, hvalue string
}

// decisionReply is the answer to a decision that does not forward the
// request (ok is false for Allow); target is the request's path and query.
func decisionReply(d *engine.Decision, api *apidef.API, target []byte) (reply, bool) {
	switch d.Action {
	case engine.Block:
		return reply{code: fasthttp.StatusForbidden, body: "Error: Unauthorized"}, true
	case engine.Reject:
		e := &api.Enforcement
		return reply{code: e.ErrorCode, reason: e.ErrorDef, body: e.ErrorMessageBody}, true
	case engine.Redirect:
		r := &api.Enforcement.Redirect
		return reply{code: r.Code, reason: r.Def, hname: "Location", hvalue: redirectLocation(r.HTTPSURL, target)}, true
	case engine.Decoy:
		dc := &api.Decoy
		return reply{code: dc.ResponseCode, reason: dc.ResponseDef, body: dc.ResponseMessage}, true
	case engine.Limit:
		return reply{code: fasthttp.StatusTooManyRequests, body: "Error: Too Many Requests",
			hname: "Retry-After", hvalue: strconv.Itoa(max(int((d.RetryAfter+time.Second-1)/time.Second), 1))}, true
	}
	return reply{}, false
}

// redirectLocation is https_url followed by the request's path and query,
// unless https_url names a path of its own.
func redirectLocation(httpsURL string, target []byte) string {
	if i := strings.Index(httpsURL, "://"); i >= 0 {
		if rest := httpsURL[i+3:]; strings.Trim(rest[strings.IndexByte(rest+"/", '/'):], "/") != "" {
			return httpsURL
		}
	}
	return strings.TrimSuffix(httpsURL, "/") + string(target)
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

func (p *Proxy) forward(ctx *fasthttp.RequestCtx, pl *pool, req *engine.Request, scheme string, peerIP netip.Addr, rec *accesslog.Record) {
	r := &ctx.Request
	prepareRequest(r, pl.api, ctx, scheme, peerIP)
	cookie := ""
	if pl.api.CookiePersistenceEnabled {
		cookie = req.ID.Cookie
	}
	retry := idempotent(ctx.Method())
	var tried uint64
	for {
		b, i, err := p.acquire(pl, cookie, tried)
		if err != nil {
			rec.Reason = "no_server"
			plain(ctx, fasthttp.StatusServiceUnavailable, "Error: No Server Available")
			return
		}
		tried |= 1 << i
		rec.Backend = b.addr
		b.inflight.Add(1)
		err = b.client.DoTimeout(r, &ctx.Response, p.o.Timeout)
		b.inflight.Add(-1)
		p.release(pl, b)
		if err == nil {
			stripHopByHop(&ctx.Response.Header)
			return
		}
		ctx.Response.Reset()
		if errors.Is(err, fasthttp.ErrTimeout) {
			rec.Reason = "backend_timeout"
			plain(ctx, fasthttp.StatusGatewayTimeout, "Error: Gateway Timeout")
			return
		}
		if !retry || !connectionFailed(err) {
			rec.Reason = "backend_error"
			p.o.Logger.Warn("backend request failed", "api_id", pl.api.ID, "server", b.addr, "error", err)
			plain(ctx, fasthttp.StatusBadGateway, "Error: Bad Gateway")
			return
		}
		p.o.Logger.Warn("backend connection failed; trying another server", "api_id", pl.api.ID, "server", b.addr, "error", err)
	}
}

// connectionFailed reports whether err is a failure to reach the server
// (so that an idempotent request may go to another one).
func connectionFailed(err error) bool {
	var ne *net.OpError
	return errors.As(err, &ne) || errors.Is(err, fasthttp.ErrDialTimeout) || errors.Is(err, fasthttp.ErrConnectionClosed) ||
		strings.Contains(err.Error(), "connection refused") || strings.Contains(err.Error(), "connection reset")
}

// hopByHop are the headers that concern one connection only (RFC 9110
// section 7.6.1), never forwarded.
var hopByHop = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization", "TE", "Trailer", "Upgrade"}

// prepareRequest turns the client's request into the backend's, in place:
// the url prefix rewritten to api_mapping.internal_url, hop-by-hop headers
// removed, X-Forwarded-For/-Proto/-Host set; the Host stays the client's.
func prepareRequest(r *fasthttp.Request, api *apidef.API, ctx *fasthttp.RequestCtx, scheme string, peerIP netip.Addr) {
	hd := &r.Header
	// The scheme is the backend's (server_ssl), not the client's.
	if api.ServerSSL {
		r.URI().SetScheme("https")
	} else {
		r.URI().SetScheme("http")
	}
	if api.InternalURL != "" {
		path := ctx.Path()
		rest := path
		if api.URL != "/" {
			rest = path[len(api.URL):]
		}
		np := make([]byte, 0, len(api.InternalURL)+len(rest))
		np = append(append(np, api.InternalURL...), rest...)
		if api.InternalURL == "/" && len(rest) > 0 {
			np = np[1:]
		}
		r.URI().SetPathBytes(np)
	}
	stripRequestHopByHop(hd)
	var buf [128]byte
	xff := buf[:0]
	if prior := hd.Peek("X-Forwarded-For"); len(prior) > 0 {
		xff = append(append(xff, prior...), ", "...)
	}
	xff = peerIP.AppendTo(xff)
	hd.SetBytesV("X-Forwarded-For", xff)
	proto := "http"
	if scheme == "https" || scheme == "wss" {
		proto = "https"
	}
	hd.Set("X-Forwarded-Proto", proto)
	hd.SetBytesV("X-Forwarded-Host", hd.Host())
}

// isHopByHop reports whether a header name is one of hopByHop.
func isHopByHop(name []byte) bool {
	for _, h := range hopByHop {
		if len(name) == len(h) && bytes.EqualFold(name, []byte(h)) {
			return true
		}
	}
	return false
}

// deleteConnectionNames deletes the headers a Connection header names
// (RFC 9110 7.6.1); del deletes one name. It splits by hand: no
// allocation.
func deleteConnectionNames(c []byte, del func([]byte)) {
	for len(c) > 0 {
		var name []byte
		if name, c = rfc9110.NextItem(c); len(name) > 0 {
			del(name)
		}
	}
}

// stripRequestHopByHop removes hop-by-hop headers from a client's request
// and those its Connection header names (fasthttp keeps Connection
// itself). The data ports normalize header names, so deleting the
// canonical spelling finds every spelling the client used.
func stripRequestHopByHop(hd *fasthttp.RequestHeader) {
	if c := hd.Peek("Connection"); len(c) > 0 {
		deleteConnectionNames(c, hd.DelBytes)
	}
	for _, h := range hopByHop[1:] {
		hd.Del(h)
	}
}

// stripHopByHop does the same for a backend's response, whose header names
// keep the backend's spelling (the backend client does not normalize
// them): names are matched case-insensitively, in one scan that allocates
// nothing when, as usual, there is nothing to remove.
func stripHopByHop(hd *fasthttp.ResponseHeader) {
	conn := hd.Peek("Connection")
	var found [8]string
	n := 0
	for k := range hd.All() {
		if n == len(found) || bytes.EqualFold(k, []byte("Connection")) {
			continue
		}
		if isHopByHop(k) || (len(conn) > 0 && rfc9110.HasToken(conn, k)) {
			found[n] = string(k)
			n++
		}
	}
	for _, k := range found[:n] {
		hd.Del(k)
	}
}

func isWebSocket(hd *fasthttp.RequestHeader) bool {
	return bytes.EqualFold(hd.Peek("Upgrade"), []byte("websocket")) && headerHasToken(hd.Peek("Connection"), "upgrade")
}

func headerHasToken(v []byte, token string) bool { return rfc9110.HasToken(v, []byte(token)) }

// badFraming checks the raw header section for the request-smuggling
// shapes fasthttp itself lets through: Content-Length together with
// Transfer-Encoding (RFC 9112 6.1: the sender may be smuggling a second
// request past an intermediary that reads the other one), obsolete line
// folding, and header names that are not tokens.
func badFraming(raw []byte) string {
	var cl, te bool
	for len(raw) > 0 {
		line := raw
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			line, raw = raw[:i], raw[i+1:]
		} else {
			raw = nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			return "obsolete line folding"
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !rfc9110.IsToken(line[:colon]) {
			return "invalid header name"
		}
		name := line[:colon]
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			cl = true
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			te = true
		}
	}
	if cl && te {
		return "both Content-Length and Transfer-Encoding"
	}
	return ""
}
