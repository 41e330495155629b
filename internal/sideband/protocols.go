package sideband

import (
	"bytes"
	"github.com/valyala/fastjson"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/ase-project/ase/internal/accesslog"
	"github.com/ase-project/ase/internal/apidef"
	"github.com/ase-project/ase/internal/engine"
	"github.com/ase-project/ase/internal/frontdoor"
	"github.com/ase-project/ase/internal/lists"
)

// appendClientReply writes the answer the client should get in the
// Authorize protocol's shape, with response_code as a string.
func appendClientReply(b []byte, r *frontdoor.Reply) []byte {
	b = append(b, `{"response_code":"`...)
	b = strconv.AppendInt(b, int64(r.Code), 10)
	b = append(b, `","response_status":`...)
	b = strconv.AppendQuote(b, r.Status())
	b = append(b, `,"headers":[{"content-type":"text/plain"}`...)
	if r.HName != "" {
		b = append(b, `,{`...)
		b = strconv.AppendQuote(b, strings.ToLower(r.HName))
		b = append(b, ':')
		b = strconv.AppendQuote(b, r.HValue)
		b = append(b, '}')
	}
	b = append(b, `],"body":`...)
	b = strconv.AppendQuote(b, r.Body)
	return append(b, '}')
}

// --- the Authorize protocol ---

// writeAuthorizeDecision answers an Authorize request call: an allowed
// request is echoed unchanged, a refused one gets the client response.
func writeAuthorizeDecision(ctx *fasthttp.RequestCtx, api *apidef.API, v verdict, req *request, _ string) {
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("application/json")
	if v.allowed() {
		// Allowed: the request goes on unchanged.
		ctx.SetBody(ctx.PostBody())
		return
	}
	resp, _ := v.clientReply(api, req)
	b := append(make([]byte, 0, 256), `{"response":`...)
	b = appendClientReply(b, &resp)
	ctx.SetBody(append(b, '}'))
}

func (h *Handler) authorizeResponse(ctx *fasthttp.RequestCtx, start time.Time) {
	rec := accesslog.Record{Protocol: "authorize", Call: "response", CorrelationID: string(ctx.Request.Header.Peek("X-CorrelationID"))}
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
	if err != nil {
		rec.Decision, rec.Reason = "refuse", "malformed"
		badRequest(ctx, bad("malformed JSON: %v", err))
		return
	}
	o, err := v.Object()
	if err != nil {
		badRequest(ctx, bad("the body must be a JSON object"))
		return
	}
	code, err := lenientInt(o.Get("response_code"), "response_code", 100, 599)
	if err == nil && code == 0 {
		err = bad("response_code is required")
	}
	if err != nil {
		rec.Decision, rec.Reason = "refuse", "malformed"
		badRequest(ctx, err)
		return
	}
	// The response goes on to the client unchanged.
	rec.Decision, rec.Status = "allow", code
	var n int64
	if b := o.Get("body"); b != nil && b.Type() == fastjson.TypeString {
		sb, _ := b.StringBytes()
		n = int64(len(sb))
	} else if hs, err := decodeHeaders(o.Get("headers"), nil); err == nil {
		n = contentLength(hs)
	}
	answered(h.Engine, &h.pending, ctx.Request.Header.Peek("X-CorrelationID"), code, n)
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("application/json")
	ctx.SetBody(ctx.PostBody())
}

// --- forward-auth ---

