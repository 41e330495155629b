// Package frontdoor is the one reading of a client's request that every
// way into ASE shares: the inline event loops, the inline general server
// (fasthttp) and the sideband protocols. It derives, once, the host, the
// path and every identity value the engine decides on; it refuses what
// could be read two ways; it holds the one table of the answers ASE gives
// itself; and it writes the head of the request a backend receives, from
// the same reading, so that what is decided on is exactly what is
// forwarded.
//
// The rules (SPEC section 11, "One request, one reading"):
//
//   - The host is the authority of an absolute-form target, else the one
//     Host field (RFC 9112 section 3.2.2); two Host fields, userinfo, an
//     empty or malformed host are refused (400). It is lower-cased and a
//     trailing dot is removed, and the backend receives that host (Host
//     and X-Forwarded-Host) whatever the client wrote.
//   - The path is percent-decoded, its dot segments resolved and repeated
//     slashes merged; the backend receives that path, re-encoded where a
//     request line needs it (so %2F reaches it as "/"). A backslash, an
//     encoded control character or a malformed escape is refused (400).
//   - Every value of an identity that the backend could read is checked:
//     every Authorization, API key header and Cookie field, every cookie
//     of the API's name (in any case), every query parameter of the API's
//     key name (in any case, "&" and ";" both separating, names and values
//     decoded), the items of a comma-separated API key header. Any listed
//     value blocks, any allow-listed one allows. A value that cannot be
//     read one way only (two X-Real-IP or Content-Type fields) is refused.
//   - Only the header section identifies a client: trailers are never
//     read and never forwarded.
//   - Framing (inline): Content-Length with Transfer-Encoding, a repeated
//     or malformed Content-Length is refused (400); a transfer coding
//     other than chunked is not implemented (501, as nginx answers).
package frontdoor

import (
	"bytes"
	"unsafe"

	"github.com/ase-project/ase/internal/h1"
	"github.com/ase-project/ase/internal/rfc9110"
)

// Field is one header field line as received.
type Field = h1.Field

// Request is a request as a front door received it.
type Request struct {
	Method []byte
	// Target is the request-target as sent: origin-form ("/p?q") or
	// absolute-form ("http://host/p?q").
	Target []byte
	// Fields is the header section as received, in order: never trailers.
	Fields []Field
	// Framing is set when the fields frame a body on this connection (the
	// inline data ports); sideband calls describe a request their gateway
	// has already read.
	Framing bool
	// HostField names the field the host is taken from when the target
	// does not carry one; "" is Host. Forward-auth reads X-Forwarded-Host.
	HostField string
	// HostOptional: a request without a host has the host "" (it belongs
	// to the APIs of hostname "*"). The ASE and Authorize protocols' calls
	// need not carry one; on a data port HTTP/1.1 requires it.
	HostOptional bool
}

// Reading is what ASE makes of a request: the one meaning both the
// decision and the forwarded request use. Its strings may point into the
// request's buffer.
type Reading struct {
	Host        string // lower case, no trailing dot, port kept
	Path        string // decoded, dot segments resolved, slashes merged
	Query       string // as sent, without the "?"
	ContentType string
	UserAgent   string // the first User-Agent field, for the access log
	Length      int64  // Content-Length (0 when absent)
	Chunked     bool   // Transfer-Encoding: chunked
	Close       bool   // the client asked to close the connection
	// Why says what was wrong when Read refused the request.
	Why string

	conn  [maxConnection][]byte // the Connection fields' values
	nconn int
	// cls are the classes of the first fields, as Read found them.
	cls [maxClassified]class
}

// maxClassified is how many fields' classes a Reading keeps (the event
// loops take at most h1.MaxFields).
const maxClassified = 64

// class returns the class of field i of the request rd was read from.
func (rd *Reading) class(i int, name []byte) class {
	if i < maxClassified {
		return rd.cls[i]
	}
	return classify(name)
}

// maxConnection bounds the Connection fields of one request.
const maxConnection = 8

