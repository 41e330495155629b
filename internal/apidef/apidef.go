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
	"regexp"
	"strings"

	"github.com/ase-project/ase/internal/units"
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
}

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
	Subpaths        []string // relative to the API's url; empty = the whole API
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
	var w walker
	if err := CheckID(id); err != nil {
		w.fail("", "%v", err)
	}
	root, err := parseJSON(data)
	if err != nil {
		return nil, ValidationError{{Msg: "invalid JSON: " + err.Error()}}
	}
	top := w.object("", root, true)
	md := w.object("api_metadata", mustGet(top, "api_metadata"), true)
	top.close()
	a := decodeMetadata(&w, md)
	a.ID = id
	if err := w.err(); err != nil {
		return nil, err
	}
	return a, nil
}

func mustGet(f *fields, key string) any {
	v, _ := f.get(key)
	return v
}

func decodeMetadata(w *walker, md *fields) *API {
	a := &API{}
	a.Protocol = Protocol(md.str("protocol", string(HTTP)))
	if a.Protocol != HTTP && a.Protocol != WS {
		w.fail(md.at("protocol"), "must be \"http\" or \"ws\", got %q", a.Protocol)
		a.Protocol = HTTP
	}
	if v, ok := md.get("url"); !ok {
		w.fail(md.at("url"), "is required")
	} else if s, isStr := v.(string); !isStr {
		w.fail(md.at("url"), "must be a string, got %s", typeName(v))
	} else {
		a.URL = checkPath(w, md.at("url"), s, false)
	}
	a.Hostname = checkHostname(w, md.at("hostname"), md.str("hostname", "*"))
	a.Cookie = checkToken(w, md.at("cookie"), md.str("cookie", ""), "a cookie name")
	a.CookieIdleTimeout = duration(w, md, "cookie_idle_timeout", units.Duration(200*60e9))
	a.LogoutAPIEnabled = md.boolean("logout_api_enabled", false)
	a.CookiePersistenceEnabled = md.boolean("cookie_persistence_enabled", false)
	a.OAuth2AccessToken = md.boolean("oauth2_access_token", false)
	a.APIKeyQS = checkQueryName(w, md.at("apikey_qs"), md.str("apikey_qs", ""))
	a.APIKeyHeader = checkToken(w, md.at("apikey_header"), md.str("apikey_header", ""), "a header name")
	a.LoginURL = checkLoginURL(w, md.at("login_url"), md.str("login_url", ""))
	a.EnableBlocking = md.boolean("enable_blocking", true)

	mapping := w.object(md.at("api_mapping"), mustGet(md, "api_mapping"), false)
	a.InternalURL = checkPath(w, mapping.at("internal_url"), mapping.str("internal_url", ""), true)
	mapping.close()

	a.Enforcement = decodeEnforcement(w, w.object(md.at("api_pattern_enforcement"), mustGet(md, "api_pattern_enforcement"), false), a.Protocol)

	fc := w.object(md.at("flow_control"), mustGet(md, "flow_control"), false)
	a.FlowControl = decodeFlowControl(w, fc, a.Protocol, FlowControl{})
	fc.close()

	a.APIMemorySize = size(w, md, "api_memory_size", 128<<20)
	a.HealthCheck = md.boolean("health_check", false)
	a.HealthCheckInterval = md.integer("health_check_interval", 60, 1, 86400)
	a.HealthRetryCount = md.integer("health_retry_count", 4, 1, 100)
	a.HealthURL = checkPath(w, md.at("health_url"), md.str("health_url", "/health"), true)
	if a.HealthCheck && a.HealthURL == "" {
		w.fail(md.at("health_url"), "is required when health_check is true")
	}
	a.ServerSSL = md.boolean("server_ssl", false)
	a.Servers = decodeServers(w, md, a.Protocol)
	a.Decoy = decodeDecoy(w, w.object(md.at("decoy_config"), mustGet(md, "decoy_config"), false))
	if a.CookiePersistenceEnabled && a.Cookie == "" {
		w.fail(md.at("cookie_persistence_enabled"), "needs the cookie field to name the cookie to persist on")
	}
	md.close()
	return a
}

