// Package apidef defines ASE's API definitions: the vendor's
// {"api_metadata": {...}} documents, decoded strictly into typed values,
// checked field by field, filled with documented defaults, and encoded back
// in the vendor's field order.
//
// Decode reports every problem at once, each with its JSON path and the
// rule it breaks. Thresholds, sizes and durations are parsed here, once.
//
// Defaults for omitted optional fields are those of the vendor's example
// definition, with two exceptions chosen for safety: servers default to
// none (sideband APIs have no backends) and health_check defaults to false
// (an API whose backends have no /health page would otherwise be marked
// down). The full list is in DefaultJSON.
package apidef

import (
	"bytes"
	"encoding/json"
	"fmt"
	"github.com/ase-project/ase/internal/jsondoc"
	"regexp"
	"strconv"
	"strings"

	"github.com/ase-project/ase/internal/units"
)

// FieldError and ValidationError are the errors of Decode: every problem,
// each at its JSON path.
type (
	FieldError      = jsondoc.FieldError
	ValidationError = jsondoc.ValidationError
)

// Protocol is the kind of API: REST over HTTP or WebSocket.
type Protocol string

// The protocols an API may have.
const (
	HTTP Protocol = "http"
	WS   Protocol = "ws"
)

// API is one validated API definition.
type API struct {
	ID                       string
	Protocol                 Protocol
	URL                      string // base path, canonical: no trailing slash except "/"
	Hostname                 string // "*" or a lower-case host, optionally with :port
	Cookie                   string
	CookieIdleTimeout        units.Duration
	LogoutAPIEnabled         bool
	CookiePersistenceEnabled bool
	OAuth2AccessToken        bool
	APIKeyQS                 string
	APIKeyHeader             string
	LoginURL                 string
	EnableBlocking           bool
	InternalURL              string
	UsernameHeader           string // username_header: the request header that carries the username; "" = none
	JWT                      JWT
	Enforcement              Enforcement
	FlowControl              FlowControl
	APIMemorySize            units.Size
	HealthCheck              bool
	HealthCheckInterval      int // seconds
	HealthRetryCount         int
	HealthURL                string
	ServerSSL                bool
	Servers                  []Server
	Decoy                    Decoy

	// Derived once at decode time for the data path.
	APIKeyHeaderLC   string // APIKeyHeader in lower case: list entries match header names without case
	APIKeyQSLC       string // APIKeyQS in lower case
	UsernameHeaderLC string // UsernameHeader in lower case

	// Ignored lists the vendor fields this document set that change
	// nothing in ASE, each as "<JSON path>: ignored: <why>", like the
	// ignored ase.conf keys: accepted so that the vendor's files load
	// unchanged, and for whoever loads the document to report once (they
	// are not stored: the definition reads back without them).
	Ignored []string
}

// JWT is the jwt object: where requests carry a JSON Web Token, and the
// names of the payload's claims that hold the username and the client id.
// ASE decodes the payload and never validates the token (nor does the
// vendor's ASE): the signature is the backend's, or a gateway's, to check.
type JWT struct {
	Location string // as written: "h:authorization:bearer", "h:X-Identity", "qs:access_token"; "" = none
	Username string // claim name; "" = the username is not read
	ClientID string // claim name (jwt.clientid); "" = the client id is not read

	// Derived once at decode time for the data path, set only when a JWT
	// is read (Location and at least one claim are set).
	Header string // lower-case name of the header that carries the JWT
	Scheme string // "bearer" or "mac": the header's authorization scheme; "" = the JWT alone
	Query  string // name of the query parameter that carries the JWT
}

// On reports whether the API's requests' JWTs are read.
func (j *JWT) On() bool { return j.Header != "" || j.Query != "" }

// Enforcement is api_pattern_enforcement.
type Enforcement struct {
	ProtocolAllowed    []string // empty = any
	Redirect           Redirect
	MethodsAllowed     []string // upper case; empty = any
	ContentTypeAllowed []string // lower-case media types; empty = any
	ErrorCode          int
	ErrorDef           string
	ErrorMessageBody   string
}

// Redirect is http_redirect: the answer to a request over a protocol that
// protocol_allowed does not list. Code 0 means no redirect.
type Redirect struct {
	Code     int
	Def      string
	HTTPSURL string
}

