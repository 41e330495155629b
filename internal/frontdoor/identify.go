package frontdoor

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/netip"
	"net/url"
	"strings"
	"unicode/utf8"
	"unsafe"

	"github.com/ase-project/ase/internal/accesslog"
	"github.com/ase-project/ase/internal/apidef"
	"github.com/ase-project/ase/internal/lists"
)

// Client is what identifies a request's client beyond its header fields.
type Client struct {
	Peer netip.Addr // the TCP peer, or the sideband call's source_ip
	// TrustProxy: the client is X-Real-IP, else the right-most address of
	// the last X-Forwarded-For field (the one the trusted proxy in front
	// appended), else the peer.
	TrustProxy bool
	// Trusted (trusted_proxies), when not empty, narrows TrustProxy to a
	// peer in these ranges and walks past the proxies it lists: see
	// Proxies.ClientIP.
	Trusted   Proxies
	Usernames []string // sideband user_info
}

// Proxies is the set of ranges of trusted proxies (trusted_proxies), as
// parsed at load time: masked, IPv4 ranges as IPv4. A handful of ranges is
// the usual size, so a linear scan beats a trie.
type Proxies []netip.Prefix

// Trusts says whether a (unmapped) is in one of the ranges.
func (p Proxies) Trusts(a netip.Addr) bool {
	for _, r := range p {
		if r.Contains(a) {
			return true
		}
	}
	return false
}

// believes says whether c's forwarding fields name the client.
func (c *Client) believes() bool {
	return c.TrustProxy && (len(c.Trusted) == 0 || c.Trusted.Trusts(c.Peer.Unmap()))
}

// Identify reads every identity of a request to api (SPEC section 5) from
// its header fields and raw query: the client IP, and every value of the
// API's cookie, bearer token and API key (header and query parameter)
// that the backend could read. The first value of each kind goes in the
// Identity's own fields, the others in More. It refuses (BadRequest) a
// client address that could be read two ways.
func Identify(api *apidef.API, fields []Field, query string, c *Client) (lists.Identity, Failure) {
	var id lists.Identity
	var xri, xff []byte
	nXRI, nXFF := 0, 0
	believe := c.believes()
	for i := range fields {
		name, value := fields[i].Name, fields[i].Value
		switch classify(name) {
		case fXRealIP:
			if believe {
				xri = value
				nXRI++
			}
		case fXForwardedFor:
			if believe {
				xff = value
				nXFF++
			}
		case fCookie:
			if api != nil && api.Cookie != "" {
				cookies(&id, api.Cookie, value)
			}
		case fAuthorization:
			if api != nil && api.OAuth2AccessToken {
				add(&id, lists.Token, "", BearerToken(b2s(value)))
			}
		}
		// Any field may carry the API's key, the username or the JWT,
		// Authorization included.
		if api == nil {
			continue
		}
		if api.APIKeyHeader != "" && equalFold(name, api.APIKeyHeaderLC) {
			(&sink{kind: lists.APIKey, name: api.APIKeyHeaderLC}).putList(&id, value)
		}
		if api.UsernameHeader != "" && equalFold(name, api.UsernameHeaderLC) {
			(&sink{kind: lists.Username, claimed: true}).putList(&id, value)
		}
		if api.JWT.Header != "" && api.JWT.Username != "" && equalFold(name, api.JWT.Header) {
			(&sink{kind: lists.Username, claim: api.JWT.Username, scheme: api.JWT.Scheme, array: true, claimed: true}).putList(&id, value)
		}
	}
	if nXRI > 1 {
		return id, BadRequest
	}
	id.IP = c.resolve(believe, fields, b2s(xri), b2s(xff), nXFF)
	if api != nil && api.APIKeyQS != "" && query != "" {
		queryValues(&id, &sink{kind: lists.APIKey, name: api.APIKeyQSLC}, api.APIKeyQS, query)
	}
	if api != nil && api.JWT.Query != "" && api.JWT.Username != "" && query != "" {
		queryValues(&id, &sink{kind: lists.Username, claim: api.JWT.Username, array: true, claimed: true}, api.JWT.Query, query)
	}
	for _, u := range c.Usernames {
		add(&id, lists.Username, "", u)
	}
	return id, OK
}

