// Package sideband is ASE's decision service for API gateways, on the
// data ports in sideband mode. It speaks three protocols, all answered by
// the same engine:
//
//   - the ASE protocol (POST /ase/request and /ase/response), what the
//     vendor's gateway policies send;
//   - the Authorize protocol (POST /sideband/request and
//     /sideband/response), seed 002's gateway plugins: allow echoes the
//     request, deny returns the client response to send;
//   - forward-auth (/ase/authz and below, any method), for gateways
//     without a plugin: nginx auth_request, Traefik ForwardAuth, Caddy
//     forward_auth, Envoy ext_authz over HTTP.
//
// Every block, flow control included, is 403 on the ASE protocol and on
// forward-auth (the one code every gateway honours), with the reason in the
// JSON body or, on forward-auth, the X-ASE-Reason header (its answers have
// no body unless the gateway asks for one: see forwardAuthAnswer); the
// Authorize protocol returns the exact client response (429 with
// Retry-After for flow control).
package sideband

import (
	"bytes"
	"context"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fastjson"

	"github.com/ase-project/ase/internal/accesslog"
	"github.com/ase-project/ase/internal/apidef"
	"github.com/ase-project/ase/internal/catalog"
	"github.com/ase-project/ase/internal/engine"
	"github.com/ase-project/ase/internal/frontdoor"
	"github.com/ase-project/ase/internal/metrics"
	"github.com/ase-project/ase/internal/sbauth"
)

// Handler serves the sideband protocols.
type Handler struct {
	Engine    *engine.Engine
	Auth      *sbauth.Auth
	Live      *catalog.Live
	Log       *accesslog.Log
	KeepAlive bool // enable_sideband_keepalive
	// IdentityHeaders adds X-ASE-* headers describing the client to
	// forward-auth allows, for the gateway to copy upstream.
	IdentityHeaders bool
	Metrics         *metrics.Metrics
	// TrustedProxies is trusted_proxies: when set, forward-auth believes
	// the forwarding fields of these gateways only, walked past them.
	TrustedProxies frontdoor.Proxies

	parsers fastjson.ParserPool
	pending pendingTable // requests waiting for their response call
}

// Paths of the protocols.
const (
	pathASERequest        = "/ase/request"
	pathASEResponse       = "/ase/response"
	pathAuthorizeRequest  = "/sideband/request"
	pathAuthorizeResponse = "/sideband/response"
	pathAuthz             = "/ase/authz"
)

// Serve is the fasthttp handler of the data ports in sideband mode.
func (h *Handler) Serve(ctx *fasthttp.RequestCtx) {
	start := time.Now()
	if !h.KeepAlive {
		ctx.SetConnectionClose()
	}
	path := ctx.Path()
	switch {
	case bytes.Equal(path, []byte(pathAuthz)) || bytes.HasPrefix(path, []byte(pathAuthz+"/")):
		h.forwardAuth(ctx, start)
	case bytes.Equal(path, []byte(pathASERequest)):
		h.post(ctx, func() { h.requestCall(ctx, start, "ase", false, writeASEDecision) })
	case bytes.Equal(path, []byte(pathASEResponse)):
		h.post(ctx, func() { h.aseResponse(ctx, start) })
	case bytes.Equal(path, []byte(pathAuthorizeRequest)):
		h.post(ctx, func() { h.requestCall(ctx, start, "authorize", true, writeAuthorizeDecision) })
	case bytes.Equal(path, []byte(pathAuthorizeResponse)):
		h.post(ctx, func() { h.authorizeResponse(ctx, start) })
	default:
		jsonReply(ctx, fasthttp.StatusNotFound, `{"status":"fail","status_message":"unknown sideband endpoint"}`)
	}
}

