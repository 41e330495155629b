package sideband

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"github.com/valyala/fastjson"

	"github.com/ase-project/ase/internal/frontdoor"
	"github.com/ase-project/ase/internal/rfc9110"
)

// maxHeaders bounds the header list of one call.
const maxHeaders = 256

// header is one header of the gateway's original request, as the front
// door reads fields. Names keep their case; lookups ignore it.
type header = frontdoor.Field

// hdr makes a header of two strings (views, not copies).
func hdr(name, value string) header { return header{Name: bytesOf(name), Value: bytesOf(value)} }

// bytesOf views s as bytes, read-only.
func bytesOf(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// call is a decoded /ase/request or /sideband/request body: the gateway's
// original request. Strings point into the parser's memory and live only
// as long as the call is served; calls are pooled with their header slices.
type call struct {
	sourceIP    netip.Addr
	sourcePort  int
	method      string
	url         string // as sent: a path with query, or an absolute URL
	httpVersion string
	headers     []header
	usernames   []string // every username of user_info
	body        string
	hasBody     bool

	reading frontdoor.Reading // what the front door made of it
	req     request
}

// errDecode is a malformed call, answered 400 with its message.
type errDecode struct{ msg string }

func (e *errDecode) Error() string { return e.msg }

func bad(format string, args ...any) error { return &errDecode{fmt.Sprintf(format, args...)} }

// str views b as a string without copying; valid while the parser lives.
func str(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// aseResponseFields are the fields of /ase/response. Unknown fields are
// refused, so a typo in a gateway policy is found at once instead of
// silently ignored.
var aseResponseFields = map[string]bool{"response_code": true, "response_status": true, "http_version": true, "headers": true}

// decodeCall decodes a request call in one pass over its fields.
// authorize selects the Authorize protocol's fields (which add body and the
// plugin's bookkeeping).
func decodeCall(v *fastjson.Value, authorize bool, c *call) error {
	o, err := v.Object()
	if err != nil {
		return bad("the body must be a JSON object")
	}
	var ip, port, method, url, ver, headers, user, body *fastjson.Value
	var unknown []byte
	o.Visit(func(k []byte, fv *fastjson.Value) {
		switch string(k) {
		case "source_ip":
			ip = fv
		case "source_port":
			port = fv
		case "method":
			method = fv
		case "url":
			url = fv
		case "http_version":
			ver = fv
		case "headers":
			headers = fv
		case "user_info":
			user = fv
		case "body":
			if authorize {
				body = fv
			} else if unknown == nil {
				unknown = k
			}
		case "client_certificate", "state":
			if !authorize && unknown == nil {
				unknown = k
			}
		default:
			if unknown == nil {
				unknown = k
			}
		}
	})
	if unknown != nil {
		return bad("unknown field %q", unknown)
	}
	if ip == nil {
		return bad("source_ip is required")
	}
	ipb, err := ip.StringBytes()
	if err != nil {
		return bad("source_ip must be a string")
	}
	if c.sourceIP, err = netip.ParseAddr(str(ipb)); err != nil || c.sourceIP.Zone() != "" {
		return bad("source_ip %q is not an IP address", ipb)
	}
	c.sourceIP = c.sourceIP.Unmap()
	if c.sourcePort, err = lenientInt(port, "source_port", 0, 65535); err != nil {
		return err
	}
	if c.method, err = requiredString(method, "method"); err != nil {
		return err
	}
	if !validMethod(c.method) {
		return bad("method %q is not an HTTP method", c.method)
	}
	if c.url, err = requiredString(url, "url"); err != nil {
		return err
	}
	if c.url[0] != '/' && !strings.Contains(c.url, "://") {
		return bad("url %q is neither a path nor an absolute URL", c.url)
	}
	if c.httpVersion, err = version(ver); err != nil {
		return err
	}
	if c.headers, err = decodeHeaders(headers, c.headers[:0]); err != nil {
		return err
	}
	if c.usernames, err = userInfo(user, c.usernames[:0]); err != nil {
		return err
	}
	if body != nil && body.Type() != fastjson.TypeNull {
		bb, err := body.StringBytes()
		if err != nil {
			return bad("body must be a string")
		}
		c.body, c.hasBody = str(bb), len(bb) > 0
	}
	if !c.hasBody {
		if cl := c.get("content-length"); cl != "" && cl != "0" {
			c.hasBody = true
		} else if c.get("transfer-encoding") != "" {
			c.hasBody = true
		}
	}
	return nil
}

func requiredString(v *fastjson.Value, key string) (string, error) {
	if v == nil {
		return "", bad("%s is required", key)
	}
	b, err := v.StringBytes()
	if err != nil {
		return "", bad("%s must be a string", key)
	}
	if len(b) == 0 {
		return "", bad("%s must not be empty", key)
	}
	return str(b), nil
}

// lenientInt accepts a number or a numeric string (gateways send both), or
// nothing.
func lenientInt(v *fastjson.Value, key string, lo, hi int) (int, error) {
	if v == nil || v.Type() == fastjson.TypeNull {
		return 0, nil
	}
	var n int
	switch v.Type() {
	case fastjson.TypeNumber:
		f, err := v.Float64()
		if err != nil || f != float64(int(f)) {
			return 0, bad("%s must be a whole number", key)
		}
		n = int(f)
	case fastjson.TypeString:
		b, _ := v.StringBytes()
		var err error
		if n, err = strconv.Atoi(strings.TrimSpace(str(b))); err != nil {
			return 0, bad("%s %q is not a whole number", key, b)
		}
	default:
		return 0, bad("%s must be a number or a numeric string", key)
	}
	if n < lo || n > hi {
		return 0, bad("%s must be from %d to %d, got %d", key, lo, hi, n)
	}
	return n, nil
}

// version normalizes "1.1", "HTTP/1.1", 1.1 or nothing to "1.1".
func version(v *fastjson.Value) (string, error) {
	if v == nil || v.Type() == fastjson.TypeNull {
		return "1.1", nil
	}
	var s string
	switch v.Type() {
	case fastjson.TypeString:
		b, _ := v.StringBytes()
		s = strings.TrimPrefix(strings.ToUpper(strings.TrimSpace(str(b))), "HTTP/")
	case fastjson.TypeNumber:
		s = v.String()
	default:
		return "", bad("http_version must be a string such as 1.1")
	}
	switch s {
	case "1.0", "1.1", "2", "2.0", "3", "3.0":
		return s, nil
	case "":
		return "1.1", nil
	}
	return "", bad("http_version %q is not an HTTP version", s)
}

// decodeHeaders reads [{"Name": "value"}, ...]: one or more headers per
// object, a repeated header as several objects or as an array of values.
func decodeHeaders(v *fastjson.Value, out []header) ([]header, error) {
	if v == nil || v.Type() == fastjson.TypeNull {
		return out, nil
	}
	arr, err := v.Array()
	if err != nil {
		return out, bad("headers must be an array of objects such as {\"host\": \"example.com\"}")
	}
	for i, item := range arr {
		obj, err := item.Object()
		if err != nil {
			return out, bad("headers[%d] must be an object such as {\"host\": \"example.com\"}", i)
		}
		var ferr error
		obj.Visit(func(k []byte, hv *fastjson.Value) {
			if ferr != nil {
				return
			}
			name := str(k)
			if !validHeaderName(name) {
				ferr = bad("headers[%d]: %q is not a header name", i, k)
				return
			}
			switch hv.Type() {
			case fastjson.TypeString:
				b, _ := hv.StringBytes()
				out = append(out, hdr(name, str(b)))
			case fastjson.TypeNumber:
				out = append(out, hdr(name, hv.String()))
			case fastjson.TypeArray:
				vals, _ := hv.Array()
				for _, e := range vals {
					b, err := e.StringBytes()
					if err != nil {
						ferr = bad("headers[%d]: the values of %s must be strings", i, k)
						return
					}
					out = append(out, hdr(name, str(b)))
				}
			default:
				ferr = bad("headers[%d]: the value of %s must be a string", i, k)
			}
			if len(out) > maxHeaders {
				ferr = bad("more than %d headers", maxHeaders)
			}
		})
		if ferr != nil {
			return out, ferr
		}
	}
	return out, nil
}

// userInfo reads the usernames from [{"username": "..."}, ...] (or the
// object alone): every one is checked.
func userInfo(v *fastjson.Value, out []string) ([]string, error) {
	if v == nil || v.Type() == fastjson.TypeNull {
		return out, nil
	}
	items := []*fastjson.Value{v}
	if v.Type() == fastjson.TypeArray {
		items, _ = v.Array()
	}
	for _, item := range items {
		o, err := item.Object()
		if err != nil {
			return out, bad("user_info must be an array of objects such as {\"username\": \"alice\"}")
		}
		if u := o.Get("username"); u != nil {
			b, err := u.StringBytes()
			if err != nil {
				return out, bad("user_info username must be a string")
			}
			out = append(out, str(b))
		}
	}
	return out, nil
}

// get returns the first value of the named header (any case).
func (c *call) get(name string) string {
	v, _ := c.count(name)
	return v
}

// count returns the first value of the named header and how many there
// are.
func (c *call) count(name string) (string, int) {
	v, n := "", 0
	for _, h := range c.headers {
		if strings.EqualFold(str(h.Name), name) {
			if n == 0 {
				v = str(h.Value)
			}
			n++
		}
	}
	return v, n
}

// join returns every value of the named header joined with sep.
func (c *call) join(name, sep string) string {
	first, n := c.count(name)
	if n <= 1 {
		return first
	}
	var b strings.Builder
	for _, h := range c.headers {
		if strings.EqualFold(str(h.Name), name) {
			if b.Len() > 0 {
				b.WriteString(sep)
			}
			b.Write(h.Value)
		}
	}
	return b.String()
}

func validMethod(m string) bool {
	if len(m) > 32 {
		return false
	}
	for i := 0; i < len(m); i++ {
		c := m[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func validHeaderName(s string) bool { return len(s) <= 256 && rfc9110.IsToken(s) }

// response is a decoded /ase/response body.
type response struct {
	code    int
	status  string
	headers []header
}

func decodeResponse(v *fastjson.Value, r *response) error {
	o, err := v.Object()
	if err != nil {
		return bad("the body must be a JSON object")
	}
	var unknown string
	o.Visit(func(k []byte, _ *fastjson.Value) {
		if unknown == "" && !aseResponseFields[string(k)] {
			unknown = string(k)
		}
	})
	if unknown != "" {
		return bad("unknown field %q", unknown)
	}
	if o.Get("response_code") == nil {
		return bad("response_code is required")
	}
	if r.code, err = lenientInt(o.Get("response_code"), "response_code", 100, 599); err != nil {
		return err
	}
	if s := o.Get("response_status"); s != nil && s.Type() != fastjson.TypeNull {
		b, err := s.StringBytes()
		if err != nil {
			return bad("response_status must be a string")
		}
		r.status = str(b)
	}
	if _, err := version(o.Get("http_version")); err != nil {
		return err
	}
	r.headers, err = decodeHeaders(o.Get("headers"), r.headers[:0])
	return err
}

var calls = sync.Pool{New: func() any { return &call{headers: make([]header, 0, 32)} }}

func getCall() *call { return calls.Get().(*call) }

func putCall(c *call) {
	if cap(c.headers) > 4*maxHeaders {
		return
	}
	*c = call{headers: c.headers[:0], usernames: c.usernames[:0]}
	c.req.Reading = &c.reading
	calls.Put(c)
}
