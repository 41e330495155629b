// Package admin is ASE's management REST API: one route table, served
// under both /v4/ase and /v5/ase, with the vendor's authentication headers,
// status strings and messages.
//
// Handlers read through a store.Reader and return a store.Batch or a reply;
// one adapter authenticates, limits and reads the body, commits, audits and
// writes every response, so each rule is enforced in one place.
package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/ase-project/ase/internal/behave"
	"github.com/ase-project/ase/internal/console"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"crypto/x509"

	"github.com/ase-project/ase/internal/accounts"
	"github.com/ase-project/ase/internal/apidef"
	"github.com/ase-project/ase/internal/audit"
	"github.com/ase-project/ase/internal/catalog"
	"github.com/ase-project/ase/internal/config"
	"github.com/ase-project/ase/internal/lists"
	"github.com/ase-project/ase/internal/lockout"
	"github.com/ase-project/ase/internal/metrics"
	"github.com/ase-project/ase/internal/sbauth"
	"github.com/ase-project/ase/internal/store"
	"github.com/ase-project/ase/internal/wire"
)

// Body limits: 1 MiB for ordinary requests; bulk list imports may be larger.
const (
	MaxBody     = 1 << 20
	MaxBulkBody = 32 << 20
)

// Prefixes under which every ASE route exists, with identical behaviour.
var Prefixes = []string{"/v4/ase", "/v5/ase"}

// RootPrefixes are where the vendor's ABS routes (Root) exist: its
// attack list is /v4/abs/attacklist, beside /v4/ase, not under it.
var RootPrefixes = []string{"/v4", "/v5"}

// Deps is what the management API works on.
type Deps struct {
	Store store.Store
	Live  *catalog.Live
	Lists *lists.Lists
	// SidebandAuth checks gateways' tokens and shared secrets.
	SidebandAuth *sbauth.Auth
	Accounts     *accounts.Accounts
	Guard        *lockout.Guard
	Audit        *audit.Log // nil when audit is disabled
	Log          *slog.Logger
	Config       *config.Config
	Version      string
	Started      time.Time
	// Health returns "Up" or "Down" for a backend server of an API.
	Health func(apiID string, s apidef.Server) string
	// Connections returns an API's live WebSocket connection counts.
	Connections func(apiID string) wire.ConnectionCount
	// ListMemoryUsed returns the bytes the deny and allow lists use.
	ListMemoryUsed func() int64
	// Sleep waits before a failed authentication's reply (slow-down).
	Sleep func(ctx context.Context, d time.Duration)
	// Sessions are the operators' logins.
	Sessions *accounts.Sessions
	// ClientCAs verify x509 logins; nil when client_ca_file is not set.
	ClientCAs *x509.CertPool
	// TxnLifetime is how long a transaction stays open before it is
	// rolled back; Now the clock of transactions.
	TxnLifetime time.Duration
	Now         func() time.Time
	Metrics     *metrics.Metrics
	// Cluster returns the cluster's nodes (GET /cluster); nil when the
	// node is standalone.
	Cluster func(ctx context.Context) (wire.Cluster, error)
	// Reloader reloads ase.conf and api_dir (POST /reload) and knows the
	// configuration in effect; nil when there is none to reload.
	Reloader Reloader
	// AuditFile is where the audit log is written when it goes to a file
	// (enable_audit=true, audit_log_stdout=false): GET /audit reads it.
	AuditFile string
	// Behave is behavioural detection (GET /v4/abs/attacklist, the
	// detection status and policies).
	Behave *behave.Engine
}

// Route is one endpoint of the management API.
type Route struct {
	Method  string
	Path    string   // under each of Prefixes, or absolute for Abs routes; {x} is a path parameter
	Action  string   // audit action of a configuration change; empty for reads
	Query   []string // accepted query parameters; others are refused
	Summary string
	MaxBody int64
	// Abs routes live under /api (the accounts model of seed 004) and
	// answer errors as {"error": {"type", "message"}}.
	Abs bool
	// Public routes need no credentials (login, login methods).
	Public bool
	// AdminOnly routes need the admin role (user management).
	AdminOnly bool
	// AnyRole changes may be made by any logged-in user, read role
	// included (their own API keys), never with an API key.
	AnyRole bool
	// Text routes also take a text/plain body (threat feeds).
	Text bool
	// Root routes live under RootPrefixes (/v4/abs/attacklist, the
	// vendor ABS's paths) instead of Prefixes; otherwise they are like
	// every ASE route (errors included).
	Root   bool
	handle func(c *call) (any, error)
}

