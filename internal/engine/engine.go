// Package engine is ASE's decision: given a request's API, identities,
// method, path, protocol and content type, allow or block it and say why.
// It knows nothing of HTTP servers; inline and sideband are two front doors
// to it.
//
// The order is SPEC section 6: firewall switch, allow list, deny list,
// decoy, pattern enforcement, flow control. An allow-listed client is
// allowed outright: none of the later checks apply to it, and nothing it
// does puts it on the deny list.
package engine

import (
	"strings"
	"sync/atomic"
	"time"

	"github.com/ase-project/ase/internal/apidef"
	"github.com/ase-project/ase/internal/behave"
	"github.com/ase-project/ase/internal/catalog"
	"github.com/ase-project/ase/internal/lists"
)

// Action is what the front door does with a request.
type Action uint8

// The actions.
const (
	Allow    Action = iota // forward it (inline) or let the gateway proceed
	Block                  // deny list: 403 "Error: Unauthorized"
	Reject                 // pattern violation: the API's error_code, error_def, error_message_body
	Redirect               // disallowed protocol with http_redirect: redirect to https_url
	Decoy                  // the API's decoy response, never forwarded
	Limit                  // flow control: 429 with Retry-After
)

var actionNames = [...]string{"allow", "block", "reject", "redirect", "decoy", "limit"}

func (a Action) String() string { return actionNames[a] }

// Reason is a decision's machine-readable cause.
type Reason uint8

// The reasons.
const (
	ReasonNone Reason = iota
	ReasonFirewallDisabled
	ReasonAllowList
	ReasonDenyList
	ReasonDecoy
	ReasonInvalidProtocol
	ReasonInvalidMethod
	ReasonInvalidContentType
	ReasonRateLimited
)

var reasonNames = [...]string{"none", "firewall_disabled", "allow_list", "deny_list", "decoy", "invalid_protocol", "invalid_method", "invalid_content_type", "rate_limited"}

func (r Reason) String() string { return reasonNames[r] }

// Decision is the engine's answer.
type Decision struct {
	Action Action
	Reason Reason
	// Monitor is set when the API is monitor-only (enable_blocking false)
	// and Reason would have blocked: Action is then Allow.
	Monitor bool
	// Match is the list entry that decided (allow and deny lists).
	Match      lists.Match
	RetryAfter time.Duration
}

// Request is what the engine decides on.
type Request struct {
	Now         int64 // when the request arrived, Unix ns (0: the engine reads the clock)
	API         *apidef.API
	Path        string // the request's path, starting with the API's url
	Method      string
	Scheme      string // http, https, ws or wss
	ContentType string // the Content-Type header, as sent
	HasBody     bool
	ID          lists.Identity
	// Obs carries the request to behavioural detection's count of its
	// answer (Answered); zero when detection is off.
	Obs behave.Ticket
}

// Limiter is flow control's hook: whether a client may make one more
// request to an API now, and if not, when it may. Decide asks it only
// about APIs with a client spike threshold: for the others it neither
// reads the clock nor calls (both cost more than the rest of a clean
// decision's checks together).
type Limiter interface {
	Allow(api *apidef.API, id *lists.Identity, now int64) (ok bool, retryAfter time.Duration)
}

// Engine decides.
type Engine struct {
	lists   *lists.Lists
	live    *catalog.Live
	limiter Limiter
	router  atomic.Pointer[Router]
	behave  *behave.Engine
}

// SetBehave makes the engine count every request that passes the lists
// for behavioural detection (while the abs setting is on). Call it before
// the engine decides.
func (e *Engine) SetBehave(b *behave.Engine) {
	e.behave = b
	e.live.Watch(func(s *catalog.Snapshot) { b.Sync(s.APIs) })
}

// Answered counts r's answer for behavioural detection: its status (0
// when unknown) and response body bytes. Safe to call for any request,
// once, while r's identity is still valid (a detection on a credential is
// listed with its value).
func (e *Engine) Answered(r *Request, status int, bytes int64) {
	e.AnsweredTicket(&r.Obs, status, bytes, behave.IdentityValues(&r.ID))
}

// Answering tells behavioural detection that r's answer is coming: the
// state it will count it in starts loading (call it when the status is
// known, before writing the answer out).
func (e *Engine) Answering(r *Request) {
	if e.behave != nil {
		e.behave.Answering(&r.Obs)
	}
}

// AnsweredTicket is Answered for a ticket kept apart from its request (a
// streamed answer, a sideband response call), with the values of its
// identities kept with it (vals, a behave.Packed; nil: none kept).
func (e *Engine) AnsweredTicket(t *behave.Ticket, status int, bytes int64, vals behave.Values) {
	if e.behave != nil && t.Observed() {
		e.behave.End(t, status, bytes, vals)
	}
}

// New returns an engine over the lists and the live catalog (its settings
// and, for routing, its APIs). limiter may be nil (no flow control).
func New(l *lists.Lists, live *catalog.Live, limiter Limiter) *Engine {
	e := &Engine{lists: l, live: live, limiter: limiter}
	live.Watch(func(s *catalog.Snapshot) { e.router.Store(NewRouter(s)) })
	return e
}

// Route finds the API of a request to host and path, as enforced now.
func (e *Engine) Route(host, path string) (*apidef.API, RouteError) {
	return e.router.Load().Route(host, path)
}