// FlowControl is an API's flow_control.
type FlowControl struct {
	ClientSpikeThreshold     units.Rate
	BytesInThreshold         units.Rate // ws only
	BytesOutThreshold        units.Rate // ws only
	ServerConnectionQueueing bool
}

// Server is one backend server.
type Server struct {
	Host            string
	Port            int
	SpikeThreshold  units.Rate // http only
	ConnectionQuota int        // concurrent requests; 0 = no limit
}

// Addr returns host:port.
func (s Server) Addr() string { return joinHostPort(s.Host, s.Port) }

// Decoy is decoy_config.
type Decoy struct {
	Enabled         bool
	ResponseCode    int
	ResponseDef     string
	ResponseMessage string
	Subpaths        []string // as the operator wrote them (canonical); empty = the whole API

	// Paths are Subpaths resolved to full request paths (see
	// resolveSubpath), derived once at decode time for the data path: a
	// request is a decoy hit when its path is one of them or below it.
	// One per subpath, in order: empty exactly when Subpaths is.
	Paths []string
}

// Limits on sizes, so that one definition cannot exhaust memory.
const (
	MaxIDLen       = 160
	maxServers     = 1024
	maxSubpaths    = 1024
	maxMethods     = 32
	maxText        = 4096
	maxMessageBody = 64 << 10
	maxQuota       = 1_000_000
)

