package frontdoor

import (
	"bytes"
	"net/netip"
	"strings"

	"github.com/ase-project/ase/internal/h1"
)

// normalizeHost checks a host (with an optional port) and returns it lower
// case without a trailing dot on its name; a host that is already so is
// returned without copying. Userinfo, an empty host, characters a host
// cannot carry, empty labels and a malformed port are refused.
func normalizeHost(h []byte) (string, bool) {
	if len(h) == 0 || len(h) > 1024 {
		return "", false
	}
	name, port := h, []byte(nil)
	if h[0] == '[' {
		end := bytes.IndexByte(h, ']')
		if end < 0 {
			return "", false
		}
		name = h[:end+1]
		a, err := netip.ParseAddr(string(h[1:end]))
		if err != nil || !a.Is6() || a.Zone() != "" {
			return "", false
		}
		if rest := h[end+1:]; len(rest) > 0 {
			if rest[0] != ':' {
				return "", false
			}
			port = rest[1:]
			if len(port) == 0 {
				return "", false
			}
		}
	} else if i := bytes.LastIndexByte(h, ':'); i >= 0 {
		name, port = h[:i], h[i+1:]
		if len(port) == 0 {
			return "", false
		}
	}
	if len(port) > 5 {
		return "", false
	}
	for _, c := range port {
		if c < '0' || c > '9' {
			return "", false
		}
	}
	if len(name) == 0 {
		return "", false
	}
	clean := true
	if name[0] != '[' {
		if name[len(name)-1] == '.' {
			clean = false
			name = name[:len(name)-1]
		}
		if len(name) == 0 || name[0] == '.' || name[len(name)-1] == '.' || bytes.Contains(name, []byte("..")) {
			return "", false
		}
		for _, c := range name {
			switch {
			case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '.', c == '_':
			case 'A' <= c && c <= 'Z':
				clean = false
			default:
				return "", false
			}
		}
	} else {
		for _, c := range name {
			if 'A' <= c && c <= 'Z' {
				clean = false
			}
		}
	}
	if clean {
		return b2s(h), true
	}
	var b strings.Builder
	b.Grow(len(h))
	for _, c := range name {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b.WriteByte(c)
	}
	if port != nil {
		b.WriteByte(':')
		b.Write(port)
	}
	return b.String(), true
}

// normalizePath decodes a raw path, resolves its dot segments and merges
// repeated slashes. A path that is already so is returned without
// copying. A malformed escape, a backslash (some servers read it as a
// slash) and control characters are refused.
func normalizePath(p []byte) (string, bool) {
	if len(p) == 0 || p[0] != '/' {
		return "", false
	}
	if canonical(p) {
		return b2s(p), true
	}
	dec := make([]byte, 0, len(p))
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c == '%' {
			if i+2 >= len(p) {
				return "", false
			}
			hi, ok1 := h1.Unhex(p[i+1])
			lo, ok2 := h1.Unhex(p[i+2])
			if !ok1 || !ok2 {
				return "", false
			}
			c = hi<<4 | lo
			i += 2
		}
		if c == '\\' || c < 0x20 || c == 0x7f {
			return "", false
		}
		dec = append(dec, c)
	}
	return string(resolve(dec)), true
}

// canonical reports whether a raw path is its own normal form: no
// escapes, no backslash or control character, no "." or ".." segment, no
// empty segment but a trailing one.
func canonical(p []byte) bool {
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c == '%', c == '\\', c < 0x20, c == 0x7f:
			return false
		case c == '/':
			seg := p[i+1:]
			if j := bytes.IndexByte(seg, '/'); j >= 0 {
				seg = seg[:j]
			} else if len(seg) == 0 {
				continue // a trailing slash
			}
			if len(seg) == 0 || len(seg) == 1 && seg[0] == '.' || len(seg) == 2 && seg[0] == '.' && seg[1] == '.' {
				return false
			}
		}
	}
	return true
}

// resolve removes dot segments (RFC 3986 section 5.2.4) and empty
// segments from a decoded path starting with "/", in place; a trailing
// slash (or a final dot segment) leaves the path ending in "/".
func resolve(p []byte) []byte {
	out := p[:0]
	segs := bytes.Split(p[1:], []byte("/"))
	var stack [][]byte
	trailing := false
	for i, s := range segs {
		last := i == len(segs)-1
		switch string(s) {
		case "", ".":
			trailing = last
		case "..":
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
			trailing = last
		default:
			stack = append(stack, s)
			trailing = false
		}
	}
	// segs alias p: copy them out before writing over p.
	var b []byte
	for _, s := range stack {
		b = append(append(b, '/'), s...)
	}
	if len(stack) == 0 || trailing {
		b = append(b, '/')
	}
	return append(out, b...)
}

// appendPath writes a decoded path as a request line carries it: the
// bytes a target cannot hold raw (controls, space, non-ASCII, and "%",
// "?" and "#", which would change its meaning) percent-encoded.
func appendPath(b []byte, p string) []byte {
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c <= ' ' || c >= 0x7f || c == '%' || c == '?' || c == '#' {
			b = append(b, '%', hex[c>>4], hex[c&15])
			continue
		}
		b = append(b, c)
	}
	return b
}
