package admin

// Request framing on the management port.
//
// A request with both Content-Length and Transfer-Encoding can be read two
// ways: a proxy in front that frames by Content-Length sees one request,
// net/http (Transfer-Encoding wins, RFC 9112 section 6.3) may see two, the
// second smuggled past the proxy. net/http deletes Content-Length from
// such a request before the handler sees it, so the handler cannot tell:
// the connection's own bytes are watched instead. Listener wraps each
// management connection in a framing watch that follows the request
// stream as net/http reads it (heads, Content-Length bodies, chunked bodies
// and trailers); from the first head with both headers, or the first byte
// it cannot follow, every request on the connection is refused with 400
// and the connection closed. The requests before it are served.

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/ase-project/ase/internal/wire"
)

// Listener returns ln with every accepted connection watched for
// ambiguous framing. With TLS, ln must be the TLS listener (the watch
// reads the decrypted stream); the handler then finds the TLS state
// through ConnContext, since net/http no longer sees a *tls.Conn.
func Listener(ln net.Listener) net.Listener { return framedListener{ln} }

type framedListener struct{ net.Listener }

func (l framedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &framedConn{Conn: c, f: framing{bad: -1}}, nil
}

// ConnContext is the management http.Server's ConnContext: it hands the
// connection's framing watch to the handler.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	if fc, ok := c.(*framedConn); ok {
		return context.WithValue(ctx, framedKey{}, fc)
	}
	return ctx
}

type framedKey struct{}

// framedConn is a management connection whose reads are watched.
type framedConn struct {
	net.Conn
	f framing
}

func (c *framedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.f.feed(p[:n])
	}
	var re tls.RecordHeaderError
	if err != nil && errors.As(err, &re) && re.Conn != nil && plainHTTP(re.RecordHeader) {
		// As net/http does when it runs the handshake itself.
		io.WriteString(re.Conn, "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")
		re.Conn.Close()
	}
	return n, err
}

// CloseWrite lets net/http half-close before closing, so that a client
// still sending (a refused request's body) gets the reply, not a reset.
func (c *framedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// tlsState is the connection's TLS state, nil without TLS.
func (c *framedConn) tlsState() *tls.ConnectionState {
	tc, ok := c.Conn.(*tls.Conn)
	if !ok {
		return nil
	}
	st := tc.ConnectionState()
	if !st.HandshakeComplete {
		return nil
	}
	return &st
}

func plainHTTP(hdr [5]byte) bool {
	switch string(hdr[:]) {
	case "GET /", "HEAD ", "POST ", "PUT /", "OPTIO":
		return true
	}
	return false
}

// admitFraming counts the request on its connection's watch and reports
// whether it may be served; it also gives the request its TLS state.
func admitFraming(r *http.Request) bool {
	fc, _ := r.Context().Value(framedKey{}).(*framedConn)
	if fc == nil {
		return true
	}
	if r.TLS == nil {
		r.TLS = fc.tlsState()
	}
	return fc.f.admit()
}

// refuseFraming answers a request that cannot be framed one way only.
func (h *Handler) refuseFraming(w http.ResponseWriter, r *http.Request) {
	h.d.Log.Warn("management request refused: ambiguous framing", "client", clientAddr(r).String(), "path", r.URL.Path)
	w.Header().Set("Connection", "close")
	e := fail(http.StatusBadRequest, wire.StatusFail, "ambiguous request framing (both Content-Length and Transfer-Encoding, or a body that cannot be delimited): refused, and the connection closed")
	h.writeError(w, e, strings.HasPrefix(r.URL.Path, "/api/") || r.URL.Path == "/api")
}

// The watch's states: where in the request stream the next byte is.
const (
	stRequestLine = iota
	stHeader
	stBody       // remain bytes of a Content-Length body
	stChunkSize  // a chunk-size line
	stChunkData  // remain bytes of a chunk
	stChunkCRLF  // the CRLF after a chunk's data
	stTrailer    // trailer lines, up to an empty one
	stLost       // not followed any more: every later request is refused
	lineKeep     = 256
	tailKeep     = 16
	maxChunkLine = 4096 // net/http's limit
)

// framing follows one connection's HTTP/1.x request stream the way
// net/http frames it. It only needs to find where each request head
// starts and whether it has both Content-Length and Transfer-Encoding;
// where net/http would refuse the bytes and close the connection anyway,
// being lost costs nothing.
type framing struct {
	mu sync.Mutex
	// heads counts the request heads read that net/http hands to the
	// handler (all but "OPTIONS *", which it answers itself); served the
	// requests the handler has seen. bad is the index of the first
	// request not to serve, -1 while there is none.
	heads, served, bad int

	state int
	cur   int // index of the head being read
	// The current line: its first bytes, its last bytes, its length, the
	// position of its first CR and of its last byte that is not SP, HT or
	// CR (-1 when none).
	line        [lineKeep]byte
	tail        [tailKeep]byte
	n, cr, last int
	// The head being read.
	http10, cl, te, lastCL bool
	clen                   uint64
	remain                 uint64
	crlf                   int // bytes of the chunk's CRLF read
}

// admit counts one request reaching the handler and reports whether it
// comes before the first ambiguous one.
func (f *framing) admit() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	i := f.served
	f.served++
	return f.bad < 0 || i < f.bad
}

// lose stops following the stream; requests from index i on are refused.
func (f *framing) lose(i int) {
	if f.bad < 0 || i < f.bad {
		f.bad = i
	}
	f.state = stLost
}