// forwardAuth decides on the original request as the gateway forwards it:
// from X-Forwarded-Method/-Proto/-Host/-Uri (Traefik, Caddy),
// X-Original-Method/-URI (nginx), or the path below /ase/authz with the
// call's own method (Envoy ext_authz); the client is X-Real-IP or the
// right-most X-Forwarded-For, else the peer (the gateway), and with
// trusted_proxies set, as frontdoor.Proxies.ClientIP reads it: the
// gateway's fields are believed only when it is in those ranges, and
// walked past the proxies in front of it. The identities are read from
// the call's header section (the client's headers, which the gateway
// passes on) by the same front door as inline.
func (h *Handler) forwardAuth(ctx *fasthttp.RequestCtx, start time.Time) {
	hd := &ctx.Request.Header
	rec := accesslog.Record{Protocol: "forward_auth", CorrelationID: string(hd.Peek("X-CorrelationID"))}
	defer h.logCall(ctx, &rec, start)
	if !h.authenticated(ctx) {
		rec.Decision, rec.Reason = "refuse", "authentication"
		// No decision was made: the gateway's own credentials are wrong.
		forwardAuthAnswer(ctx, fasthttp.StatusUnauthorized, "", func() string {
			return `{"status":"fail","status_message":"sideband authentication failed"}`
		})
		return
	}
	c := getCall()
	defer putCall(c)
	fields, ok := frontdoor.ParseFields(hd.RawHeaders(), c.headers[:0])
	c.headers = fields
	one := func(names ...string) (string, bool) {
		v, n := "", 0
		for _, name := range names {
			for _, f := range fields {
				if strings.EqualFold(str(f.Name), name) {
					if n == 0 {
						v = str(f.Value)
					}
					n++
				}
			}
			if n > 0 {
				break
			}
		}
		return v, n <= 1
	}
	method, ok1 := one("X-Forwarded-Method", "X-Original-Method")
	uri, ok2 := one("X-Forwarded-Uri", "X-Original-URI")
	ok = ok && ok1 && ok2
	if method == "" {
		method = string(ctx.Method())
	}
	if uri == "" {
		rest := bytes.TrimPrefix(ctx.Path(), []byte(pathAuthz))
		uri = string(rest)
		if uri == "" {
			uri = "/"
		}
		if q := ctx.URI().QueryString(); len(q) > 0 {
			uri += "?" + string(q)
		}
	}
	hostField := "host"
	if _, n := c.count("x-forwarded-host"); n > 0 {
		hostField = "x-forwarded-host"
	}
	scheme := strings.ToLower(string(hd.Peek("X-Forwarded-Proto")))
	who := &frontdoor.Client{Peer: peer(ctx), TrustProxy: true, Trusted: h.TrustedProxies}
	client := who.IP(fields)
	rec.Method, rec.Path, rec.ClientIP = method, str(frontdoor.RawPath(bytesOf(uri))), client
	rd := &c.reading
	f := frontdoor.BadRequest
	if ok {
		f = frontdoor.Read(&frontdoor.Request{Method: bytesOf(method), Target: bytesOf(uri), Fields: fields, HostField: hostField}, rd)
	}
	var api *apidef.API
	if f == frontdoor.OK {
		rec.Path, rec.Host, rec.Query, rec.UserAgent = rd.Path, rd.Host, rd.Query, rd.UserAgent
		var rerr engine.RouteError
		if api, rerr = h.Engine.Route(rd.Host, rd.Path); api == nil {
			// Only 200, 401 and 403 mean something to every gateway: an
			// unknown API is refused, naming why.
			rec.Decision, rec.Reason = "block", "unknown_api"
			ctx.Response.Header.Set("X-ASE-Reason", "unknown_api")
			forwardAuthAnswer(ctx, fasthttp.StatusForbidden, "block", func() string {
				return `{"decision":"block","reason":"unknown_api","status_message":` + strconv.Quote(frontdoor.Route(rerr).Reply().Body) + `}`
			})
			return
		}
	}
	var id lists.Identity
	if f == frontdoor.OK {
		id, f = frontdoor.Identify(api, fields, rd.Query, who)
	}
	if f != frontdoor.OK {
		rec.Decision, rec.Reason = "block", reasonBadRequest
		ctx.Response.Header.Set("X-ASE-Reason", reasonBadRequest)
		why := rd.Why
		if why == "" {
			why = "a forwarding header is repeated"
		}
		forwardAuthAnswer(ctx, fasthttp.StatusForbidden, "block", func() string {
			return `{"decision":"block","reason":"` + reasonBadRequest + `","status_message":` + strconv.Quote(why) + `}`
		})
		return
	}
	req := &engine.Request{API: api, Path: rd.Path, Method: method, Scheme: scheme, ContentType: rd.ContentType, ID: id}
	d := h.Engine.Decide(req)
	h.record(&rec, api, d)
	frontdoor.LogUser(&rec, api, &req.ID, fields, rd.Query)
	out := &ctx.Response.Header
	if d.Action == engine.Allow {
		if d.Monitor {
			out.Set("X-ASE-Reason", d.Reason.String())
		}
		if h.IdentityHeaders {
			out.Set("X-ASE-API-ID", api.ID)
			out.Set("X-ASE-Client-IP", client.String())
			if req.ID.Username != "" {
				out.Set("X-ASE-Username", req.ID.Username)
			}
		}
		forwardAuthAnswer(ctx, fasthttp.StatusOK, "allow", func() string {
			return `{"decision":"allow","api_id":` + strconv.Quote(api.ID) + `}`
		})
		return
	}
	out.Set("X-ASE-Reason", d.Reason.String())
	if d.Action == engine.Limit {
		out.Set("Retry-After", strconv.Itoa(frontdoor.RetryAfterSeconds(d.RetryAfter)))
	}
	forwardAuthAnswer(ctx, fasthttp.StatusForbidden, "block", func() string {
		return `{"decision":"block","api_id":` + strconv.Quote(api.ID) + `,"reason":"` + d.Reason.String() + `"}`
	})
}

// headerBody is the request header with which a gateway asks for
// forward-auth answers with a JSON body (value "json"). A header the
// gateway sets, not the client's Accept: nginx passes the client's headers
// into the subrequest, and the guides remove a client's X-ASE-Body.
const headerBody = "X-ASE-Body"

// forwardAuthAnswer ends a forward-auth call: the decision is the status
// and the X-ASE-Decision header (none when no decision was made), and the
// body is empty (Content-Length: 0) unless the gateway asks for the JSON
// one, which body builds. nginx's auth_request never reads a subrequest's
// body, so it closes the connection of every answer that has one (and
// Caddy that of a 2xx answer, whose body it does not copy): with no body,
// gateways keep their connections to ASE.
func forwardAuthAnswer(ctx *fasthttp.RequestCtx, code int, decision string, body func() string) {
	ctx.SetStatusCode(code)
	if decision != "" {
		ctx.Response.Header.Set("X-ASE-Decision", decision)
	}
	if string(ctx.Request.Header.Peek(headerBody)) == "json" {
		ctx.SetContentType("application/json")
		ctx.SetBodyString(body())
	}
}
