package apidef

import (
	"github.com/ase-project/ase/internal/jsondoc"
	"github.com/ase-project/ase/internal/rfc9110"
	"mime"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// checkPath validates a URL path and returns its canonical form (trailing
// slash removed except for "/"). Empty is allowed only when optional.
func checkPath(w *jsondoc.Walker, path, s string, optional bool) string {
	if s == "" {
		if !optional {
			w.Fail(path, "must not be empty (use / for the root)")
		}
		return ""
	}
	if msg := pathProblem(s); msg != "" {
		w.Fail(path, "%s, got %q", msg, s)
		return ""
	}
	if len(s) > 1 {
		s = strings.TrimSuffix(s, "/")
	}
	return s
}

func pathProblem(s string) string {
	if len(s) > 1024 {
		return "must be at most 1024 characters"
	}
	if s[0] != '/' {
		return "must be a path starting with /"
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '%':
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return "has a % not followed by two hex digits"
			}
		case c == '?' || c == '#':
			return "must be a path only, without a query or fragment"
		case !isPathChar(c):
			return "may only contain letters, digits and -._~!$&'()*+,;=:@/%"
		}
	}
	if strings.Contains(s, "//") {
		return "must not contain an empty segment (//)"
	}
	for _, seg := range strings.Split(s, "/") {
		if seg == "." || seg == ".." {
			return "must not contain . or .. segments"
		}
	}
	return ""
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func isPathChar(c byte) bool {
	if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' {
		return true
	}
	return strings.IndexByte("-._~!$&'()*+,;=:@/", c) >= 0
}

// checkHostname validates an API's hostname: "*", a DNS name or an IP
// address, optionally with a port; returned in lower case.
func checkHostname(w *jsondoc.Walker, path, s string) string {
	if s == "*" {
		return s
	}
	host, port := s, ""
	if h, p, ok := splitHostPort(s); ok {
		host, port = h, p
	}
	if port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			w.Fail(path, "has an invalid port in %q", s)
			return "*"
		}
	}
	if !isIP(host) && !isDNSName(host) {
		w.Fail(path, "must be * or a host name or IP address (optionally with :port), got %q", s)
		return "*"
	}
	return strings.ToLower(s)
}

// checkServerHost validates a backend server's host: a DNS name or an IP
// address, without a port.
func checkServerHost(w *jsondoc.Walker, path, s string) string {
	if !isIP(s) && !isDNSName(s) {
		w.Fail(path, "must be a host name or IP address without a port, got %q", s)
		return ""
	}
	return strings.ToLower(s)
}

func splitHostPort(s string) (host, port string, ok bool) {
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return "", "", false
		}
		host = s[1:end]
		rest := s[end+1:]
		if rest == "" {
			return host, "", true
		}
		if !strings.HasPrefix(rest, ":") {
			return "", "", false
		}
		return host, rest[1:], true
	}
	if strings.Count(s, ":") == 1 {
		h, p, _ := strings.Cut(s, ":")
		return h, p, true
	}
	return s, "", false
}

func isIP(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil && !strings.Contains(s, "%")
}

func isDNSName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(s, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

func joinHostPort(host string, port int) string {
	if strings.Contains(host, ":") {
		return "[" + host + "]:" + strconv.Itoa(port)
	}
	return host + ":" + strconv.Itoa(port)
}

// isToken reports whether s is an RFC 9110 token (header names, cookie
// names, methods).
func isToken(s string) bool { return len(s) <= 256 && rfc9110.IsToken(s) }

func checkToken(w *jsondoc.Walker, path, s, what string) string {
	if s != "" && !isToken(s) {
		w.Fail(path, "must be %s (letters, digits and !#$%%&'*+-.^_`|~, at most 256), got %q", what, s)
		return ""
	}
	return s
}

func checkQueryName(w *jsondoc.Walker, path, s string) string {
	if s == "" {
		return s
	}
	if len(s) > 256 || strings.ContainsAny(s, "&=#?+% ") || !isPrintable(s) {
		w.Fail(path, "must be a query parameter name (printable, without &=#?+%% or spaces, at most 256), got %q", s)
		return ""
	}
	return s
}

func checkLoginURL(w *jsondoc.Walker, path, s string) string {
	if s == "" {
		return s
	}
	if strings.HasPrefix(s, "/") {
		if msg := pathProblem(s); msg != "" {
			w.Fail(path, "%s, got %q", msg, s)
			return ""
		}
		return s
	}
	checkAbsURL(w, path, s)
	return s
}

func checkAbsURL(w *jsondoc.Walker, path, s string) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || len(s) > 2048 || !isPrintable(s) {
		w.Fail(path, "must be an absolute http or https URL, got %q", s)
	}
}

// checkReason validates text that goes into an HTTP status line.
func checkReason(w *jsondoc.Walker, path, s string) string {
	if len(s) > 256 || !isPrintable(s) {
		w.Fail(path, "must be printable text of at most 256 characters without line breaks")
		return ""
	}
	return s
}

func checkText(w *jsondoc.Walker, path, s string, max int) string {
	if len(s) > max {
		w.Fail(path, "must be at most %d bytes, got %d", max, len(s))
		return ""
	}
	return s
}

func isPrintable(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == 0xfffd {
			return false
		}
	}
	return true
}

// checkMediaType accepts "type/subtype" (parameters are not allowed: the
// check is on the media type alone) and returns it in lower case.
func checkMediaType(s string) (string, bool) {
	mt, params, err := mime.ParseMediaType(s)
	if err != nil || len(params) != 0 || strings.Count(mt, "/") != 1 || strings.HasSuffix(mt, "/") || strings.HasPrefix(mt, "/") {
		return "", false
	}
	return mt, true
}

// splitList splits a comma-separated list, trimming spaces and dropping
// empty items.
func splitList(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}