// post runs fn for a POST, or answers 405.
func (h *Handler) post(ctx *fasthttp.RequestCtx, fn func()) {
	if !ctx.IsPost() {
		ctx.Response.Header.Set("Allow", "POST")
		jsonReply(ctx, fasthttp.StatusMethodNotAllowed, `{"status":"fail","status_message":"use POST"}`)
		return
	}
	fn()
}

// authenticated checks sideband authentication when it is on: a valid
// ASE-Token, or a valid active shared secret in the configured header.
func (h *Handler) authenticated(ctx *fasthttp.RequestCtx) bool {
	if !h.Live.Setting(catalog.SidebandAuthentication) {
		return true
	}
	token := ctx.Request.Header.Peek(sbauth.TokenHeader)
	secret := ctx.Request.Header.Peek(h.Auth.Header())
	if !h.Auth.Check(context.Background(), token, secret) {
		h.Metrics.AuthFailure("sideband")
		return false
	}
	return true
}

// unauthorized answers 401 without saying which credentials exist.
func unauthorized(ctx *fasthttp.RequestCtx) {
	jsonReply(ctx, fasthttp.StatusUnauthorized, `{"status":"fail","status_message":"sideband authentication failed"}`)
}

func jsonReply(ctx *fasthttp.RequestCtx, code int, body string) {
	ctx.SetStatusCode(code)
	ctx.SetContentType("application/json")
	ctx.SetBodyString(body)
}

// --- the ASE protocol ---

// decisionWriter writes a protocol's answer to a decided (or refused)
// request call; why says what the front door refused.
type decisionWriter func(ctx *fasthttp.RequestCtx, api *apidef.API, v verdict, req *request, why string)

// requestCall serves a request call of the ASE protocol or (withBody) the
// Authorize protocol: authenticate, decode, decide, log, and answer with
// write.
func (h *Handler) requestCall(ctx *fasthttp.RequestCtx, start time.Time, protocol string, withBody bool, write decisionWriter) {
	// The record's strings may point into the parser's memory: it is
	// written (deferred last, so run first) before the parser goes back to
	// the pool.
	p := h.parsers.Get()
	defer h.parsers.Put(p)
	c := getCall()
	defer putCall(c)
	rec := accesslog.Record{Protocol: protocol, Call: "request", CorrelationID: string(ctx.Request.Header.Peek("X-CorrelationID"))}
	defer h.logCall(ctx, &rec, start)
	h.pending.prefetch(ctx.Request.Header.Peek("X-CorrelationID")) // arrives while the call is parsed and decided
	if !h.authenticated(ctx) {
		rec.Decision, rec.Reason = "refuse", "authentication"
		unauthorized(ctx)
		return
	}
	if err := h.parse(ctx, p, withBody, c); err != nil {
		rec.Decision, rec.Reason = "refuse", "malformed"
		badRequest(ctx, err)
		return
	}
	api, req, f := h.request(ctx, c, &rec)
	switch f {
	case frontdoor.OK:
	case frontdoor.UnknownHostname, frontdoor.UnknownAPI:
		rec.Decision, rec.Reason = "refuse", "unknown_api"
		b := []byte(`{"status":"fail","status_message":`)
		b = strconv.AppendQuote(b, f.Reply().Body)
		ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
		ctx.SetContentType("application/json")
		ctx.SetBody(append(b, '}'))
		return
	default:
		// The gateway's client sent a request that cannot be read one way
		// only: it is blocked, with the answer ASE gives it inline.
		rec.Decision, rec.Reason = "block", reasonBadRequest
		write(ctx, nil, refusal(f), req, c.reading.Why)
		return
	}
	d := h.Engine.Decide(&req.Request)
	if d.Action == engine.Allow {
		h.pending.put(ctx.Request.Header.Peek("X-CorrelationID"), &req.Obs, &req.ID, start.UnixNano())
	}
	h.record(&rec, api, d)
	frontdoor.LogUser(&rec, api, &req.ID, c.headers, c.reading.Query)
	write(ctx, api, verdict{d: d}, req, "")
}

