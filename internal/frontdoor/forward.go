package frontdoor

import (
	"net/netip"
	"strconv"

	"github.com/ase-project/ase/internal/apidef"
)

// HopByHop reports whether a field name is hop-by-hop (RFC 9110 section
// 7.6.1): never forwarded, either way.
func HopByHop(name []byte) bool {
	c := classify(name)
	return c == fHopByHopField || c == fConnection
}

// Forwarded reports whether a request field of rd goes to the backend as
// the client sent it: not hop-by-hop, not named by a Connection field,
// not one ASE writes itself (the host and the framing from its reading,
// the X-Forwarded-* fields with the client it saw, and Expect, which the
// data port answers).
func (rd *Reading) Forwarded(name []byte) bool { return rd.forwarded(classify(name), name) }

func (rd *Reading) forwarded(c class, name []byte) bool {
	switch c {
	case fOther, fCookie, fAuthorization, fContentType, fXRealIP, fUserAgent:
		return rd.nconn == 0 || !rd.connectionNames(name)
	}
	return false
}

// Head describes the request a backend receives.
type Head struct {
	Method []byte
	Fields []Field // the client's, as received: those Read read
	API    *apidef.API
	Peer   netip.Addr // the client's TCP peer, appended to X-Forwarded-For
	TLS    bool       // the client came over TLS (X-Forwarded-Proto)
	// BodyLen is the length of the body forwarded (after any chunked
	// framing was removed).
	BodyLen int64
	// Upgrade asks the backend for a WebSocket (the upgrade's own two
	// hop-by-hop fields are sent).
	Upgrade bool
	// RequestID is sent as X-Request-ID (one the client sent is replaced:
	// the backend's logs and ASE's name the request alike); nil: none.
	RequestID []byte
}

// AppendHead writes the head of the request the backend receives for rd:
// the method, the decided path (rewritten to the API's
// api_mapping.internal_url) and the query as sent, the decided host, the
// client's forwardable fields in their order, X-Forwarded-For/-Proto/-Host
// and the body's Content-Length. Both inline engines send exactly this.
func AppendHead(b []byte, rd *Reading, h *Head) []byte {
	b = append(append(b, h.Method...), ' ')
	api := h.API
	if api != nil && api.InternalURL != "" {
		rest := rd.Path
		if api.URL != "/" && len(rest) >= len(api.URL) {
			rest = rest[len(api.URL):]
		}
		if api.InternalURL == "/" && len(rest) > 0 {
			b = appendPath(b, rest)
		} else {
			b = appendPath(appendPath(b, api.InternalURL), rest)
		}
	} else {
		b = appendPath(b, rd.Path)
	}
	if rd.Query != "" {
		b = append(append(b, '?'), rd.Query...)
	}
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(append(b, rd.Host...), "\r\n"...)
	for i := range h.Fields {
		if f := &h.Fields[i]; rd.forwarded(rd.class(i, f.Name), f.Name) {
			b = append(append(append(append(b, f.Name...), ": "...), f.Value...), "\r\n"...)
		}
	}
	b = append(b, "X-Forwarded-For: "...)
	for i := range h.Fields {
		if f := &h.Fields[i]; len(f.Value) > 0 && rd.class(i, f.Name) == fXForwardedFor {
			b = append(append(b, f.Value...), ", "...)
		}
	}
	b = h.Peer.AppendTo(b)
	if h.TLS {
		b = append(b, "\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: "...)
	} else {
		b = append(b, "\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: "...)
	}
	b = append(append(b, rd.Host...), "\r\n"...)
	if h.RequestID != nil {
		b = append(append(append(b, "X-Request-ID: "...), h.RequestID...), "\r\n"...)
	}
	if h.Upgrade {
		b = append(b, "Connection: Upgrade\r\nUpgrade: websocket\r\n"...)
	}
	if h.BodyLen > 0 || !h.Upgrade && !bodiless(h.Method) {
		b = append(strconv.AppendInt(append(b, "Content-Length: "...), h.BodyLen, 10), "\r\n"...)
	}
	return append(b, "\r\n"...)
}

// bodiless methods are sent without a Content-Length when they carry no
// body; the others always have one, 0 for none.
func bodiless(m []byte) bool { return string(m) == "GET" || string(m) == "HEAD" }