func decodeEnforcement(w *walker, f *fields, p Protocol) Enforcement {
	e := Enforcement{}
	allowed := map[string]bool{"http": p == HTTP, "https": p == HTTP, "ws": p == WS, "wss": p == WS}
	pa := f.str("protocol_allowed", "")
	seen := map[string]bool{}
	for _, part := range splitList(pa) {
		part = strings.ToLower(part)
		switch {
		case !allowed[part]:
			want := "http, https"
			if p == WS {
				want = "ws, wss"
			}
			w.fail(f.at("protocol_allowed"), "%q is not a protocol of a %s API (use %s, comma-separated)", part, p, want)
		case seen[part]:
			w.fail(f.at("protocol_allowed"), "lists %q twice", part)
		default:
			seen[part] = true
			e.ProtocolAllowed = append(e.ProtocolAllowed, part)
		}
	}
	rf := w.object(f.at("http_redirect"), mustGet(f, "http_redirect"), false)
	e.Redirect.Code = rf.code("response_code", 0, 300, 399, true)
	e.Redirect.Def = checkReason(w, rf.at("response_def"), rf.str("response_def", ""))
	e.Redirect.HTTPSURL = rf.str("https_url", "")
	if e.Redirect.HTTPSURL != "" {
		checkAbsURL(w, rf.at("https_url"), e.Redirect.HTTPSURL)
	}
	if e.Redirect.Code != 0 && e.Redirect.HTTPSURL == "" {
		w.fail(rf.at("https_url"), "is required when response_code is set")
	}
	rf.close()

	ms := f.strings("methods_allowed", maxMethods)
	seenM := map[string]bool{}
	for i, m := range ms {
		path := fmt.Sprintf("%s[%d]", f.at("methods_allowed"), i)
		if !isToken(m) {
			w.fail(path, "%q is not an HTTP method", m)
			continue
		}
		m = strings.ToUpper(m)
		if seenM[m] {
			w.fail(path, "lists %s twice", m)
			continue
		}
		seenM[m] = true
		e.MethodsAllowed = append(e.MethodsAllowed, m)
	}
	ct := f.str("content_type_allowed", "")
	seenCT := map[string]bool{}
	for _, part := range splitList(ct) {
		mt, ok := checkMediaType(part)
		if !ok {
			w.fail(f.at("content_type_allowed"), "%q is not a media type such as application/json", part)
			continue
		}
		if seenCT[mt] {
			w.fail(f.at("content_type_allowed"), "lists %q twice", mt)
			continue
		}
		seenCT[mt] = true
		e.ContentTypeAllowed = append(e.ContentTypeAllowed, mt)
	}
	e.ErrorCode = f.code("error_code", 401, 400, 599, false)
	e.ErrorDef = checkReason(w, f.at("error_def"), f.str("error_def", "Unauthorized"))
	e.ErrorMessageBody = checkText(w, f.at("error_message_body"), f.str("error_message_body", "401 Unauthorized"), maxMessageBody)
	f.close()
	return e
}

// decodeFlowControl reads flow_control fields over base: fields given
// replace base's, the rest keep it. Create passes the zero value (all
// limits off); a flow-control update passes the API's current values.
func decodeFlowControl(w *walker, f *fields, p Protocol, base FlowControl) FlowControl {
	fc := base
	fc.ClientSpikeThreshold = f.rate("client_spike_threshold", base.ClientSpikeThreshold)
	fc.BytesInThreshold = f.rate("bytes_in_threshold", base.BytesInThreshold)
	fc.BytesOutThreshold = f.rate("bytes_out_threshold", base.BytesOutThreshold)
	fc.ServerConnectionQueueing = f.boolean("server_connection_queueing", base.ServerConnectionQueueing)
	if p != WS {
		if !fc.BytesInThreshold.IsZero() {
			w.fail(f.at("bytes_in_threshold"), "applies to ws APIs only; this API's protocol is http")
		}
		if !fc.BytesOutThreshold.IsZero() {
			w.fail(f.at("bytes_out_threshold"), "applies to ws APIs only; this API's protocol is http")
		}
	}
	return fc
}

func decodeServers(w *walker, md *fields, p Protocol) []Server {
	v, ok := md.get("servers")
	if !ok {
		return []Server{}
	}
	arr, isArr := v.([]any)
	if !isArr {
		w.fail(md.at("servers"), "must be an array of servers, got %s", typeName(v))
		return []Server{}
	}
	if len(arr) > maxServers {
		w.fail(md.at("servers"), "must have at most %d servers, got %d", maxServers, len(arr))
		return []Server{}
	}
	out := make([]Server, 0, len(arr))
	seen := map[string]int{}
	for i, e := range arr {
		path := fmt.Sprintf("%s[%d]", md.at("servers"), i)
		s := decodeServer(w, w.object(path, e, true), p, true)
		if prev, dup := seen[s.Addr()]; dup && s.Host != "" {
			w.fail(path, "server %s is already listed at servers[%d]", s.Addr(), prev)
			continue
		}
		seen[s.Addr()] = i
		out = append(out, s)
	}
	return out
}