// reasonBadRequest is the block reason of a request the front door
// refused.
const reasonBadRequest = "bad_request"

// verdict is a decision, or a front door's refusal.
type verdict struct {
	d       engine.Decision
	refused frontdoor.Failure
}

func refusal(f frontdoor.Failure) verdict { return verdict{refused: f} }

// allowed reports whether the request goes on.
func (v *verdict) allowed() bool { return v.refused == frontdoor.OK && v.d.Action == engine.Allow }

// reason is the machine-readable cause, "" for a plain allow.
func (v *verdict) reason() string {
	if v.refused != frontdoor.OK {
		return reasonBadRequest
	}
	if v.d.Reason == engine.ReasonNone {
		return ""
	}
	return v.d.Reason.String()
}

// clientReply is the answer the client gets when the request does not go
// on: the same as inline.
func (v *verdict) clientReply(api *apidef.API, req *request) (frontdoor.Reply, bool) {
	if v.refused != frontdoor.OK {
		return v.refused.Reply(), true
	}
	return frontdoor.DecisionReply(&v.d, api, req.Reading)
}

// request is the engine's request with the reading it was made from.
type request struct {
	engine.Request
	Reading *frontdoor.Reading
}

// parse decodes the body as a request call.
func (h *Handler) parse(ctx *fasthttp.RequestCtx, p *fastjson.Parser, authorize bool, c *call) error {
	v, err := p.ParseBytes(ctx.PostBody())
	if err != nil {
		return bad("malformed JSON: %v", err)
	}
	return decodeCall(v, authorize, c)
}

func badRequest(ctx *fasthttp.RequestCtx, err error) {
	b := []byte(`{"status":"fail","status_message":`)
	b = strconv.AppendQuote(b, err.Error())
	ctx.SetStatusCode(fasthttp.StatusBadRequest)
	ctx.SetContentType("application/json")
	ctx.SetBody(append(b, '}'))
}

// request reads a decoded call through the front door, routes it and
// builds the engine's request. It returns the failure to answer with
// instead (an unknown API, or a request refused as ambiguous).
func (h *Handler) request(ctx *fasthttp.RequestCtx, c *call, rec *accesslog.Record) (*apidef.API, *request, frontdoor.Failure) {
	req := &c.req
	rec.Method, rec.ClientIP = c.method, c.sourceIP
	rec.Path = str(frontdoor.RawPath(bytesOf(c.url)))
	rd := &c.reading
	if f := frontdoor.Read(&frontdoor.Request{Method: bytesOf(c.method), Target: bytesOf(c.url), Fields: c.headers, HostOptional: true}, rd); f != frontdoor.OK {
		return nil, req, f
	}
	rec.Path, rec.Host, rec.Query, rec.UserAgent = rd.Path, rd.Host, rd.Query, rd.UserAgent
	scheme := ""
	if i := strings.Index(c.url, "://"); i > 0 && c.url[0] != '/' {
		scheme = strings.ToLower(c.url[:i])
	} else {
		scheme = strings.ToLower(c.get("x-forwarded-proto"))
	}
	api, rerr := h.Engine.Route(rd.Host, rd.Path)
	if api == nil {
		return nil, req, frontdoor.Route(rerr)
	}
	// The gateway reports the client it saw in source_ip.
	id, f := frontdoor.Identify(api, c.headers, rd.Query, &frontdoor.Client{Peer: c.sourceIP, Usernames: c.usernames})
	if f != frontdoor.OK {
		return api, req, f
	}
	req.Request = engine.Request{
		Now: time.Now().UnixNano(),
		API: api, Path: rd.Path, Method: c.method, Scheme: scheme,
		ContentType: rd.ContentType, HasBody: c.hasBody, ID: id,
	}
	req.Reading = rd
	return api, req, frontdoor.OK
}