// Write reports whether the route changes configuration.
func (rt *Route) Write() bool { return rt.Action != "" }

// Handler serves the management API.
type Handler struct {
	d      Deps
	routes []*Route
	byPath map[string]map[string]*Route // full path -> method -> route
	// patterns hold the routes with path parameters.
	patterns []*Route
	txns     txns

	// writeMu serializes changes on this node: a read-modify-write of one
	// API by two operators must not lose either (across nodes, the store's
	// conditions catch it).
	writeMu sync.Mutex

	console http.Handler // the operator's console, /ui/ (internal/console)
}

// New returns the management API handler.
func New(d Deps) *Handler {
	if d.Sleep == nil {
		d.Sleep = func(ctx context.Context, dur time.Duration) {
			t := time.NewTimer(dur)
			defer t.Stop()
			select {
			case <-t.C:
			case <-ctx.Done():
			}
		}
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.TxnLifetime == 0 {
		d.TxnLifetime = 10 * time.Minute
	}
	h := &Handler{d: d, byPath: map[string]map[string]*Route{}, txns: txns{lifetime: d.TxnLifetime, now: d.Now}, console: console.Handler()}
	for _, group := range [][]*Route{h.table(), h.listRoutes(), h.absRoutes(), h.sidebandRoutes(), h.accountRoutes(), h.txnRoutes()} {
		h.routes = append(h.routes, group...)
	}
	for _, rt := range h.routes {
		if rt.MaxBody == 0 {
			rt.MaxBody = MaxBody
		}
		if strings.Contains(rt.Path, "{") {
			h.patterns = append(h.patterns, rt)
			continue
		}
		for _, full := range rt.FullPaths() {
			if h.byPath[full] == nil {
				h.byPath[full] = map[string]*Route{}
			}
			h.byPath[full][rt.Method] = rt
		}
	}
	return h
}

// match finds the routes of a path: exact ones first, then those with
// path parameters (whose values it returns).
func (h *Handler) match(path string) (map[string]*Route, map[string]string) {
	if m := h.byPath[path]; m != nil {
		return m, nil
	}
	var found map[string]*Route
	var params map[string]string
	for _, rt := range h.patterns {
		for _, full := range rt.FullPaths() {
			if p, ok := matchPattern(full, path); ok {
				if found == nil {
					found, params = map[string]*Route{}, p
				}
				found[rt.Method] = rt
			}
		}
	}
	return found, params
}

func matchPattern(pattern, path string) (map[string]string, bool) {
	ps, xs := strings.Split(pattern, "/"), strings.Split(path, "/")
	if len(ps) != len(xs) {
		return nil, false
	}
	params := map[string]string{}
	for i := range ps {
		if strings.HasPrefix(ps[i], "{") && strings.HasSuffix(ps[i], "}") {
			v, err := url.PathUnescape(xs[i])
			if err != nil || v == "" {
				return nil, false
			}
			params[ps[i][1:len(ps[i])-1]] = v
			continue
		}
		if ps[i] != xs[i] {
			return nil, false
		}
	}
	return params, true
}

// RouteTable returns every route of the management API, without a
// running server: for the OpenAPI document and tests that must cover each.
func RouteTable() []Route { return New(Deps{}).Routes() }

// FullPaths returns the paths a route answers on.
func (rt *Route) FullPaths() []string {
	if rt.Abs {
		return []string{rt.Path}
	}
	prefixes := Prefixes
	if rt.Root {
		prefixes = RootPrefixes
	}
	out := make([]string, len(prefixes))
	for i, p := range prefixes {
		out[i] = p + rt.Path
	}
	return out
}

// Routes returns the route table (paths without prefix).
func (h *Handler) Routes() []Route {
	out := make([]Route, len(h.routes))
	for i, rt := range h.routes {
		out[i] = *rt
	}
	return out
}

// Error is a failure as the management API reports it.
type Error struct {
	Code    int
	Status  string
	Message string
	Detail  string // optional precision next to a fixed vendor message
	Header  http.Header
	// Type is the error's type in the /api style; derived from Code when
	// empty.
	Type string
}

func (e *Error) Error() string { return e.Message }

func fail(code int, status, format string, args ...any) *Error {
	return &Error{Code: code, Status: status, Message: fmt.Sprintf(format, args...)}
}

// reply is a handler result with a status code other than 200.
type reply struct {
	code int
	body any
}

// call is one request being served.
type call struct {
	ctx context.Context
	h   *Handler
	r   *http.Request
	w   http.ResponseWriter
	// txn is the caller's open transaction: reads see it, writes stage.
	txn        *txn
	pathParams map[string]string
	route      *Route
	query      url.Values
	body       []byte
	who        principal
	via        string
	client     string
	// params are the audit parameters the handler fills in.
	params map[string]any
	staged bool // the change went into a transaction
}

// reader is the configuration as the caller sees it: with the changes its
// transaction staged, if it has one open.
func (c *call) reader() store.Reader {
	if c.txn != nil {
		return c.txn.overlay
	}
	return c.h.d.Store
}

// commit applies a change, or stages it in the caller's transaction.
func (c *call) commit(b store.Batch) error {
	if len(b.Ops) == 0 {
		return nil
	}
	if c.txn != nil {
		return c.stage(b)
	}
	return c.direct(b)
}

// auditEntry is the audit record of action by this call's caller (its
// Result still to be set).
func (c *call) auditEntry(action string, params map[string]any) audit.Entry {
	return audit.Entry{User: c.who.user, Via: c.via, Auth: c.who.auth, Client: c.client, Action: action, Params: params}
}

// params1 returns a path parameter.
func (c *call) params1(name string) string { return c.pathParams[name] }

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.d.Log.Enabled(r.Context(), slog.LevelDebug) {
		// At debug level every request is logged: method, path (never the
		// query, which may carry values), status, client and duration.
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		w = rec
		start := time.Now()
		defer func() {
			h.d.Log.Debug("management request", "method", r.Method, "path", r.URL.Path, "status", rec.code,
				"client", clientAddr(r).String(), "duration", time.Since(start))
		}()
	}
	if !admitFraming(r) {
		h.refuseFraming(w, r)
		return
	}
	if r.URL.Path == "/ui" || r.URL.Path == "/" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		http.Redirect(w, r, console.Prefix, http.StatusFound)
		return
	}
	if strings.HasPrefix(r.URL.Path, console.Prefix) {
		h.console.ServeHTTP(w, r)
		return
	}
	abs := strings.HasPrefix(r.URL.Path, "/api/") || r.URL.Path == "/api"
	methods, params := h.match(r.URL.Path)
	if methods == nil {
		e := fail(http.StatusNotFound, wire.StatusFail, "no such endpoint: %s", r.URL.Path)
		e.Type = "NotFound"
		h.writeError(w, e, abs)
		return
	}
	rt := methods[r.Method]
	if rt == nil {
		allow := make([]string, 0, len(methods))
		for m := range methods {
			allow = append(allow, m)
		}
		e := fail(http.StatusMethodNotAllowed, wire.StatusFail, "method %s is not allowed on %s", r.Method, r.URL.Path)
		e.Type = "MethodNotAllowed"
		slices.Sort(allow)
		e.Header = http.Header{"Allow": {strings.Join(allow, ", ")}}
		h.writeError(w, e, abs)
		return
	}
	c := &call{ctx: r.Context(), h: h, r: r, w: w, route: rt, pathParams: params, via: "rest_api", client: clientAddr(r).String()}
	if strings.HasPrefix(r.Header.Get("User-Agent"), "ase-cli/") {
		c.via = "cli"
	}
	result, err := h.serve(c)
	if err != nil {
		e := h.toError(c, err)
		if rt.Write() && e.Code != http.StatusTooManyRequests && c.who.user != "" {
			entry := c.auditEntry(rt.Action, c.params)
			entry.Result = e.Status
			h.d.Audit.Record(entry)
			h.d.Metrics.Change("refused")
		}
		h.writeError(w, e, rt.Abs)
		return
	}
	if rt.Write() {
		result := wire.StatusSuccess
		if c.staged {
			result = "staged" // applied, and audited again, when committed
		}
		entry := c.auditEntry(rt.Action, c.params)
		entry.Result = result
		h.d.Audit.Record(entry)
		h.d.Metrics.Change(result)
	}
	if hh, ok := result.(http.Handler); ok {
		hh.ServeHTTP(w, r)
		return
	}
	if st, ok := result.(stream); ok {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		if err := st(w); err != nil {
			h.d.Log.Warn("streaming a reply failed", "path", r.URL.Path, "error", err)
		}
		return
	}
	code := http.StatusOK
	if rep, ok := result.(reply); ok {
		code, result = rep.code, rep.body
	}
	writeJSON(w, code, result)
}