// IP is the client's address read from a request's header fields, as
// Identify reads it (the last X-Real-IP: Identify refuses more than one).
func (c *Client) IP(fields []Field) netip.Addr {
	believe := c.believes()
	var xri, xff []byte
	nXFF := 0
	for i := 0; believe && i < len(fields); i++ {
		switch classify(fields[i].Name) {
		case fXRealIP:
			xri = fields[i].Value
		case fXForwardedFor:
			xff = fields[i].Value
			nXFF++
		}
	}
	return c.resolve(believe, fields, b2s(xri), b2s(xff), nXFF)
}

// resolve finds the client from what the field loop found: X-Real-IP,
// the last X-Forwarded-For field and how many there are.
func (c *Client) resolve(believe bool, fields []Field, xri, xff string, nXFF int) netip.Addr {
	if !believe {
		return c.Peer.Unmap()
	}
	// believe checked the peer: walk as Proxies.ClientIP does.
	w := walk{trusted: c.Trusted, addr: c.Peer.Unmap()}
	w.realIP(xri)
	switch {
	case w.done:
	case nXFF <= 1:
		if xff != "" {
			w.list(xff)
		}
	default:
		// Several fields are one list (RFC 9110 section 5.3): a proxy
		// that adds a field of its own rather than appending to the last
		// one (HAProxy's option forwardfor) writes the right-most part.
		for i := len(fields) - 1; i >= 0 && !w.done; i-- {
			if classify(fields[i].Name) == fXForwardedFor {
				w.list(b2s(fields[i].Value))
			}
		}
	}
	return w.addr
}

// add records one value of an identity: the first in the Identity's own
// field, further distinct ones in More.
func add(id *lists.Identity, kind lists.Kind, name, value string) {
	if value == "" {
		return
	}
	var first *string
	switch kind {
	case lists.Token:
		first = &id.Token
	case lists.Cookie:
		if id.Cookie == "" {
			id.CookieName = name
		}
		first = &id.Cookie
	case lists.APIKey:
		if id.APIKey == "" {
			id.APIKeyName = name
		} else if id.APIKeyName != name {
			first = nil
			break
		}
		first = &id.APIKey
	case lists.Username:
		first = &id.Username
	}
	if first != nil {
		if *first == "" {
			*first = value
			return
		}
		if *first == value {
			return
		}
	}
	for _, m := range id.More {
		if m.Kind == kind && m.Name == name && m.Value == value {
			return
		}
	}
	id.More = append(id.More, lists.Credential{Kind: kind, Name: name, Value: value})
}

// cookies records every cookie called name (in any case: some servers
// read cookie names so) in a Cookie field. Pairs are separated by ";",
// and, as RFC 2109 readers also split, by ",".
func cookies(id *lists.Identity, name string, header []byte) {
	for _, sep := range [...]byte{';', ','} {
		h := header
		for len(h) > 0 {
			part := h
			if i := bytes.IndexByte(h, sep); i >= 0 {
				part, h = h[:i], h[i+1:]
			} else {
				h = nil
			}
			k, v, ok := bytes.Cut(part, []byte("="))
			if !ok || !equalFoldString(b2s(bytes.TrimSpace(k)), name) {
				continue
			}
			v = bytes.TrimSpace(v)
			if sep == ',' {
				// "a=1, SID=x" read by ";"-splitters is the value "1, SID=x"
				// of a: nothing more to see unless a ","-splitter reads it.
				if i := bytes.IndexByte(v, ';'); i >= 0 {
					v = bytes.TrimSpace(v[:i])
				}
			}
			if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			add(id, lists.Cookie, name, b2s(v))
		}
		if bytes.IndexByte(header, ',') < 0 {
			return
		}
	}
}

// sink records in an Identity the values an identity's field or query
// parameter carries, as values of kind named name, or, with claim set,
// each value as the JWT whose claim it records.
type sink struct {
	kind   lists.Kind
	name   string // the API key's lower-case name
	claim  string // the values are JWTs: record this claim of theirs
	scheme string // the JWTs' authorization scheme (apidef.JWT.Scheme)
	array  bool   // the claim may be an array: its first element counts
	// claimed: the values are what the request says of itself (a
	// username header, an unverified JWT): lists.Credential.Claimed.
	claimed bool
}

func (s *sink) put(id *lists.Identity, v string) {
	if s.claim != "" {
		v = jwtClaim(jwtToken(v, s.scheme), s.claim, s.array)
	}
	if s.claimed {
		addClaimed(id, s.kind, v)
		return
	}
	add(id, s.kind, s.name, v)
}

