package frontdoor

import (
	"bytes"
	"math/rand/v2"
	"net/netip"

	"github.com/ase-project/ase/internal/accesslog"
	"github.com/ase-project/ase/internal/apidef"
	"github.com/ase-project/ase/internal/engine"
)

// Door reads, routes and decides the inline requests of both engines.
type Door struct {
	Engine   *engine.Engine
	TrustXFF bool    // enable_xff
	Trusted  Proxies // trusted_proxies: when set, TrustXFF holds for these peers only
}

// Inline is one inline request on its way through the door: what an
// engine received, and what the door made of it.
type Inline struct {
	Request
	Peer netip.Addr
	TLS  bool
	Now  int64 // when it arrived, Unix ns

	Reading  Reading
	API      *apidef.API
	Req      engine.Request // what the engine decided on
	Decision engine.Decision
	// RequestID names the request in the access log and, as X-Request-ID,
	// to the backend: 128 random bits, hex.
	RequestID [32]byte
}

// Outcome is what an engine does with a request after the door.
type Outcome uint8

// The outcomes.
const (
	Answer  Outcome = iota // give the Reply
	Forward                // send AppendHead's request to a server of x.API
	Handoff                // the other engine serves it (nothing decided, nothing logged)
)

// Decide reads, routes and decides x, and fills rec (the access log
// record) with what it found. upgrade says whether the request asks for
// a WebSocket the API serves (its scheme is then ws or wss); handoff, when
// not nil, whether the request must be served by the other engine,
// asked once its API is known.
func (d *Door) Decide(x *Inline, rec *accesslog.Record, upgrade, handoff func(*apidef.API) bool) (Outcome, Reply) {
	rec.Protocol, rec.Method, rec.ClientIP = "inline", b2s(x.Method), x.Peer
	rec.Path = b2s(RawPath(x.Target))
	rd := &x.Reading
	if f := Read(&x.Request, rd); f != OK {
		return refuse(rec, f)
	}
	rec.Path, rec.Host, rec.Query, rec.UserAgent = rd.Path, rd.Host, rd.Query, rd.UserAgent
	rec.BytesIn = rd.Length
	api, rerr := d.Engine.Route(rd.Host, rd.Path)
	if api == nil {
		return refuse(rec, Route(rerr))
	}
	if handoff != nil && handoff(api) {
		return Handoff, Reply{}
	}
	newRequestID(&x.RequestID)
	rec.RequestID = b2s(x.RequestID[:])
	rec.APIID = api.ID
	id, f := Identify(api, x.Fields, rd.Query, &Client{Peer: x.Peer, TrustProxy: d.TrustXFF, Trusted: d.Trusted})
	if f != OK {
		rd.Why = "more than one X-Real-IP"
		return refuse(rec, f)
	}
	rec.ClientIP = id.IP
	scheme := "http"
	switch ws := upgrade != nil && upgrade(api); {
	case ws && x.TLS:
		scheme = "wss"
	case ws:
		scheme = "ws"
	case x.TLS:
		scheme = "https"
	}
	x.API = api
	x.Req = engine.Request{
		Now: x.Now, API: api, Path: rd.Path, Method: b2s(x.Method), Scheme: scheme,
		ContentType: rd.ContentType, HasBody: rd.HasBody(), ID: id,
	}
	x.Decision = d.Engine.Decide(&x.Req)
	rec.Decision, rec.Reason, rec.Monitor = x.Decision.Action.String(), x.Decision.Reason.String(), x.Decision.Monitor
	if r, ok := DecisionReply(&x.Decision, api, rd); ok {
		return Answer, r
	}
	return Forward, Reply{}
}

// Scheme is the scheme the request was decided with.
func (x *Inline) Scheme() string { return x.Req.Scheme }

func refuse(rec *accesslog.Record, f Failure) (Outcome, Reply) {
	rec.Decision, rec.Reason = "refuse", f.LogReason()
	return Answer, f.Reply()
}

// RawPath is the path part of a request-target, as sent: what the access
// log names when the request could not be read.
func RawPath(t []byte) []byte {
	if i := bytes.Index(t, []byte("://")); i > 0 && t[0] != '/' {
		t = t[i+3:]
		if j := bytes.IndexByte(t, '/'); j >= 0 {
			t = t[j:]
		} else {
			t = nil
		}
	}
	if q := bytes.IndexAny(t, "?#"); q >= 0 {
		t = t[:q]
	}
	return t
}

// newRequestID fills id with 128 random bits in hex (the runtime's
// per-thread generator: fast, unpredictable enough for a correlation id).
func newRequestID(id *[32]byte) {
	const hex = "0123456789abcdef"
	for half := 0; half < 2; half++ {
		v := rand.Uint64()
		for i := 0; i < 16; i++ {
			id[half*16+i] = hex[v&15]
			v >>= 4
		}
	}
}