// b2s views b as a string; b must not change while the string is used.
func b2s(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// Read reads r into rd. It returns OK, or the failure to answer with (and
// rd.Why).
func Read(r *Request, rd *Reading) Failure {
	*rd = Reading{}
	authority, path, query, f := splitTarget(r.Target)
	if f != OK {
		rd.Why = "malformed request target"
		return f
	}
	hostField := r.HostField
	if hostField == "" {
		hostField = "host"
	}
	var (
		host                 []byte
		nHost, nCT, nCL, nTE int
		cl, te               []byte
	)
	custom := r.HostField != "" && !equalFold([]byte(r.HostField), "host")
	for i := range r.Fields {
		name, value := r.Fields[i].Name, r.Fields[i].Value
		c := classify(name)
		if i < maxClassified {
			rd.cls[i] = c
		}
		if custom {
			if equalFold(name, hostField) {
				host = value
				nHost++
			}
			if c == fHost {
				continue
			}
		}
		switch c {
		case fHost:
			host = value
			nHost++
		case fContentType:
			rd.ContentType = b2s(value)
			nCT++
		case fUserAgent:
			if rd.UserAgent == "" {
				rd.UserAgent = b2s(value)
			}
		case fConnection:
			if rd.nconn == maxConnection {
				rd.Why = "too many Connection fields"
				return BadRequest
			}
			rd.conn[rd.nconn] = value
			rd.nconn++
			if rfc9110.HasToken(value, []byte("close")) {
				rd.Close = true
			}
		case fContentLength:
			if r.Framing {
				cl = value
				nCL++
			}
		case fTransferEncoding:
			if r.Framing {
				te = value
				nTE++
			}
		}
	}
	switch {
	case nHost > 1:
		rd.Why = "more than one " + hostField
		return BadRequest
	case nCT > 1:
		rd.Why = "more than one Content-Type"
		return BadRequest
	}
	switch {
	case authority != nil:
		host = authority
	case nHost == 0 && !r.HostOptional:
		rd.Why = "no host"
		return BadRequest
	}
	if nHost > 0 || authority != nil {
		h, ok := normalizeHost(host)
		if !ok {
			rd.Why = "invalid host"
			return BadRequest
		}
		rd.Host = h
	}
	if r.Framing {
		switch {
		case nCL > 0 && nTE > 0:
			rd.Why = "both Content-Length and Transfer-Encoding"
			return BadRequest
		case nCL > 1:
			rd.Why = "more than one Content-Length"
			return BadRequest
		case nCL == 1:
			n, ok := h1.ParseLength(bytes.Trim(cl, " \t"))
			if !ok {
				rd.Why = "invalid Content-Length"
				return BadRequest
			}
			rd.Length = n
		case nTE > 1 || nTE == 1 && !equalFold(bytes.Trim(te, " \t"), "chunked"):
			rd.Why = "a transfer coding other than chunked"
			return NotImplemented
		case nTE == 1:
			rd.Chunked = true
		}
	}
	p, ok := normalizePath(path)
	if !ok {
		rd.Why = "invalid path"
		return BadRequest
	}
	rd.Path, rd.Query = p, b2s(query)
	return OK
}

// HasBody reports whether the client sent a body (or framed one).
func (rd *Reading) HasBody() bool { return rd.Length > 0 || rd.Chunked }

// connectionNames reports whether a Connection field names name.
func (rd *Reading) connectionNames(name []byte) bool {
	for _, v := range rd.conn[:rd.nconn] {
		if rfc9110.HasToken(v, name) {
			return true
		}
	}
	return false
}

// splitTarget splits a request-target into the authority of an
// absolute-form target (nil for origin-form), the raw path and the raw
// query.
func splitTarget(t []byte) (authority, path, query []byte, f Failure) {
	if bytes.IndexByte(t, '#') >= 0 {
		return nil, nil, nil, BadRequest
	}
	if len(t) > 0 && t[0] == '/' {
		path = t
	} else {
		i := bytes.Index(t, []byte("://"))
		if i <= 0 || !knownScheme(t[:i]) {
			return nil, nil, nil, BadRequest
		}
		rest := t[i+3:]
		j := 0
		for j < len(rest) && rest[j] != '/' && rest[j] != '?' {
			j++
		}
		authority, path = rest[:j], rest[j:]
		if len(authority) == 0 {
			return nil, nil, nil, BadRequest
		}
	}
	if q := bytes.IndexByte(path, '?'); q >= 0 {
		path, query = path[:q], path[q+1:]
		// The query is forwarded as sent: nothing in it may end the
		// request line or mean something else to the next reader.
		for _, c := range query {
			if c <= ' ' || c == 0x7f {
				return nil, nil, nil, BadRequest
			}
		}
	}
	if len(path) == 0 {
		path = []byte("/")
	}
	return authority, path, query, OK
}

func knownScheme(s []byte) bool {
	for _, k := range [...]string{"http", "https", "ws", "wss"} {
		if equalFold(s, k) {
			return true
		}
	}
	return false
}

// equalFold compares an ASCII name with a lower-case constant.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		x := b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		y := s[i]
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// ParseFields splits a raw header section ("Name: value" lines, as the
// general server keeps it) into fields, appended to out. Obsolete line
// folding, names that are not tokens and values with control characters
// are refused.
func ParseFields(raw []byte, out []Field) ([]Field, bool) {
	for len(raw) > 0 {
		line := raw
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			line, raw = raw[:i], raw[i+1:]
		} else {
			raw = nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			return out, false
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !rfc9110.IsToken(line[:colon]) {
			return out, false
		}
		v := line[colon+1:]
		for _, c := range v {
			if c < ' ' && c != '\t' || c == 0x7f {
				return out, false
			}
		}
		out = append(out, Field{Name: line[:colon], Value: bytes.Trim(v, " \t")})
	}
	return out, true
}