func (h *Handler) record(rec *accesslog.Record, api *apidef.API, d engine.Decision) {
	rec.APIID = api.ID
	rec.Decision, rec.Reason, rec.Monitor = d.Action.String(), d.Reason.String(), d.Monitor
}

// writeASEDecision answers an /ase/request: 200 to allow, 403 with the
// reason (and what to answer the client, where ASE knows) to block.
func writeASEDecision(ctx *fasthttp.RequestCtx, api *apidef.API, v verdict, req *request, why string) {
	// Build the reply in the response's own (reused) body buffer.
	b := ctx.Response.SwapBody(nil)[:0]
	b = append(b, `{"decision":`...)
	code := fasthttp.StatusOK
	if v.allowed() {
		b = append(b, `"allow"`...)
	} else {
		code = fasthttp.StatusForbidden
		b = append(b, `"block"`...)
	}
	if api != nil {
		b = append(b, `,"api_id":`...)
		b = strconv.AppendQuote(b, api.ID)
	}
	if r := v.reason(); r != "" {
		b = append(b, `,"reason":"`...)
		b = append(b, r...)
		b = append(b, '"')
	}
	if why != "" {
		b = append(b, `,"status_message":`...)
		b = strconv.AppendQuote(b, why)
	}
	if v.d.Monitor {
		b = append(b, `,"monitor":true`...)
	}
	if resp, ok := v.clientReply(api, req); ok && !v.allowed() {
		b = append(b, `,"response":`...)
		b = appendClientReply(b, &resp)
	}
	ctx.SetStatusCode(code)
	ctx.SetContentType("application/json")
	ctx.Response.SwapBody(append(b, '}'))
}

func (h *Handler) aseResponse(ctx *fasthttp.RequestCtx, start time.Time) {
	rec := accesslog.Record{Protocol: "ase", Call: "response", CorrelationID: string(ctx.Request.Header.Peek("X-CorrelationID"))}
	defer h.logCall(ctx, &rec, start)
	if !h.authenticated(ctx) {
		rec.Decision, rec.Reason = "refuse", "authentication"
		unauthorized(ctx)
		return
	}
	h.pending.prefetch(ctx.Request.Header.Peek("X-CorrelationID")) // arrives while the body is parsed
	p := h.parsers.Get()
	defer h.parsers.Put(p)
	v, err := p.ParseBytes(ctx.PostBody())
	var r response
	if err == nil {
		err = decodeResponse(v, &r)
	} else {
		err = bad("malformed JSON: %v", err)
	}
	if err != nil {
		rec.Decision, rec.Reason = "refuse", "malformed"
		badRequest(ctx, err)
		return
	}
	rec.Decision, rec.Status = "allow", r.code
	answered(h.Engine, &h.pending, ctx.Request.Header.Peek("X-CorrelationID"), r.code, contentLength(r.headers))
	jsonReply(ctx, fasthttp.StatusOK, `{"decision":"allow"}`)
}

func (h *Handler) logCall(ctx *fasthttp.RequestCtx, rec *accesslog.Record, start time.Time) {
	if rec.Status == 0 {
		rec.Status = ctx.Response.StatusCode()
	}
	rec.Time, rec.Latency = start, time.Since(start)
	if !rec.ClientIP.IsValid() {
		rec.ClientIP = peer(ctx)
	}
	h.Log.Write(rec)
	call := rec.Call
	if call == "" {
		call = "request"
	}
	h.Metrics.SidebandCall(rec.Protocol, call)
	if call == "request" && rec.APIID != "" {
		h.Metrics.Request(rec.APIID, rec.Protocol, rec.Decision, rec.Reason, rec.Latency, rec.ClientIP)
	}
}

func peer(ctx *fasthttp.RequestCtx) netip.Addr {
	if a, ok := netip.AddrFromSlice(ctx.RemoteIP()); ok {
		return a.Unmap()
	}
	return netip.Addr{}
}