func (h *Handler) serve(c *call) (any, error) {
	who, err := h.authenticate(c)
	if err != nil {
		return nil, err
	}
	c.who = who
	if err := h.authorize(c); err != nil {
		return nil, err
	}
	q, err := url.ParseQuery(c.r.URL.RawQuery)
	if err != nil {
		return nil, fail(http.StatusForbidden, wire.StatusValidation, "the query string is malformed: %v", err)
	}
	for name := range q {
		if !slices.Contains(c.route.Query, name) {
			return nil, fail(http.StatusForbidden, wire.StatusValidation, "unknown query parameter %q for %s %s", name, c.r.Method, c.route.Path)
		}
		if len(q[name]) > 1 {
			return nil, fail(http.StatusForbidden, wire.StatusValidation, "query parameter %q is given more than once", name)
		}
	}
	c.query = q
	if err := c.readBody(); err != nil {
		return nil, err
	}
	if c.route.Write() {
		h.writeMu.Lock()
		defer h.writeMu.Unlock()
	}
	// A session with an open transaction reads its staged changes and
	// stages its writes; other writers get 409 while one is open. The
	// transaction is in the store: when it changed on another node
	// between reading and writing, the request is served again.
	for attempt := 0; ; attempt++ {
		c.staged, c.params = false, nil
		err := h.loadTxn(c)
		var result any
		if err == nil {
			result, err = c.route.handle(c)
		}
		if !errors.Is(err, errTxnMoved) {
			return result, err
		}
		if attempt == 3 {
			return nil, apiError(http.StatusConflict, "TransactionInProgress", "%v; retry", err)
		}
	}
}