// addClaimed records a value the request claims for itself: in More,
// never in the Identity's own field (which holds what a gateway asserts).
func addClaimed(id *lists.Identity, kind lists.Kind, value string) {
	if value == "" || value == id.ClaimedUsername {
		return
	}
	if id.ClaimedUsername == "" {
		id.ClaimedUsername = value
		return
	}
	for _, m := range id.More {
		if m.Kind == kind && m.Value == value && m.Claimed {
			return
		}
	}
	id.More = append(id.More, lists.Credential{Kind: kind, Value: value, Claimed: true})
}

// putList records a header field's value, and each item of it when it is
// a comma-separated list: the same as that many fields to a reader that
// splits it.
func (s *sink) putList(id *lists.Identity, value []byte) {
	s.put(id, b2s(value))
	if bytes.IndexByte(value, ',') >= 0 {
		for len(value) > 0 {
			var item []byte
			item, value = nextItem(value)
			s.put(id, b2s(item))
		}
	}
}

// queryValues records every value of the query parameter called name (in
// any case, its name and value decoded and raw). "&" and ";" both
// separate parameters, as some servers read them; and where a ";" ends a
// value, the value up to the next "&" counts too, as most servers (Go's
// net/url, PHP, Python, Node) read it: "key=a;b" is "a;b" to them.
func queryValues(id *lists.Identity, s *sink, name, q string) {
	for start := 0; start < len(q); {
		i := start
		for i < len(q) && q[i] != '&' && q[i] != ';' {
			i++
		}
		from := start
		start = i + 1
		k, v, hasValue := strings.Cut(q[from:i], "=")
		if !equalFoldString(k, name) {
			if !strings.ContainsAny(k, "%+") {
				continue
			}
			if uk, err := url.QueryUnescape(k); err != nil || !equalFoldString(uk, name) {
				continue
			}
		}
		putQueryValue(id, s, v)
		// To a "&"-only reader, a value a ";" ends runs on to the next
		// "&", when the parameter starts at one (or at the start).
		if hasValue && i < len(q) && q[i] == ';' && (from == 0 || q[from-1] == '&') {
			end := strings.IndexByte(q[i:], '&')
			if end < 0 {
				end = len(q)
			} else {
				end += i
			}
			putQueryValue(id, s, q[from+len(k)+1:end])
		}
	}
}

// putQueryValue records a query value decoded, and raw: a reader that does
// not decode sees that.
func putQueryValue(id *lists.Identity, s *sink, v string) {
	if strings.ContainsAny(v, "%+") {
		if uv, err := url.QueryUnescape(v); err == nil {
			s.put(id, uv)
		}
	}
	s.put(id, v)
}

// QueryValue returns the first value of query parameter name (exact
// name, decoded) in a raw query string, or "". It is the reading a
// simple backend does; Identify reads every value.
func QueryValue(rawQuery, name string) string {
	var id lists.Identity
	queryValues(&id, &sink{kind: lists.APIKey, name: name}, name, rawQuery)
	return id.APIKey
}

