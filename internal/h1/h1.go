// Package h1 parses HTTP/1.1 message heads for the inline event-loop data
// path, in place and without allocating.
//
// The request parser is deliberately narrow: it accepts only the plain
// shape almost every API client sends (origin-form target with a path
// that no normalization would change, HTTP/1.1, CRLF line ends, token
// header names, at most one Content-Length, no Transfer-Encoding, Expect
// or Upgrade). Everything else is reported as Other, and the data
// path hands the connection to the general (fasthttp) server, which
// answers it exactly as before — including every malformed and smuggling
// shape, with the 400/413/431 answers the hygiene tests pin. So a request
// is never interpreted two ways: what this parser accepts, it accepts in
// the one meaning every HTTP/1.1 reader agrees on.
//
// The response parser reads backend answers; it is strict too, and what
// it refuses the proxy answers 502.
package h1

import (
	"bytes"

	"github.com/ase-project/ase/internal/rfc9110"
)

// Status is the outcome of parsing a head.
type Status uint8

const (
	// More means the head is not complete yet.
	More Status = iota
	// Done means the head was parsed.
	Done
	// Other means the request is outside the subset this parser takes (or
	// malformed); a response so reported is malformed.
	Other
)

// Field is one header field; both slices point into the parsed buffer.
type Field struct{ Name, Value []byte }

// MaxFields bounds the header fields of a head this parser takes.
const MaxFields = 64

// Request is a parsed request head. Its slices point into the buffer it
// was parsed from. What the request means (its host, path, identities) is
// read from it by internal/frontdoor, the one reading every engine shares.
type Request struct {
	Method, Target, Path, Query []byte
	Fields                      []Field
	// Host is the one Host field's value (a request with none, two, or
	// one a host cannot be is not taken).
	Host []byte
	// ContentLength is the body length; 0 when the header is absent.
	ContentLength int64
	// HasLength is whether Content-Length was sent.
	HasLength bool
	// Close is whether a Connection field asks to close after this
	// exchange.
	Close bool
	// HeadLen is the length of the head, the empty line included.
	HeadLen int
}

// Get returns the value of the first field named name (any case) and how
// many fields have that name.
func (r *Request) Get(name string) ([]byte, int) { return get(r.Fields, name) }

func get(fields []Field, name string) ([]byte, int) {
	var v []byte
	n := 0
	for i := range fields {
		if equalFold(fields[i].Name, name) {
			if n == 0 {
				v = fields[i].Value
			}
			n++
		}
	}
	return v, n
}

// equalFold compares an ASCII header name with a lower- or mixed-case
// constant.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		x, y := b[i], s[i]
		if x == y {
			continue
		}
		if x|0x20 != y|0x20 || (x|0x20) < 'a' || (x|0x20) > 'z' {
			return false
		}
	}
	return true
}

// refused are request fields whose presence hands the request over: their
// handling (chunked bodies, 100-continue, protocol switches) is the
// general server's.
var refused = [...]string{"transfer-encoding", "expect", "upgrade"}

// methods are those taken here; others (CONNECT above all) go to the
// general server.
var methods = [...]string{"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"}

// ParseRequest parses the request head at the start of b into r.
func ParseRequest(b []byte, r *Request) Status {
	end := bytes.Index(b, []byte("\r\n\r\n"))
	if end < 0 {
		if bareLF(b) {
			return Other
		}
		return More
	}
	head := b[:end+2]
	*r = Request{Fields: r.Fields[:0], HeadLen: end + 4}
	line, rest := cutLine(head)
	if line == nil {
		return Other
	}
	sp := bytes.IndexByte(line, ' ')
	if sp <= 0 {
		return Other
	}
	r.Method = line[:sp]
	if !knownMethod(r.Method) {
		return Other
	}
	line = line[sp+1:]
	sp = bytes.IndexByte(line, ' ')
	if sp <= 0 || string(line[sp+1:]) != "HTTP/1.1" {
		return Other
	}
	r.Target = line[:sp]
	if !splitTarget(r) {
		return Other
	}
	for len(rest) > 0 {
		line, rest = cutLine(rest)
		if line == nil {
			return Other
		}
		f, ok := parseField(line)
		if !ok || len(r.Fields) == MaxFields {
			return Other
		}
		for _, name := range refused {
			if equalFold(f.Name, name) {
				return Other
			}
		}
		switch {
		case equalFold(f.Name, "host"):
			if r.Host != nil || !validHost(f.Value) {
				return Other
			}
			r.Host = f.Value
		case equalFold(f.Name, "content-length"):
			// Framing is this parser's to get right: one length only.
			n, ok := ParseLength(f.Value)
			if !ok || r.HasLength {
				return Other
			}
			r.ContentLength, r.HasLength = n, true
		case equalFold(f.Name, "connection"):
			r.Close = r.Close || rfc9110.HasToken(f.Value, []byte("close"))
		}
		r.Fields = append(r.Fields, f)
	}
	if r.Host == nil {
		return Other
	}
	return Done
}