func tooMany(left time.Duration) *Error {
	secs := int((left + time.Second - 1) / time.Second)
	e := fail(http.StatusTooManyRequests, wire.StatusFail, "too many failed authentications from this address; retry in %d seconds", secs)
	e.Header = http.Header{"Retry-After": {strconv.Itoa(secs)}}
	return e
}

// headerValue returns a header's value and whether it was sent at all.
func headerValue(h http.Header, name string) (string, bool) {
	v, ok := h[http.CanonicalHeaderKey(name)]
	if !ok || len(v) == 0 {
		return "", false
	}
	return v[0], true
}

// readBody reads the request body within the route's limit and insists on
// a JSON content type when there is one.
func (c *call) readBody() error {
	r := c.r
	if r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody {
		return nil
	}
	limit := c.route.MaxBody
	if r.ContentLength > limit {
		return tooLarge(limit)
	}
	var body []byte
	var err error
	if r.ContentLength > 0 {
		// Exactly what was announced (net/http gives no more): a bytes.Buffer
		// would double a 32 MiB import's buffer for its last bytes.
		body = make([]byte, r.ContentLength)
		_, err = io.ReadFull(r.Body, body)
	} else {
		buf := bytes.NewBuffer(make([]byte, 0, 512))
		_, err = buf.ReadFrom(io.LimitReader(r.Body, limit+1))
		body = buf.Bytes()
	}
	if err != nil {
		return fail(http.StatusBadRequest, wire.StatusFail, "reading the request body failed: %v", err)
	}
	if int64(len(body)) > limit {
		return tooLarge(limit)
	}
	if len(body) == 0 {
		return nil
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" && !(c.route.Text && mt == "text/plain") {
		return fail(http.StatusForbidden, wire.StatusFail, "content-type header missing")
	}
	c.body = body
	return nil
}