// equalFoldString compares two ASCII strings in any case.
func equalFoldString(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// nextItem splits the first item, trimmed, off a comma-separated list.
func nextItem(list []byte) (item, rest []byte) {
	item = list
	if i := bytes.IndexByte(list, ','); i >= 0 {
		item, rest = list[:i], list[i+1:]
	}
	return bytes.TrimSpace(item), rest
}

// ClientIP returns the client's address. When the proxy in front is
// trusted, that is X-Real-IP if valid, else the right-most address of
// X-Forwarded-For (the one the trusted proxy appended; addresses to its
// left are whatever the client claimed); otherwise, and when neither is
// usable, the peer.
func ClientIP(peer netip.Addr, xRealIP, xff string, trustProxy bool) netip.Addr {
	if !trustProxy {
		return peer.Unmap()
	}
	return Proxies(nil).ClientIP(peer, xRealIP, xff)
}

// ClientIP returns the client's address when forwarding fields are read
// (enable_xff inline, forward-auth always), as nginx's realip module with
// set_real_ip_from p and real_ip_recursive on.
//
// With no ranges, every peer is believed: the client is X-Real-IP if
// valid, else the right-most X-Forwarded-For address (the one the proxy in
// front appended), else the peer.
//
// With ranges, a peer outside them is the client, its fields ignored. A
// peer inside them is believed, and its fields are walked from the right,
// X-Real-IP (when valid: what the peer itself saw) before X-Forwarded-For:
// each address in a trusted range is a proxy and the walk goes on to its
// left; the first address outside them is the client; when every address
// is trusted, the left-most is. An entry that is not an address (empty,
// garbage) stops the walk at the last address read, as nginx does: what
// lies to its left was not written by a proxy that can be vouched for. So
// an address the client wrote to the left of the first untrusted one is
// never taken.
func (p Proxies) ClientIP(peer netip.Addr, xRealIP, xff string) netip.Addr {
	peer = peer.Unmap()
	if len(p) > 0 && !p.Trusts(peer) {
		return peer
	}
	w := walk{trusted: p, addr: peer}
	w.realIP(xRealIP)
	if !w.done && xff != "" {
		w.list(xff)
	}
	return w.addr
}

// walk goes through the forwarding fields of a believed peer from the
// right. addr is the client so far: the last address read.
type walk struct {
	trusted Proxies
	addr    netip.Addr
	done    bool
}

// realIP takes X-Real-IP as the right-most hop when it is an address, and
// ignores it otherwise (an absent or unusable X-Real-IP defers to
// X-Forwarded-For).
func (w *walk) realIP(v string) {
	if a, ok := parseHostAddr(v); ok {
		w.hop(a)
	}
}

// list walks one X-Forwarded-For value from the right.
func (w *walk) list(v string) {
	for !w.done {
		item := v
		i := strings.LastIndexByte(v, ',')
		if i >= 0 {
			item, v = v[i+1:], v[:i]
		}
		a, ok := parseHostAddr(item)
		if !ok {
			w.done = true
			return
		}
		w.hop(a)
		if i < 0 {
			return
		}
	}
}

func (w *walk) hop(a netip.Addr) {
	w.addr = a
	w.done = !w.trusted.Trusts(a)
}

// parseHostAddr parses an address as proxies write it: bare, or with a
// port ("1.2.3.4:80", "[::1]:80"), surrounded by spaces.
func parseHostAddr(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return netip.Addr{}, false
	}
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil && ap.Addr().Zone() == "" {
		return ap.Addr().Unmap(), true
	}
	return netip.Addr{}, false
}

// BearerToken returns the token of an "Authorization: Bearer <token>"
// header (the scheme in any case), or "".
func BearerToken(authorization string) string {
	const scheme = "bearer "
	s := strings.TrimLeft(authorization, " ")
	if len(s) <= len(scheme) || !strings.EqualFold(s[:len(scheme)], scheme) {
		return ""
	}
	return strings.TrimSpace(s[len(scheme):])
}

// ClientID returns the client id a request to api names: the jwt.clientid
// claim of the first JWT it carries at the API's jwt.location (header
// fields in order, then the query), or "". The access log records it; no
// list has client ids (the vendor's have none), so it identifies nobody.
func ClientID(api *apidef.API, fields []Field, query string) string {
	if api == nil || api.JWT.ClientID == "" || !api.JWT.On() {
		return ""
	}
	var id lists.Identity
	s := sink{kind: lists.Username, claim: api.JWT.ClientID, scheme: api.JWT.Scheme}
	for i := 0; api.JWT.Header != "" && i < len(fields) && id.Username == ""; i++ {
		if equalFold(fields[i].Name, api.JWT.Header) {
			s.putList(&id, fields[i].Value)
		}
	}
	if id.Username == "" && api.JWT.Query != "" && query != "" {
		queryValues(&id, &s, api.JWT.Query, query)
	}
	return id.Username
}

// LogUser records in the access log record who a request to api (read
// into id from fields and query) says it is: its first username, and the
// client id of its JWT. The strings are copied: the record may be written
// after the request's buffers are reused.
func LogUser(rec *accesslog.Record, api *apidef.API, id *lists.Identity, fields []Field, query string) {
	user := id.Username
	if user == "" {
		user = id.ClaimedUsername
	}
	rec.Username = strings.Clone(user)
	rec.ClientID = ClientID(api, fields, query)
}

// jwtToken returns the JWT a header field or query value carries: the
// value itself (scheme ""), the token of "Bearer <token>", or the id of
// `MAC id="<token>", ...` (schemes in any case).
func jwtToken(v, scheme string) string {
	switch scheme {
	case "bearer":
		return BearerToken(v)
	case "mac":
		return macID(v)
	}
	return strings.TrimSpace(v)
}

// macID returns the id parameter of an "Authorization: MAC id=..., ..."
// value (OAuth 2.0 MAC tokens), or "".
func macID(v string) string {
	const scheme = "mac "
	s := strings.TrimLeft(v, " ")
	if len(s) <= len(scheme) || !strings.EqualFold(s[:len(scheme)], scheme) {
		return ""
	}
	for rest := s[len(scheme):]; rest != ""; {
		var param string
		param, rest, _ = strings.Cut(rest, ",")
		k, val, ok := strings.Cut(param, "=")
		if ok && strings.EqualFold(strings.TrimSpace(k), "id") {
			val = strings.TrimSpace(val)
			if len(val) >= 2 && val[0] == '"' && val[len(val)-1] == '"' {
				val = val[1 : len(val)-1]
			}
			return val
		}
	}
	return ""
}