// HeadEnd looks for the end of a head arriving in pieces: from is how
// much of b earlier calls looked at, so that each byte is looked at about
// once however thinly a client trickles its head in. It returns the
// head's length (-1: not complete yet), and whether a line ends other
// than with CRLF (a head this parser will not take; no need to wait for
// the rest).
func HeadEnd(b []byte, from int) (end int, bad bool) {
	start := max(from-3, 0)
	if i := bytes.Index(b[start:], []byte("\r\n\r\n")); i >= 0 {
		return start + i + 4, false
	}
	for k := from; k < len(b); {
		j := bytes.IndexByte(b[k:], '\n')
		if j < 0 {
			break
		}
		k += j
		if k == 0 || b[k-1] != '\r' {
			return -1, true
		}
		k++
	}
	return -1, false
}

// bareLF reports whether an unfinished head has a line end other than
// CRLF: it may be complete for a lenient reader, so it is not waited for.
func bareLF(b []byte) bool {
	for i := 0; ; {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return false
		}
		if i+j == 0 || b[i+j-1] != '\r' {
			return true
		}
		i += j + 1
	}
}

func knownMethod(m []byte) bool {
	for _, k := range methods {
		if string(m) == k {
			return true
		}
	}
	return false
}

// splitTarget checks an origin-form target and splits path and query. The
// path must be one no normalization changes: no percent-encoding, no
// empty, "." or ".." segment, no backslash; the general server (which
// normalizes) gets the others, so that routing sees the same path here
// and there.
func splitTarget(r *Request) bool {
	t := r.Target
	if len(t) == 0 || t[0] != '/' {
		return false
	}
	path := t
	if q := bytes.IndexByte(t, '?'); q >= 0 {
		path, r.Query = t[:q], t[q+1:]
	}
	for _, c := range t {
		if c <= ' ' || c >= 0x7f || c == '#' {
			return false
		}
	}
	for i := 0; i < len(path); i++ {
		switch path[i] {
		case '%', '\\':
			return false
		case '/':
			seg := path[i+1:]
			if j := bytes.IndexByte(seg, '/'); j >= 0 {
				seg = seg[:j]
			} else if len(seg) == 0 {
				continue // a trailing slash
			}
			if len(seg) == 0 || string(seg) == "." || string(seg) == ".." {
				return false
			}
		}
	}
	r.Path = path
	return true
}

// validHost accepts host names, IPv4 and bracketed IPv6 literals, with an
// optional port: the characters a Host can carry.
func validHost(h []byte) bool {
	if len(h) == 0 {
		return false
	}
	for _, c := range h {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '.', c == '-', c == ':', c == '[', c == ']', c == '_':
		default:
			return false
		}
	}
	return true
}

// cutLine splits the first CRLF-ended line off b; nil when the line has a
// bare CR or LF (or b has no CRLF).
func cutLine(b []byte) (line, rest []byte) {
	i := bytes.IndexByte(b, '\n')
	if i < 1 || b[i-1] != '\r' {
		return nil, nil
	}
	line = b[:i-1]
	if bytes.IndexByte(line, '\r') >= 0 {
		return nil, nil
	}
	return line[:len(line):len(line)], b[i+1:]
}

// parseField splits "name: value" (optional whitespace around the value);
// the name must be a token, the value visible characters, spaces and
// tabs (and obs-text).
func parseField(line []byte) (Field, bool) {
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 || !rfc9110.IsToken(line[:colon]) {
		return Field{}, false
	}
	v := line[colon+1:]
	for _, c := range v {
		if c < ' ' && c != '\t' || c == 0x7f {
			return Field{}, false
		}
	}
	return Field{Name: line[:colon], Value: bytes.Trim(v, " \t")}, true
}