func tooLarge(limit int64) *Error {
	return fail(http.StatusRequestEntityTooLarge, wire.StatusFail, "request body too large: the limit is %d bytes", limit)
}

// requireBody returns the body, or the vendor's error when there is none.
func (c *call) requireBody() ([]byte, error) {
	if len(c.body) == 0 {
		return nil, fail(http.StatusForbidden, wire.StatusFail, "json parsing error").withDetail("the request needs a JSON body")
	}
	return c.body, nil
}

// decodeBody decodes the required JSON body into v, strictly (unknown
// fields are errors).
func (c *call) decodeBody(v any) error {
	body, err := c.requireBody()
	if err != nil {
		return err
	}
	return strictJSON(body, v)
}

func (e *Error) withDetail(d string) *Error { e.Detail = d; return e }

// apiID returns the api_id query parameter, required and valid.
// apiID is the api_id query parameter, checked; it is also the start of
// the call's audit parameters.
func (c *call) apiID() (string, error) {
	id, ok := c.query["api_id"]
	if !ok {
		return "", fail(http.StatusForbidden, wire.StatusValidation, "query parameter api_id is required")
	}
	if err := apidef.CheckID(id[0]); err != nil {
		return "", fail(http.StatusForbidden, wire.StatusValidation, "%v", err)
	}
	c.params = map[string]any{"api_id": id[0]}
	return id[0], nil
}

// toError maps any error to what the client sees. Unexpected errors are
// logged and reported as the vendor's "unknown error".
func (h *Handler) toError(c *call, err error) *Error {
	var e *Error
	var ve apidef.ValidationError
	var rc *catalog.ConflictError
	var sc *store.ConflictError
	var tooLarge *store.TooLargeError
	var exists *lists.ExistsError
	var absent *lists.AbsentError
	var full *lists.MemoryError
	var tokExists *sbauth.TokenExistsError
	var tokAbsent *sbauth.TokenAbsentError
	var secExists *sbauth.SecretExistsError
	var secAbsent *sbauth.SecretAbsentError
	var secInUse *sbauth.SecretInUseError
	id := ""
	if v := c.query["api_id"]; len(v) > 0 {
		id = v[0]
	}
	if c.route.Abs {
		if ae := accountError(err); ae != nil {
			return ae
		}
	}
	switch {
	case errors.As(err, &e):
		return e
	case errors.As(err, &ve):
		if apidef.IsSyntax(err) {
			return fail(http.StatusForbidden, wire.StatusFail, "json parsing error").withDetail(strings.TrimPrefix(ve[0].Msg, "invalid JSON: "))
		}
		return fail(http.StatusForbidden, wire.StatusValidation, "%s", ve.Error())
	case errors.As(err, &rc):
		return fail(http.StatusForbidden, wire.StatusValidation, "%s", rc.Error())
	case errors.Is(err, catalog.ErrAPIExists):
		return fail(http.StatusForbidden, wire.StatusAPIExists, "api %s already exists", id)
	case errors.Is(err, catalog.ErrAPINotFound):
		return fail(http.StatusNotFound, wire.StatusAPINotFound, "api %s does not exist", id)
	case errors.Is(err, catalog.ErrServerExists):
		return fail(http.StatusForbidden, wire.StatusServerExists, "server already exists")
	case errors.Is(err, catalog.ErrServerNotFound):
		return fail(http.StatusNotFound, wire.StatusServerNotFound, "server does not exist")
	case errors.As(err, &exists):
		return fail(http.StatusForbidden, wire.StatusFail, "%s", exists.Error())
	case errors.As(err, &absent):
		return fail(http.StatusNotFound, wire.StatusFail, "%s", absent.Error())
	case errors.As(err, &full):
		return fail(http.StatusInsufficientStorage, wire.StatusFail, "%s", full.Error())
	case errors.As(err, &tokExists):
		return fail(http.StatusForbidden, wire.StatusFail, "%s", tokExists.Error())
	case errors.As(err, &tokAbsent):
		return fail(http.StatusNotFound, wire.StatusFail, "%s", tokAbsent.Error())
	case errors.As(err, &secExists):
		return fail(http.StatusForbidden, wire.StatusFail, "%s", secExists.Error())
	case errors.As(err, &secAbsent):
		return fail(http.StatusNotFound, wire.StatusFail, "%s", secAbsent.Error())
	case errors.As(err, &secInUse):
		return fail(http.StatusForbidden, wire.StatusSecretInUse, "%s", secInUse.Error())
	case errors.Is(err, sbauth.ErrInvalidToken), errors.Is(err, sbauth.ErrSecretTooShort), errors.Is(err, sbauth.ErrInvalidName), errors.Is(err, sbauth.ErrInvalidHeader):
		return fail(http.StatusForbidden, wire.StatusValidation, "%v", err)
	case errors.Is(err, accounts.ErrWrongPassword):
		return fail(http.StatusForbidden, wire.StatusFail, "%v", err)
	case errors.Is(err, accounts.ErrPasswordTooShort):
		return fail(http.StatusForbidden, wire.StatusValidation, "%v", err)
	case errors.As(err, &sc):
		return fail(http.StatusConflict, wire.StatusFail, "the configuration was changed by someone else meanwhile; retry")
	case errors.Is(err, store.ErrUnavailable):
		// A cluster node cut off from etcd: it keeps deciding from its
		// last state and answering reads, and refuses changes.
		return fail(http.StatusServiceUnavailable, wire.StatusFail, "%s", strings.TrimPrefix(err.Error(), "store: "))
	case errors.As(err, &tooLarge):
		return fail(http.StatusRequestEntityTooLarge, wire.StatusFail, "%s", strings.TrimPrefix(err.Error(), "store: "))
	case errors.Is(err, context.Canceled):
		return fail(499, wire.StatusFail, "request canceled")
	}
	h.d.Log.Error("management request failed", "method", c.r.Method, "path", c.r.URL.Path, "error", err)
	return fail(http.StatusInternalServerError, wire.StatusFail, "unknown error")
}