// maxJWTPayload bounds the payload decoded from one JWT (it lives in a
// header field or a query string, both bounded well below it).
const maxJWTPayload = 64 << 10

// jwtClaim returns the claim called name of the payload of a JWT in
// compact form (header.payload.signature, each base64url), read as
// encoding/json reads the payload into a map: a string as it is, a number
// as written, and, when array is set, the first element of an array if
// that is a string or a number (the vendor's rule for usernames). It
// returns "" for anything else, and for a token that is not three
// segments, a payload that is not base64url of a JSON object, or an
// object that names the claim twice. The token is not validated: ASE reads
// who a request says it is; the backend checks the signature.
func jwtClaim(token, name string, array bool) string {
	if name == "" {
		return ""
	}
	_, rest, ok := strings.Cut(token, ".")
	if !ok {
		return ""
	}
	payload, sig, ok := strings.Cut(rest, ".")
	if !ok || strings.IndexByte(sig, '.') >= 0 {
		return ""
	}
	payload = strings.TrimRight(payload, "=")
	n := base64.RawURLEncoding.DecodedLen(len(payload))
	if n > maxJWTPayload {
		return ""
	}
	var stack [1024]byte
	buf := stack[:]
	if n > len(buf) {
		buf = make([]byte, n)
	}
	m, err := base64.RawURLEncoding.Decode(buf, unsafe.Slice(unsafe.StringData(payload), len(payload)))
	if err != nil || !json.Valid(buf[:m]) {
		return ""
	}
	return claim(buf[:m], name, array)
}

// claim finds the member name of the JSON object p (valid JSON) and
// returns its value as jwtClaim does.
func claim(p []byte, name string, array bool) string {
	i := skipSpace(p, 0)
	if i == len(p) || p[i] != '{' {
		return ""
	}
	found, seen := "", false
	for i = skipSpace(p, i+1); p[i] != '}'; {
		k := i
		i = skipString(p, i)
		key := p[k:i]
		i = skipSpace(p, skipSpace(p, i)+1) // the colon
		v := i
		i = skipValue(p, i)
		if keyIs(key, name) {
			if seen {
				return "" // which one a reader takes is up to it
			}
			seen, found = true, claimValue(p[v:i], array)
		}
		if i = skipSpace(p, i); p[i] == ',' {
			i = skipSpace(p, i+1)
		}
	}
	return found
}

// keyIs compares an object's key (a JSON string, quotes included) with
// name, as encoding/json decodes it.
func keyIs(key []byte, name string) bool {
	if bytes.IndexByte(key, '\\') < 0 && utf8.Valid(key) {
		return string(key[1:len(key)-1]) == name
	}
	var k string // a copy: Unmarshal keeps its input
	return json.Unmarshal(bytes.Clone(key), &k) == nil && k == name
}

// claimValue returns a claim's value (valid JSON) as jwtClaim does.
func claimValue(v []byte, array bool) string {
	switch c := v[0]; {
	case c == '"':
		if bytes.IndexByte(v, '\\') < 0 && utf8.Valid(v) {
			return string(v[1 : len(v)-1])
		}
		var s string
		json.Unmarshal(bytes.Clone(v), &s)
		return s
	case c == '-' || '0' <= c && c <= '9':
		return string(v)
	case c == '[' && array:
		i := skipSpace(v, 1)
		if v[i] == ']' {
			return ""
		}
		return claimValue(v[i:skipValue(v, i)], false)
	}
	return ""
}

func skipSpace(p []byte, i int) int {
	for i < len(p) && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the JSON string starting at p[i].
func skipString(p []byte, i int) int {
	for i++; i < len(p); i++ {
		switch p[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return i
}

// skipValue returns the index after the JSON value starting at p[i].
func skipValue(p []byte, i int) int {
	switch p[i] {
	case '"':
		return skipString(p, i)
	case '{', '[':
		depth := 0
		for ; i < len(p); i++ {
			switch p[i] {
			case '"':
				i = skipString(p, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return i
	}
	for i < len(p) && strings.IndexByte(",}] \t\r\n", p[i]) < 0 {
		i++
	}
	return i
}