func (f *framing) feed(p []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for len(p) > 0 {
		switch f.state {
		case stLost:
			return
		case stBody, stChunkData:
			k := min(uint64(len(p)), f.remain)
			f.remain -= k
			p = p[k:]
			if f.remain > 0 {
				continue
			}
			if f.state == stBody {
				f.state = stRequestLine
			} else {
				f.state, f.crlf = stChunkCRLF, 0
			}
		case stChunkCRLF:
			if p[0] != "\r\n"[f.crlf] {
				f.lose(f.heads) // net/http fails the body and closes
				return
			}
			p = p[1:]
			if f.crlf++; f.crlf == 2 {
				f.state = stChunkSize
			}
		default:
			i := bytes.IndexByte(p, '\n')
			if i < 0 {
				f.appendLine(p)
				return
			}
			f.appendLine(p[:i])
			p = p[i+1:]
			f.endLine()
			f.n, f.cr, f.last = 0, -1, -1
		}
	}
}

func (f *framing) appendLine(b []byte) {
	if f.n == 0 {
		f.cr, f.last = -1, -1
	}
	if f.n < lineKeep {
		copy(f.line[f.n:], b)
	}
	if f.cr < 0 {
		if j := bytes.IndexByte(b, '\r'); j >= 0 {
			f.cr = f.n + j
		}
	}
	for j := len(b) - 1; j >= 0; j-- {
		if c := b[j]; c != ' ' && c != '\t' && c != '\r' {
			f.last = f.n + j
			break
		}
	}
	if len(b) >= tailKeep {
		copy(f.tail[:], b[len(b)-tailKeep:])
	} else {
		copy(f.tail[:], f.tail[len(b):])
		copy(f.tail[tailKeep-len(b):], b)
	}
	f.n += len(b)
}

// text returns the start of the current line without its line ending
// (textproto strips "\r\n" or "\n") and its full length.
func (f *framing) text() ([]byte, int) {
	n := f.n
	if n > 0 && f.tail[tailKeep-1] == '\r' {
		n--
	}
	return f.line[:min(n, lineKeep)], n
}

func (f *framing) endLine() {
	switch f.state {
	case stRequestLine:
		f.requestLine()
	case stHeader:
		f.headerLine()
	case stChunkSize:
		f.chunkSize()
	case stTrailer:
		if _, n := f.text(); n == 0 {
			f.state = stRequestLine
		}
	}
}

func (f *framing) requestLine() {
	f.cur = f.heads
	text, n := f.text()
	// "METHOD target HTTP/1.x": the version is the line's last 8 bytes.
	end := f.tail[:]
	if n < f.n {
		end = end[:tailKeep-1]
	}
	if n < len("A / HTTP/1.1") || !bytes.HasPrefix(end[len(end)-9:], []byte(" HTTP/1.")) {
		f.lose(f.cur) // net/http refuses it (or it is not HTTP/1.x)
		return
	}
	switch end[len(end)-1] {
	case '0':
		f.http10 = true
	case '1', '2', '3', '4', '5', '6', '7', '8', '9':
		f.http10 = false
	default:
		f.lose(f.cur)
		return
	}
	if !bytes.HasPrefix(text, []byte("OPTIONS * ")) {
		f.heads++
	}
	f.cl, f.te, f.lastCL, f.clen = false, false, false, 0
	f.state = stHeader
}

func (f *framing) headerLine() {
	text, n := f.text()
	if n == 0 {
		f.endHead()
		return
	}
	if text[0] == ' ' || text[0] == '\t' {
		// A continuation of the previous field: harmless unless it
		// changes a Content-Length.
		if f.lastCL {
			f.lose(f.cur)
		}
		return
	}
	f.lastCL = false
	colon := bytes.IndexByte(text, ':')
	if colon < 0 {
		return // a name longer than lineKeep, or no field at all
	}
	switch strings.ToLower(string(text[:colon])) {
	case "transfer-encoding":
		f.te = true
	case "content-length":
		v, err := strconv.ParseUint(strings.Trim(string(text[colon+1:]), " \t"), 10, 63)
		if n > lineKeep || err != nil || f.cl && v != f.clen {
			f.lose(f.cur) // net/http refuses a malformed or second, different length
			return
		}
		f.cl, f.clen, f.lastCL = true, v, true
	}
}

func (f *framing) endHead() {
	switch {
	case f.cl && f.te:
		f.lose(f.cur)
	case f.te && !f.http10: // HTTP/1.0 ignores Transfer-Encoding
		f.state = stChunkSize
	case f.cl && f.clen > 0:
		f.state, f.remain = stBody, f.clen
	default:
		f.state = stRequestLine
	}
}

// chunkSize reads a chunk-size line as net/http does: CRLF-terminated, no
// other CR, under 4096 bytes; trailing blanks and extensions dropped; 1 to
// 16 hex digits.
func (f *framing) chunkSize() {
	if f.cr != f.n-1 || f.n-1 >= maxChunkLine {
		f.lose(f.heads)
		return
	}
	size := f.line[:min(f.last+1, lineKeep)]
	if semi := bytes.IndexByte(size, ';'); semi >= 0 {
		size = size[:semi]
	} else if f.last+1 > lineKeep {
		f.lose(f.heads)
		return
	}
	v, err := strconv.ParseUint(string(size), 16, 64)
	if err != nil || len(size) > 16 {
		f.lose(f.heads)
		return
	}
	if v == 0 {
		f.state = stTrailer
		return
	}
	f.state, f.remain = stChunkData, v
}