var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_\- ]{0,159}$`)

// CheckID returns an error unless id is a valid api_id: 1 to 160 letters,
// digits, '-', '_' or spaces, starting with a letter or digit.
func CheckID(id string) error {
	if !idPattern.MatchString(id) {
		return fmt.Errorf("api_id %q is invalid: use 1 to %d letters, digits, '-', '_' or spaces, starting with a letter or digit", id, MaxIDLen)
	}
	return nil
}

// Decode parses and validates an API definition document for api_id id.
// The error, if any, is a ValidationError listing every problem.
func Decode(id string, data []byte) (*API, error) {
	var w jsondoc.Walker
	if err := CheckID(id); err != nil {
		w.Fail("", "%v", err)
	}
	root, err := jsondoc.Parse(data)
	if err != nil {
		return nil, jsondoc.ValidationError{{Msg: "invalid JSON: " + err.Error()}}
	}
	top := w.Object("", root, true)
	md := w.Object("api_metadata", mustGet(top, "api_metadata"), true)
	top.Close()
	a := decodeMetadata(&w, md)
	a.ID = id
	if err := w.Err(); err != nil {
		return nil, err
	}
	return a, nil
}

func mustGet(f *jsondoc.Fields, key string) any {
	v, _ := f.Get(key)
	return v
}

func decodeMetadata(w *jsondoc.Walker, md *jsondoc.Fields) *API {
	a := &API{}
	a.Protocol = Protocol(md.Str("protocol", string(HTTP)))
	if a.Protocol != HTTP && a.Protocol != WS {
		w.Fail(md.At("protocol"), "must be \"http\" or \"ws\", got %q", a.Protocol)
		a.Protocol = HTTP
	}
	if v, ok := md.Get("url"); !ok {
		w.Fail(md.At("url"), "is required")
	} else if s, isStr := v.(string); !isStr {
		w.Fail(md.At("url"), "must be a string, got %s", jsondoc.TypeName(v))
	} else {
		a.URL = checkPath(w, md.At("url"), s, false)
	}
	a.Hostname = checkHostname(w, md.At("hostname"), md.Str("hostname", "*"))
	a.Cookie = checkToken(w, md.At("cookie"), md.Str("cookie", ""), "a cookie name")
	a.CookieIdleTimeout = duration(w, md, "cookie_idle_timeout", units.Duration(200*60e9))
	a.LogoutAPIEnabled = md.Bool("logout_api_enabled", false)
	a.CookiePersistenceEnabled = md.Bool("cookie_persistence_enabled", false)
	a.OAuth2AccessToken = md.Bool("oauth2_access_token", false)
	a.APIKeyQS = checkQueryName(w, md.At("apikey_qs"), md.Str("apikey_qs", ""))
	a.APIKeyHeader = checkToken(w, md.At("apikey_header"), md.Str("apikey_header", ""), "a header name")
	a.APIKeyHeaderLC, a.APIKeyQSLC = strings.ToLower(a.APIKeyHeader), strings.ToLower(a.APIKeyQS)
	a.LoginURL = checkLoginURL(w, md.At("login_url"), md.Str("login_url", ""))
	a.EnableBlocking = md.Bool("enable_blocking", true)

	mapping := w.Object(md.At("api_mapping"), mustGet(md, "api_mapping"), false)
	a.InternalURL = checkPath(w, mapping.At("internal_url"), mapping.Str("internal_url", ""), true)
	mapping.Close()
	a.UsernameHeader = checkToken(w, md.At("username_header"), md.Str("username_header", ""), "a header name")
	a.UsernameHeaderLC = strings.ToLower(a.UsernameHeader)
	a.JWT = decodeJWT(w, md.At("jwt"), mustGet(md, "jwt"), &a.Ignored)
	if _, given := md.Get("is_token_mandatory"); given {
		if md.Bool("is_token_mandatory", false) {
			w.Fail(md.At("is_token_mandatory"), "true asks ASE to block requests without a token and deny-list their address, which ASE does not do: write false (or remove the field), and have the backend or a gateway in front require the token")
		} else {
			a.Ignored = append(a.Ignored, md.At("is_token_mandatory")+": ignored: false asks for nothing (ASE never blocks a request for lacking a token)")
		}
	}

	a.Enforcement = decodeEnforcement(w, w.Object(md.At("api_pattern_enforcement"), mustGet(md, "api_pattern_enforcement"), false), a.Protocol)

	fc := w.Object(md.At("flow_control"), mustGet(md, "flow_control"), false)
	a.FlowControl = decodeFlowControl(w, fc, a.Protocol, FlowControl{})
	fc.Close()

	a.APIMemorySize = size(w, md, "api_memory_size", 128<<20)
	a.HealthCheck = md.Bool("health_check", false)
	a.HealthCheckInterval = md.Int("health_check_interval", 60, 1, 86400)
	a.HealthRetryCount = md.Int("health_retry_count", 4, 1, 100)
	a.HealthURL = checkPath(w, md.At("health_url"), md.Str("health_url", "/health"), true)
	if a.HealthCheck && a.HealthURL == "" {
		w.Fail(md.At("health_url"), "is required when health_check is true")
	}
	a.ServerSSL = md.Bool("server_ssl", false)
	a.Servers = decodeServers(w, md, a.Protocol)
	a.Decoy = decodeDecoy(w, w.Object(md.At("decoy_config"), mustGet(md, "decoy_config"), false), a.URL)
	if a.CookiePersistenceEnabled && a.Cookie == "" {
		w.Fail(md.At("cookie_persistence_enabled"), "needs the cookie field to name the cookie to persist on")
	}
	md.Close()
	return a
}

// decodeJWT reads the jwt object. A JWT is read when location and at
// least one claim are set (the vendor's ASE needs location and username;
// a client id alone is logged here too); a jwt object that reads nothing
// is accepted and reported in ignored.
func decodeJWT(w *jsondoc.Walker, path string, v any, ignored *[]string) JWT {
	f := w.Object(path, v, false)
	j := JWT{}
	j.Location = f.Str("location", "")
	j.Username = checkClaim(w, f.At("username"), f.Str("username", ""))
	j.ClientID = checkClaim(w, f.At("clientid"), f.Str("clientid", ""))
	f.Close()
	if j.Username != "" && j.Username == j.ClientID {
		w.Fail(f.At("clientid"), "names the claim %q, as jwt.username does: the two must differ (leave clientid empty to log no client id)", j.ClientID)
	}
	if j.Location == "" {
		if j.Username != "" || j.ClientID != "" {
			*ignored = append(*ignored, path+": ignored: jwt.location is empty, so no JWT is read")
		}
		return j
	}
	const want = `"h:<header>:bearer" (such as "h:authorization:bearer"), "h:<header>:mac", "h:<header>" (the header carries the JWT alone) or "qs:<query parameter>"`
	kind, rest, _ := strings.Cut(j.Location, ":")
	switch strings.ToLower(kind) {
	case "qs":
		if rest == "" {
			w.Fail(f.At("location"), "names no query parameter: write %s", want)
			return j
		}
		if checkQueryName(w, f.At("location"), rest) == "" {
			return j
		}
		j.Query = rest
	case "h":
		name, scheme, hasScheme := strings.Cut(rest, ":")
		if !isToken(name) {
			w.Fail(f.At("location"), "must name a header, got %q: write %s", j.Location, want)
			return j
		}
		j.Header = strings.ToLower(name)
		if hasScheme {
			j.Scheme = strings.ToLower(scheme)
			if j.Scheme != "bearer" && j.Scheme != "mac" {
				w.Fail(f.At("location"), "reads the authorization scheme %q, which ASE does not read a JWT from: write %s", scheme, want)
				j.Header, j.Scheme = "", ""
				return j
			}
		}
	default:
		w.Fail(f.At("location"), "must be %s, got %q", want, j.Location)
		return j
	}
	if j.Username == "" && j.ClientID == "" {
		*ignored = append(*ignored, path+": ignored: neither jwt.username nor jwt.clientid names a claim to read")
		j.Header, j.Scheme, j.Query = "", "", ""
	}
	return j
}

// checkClaim validates the name of a JWT claim.
func checkClaim(w *jsondoc.Walker, path, s string) string {
	if len(s) > 256 || !isPrintable(s) {
		w.Fail(path, "must be a claim name of at most 256 printable characters")
		return ""
	}
	return s
}

func decodeEnforcement(w *jsondoc.Walker, f *jsondoc.Fields, p Protocol) Enforcement {
	e := Enforcement{}
	allowed := map[string]bool{"http": p == HTTP, "https": p == HTTP, "ws": p == WS, "wss": p == WS}
	pa := f.Str("protocol_allowed", "")
	seen := map[string]bool{}
	for _, part := range splitList(pa) {
		part = strings.ToLower(part)
		switch {
		case !allowed[part]:
			want := "http, https"
			if p == WS {
				want = "ws, wss"
			}
			w.Fail(f.At("protocol_allowed"), "%q is not a protocol of a %s API (use %s, comma-separated)", part, p, want)
		case seen[part]:
			w.Fail(f.At("protocol_allowed"), "lists %q twice", part)
		default:
			seen[part] = true
			e.ProtocolAllowed = append(e.ProtocolAllowed, part)
		}
	}
	rf := w.Object(f.At("http_redirect"), mustGet(f, "http_redirect"), false)
	e.Redirect.Code = rf.Code("response_code", 0, 300, 399, true)
	e.Redirect.Def = checkReason(w, rf.At("response_def"), rf.Str("response_def", ""))
	e.Redirect.HTTPSURL = rf.Str("https_url", "")
	if e.Redirect.HTTPSURL != "" {
		checkAbsURL(w, rf.At("https_url"), e.Redirect.HTTPSURL)
	}
	if e.Redirect.Code != 0 && e.Redirect.HTTPSURL == "" {
		w.Fail(rf.At("https_url"), "is required when response_code is set")
	}
	rf.Close()

	ms := f.Strings("methods_allowed", maxMethods)
	seenM := map[string]bool{}
	for i, m := range ms {
		path := fmt.Sprintf("%s[%d]", f.At("methods_allowed"), i)
		if !isToken(m) {
			w.Fail(path, "%q is not an HTTP method", m)
			continue
		}
		m = strings.ToUpper(m)
		if seenM[m] {
			w.Fail(path, "lists %s twice", m)
			continue
		}
		seenM[m] = true
		e.MethodsAllowed = append(e.MethodsAllowed, m)
	}
	ct := f.Str("content_type_allowed", "")
	seenCT := map[string]bool{}
	for _, part := range splitList(ct) {
		mt, ok := checkMediaType(part)
		if !ok {
			w.Fail(f.At("content_type_allowed"), "%q is not a media type such as application/json", part)
			continue
		}
		if seenCT[mt] {
			w.Fail(f.At("content_type_allowed"), "lists %q twice", mt)
			continue
		}
		seenCT[mt] = true
		e.ContentTypeAllowed = append(e.ContentTypeAllowed, mt)
	}
	e.ErrorCode = f.Code("error_code", 401, 400, 599, false)
	e.ErrorDef = checkReason(w, f.At("error_def"), f.Str("error_def", "Unauthorized"))
	e.ErrorMessageBody = checkText(w, f.At("error_message_body"), f.Str("error_message_body", "401 Unauthorized"), maxMessageBody)
	f.Close()
	return e
}

// decodeFlowControl reads flow_control fields over base: fields given
// replace base's, the rest keep it. Create passes the zero value (all
// limits off); a flow-control update passes the API's current values.
func decodeFlowControl(w *jsondoc.Walker, f *jsondoc.Fields, p Protocol, base FlowControl) FlowControl {
	fc := base
	fc.ClientSpikeThreshold = f.Rate("client_spike_threshold", base.ClientSpikeThreshold)
	fc.BytesInThreshold = f.Rate("bytes_in_threshold", base.BytesInThreshold)
	fc.BytesOutThreshold = f.Rate("bytes_out_threshold", base.BytesOutThreshold)
	fc.ServerConnectionQueueing = f.Bool("server_connection_queueing", base.ServerConnectionQueueing)
	if p != WS {
		if !fc.BytesInThreshold.IsZero() {
			w.Fail(f.At("bytes_in_threshold"), "applies to ws APIs only; this API's protocol is http")
		}
		if !fc.BytesOutThreshold.IsZero() {
			w.Fail(f.At("bytes_out_threshold"), "applies to ws APIs only; this API's protocol is http")
		}
	}
	return fc
}

func decodeServers(w *jsondoc.Walker, md *jsondoc.Fields, p Protocol) []Server {
	v, ok := md.Get("servers")
	if !ok {
		return []Server{}
	}
	arr, isArr := v.([]any)
	if !isArr {
		w.Fail(md.At("servers"), "must be an array of servers, got %s", jsondoc.TypeName(v))
		return []Server{}
	}
	if len(arr) > maxServers {
		w.Fail(md.At("servers"), "must have at most %d servers, got %d", maxServers, len(arr))
		return []Server{}
	}
	out := make([]Server, 0, len(arr))
	seen := map[string]int{}
	for i, e := range arr {
		path := fmt.Sprintf("%s[%d]", md.At("servers"), i)
		s := decodeServer(w, w.Object(path, e, true), p, true)
		if prev, dup := seen[s.Addr()]; dup && s.Host != "" {
			w.Fail(path, "server %s is already listed at servers[%d]", s.Addr(), prev)
			continue
		}
		seen[s.Addr()] = i
		out = append(out, s)
	}
	return out
}

// decodeServer reads one server object. full=false reads only host and
// port (the delete-server body).
func decodeServer(w *jsondoc.Walker, f *jsondoc.Fields, p Protocol, full bool) Server {
	s := Server{}
	if v, ok := f.Get("host"); !ok {
		w.Fail(f.At("host"), "is required")
	} else if h, isStr := v.(string); !isStr {
		w.Fail(f.At("host"), "must be a string, got %s", jsondoc.TypeName(v))
	} else {
		s.Host = checkServerHost(w, f.At("host"), h)
	}
	if _, ok := f.Get("port"); !ok {
		w.Fail(f.At("port"), "is required")
	} else {
		s.Port = f.Int("port", 0, 1, 65535)
	}
	if full {
		s.SpikeThreshold = f.Rate("server_spike_threshold", units.Rate{})
		if p == WS && !s.SpikeThreshold.IsZero() {
			w.Fail(f.At("server_spike_threshold"), "applies to http APIs only; this API's protocol is ws")
		}
		s.ConnectionQuota = f.Int("server_connection_quota", 0, 0, maxQuota)
	}
	f.Close()
	return s
}

// decodeDecoy reads decoy_config of an API whose url is base ("" when the
// url itself is invalid: the subpaths are then only checked as paths).
func decodeDecoy(w *jsondoc.Walker, f *jsondoc.Fields, base string) Decoy {
	d := Decoy{}
	d.Enabled = f.Bool("decoy_enabled", false)
	d.ResponseCode = f.Code("response_code", 200, 100, 599, false)
	d.ResponseDef = checkReason(w, f.At("response_def"), f.Str("response_def", ""))
	d.ResponseMessage = checkText(w, f.At("response_message"), f.Str("response_message", ""), maxMessageBody)
	subs := f.Strings("decoy_subpaths", maxSubpaths)
	type named struct {
		index int
		sub   string
	}
	seen := map[string]named{}
	d.Subpaths, d.Paths = []string{}, []string{}
	for i, s := range subs {
		path := fmt.Sprintf("%s[%d]", f.At("decoy_subpaths"), i)
		if s != "" && s[0] != '/' && base != "" {
			if pathProblem("/"+s) == "" {
				w.Fail(path, "must be a path starting with /, got %q; write the full path it stands for: %s", s, strings.Join(subpathReadings(base, "/"+strings.TrimRight(s, "/")), " or "))
				continue
			}
		}
		c := checkPath(w, path, s, false)
		if c == "" {
			continue
		}
		if c == "/" {
			w.Fail(path, "must name a sub-path such as /admin (an empty list makes the whole API a decoy)")
			continue
		}
		if base == "" {
			continue
		}
		full, ok := resolveSubpath(base, c)
		if !ok {
			w.Fail(path, "%q is ambiguous under url %q: as a full path it covers the whole API, relative to the url it is %q; write %q for that path, or leave decoy_subpaths empty to make the whole API a decoy", c, base, full, full)
			continue
		}
		if prev, dup := seen[full]; dup {
			if prev.sub == c {
				w.Fail(path, "lists %q twice", c)
			} else {
				w.Fail(path, "%q is the path decoy_subpaths[%d] already names", full, prev.index)
			}
			continue
		}
		seen[full] = named{i, c}
		d.Subpaths = append(d.Subpaths, c)
		d.Paths = append(d.Paths, full)
	}
	f.Close()
	return d
}

// resolveSubpath returns the full request path that the decoy subpath sub
// (canonical, not "/") names on an API whose url is base. The vendor
// writes subpaths as full paths under the url ("/shop/admin" for url
// "/shop"); earlier ASE versions read them relative to it ("/admin"). The
// rule, on segment boundaries (README, "API definitions"):
//
//   - base is "/": sub is the path; both readings coincide.
//   - sub is below base ("/shop/admin" under "/shop"): the vendor's
//     full-path form; it names sub.
//   - sub is base or above it ("/shop", or "/api" under "/api/v1"):
//     ambiguous, since as a full path it would cover the whole API and
//     relative to the url it names base+sub. ok is false and full is the
//     relative reading, for the message.
//   - otherwise ("/admin", or "/shopping" under "/shop"): no request for
//     sub is ever routed to this API, so it can only be relative: base+sub.
func resolveSubpath(base, sub string) (full string, ok bool) {
	switch {
	case base == "/":
		return sub, true
	case below(sub, base):
		return sub, true
	case sub == base || below(base, sub):
		return base + sub, false
	}
	return base + sub, true
}

// below reports whether path is strictly below base on a segment boundary:
// /shop/admin is below /shop, /shopping is not.
func below(path, base string) bool {
	return len(path) > len(base) && strings.HasPrefix(path, base) && path[len(base)] == '/'
}

// subpathReadings returns, quoted, the full paths sub may stand for on an
// API whose url is base: itself if it is below base, and base+sub.
func subpathReadings(base, sub string) []string {
	var out []string
	if base == "/" || below(sub, base) {
		out = append(out, fmt.Sprintf("%q", sub))
	}
	if base != "/" {
		out = append(out, fmt.Sprintf("%q", base+sub))
	}
	return out
}

func duration(w *jsondoc.Walker, f *jsondoc.Fields, key string, def units.Duration) units.Duration {
	s := f.Str(key, def.String())
	d, err := units.ParseDuration(vendorDays(s))
	if err != nil || d == 0 {
		w.Fail(f.At(key), "must be a duration such as 200m (a whole number greater than 0 and s, m, h, d, w, mnt or yr), got %q", s)
		return def
	}
	return d
}

// vendorDays writes the vendor's week, month and year units (2w, 1mnt,
// 1yr) in days, a month being 30 days and a year 365; the definition reads
// back in days.
func vendorDays(s string) string {
	for _, u := range [...]struct {
		suffix string
		days   uint64
	}{{"mnt", 30}, {"yr", 365}, {"w", 7}} {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			n, err := strconv.ParseUint(num, 10, 32)
			if err != nil {
				return s
			}
			return strconv.FormatUint(n*u.days, 10) + "d"
		}
	}
	return s
}

func size(w *jsondoc.Walker, f *jsondoc.Fields, key string, def units.Size) units.Size {
	s := f.Str(key, def.String())
	z, err := units.ParseSize(s)
	if err != nil || z < 1<<20 || z > 64<<30 {
		w.Fail(f.At(key), "must be a size from 1mb to 64gb such as 128mb, got %q", s)
		return def
	}
	return z
}

// FlowControlPatch decodes the body of a flow-control update,
// {"flow_control": {...}}, over the API's current values.
func FlowControlPatch(a *API, data []byte) (FlowControl, error) {
	var w jsondoc.Walker
	root, err := jsondoc.Parse(data)
	if err != nil {
		return FlowControl{}, jsondoc.ValidationError{{Msg: "invalid JSON: " + err.Error()}}
	}
	top := w.Object("", root, true)
	f := w.Object("flow_control", mustGet(top, "flow_control"), true)
	top.Close()
	fc := decodeFlowControl(&w, f, a.Protocol, a.FlowControl)
	f.Close()
	return fc, w.Err()
}

// DecodeServer decodes {"server": {...}} for an API of protocol p. With
// full=false only host and port are read (the delete-server body).
func DecodeServer(p Protocol, data []byte, full bool) (Server, error) {
	var w jsondoc.Walker
	root, err := jsondoc.Parse(data)
	if err != nil {
		return Server{}, jsondoc.ValidationError{{Msg: "invalid JSON: " + err.Error()}}
	}
	top := w.Object("", root, true)
	s := decodeServer(&w, w.Object("server", mustGet(top, "server"), true), p, full)
	top.Close()
	return s, w.Err()
}

// ServerPatch is the body of a server flow-control update: the server,
// and the limits given (nil: unchanged).
type ServerPatch struct {
	Host  string
	Port  int
	Spike *units.Rate
	Quota *int
}

// DecodeServerPatch decodes {"server": {"host", "port", and any of
// "server_spike_threshold", "server_connection_quota"}} for an API of
// protocol p.
func DecodeServerPatch(p Protocol, data []byte) (ServerPatch, error) {
	s, err := DecodeServer(p, data, true)
	if err != nil {
		return ServerPatch{}, err
	}
	root, _ := jsondoc.Parse(data)
	var w jsondoc.Walker
	srv := w.Object("server", mustGet(w.Object("", root, true), "server"), true)
	patch := ServerPatch{Host: s.Host, Port: s.Port}
	if _, given := srv.Get("server_spike_threshold"); given {
		patch.Spike = &s.SpikeThreshold
	}
	if _, given := srv.Get("server_connection_quota"); given {
		patch.Quota = &s.ConnectionQuota
	}
	return patch, nil
}

// IsSyntax reports whether err is about the JSON itself rather than its
// content (the management API answers those with "json parsing error").
func IsSyntax(err error) bool {
	ve, ok := err.(jsondoc.ValidationError)
	return ok && len(ve) == 1 && ve[0].Path == "" && strings.HasPrefix(ve[0].Msg, "invalid JSON: ")
}

// Encode returns the definition as the vendor's JSON document, complete,
// in the vendor's field order.
func (a *API) Encode() []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // operators' messages read back as written
	enc.SetIndent("", "  ")
	if err := enc.Encode(a.wire()); err != nil {
		panic(err) // the wire types cannot fail to marshal
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// Clone returns a deep copy.
func (a *API) Clone() *API {
	c := *a
	c.Enforcement.ProtocolAllowed = append([]string(nil), a.Enforcement.ProtocolAllowed...)
	c.Enforcement.MethodsAllowed = append([]string(nil), a.Enforcement.MethodsAllowed...)
	c.Enforcement.ContentTypeAllowed = append([]string(nil), a.Enforcement.ContentTypeAllowed...)
	c.Servers = append([]Server{}, a.Servers...)
	c.Decoy.Subpaths = append([]string{}, a.Decoy.Subpaths...)
	c.Decoy.Paths = append([]string{}, a.Decoy.Paths...)
	c.Ignored = append([]string(nil), a.Ignored...)
	return &c
}

// ServerIndex returns the index of the server at host:port, or -1.
func (a *API) ServerIndex(host string, port int) int {
	for i, s := range a.Servers {
		if s.Host == host && s.Port == port {
			return i
		}
	}
	return -1
}

// DefaultJSON is the definition Decode produces from {"api_metadata":
// {"url": "/"}}: every default in one place, for the documentation.
func DefaultJSON() []byte {
	a, err := Decode("defaults", []byte(`{"api_metadata": {"url": "/"}}`))
	if err != nil {
		panic(err)
	}
	return a.Encode()
}

// Equal reports whether two definitions encode identically.
func Equal(a, b *API) bool { return bytes.Equal(a.Encode(), b.Encode()) }
