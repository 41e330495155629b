package frontdoor

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ase-project/ase/internal/apidef"
	"github.com/ase-project/ase/internal/engine"
)

// Failure is a way a request ends without reaching a backend, other than
// by a decision.
type Failure uint8

// The failures.
const (
	OK              Failure = iota
	BadRequest              // malformed, or readable two ways
	NotImplemented          // a transfer coding other than chunked
	RequestTimeout          // the request did not arrive within read_timeout
	TooLarge                // the body is larger than max_request_body
	HeaderTooLarge          // the head is larger than max_request_header
	UnknownHostname         // no API serves this host
	UnknownAPI              // APIs serve this host, none this path
	NoServer                // the API has no server up (or within its limits)
	BadGateway              // the backend failed
	GatewayTimeout          // the backend did not answer within backend_timeout
)

var failures = [...]struct {
	code         int
	body, logWhy string
	closeConn    bool
}{
	OK:              {},
	BadRequest:      {http.StatusBadRequest, "Error: Bad Request", "malformed", true},
	NotImplemented:  {http.StatusNotImplemented, "Error: Not Implemented", "malformed", true},
	RequestTimeout:  {http.StatusRequestTimeout, "Error: Request Timeout", "timeout", true},
	TooLarge:        {http.StatusRequestEntityTooLarge, "Error: Request Entity Too Large", "too_large", true},
	HeaderTooLarge:  {http.StatusRequestHeaderFieldsTooLarge, "Error: Request Header Fields Too Large", "too_large", true},
	UnknownHostname: {http.StatusServiceUnavailable, "Error: Unknown Hostname", "unknown_api", false},
	UnknownAPI:      {http.StatusServiceUnavailable, "Error: Unknown API", "unknown_api", false},
	NoServer:        {http.StatusServiceUnavailable, "Error: No Server Available", "no_server", false},
	BadGateway:      {http.StatusBadGateway, "Error: Bad Gateway", "backend_error", false},
	GatewayTimeout:  {http.StatusGatewayTimeout, "Error: Gateway Timeout", "backend_timeout", false},
}

// Reply is an answer ASE gives itself: status code, reason phrase (the
// standard one when empty), a text body and at most one more header.
type Reply struct {
	Code                        int
	Reason, Body, HName, HValue string
	// Close: nothing more can be read on the connection after this.
	Close bool
}

// Reply is the answer to a failure.
func (f Failure) Reply() Reply {
	x := failures[f]
	return Reply{Code: x.code, Body: x.body, Close: x.closeConn}
}

// LogReason is the access log's reason for a failure.
func (f Failure) LogReason() string { return failures[f].logWhy }

// Route maps the engine's routing failure.
func Route(e engine.RouteError) Failure {
	if e == engine.UnknownHostname {
		return UnknownHostname
	}
	return UnknownAPI
}

// Status returns the reply's reason phrase: its own, else the standard.
func (r *Reply) Status() string {
	if r.Reason != "" {
		return r.Reason
	}
	return http.StatusText(r.Code)
}

// DecisionReply is the answer to a decision that does not let the
// request through (ok is false for Allow), the same inline and as the
// client response of the sideband protocols. rd locates a redirect.
func DecisionReply(d *engine.Decision, api *apidef.API, rd *Reading) (Reply, bool) {
	switch d.Action {
	case engine.Block:
		return Reply{Code: http.StatusForbidden, Body: "Error: Unauthorized"}, true
	case engine.Reject:
		e := &api.Enforcement
		return Reply{Code: e.ErrorCode, Reason: e.ErrorDef, Body: e.ErrorMessageBody}, true
	case engine.Redirect:
		r := &api.Enforcement.Redirect
		return Reply{Code: r.Code, Reason: r.Def, HName: "Location", HValue: redirectLocation(r.HTTPSURL, rd)}, true
	case engine.Decoy:
		dc := &api.Decoy
		return Reply{Code: dc.ResponseCode, Reason: dc.ResponseDef, Body: dc.ResponseMessage}, true
	case engine.Limit:
		return Reply{Code: http.StatusTooManyRequests, Body: "Error: Too Many Requests",
			HName: "Retry-After", HValue: strconv.Itoa(RetryAfterSeconds(d.RetryAfter))}, true
	}
	return Reply{}, false
}

// RetryAfterSeconds rounds a wait up to whole seconds, at least one.
func RetryAfterSeconds(d time.Duration) int {
	return max(int((d+time.Second-1)/time.Second), 1)
}

// redirectLocation is https_url followed by the request's path and query,
// unless https_url names a path of its own.
func redirectLocation(httpsURL string, rd *Reading) string {
	if i := strings.Index(httpsURL, "://"); i >= 0 {
		if rest := httpsURL[i+3:]; strings.Trim(rest[strings.IndexByte(rest+"/", '/'):], "/") != "" {
			return httpsURL
		}
	}
	b := []byte(strings.TrimSuffix(httpsURL, "/"))
	b = appendPath(b, rd.Path)
	if rd.Query != "" {
		b = append(append(b, '?'), rd.Query...)
	}
	return string(b)
}