// ParseLength reads a Content-Length: decimal digits only, at most 18.
func ParseLength(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// Response is a parsed response head; its slices point into the buffer.
type Response struct {
	Code int
	// Reason is the reason phrase, possibly empty.
	Reason []byte
	Fields []Field
	// ContentLength is the body length, -1 when the body is chunked or
	// ends with the connection.
	ContentLength int64
	Chunked       bool
	// Close is whether the backend closes the connection after this
	// response (Connection: close, HTTP/1.0, or a body that ends with
	// the connection).
	Close      bool
	Connection []byte
	HeadLen    int
}

// ParseResponse parses the response head at the start of b into r. It
// reports Other for a malformed head.
func ParseResponse(b []byte, r *Response) Status {
	end := bytes.Index(b, []byte("\r\n\r\n"))
	if end < 0 {
		return More
	}
	head := b[:end+2]
	*r = Response{Fields: r.Fields[:0], HeadLen: end + 4, ContentLength: -1}
	line, rest := cutLine(head)
	if len(line) < 12 || string(line[:7]) != "HTTP/1." || line[8] != ' ' || (line[7] != '0' && line[7] != '1') {
		return Other
	}
	http10 := line[7] == '0'
	for _, c := range line[9:12] {
		if c < '0' || c > '9' {
			return Other
		}
		r.Code = r.Code*10 + int(c-'0')
	}
	if r.Code < 100 {
		return Other
	}
	if len(line) > 12 {
		if line[12] != ' ' {
			return Other
		}
		r.Reason = line[13:]
		for _, c := range r.Reason {
			if c < ' ' && c != '\t' || c == 0x7f {
				return Other
			}
		}
	}
	var te []byte
	var haveTE, haveConn bool
	for len(rest) > 0 {
		line, rest = cutLine(rest)
		if line == nil {
			return Other
		}
		f, ok := parseField(line)
		if !ok || len(r.Fields) == 4*MaxFields {
			return Other
		}
		switch {
		case equalFold(f.Name, "content-length"):
			n, ok := ParseLength(f.Value)
			if !ok || r.ContentLength >= 0 && r.ContentLength != n {
				return Other
			}
			r.ContentLength = n
		case equalFold(f.Name, "transfer-encoding"):
			if haveTE {
				return Other
			}
			haveTE, te = true, f.Value
		case equalFold(f.Name, "connection"):
			if haveConn {
				return Other
			}
			haveConn, r.Connection = true, f.Value
		}
		r.Fields = append(r.Fields, f)
	}
	r.Close = rfc9110.HasToken(r.Connection, []byte("close")) || http10 && !rfc9110.HasToken(r.Connection, []byte("keep-alive"))
	if haveTE {
		// RFC 9112 6.3: Transfer-Encoding overrides Content-Length; only
		// a final "chunked" delimits the body, else it ends with the
		// connection.
		r.ContentLength = -1
		if i := bytes.LastIndexByte(te, ','); i >= 0 {
			te = te[i+1:]
		}
		r.Chunked = equalFold(bytes.Trim(te, " \t"), "chunked")
		if !r.Chunked || http10 {
			return Other
		}
	}
	if r.ContentLength < 0 && !r.Chunked {
		r.Close = true
	}
	return Done
}

// Chunks finds the end of a chunked body as it streams past, without
// decoding it: the proxy passes the chunks on as they are.
type Chunks struct {
	state  uint8
	size   uint64
	digits int
	// Data counts the chunks' payload bytes seen so far.
	Data int64
}

const (
	chSize    = iota // hex digits of a chunk size
	chSizeWS         // whitespace after the size, up to CR
	chExt            // an extension, up to CR
	chSizeLF         // LF ending the size line
	chData           // chunk data
	chDataCR         // CR after the data
	chDataLF         // LF after the data
	chTrailer        // start of a trailer line (or the final CRLF)
	chTrailerLine
	chTrailerLF
	chEndLF // LF of the final empty line
	chDone
)

// Scan consumes b; it returns how many bytes belong to the body (all of b
// unless the body ends inside it), whether the body is complete, and
// whether the framing is malformed.
func (c *Chunks) Scan(b []byte) (n int, done, bad bool) {
	for n < len(b) {
		ch := b[n]
		switch c.state {
		case chSize:
			v, ok := Unhex(ch)
			switch {
			case ok:
				if c.digits == 15 {
					return n, false, true
				}
				c.size, c.digits = c.size<<4|uint64(v), c.digits+1
			case c.digits == 0:
				return n, false, true
			case ch == '\r':
				c.state = chSizeLF
			case ch == ';':
				c.state = chExt
			case ch == ' ' || ch == '\t':
				c.state = chSizeWS
			default:
				return n, false, true
			}
		case chSizeWS:
			// Whitespace may end the size line (net/http trims it) but
			// not come before an extension (net/http refuses that).
			switch ch {
			case ' ', '\t':
			case '\r':
				c.state = chSizeLF
			default:
				return n, false, true
			}
		case chExt:
			if ch == '\r' {
				c.state = chSizeLF
			} else if ch == '\n' || ch < ' ' && ch != '\t' {
				return n, false, true
			}
		case chSizeLF:
			if ch != '\n' {
				return n, false, true
			}
			if c.size == 0 {
				c.state = chTrailer
			} else {
				c.state = chData
			}
		case chData:
			k := uint64(len(b) - n)
			if k > c.size {
				k = c.size
			}
			c.size -= k
			c.Data += int64(k)
			n += int(k)
			if c.size == 0 {
				c.state = chDataCR
			}
			continue
		case chDataCR:
			if ch != '\r' {
				return n, false, true
			}
			c.state = chDataLF
		case chDataLF:
			if ch != '\n' {
				return n, false, true
			}
			c.state, c.digits = chSize, 0
		case chTrailer:
			if ch == '\r' {
				c.state = chEndLF
			} else if ch == '\n' {
				return n, false, true
			} else {
				c.state = chTrailerLine
			}
		case chTrailerLine:
			if ch == '\r' {
				c.state = chTrailerLF
			} else if ch == '\n' {
				return n, false, true
			}
		case chTrailerLF:
			if ch != '\n' {
				return n, false, true
			}
			c.state = chTrailer
		case chEndLF:
			if ch != '\n' {
				return n, false, true
			}
			c.state = chDone
			return n + 1, true, false
		case chDone:
			return n, true, false
		}
		n++
	}
	return n, c.state == chDone, false
}

// Unhex is the value of a hexadecimal digit.
func Unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
