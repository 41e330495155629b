package engine

import (
	"net/netip"
	"net/url"
	"strings"

	"github.com/ase-project/ase/internal/apidef"
	"github.com/ase-project/ase/internal/lists"
)

// Raw is what a front door (inline or sideband) read off a request for
// identity extraction: header values as received, nothing parsed yet.
type Raw struct {
	Peer          netip.Addr // the TCP peer, or the sideband call's source_ip
	XRealIP       string
	XForwardedFor string // every X-Forwarded-For value, joined with ","
	Cookie        string // every Cookie value, joined with "; "
	Authorization string
	APIKeyHeader  string // the value of the API's apikey_header, if it has one
	RawQuery      string
	Username      string // sideband user_info
}

// Identify extracts a request's identities for api (SPEC section 5): the
// client IP (from X-Real-IP or X-Forwarded-For only when trustProxy), the
// API's cookie, the OAuth2 bearer token when the API uses them, the API key
// from the API's header or query parameter, and the username.
func Identify(api *apidef.API, raw *Raw, trustProxy bool) lists.Identity {
	id := lists.Identity{IP: ClientIP(raw.Peer, raw.XRealIP, raw.XForwardedFor, trustProxy), Username: raw.Username}
	if api == nil {
		return id
	}
	if api.Cookie != "" && raw.Cookie != "" {
		id.CookieName = api.Cookie
		id.Cookie = CookieValue(raw.Cookie, api.Cookie)
	}
	if api.OAuth2AccessToken {
		id.Token = BearerToken(raw.Authorization)
	}
	if api.APIKeyHeader != "" && raw.APIKeyHeader != "" {
		id.APIKeyName, id.APIKey = api.APIKeyHeaderLC, raw.APIKeyHeader
	} else if api.APIKeyQS != "" && raw.RawQuery != "" {
		if v := QueryValue(raw.RawQuery, api.APIKeyQS); v != "" {
			id.APIKeyName, id.APIKey = api.APIKeyQSLC, v
		}
	}
	return id
}

// ClientIP returns the client's address. When the proxy in front is
// trusted, that is X-Real-IP if valid, else the right-most address of
// X-Forwarded-For (the one the trusted proxy appended; addresses to its
// left are whatever the client claimed); otherwise, and when neither is
// usable, the peer.
func ClientIP(peer netip.Addr, xRealIP, xff string, trustProxy bool) netip.Addr {
	if trustProxy {
		if a, ok := parseHostAddr(xRealIP); ok {
			return a
		}
		if xff != "" {
			last := xff
			if i := strings.LastIndexByte(xff, ','); i >= 0 {
				last = xff[i+1:]
			}
			if a, ok := parseHostAddr(last); ok {
				return a
			}
		}
	}
	return peer.Unmap()
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

// CookieValue returns the value of the first cookie called name in a Cookie
// header (several headers joined with "; " also work), without its
// optional quotes, or "".
func CookieValue(header, name string) string {
	for header != "" {
		var part string
		if i := strings.IndexByte(header, ';'); i >= 0 {
			part, header = header[:i], header[i+1:]
		} else {
			part, header = header, ""
		}
		part = strings.TrimSpace(part)
		k, v, ok := strings.Cut(part, "=")
		if !ok || strings.TrimSpace(k) != name {
			continue
		}
		v = strings.TrimSpace(v)
		if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
			v = v[1 : len(v)-1]
		}
		return v
	}
	return ""
}

// QueryValue returns the first value of query parameter name in a raw
// query string, unescaped, or "". It allocates only for escaped values.
func QueryValue(rawQuery, name string) string {
	for rawQuery != "" {
		var part string
		if i := strings.IndexByte(rawQuery, '&'); i >= 0 {
			part, rawQuery = rawQuery[:i], rawQuery[i+1:]
		} else {
			part, rawQuery = rawQuery, ""
		}
		k, v, _ := strings.Cut(part, "=")
		if k != name {
			if !strings.ContainsAny(k, "%+") {
				continue
			}
			if uk, err := url.QueryUnescape(k); err != nil || uk != name {
				continue
			}
		}
		if !strings.ContainsAny(v, "%+") {
			return v
		}
		uv, err := url.QueryUnescape(v)
		if err != nil {
			return ""
		}
		return uv
	}
	return ""
}
