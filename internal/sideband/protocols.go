package sideband

import (
	"bytes"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/ase-project/ase/internal/accesslog"
	"github.com/ase-project/ase/internal/apidef"
	"github.com/ase-project/ase/internal/engine"
)

// clientResp is what the client should be answered for a decision that
// does not let it through: the same answer ASE gives inline.
type clientResp struct {
	code    int
	status  string
	body    string
	headers [][2]string
}

func clientResponse(api *apidef.API, d engine.Decision, req *engine.Request) (clientResp, bool) {
	switch d.Action {
	case engine.Block:
		return clientResp{code: 403, status: "Forbidden", body: "Error: Unauthorized"}, true
	case engine.Reject:
		e := &api.Enforcement
		return clientResp{code: e.ErrorCode, status: orText(e.ErrorDef, e.ErrorCode), body: e.ErrorMessageBody}, true
	case engine.Decoy:
		dc := &api.Decoy
		return clientResp{code: dc.ResponseCode, status: orText(dc.ResponseDef, dc.ResponseCode), body: dc.ResponseMessage}, true
	case engine.Redirect:
		r := &api.Enforcement.Redirect
		return clientResp{code: r.Code, status: orText(r.Def, r.Code), headers: [][2]string{{"location", RedirectLocation(r.HTTPSURL, req.Path)}}}, true
	case engine.Limit:
		secs := strconv.Itoa(RetryAfterSeconds(d.RetryAfter))
		return clientResp{code: 429, status: "Too Many Requests", body: "Error: Too Many Requests", headers: [][2]string{{"retry-after", secs}}}, true
	}
	return clientResp{}, false
}

// RetryAfterSeconds rounds a wait up to whole seconds, at least one.
func RetryAfterSeconds(d time.Duration) int {
	return max(int((d+time.Second-1)/time.Second), 1)
}

// RedirectLocation is https_url followed by the request's path, unless
// https_url names a path of its own.
func RedirectLocation(httpsURL, path string) string {
	u, err := url.Parse(httpsURL)
	if err != nil || (u.Path != "" && u.Path != "/") {
		return httpsURL
	}
	return strings.TrimSuffix(httpsURL, "/") + path
}

func orText(s string, code int) string {
	if s != "" {
		return s
	}
	return http.StatusText(code)
}

// append writes the response in the Authorize protocol's shape, with
// response_code as a string.
func (r clientResp) append(b []byte) []byte {
	b = append(b, `{"response_code":"`...)
	b = strconv.AppendInt(b, int64(r.code), 10)
	b = append(b, `","response_status":`...)
	b = strconv.AppendQuote(b, r.status)
	b = append(b, `,"headers":[{"content-type":"text/plain"}`...)
	for _, h := range r.headers {
		b = append(b, `,{`...)
		b = strconv.AppendQuote(b, h[0])
		b = append(b, ':')
		b = strconv.AppendQuote(b, h[1])
		b = append(b, '}')
	}
	b = append(b, `],"body":`...)
	b = strconv.AppendQuote(b, r.body)
	return append(b, '}')
}

// --- the Authorize protocol ---

// writeAuthorizeDecision answers an Authorize request call: an allowed
// request is echoed unchanged, a refused one gets the client response.
func writeAuthorizeDecision(ctx *fasthttp.RequestCtx, api *apidef.API, d engine.Decision, req *engine.Request) {
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("application/json")
	if d.Action == engine.Allow {
		// Allowed: the request goes on unchanged.
		ctx.SetBody(ctx.PostBody())
		return
	}
	resp, _ := clientResponse(api, d, req)
	b := append(make([]byte, 0, 256), `{"response":`...)
	b = resp.append(b)
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
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("application/json")
	ctx.SetBody(ctx.PostBody())
}

// --- forward-auth ---

// forwardAuth decides on the original request as the gateway forwards it:
// from X-Forwarded-Method/-Proto/-Host/-Uri (Traefik, Caddy),
// X-Original-Method/-URI (nginx), or the path below /ase/authz with the
// call's own method (Envoy ext_authz); the client is X-Real-IP or the
// right-most X-Forwarded-For, else the peer.
func (h *Handler) forwardAuth(ctx *fasthttp.RequestCtx, start time.Time) {
	hd := &ctx.Request.Header
	rec := accesslog.Record{Protocol: "forward_auth", CorrelationID: string(hd.Peek("X-CorrelationID"))}
	defer h.logCall(ctx, &rec, start)
	if !h.authenticated(ctx) {
		rec.Decision, rec.Reason = "refuse", "authentication"
		unauthorized(ctx)
		return
	}
	method := first(hd.Peek("X-Forwarded-Method"), hd.Peek("X-Original-Method"), ctx.Method())
	uri := first(hd.Peek("X-Forwarded-Uri"), hd.Peek("X-Original-URI"), nil)
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
	host := first(hd.Peek("X-Forwarded-Host"), hd.Host(), nil)
	scheme := strings.ToLower(string(hd.Peek("X-Forwarded-Proto")))
	path, rawQuery, _ := strings.Cut(uri, "?")
	xff := joined(hd, "X-Forwarded-For", ",")
	client := engine.ClientIP(peer(ctx), string(hd.Peek("X-Real-IP")), xff, true)
	rec.Method, rec.Path, rec.ClientIP = method, path, client

	api, rerr := h.Engine.Route(host, path)
	if api == nil {
		// Only 200, 401 and 403 mean something to every gateway: an
		// unknown API is refused, naming why.
		rec.Decision, rec.Reason = "block", "unknown_api"
		hd := &ctx.Response.Header
		hd.Set("X-ASE-Reason", "unknown_api")
		jsonReply(ctx, fasthttp.StatusForbidden, `{"decision":"block","reason":"unknown_api","status_message":`+strconv.Quote(rerr.Message())+`}`)
		return
	}
	raw := engine.Raw{
		Peer:          client,
		Cookie:        joined(hd, "Cookie", "; "),
		Authorization: string(hd.Peek("Authorization")),
		RawQuery:      rawQuery,
	}
	if api.APIKeyHeader != "" {
		raw.APIKeyHeader = string(hd.Peek(api.APIKeyHeader))
	}
	req := &engine.Request{API: api, Path: path, Method: method, Scheme: scheme, ContentType: string(hd.ContentType()), ID: engine.Identify(api, &raw, false)}
	d := h.Engine.Decide(req)
	h.record(&rec, api, d)
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
		jsonReply(ctx, fasthttp.StatusOK, `{"decision":"allow","api_id":`+strconv.Quote(api.ID)+`}`)
		return
	}
	out.Set("X-ASE-Reason", d.Reason.String())
	if d.Action == engine.Limit {
		out.Set("Retry-After", strconv.Itoa(RetryAfterSeconds(d.RetryAfter)))
	}
	jsonReply(ctx, fasthttp.StatusForbidden, `{"decision":"block","api_id":`+strconv.Quote(api.ID)+`,"reason":"`+d.Reason.String()+`"}`)
}

// first returns the first non-empty value as a string.
func first(vals ...[]byte) string {
	for _, v := range vals {
		if len(v) > 0 {
			return string(v)
		}
	}
	return ""
}

// joined returns every value of a request header joined with sep.
func joined(hd *fasthttp.RequestHeader, name, sep string) string {
	var out []byte
	for _, v := range hd.PeekAll(name) {
		if len(out) > 0 {
			out = append(out, sep...)
		}
		out = append(out, v...)
	}
	return string(out)
}