// Decide returns the decision for r. It does not allocate, except to
// report a detected attacker.
func (e *Engine) Decide(r *Request) Decision {
	if !e.live.Setting(catalog.Firewall) {
		return Decision{Action: Allow, Reason: ReasonFirewallDisabled}
	}
	abs := e.behave != nil && r.API != nil && e.live.Setting(catalog.ABS)
	if abs {
		// Detection's state of the request's identities starts loading
		// now and arrives while the lists are looked up.
		e.behave.Prepare(r.API, &r.ID, &r.Obs)
	}
	var keys lists.Keys
	e.lists.KeysInto(&keys, &r.ID)
	if m, ok := e.lists.Match(lists.Allow, &r.ID, &keys); ok {
		return Decision{Action: Allow, Reason: ReasonAllowList, Match: m}
	}
	api := r.API
	if m, ok := e.lists.Match(lists.Deny, &r.ID, &keys); ok {
		return enforce(api, Decision{Action: Block, Reason: ReasonDenyList, Match: m})
	}
	if abs {
		if r.Now == 0 {
			r.Now = time.Now().UnixNano()
		}
		// A detection on this request's identities lists them now: decide
		// again, so the request that showed it goes no further.
		if e.behave.Begin(api, &r.ID, r.Method, r.Path, r.Now, &r.Obs) {
			if m, ok := e.lists.Match(lists.Deny, &r.ID, &keys); ok {
				return enforce(api, Decision{Action: Block, Reason: ReasonDenyList, Match: m})
			}
		}
	}
	if isDecoy(api, r.Path) {
		e.detected(lists.Decoy, r)
		// A decoy is an answer, not a block: it is given even on
		// monitor-only APIs, and nothing is ever forwarded.
		return Decision{Action: Decoy, Reason: ReasonDecoy}
	}
	if d, ok := e.pattern(r); ok {
		return d
	}
	if e.limiter != nil && api != nil && !api.FlowControl.ClientSpikeThreshold.IsZero() {
		now := r.Now
		if now == 0 {
			now = time.Now().UnixNano()
		}
		if ok, after := e.limiter.Allow(api, &r.ID, now); !ok {
			return enforce(api, Decision{Action: Limit, Reason: ReasonRateLimited, RetryAfter: after})
		}
	}
	return Decision{Action: Allow}
}

// enforce turns a blocking decision into a logged allow on monitor-only
// APIs.
func enforce(api *apidef.API, d Decision) Decision {
	if api != nil && !api.EnableBlocking {
		d.Action, d.Monitor = Allow, true
	}
	return d
}

func (e *Engine) detected(tag lists.Tag, r *Request) {
	if e.live.Setting(catalog.ASEDetectedAttack) {
		e.lists.Report(tag, &r.ID)
	}
}

// pattern checks api_pattern_enforcement: protocol, method, content type.
func (e *Engine) pattern(r *Request) (Decision, bool) {
	api := r.API
	if api == nil {
		return Decision{}, false
	}
	pe := &api.Enforcement
	if len(pe.ProtocolAllowed) > 0 && !contains(pe.ProtocolAllowed, r.Scheme) {
		if pe.Redirect.Code != 0 {
			// The operator expects clients on the other protocol and sends
			// them over; that is not an attack.
			return enforce(api, Decision{Action: Redirect, Reason: ReasonInvalidProtocol}), true
		}
		e.detected(lists.InvalidProtocol, r)
		return enforce(api, Decision{Action: Reject, Reason: ReasonInvalidProtocol}), true
	}
	if len(pe.MethodsAllowed) > 0 && !contains(pe.MethodsAllowed, r.Method) {
		e.detected(lists.InvalidMethod, r)
		return enforce(api, Decision{Action: Reject, Reason: ReasonInvalidMethod}), true
	}
	if len(pe.ContentTypeAllowed) > 0 && (r.ContentType != "" || r.HasBody) {
		if !mediaTypeIn(pe.ContentTypeAllowed, r.ContentType) {
			e.detected(lists.InvalidContentType, r)
			return enforce(api, Decision{Action: Reject, Reason: ReasonInvalidContentType}), true
		}
	}
	return Decision{}, false
}

// isDecoy reports whether path (the request's, under the API's url) is a
// decoy of api: any path of an out-of-context decoy API (no subpaths), else
// a decoy path or below it on a segment boundary. The paths are the
// subpaths resolved to full paths once, when the definition was decoded
// (apidef.Decoy.Paths: "/shop/admin" and "/admin" both name /shop/admin
// for url /shop).
func isDecoy(api *apidef.API, path string) bool {
	if api == nil || !api.Decoy.Enabled {
		return false
	}
	if len(api.Decoy.Paths) == 0 {
		return true
	}
	for _, p := range api.Decoy.Paths {
		if underBase(path, p) {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// mediaTypeIn reports whether the media type of a Content-Type header
// (parameters ignored, case-insensitive) is one of allowed.
func mediaTypeIn(allowed []string, header string) bool {
	mt := header
	if i := strings.IndexByte(mt, ';'); i >= 0 {
		mt = mt[:i]
	}
	mt = strings.TrimSpace(mt)
	for _, a := range allowed {
		if strings.EqualFold(a, mt) {
			return true
		}
	}
	return false
}