// decodeServer reads one server object. full=false reads only host and
// port (the delete-server body).
func decodeServer(w *walker, f *fields, p Protocol, full bool) Server {
	s := Server{}
	if v, ok := f.get("host"); !ok {
		w.fail(f.at("host"), "is required")
	} else if h, isStr := v.(string); !isStr {
		w.fail(f.at("host"), "must be a string, got %s", typeName(v))
	} else {
		s.Host = checkServerHost(w, f.at("host"), h)
	}
	if _, ok := f.get("port"); !ok {
		w.fail(f.at("port"), "is required")
	} else {
		s.Port = f.integer("port", 0, 1, 65535)
	}
	if full {
		s.SpikeThreshold = f.rate("server_spike_threshold", units.Rate{})
		if p == WS && !s.SpikeThreshold.IsZero() {
			w.fail(f.at("server_spike_threshold"), "applies to http APIs only; this API's protocol is ws")
		}
		s.ConnectionQuota = f.integer("server_connection_quota", 0, 0, maxQuota)
	}
	f.close()
	return s
}

func decodeDecoy(w *walker, f *fields) Decoy {
	d := Decoy{}
	d.Enabled = f.boolean("decoy_enabled", false)
	d.ResponseCode = f.code("response_code", 200, 100, 599, false)
	d.ResponseDef = checkReason(w, f.at("response_def"), f.str("response_def", ""))
	d.ResponseMessage = checkText(w, f.at("response_message"), f.str("response_message", ""), maxMessageBody)
	subs := f.strings("decoy_subpaths", maxSubpaths)
	seen := map[string]bool{}
	d.Subpaths = []string{}
	for i, s := range subs {
		path := fmt.Sprintf("%s[%d]", f.at("decoy_subpaths"), i)
		c := checkPath(w, path, s, false)
		if c == "" {
			continue
		}
		if c == "/" {
			w.fail(path, "must name a sub-path such as /admin (an empty list makes the whole API a decoy)")
			continue
		}
		if seen[c] {
			w.fail(path, "lists %q twice", c)
			continue
		}
		seen[c] = true
		d.Subpaths = append(d.Subpaths, c)
	}
	f.close()
	return d
}

func duration(w *walker, f *fields, key string, def units.Duration) units.Duration {
	s := f.str(key, def.String())
	d, err := units.ParseDuration(s)
	if err != nil || d == 0 {
		w.fail(f.at(key), "must be a duration such as 200m (a whole number greater than 0 and s, m, h or d), got %q", s)
		return def
	}
	return d
}

func size(w *walker, f *fields, key string, def units.Size) units.Size {
	s := f.str(key, def.String())
	z, err := units.ParseSize(s)
	if err != nil || z < 1<<20 || z > 64<<30 {
		w.fail(f.at(key), "must be a size from 1mb to 64gb such as 128mb, got %q", s)
		return def
	}
	return z
}

// FlowControlPatch decodes the body of a flow-control update,
// {"flow_control": {...}}, over the API's current values.
func FlowControlPatch(a *API, data []byte) (FlowControl, error) {
	var w walker
	root, err := parseJSON(data)
	if err != nil {
		return FlowControl{}, ValidationError{{Msg: "invalid JSON: " + err.Error()}}
	}
	top := w.object("", root, true)
	f := w.object("flow_control", mustGet(top, "flow_control"), true)
	top.close()
	fc := decodeFlowControl(&w, f, a.Protocol, a.FlowControl)
	f.close()
	return fc, w.err()
}

// DecodeServer decodes {"server": {...}} for an API of protocol p. With
// full=false only host and port are read (the delete-server body).
func DecodeServer(p Protocol, data []byte, full bool) (Server, error) {
	var w walker
	root, err := parseJSON(data)
	if err != nil {
		return Server{}, ValidationError{{Msg: "invalid JSON: " + err.Error()}}
	}
	top := w.object("", root, true)
	s := decodeServer(&w, w.object("server", mustGet(top, "server"), true), p, full)
	top.close()
	return s, w.err()
}

// IsSyntax reports whether err is about the JSON itself rather than its
// content (the management API answers those with "json parsing error").
func IsSyntax(err error) bool {
	ve, ok := err.(ValidationError)
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