func (h *Handler) writeError(w http.ResponseWriter, e *Error, abs bool) {
	for k, v := range e.Header {
		w.Header()[k] = v
	}
	if abs {
		msg := e.Message
		if e.Detail != "" {
			msg += ": " + e.Detail
		}
		writeJSON(w, e.Code, map[string]any{"error": map[string]string{"type": errorType(e), "message": msg}})
		return
	}
	writeJSON(w, e.Code, errorBody{Status: e.Status, Message: e.Message, Detail: e.Detail})
}

// errorType names an error in the /api style.
func errorType(e *Error) string {
	if e.Type != "" {
		return e.Type
	}
	switch e.Code {
	case http.StatusBadRequest:
		return "InvalidRequest"
	case http.StatusUnauthorized:
		return "AuthenticationFailure"
	case http.StatusForbidden:
		if e.Status == wire.StatusValidation {
			return "InvalidRequest"
		}
		return "PermissionDenied"
	case http.StatusNotFound:
		return "NotFound"
	case http.StatusConflict:
		return "Conflict"
	case http.StatusRequestEntityTooLarge:
		return "RequestTooLarge"
	case http.StatusTooManyRequests:
		return "TooManyRequests"
	case http.StatusInsufficientStorage:
		return "InsufficientStorage"
	}
	return "InternalError"
}

type errorBody struct {
	Status  string `json:"status"`
	Message string `json:"status_message"`
	Detail  string `json:"detail,omitempty"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		code, b = http.StatusInternalServerError, []byte(`{"status": "fail", "status_message": "unknown error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}

func success(msg string) wire.Status { return wire.Status{Status: wire.StatusSuccess, Message: msg} }

// clientAddr is the peer's address. The management API is reached
// directly, so X-Forwarded-For is never trusted here.
func clientAddr(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.IPv4Unspecified()
	}
	return a.Unmap()
}

// statusRecorder remembers the status code written through it.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.code = code
	s.ResponseWriter.WriteHeader(code)
}
