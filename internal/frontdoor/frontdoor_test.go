package frontdoor

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/ase-project/ase/internal/accesslog"
	"github.com/ase-project/ase/internal/apidef"
	"github.com/ase-project/ase/internal/lists"
)

// fields splits "Name: value" lines.
func fields(t testing.TB, lines ...string) []Field {
	t.Helper()
	f, ok := ParseFields([]byte(strings.Join(lines, "\r\n")), nil)
	if !ok {
		t.Fatalf("bad fields %q", lines)
	}
	return f
}

func read(t testing.TB, target string, framing bool, lines ...string) (Reading, Failure) {
	t.Helper()
	var rd Reading
	f := Read(&Request{Method: []byte("GET"), Target: []byte(target), Fields: fields(t, lines...), Framing: framing}, &rd)
	return rd, f
}

func TestReadHost(t *testing.T) {
	tests := []struct {
		name, target string
		lines        []string
		host         string
		f            Failure
	}{
		{"host", "/v", []string{"Host: victim.example"}, "victim.example", OK},
		{"absolute wins", "http://victim.example/v", []string{"Host: other"}, "victim.example", OK},
		{"absolute without path", "HTTPS://victim.example", nil, "victim.example", OK},
		{"absolute with port", "http://Victim.Example.:8000/v", []string{"Host: other"}, "victim.example:8000", OK},
		{"userinfo", "/v", []string{"Host: x@victim.example"}, "", BadRequest},
		{"userinfo in target", "http://x@victim.example/v", []string{"Host: victim.example"}, "", BadRequest},
		{"trailing dot", "/v", []string{"Host: victim.example."}, "victim.example", OK},
		{"two trailing dots", "/v", []string{"Host: victim.example.."}, "", BadRequest},
		{"upper case", "/v", []string{"Host: VICTIM.example:80"}, "victim.example:80", OK},
		{"ipv6", "/v", []string{"Host: [::1]:8000"}, "[::1]:8000", OK},
		{"ipv6 upper", "/v", []string{"Host: [2001:DB8::1]"}, "[2001:db8::1]", OK},
		{"ipv6 zone", "/v", []string{"Host: [fe80::1%25eth0]"}, "", BadRequest},
		{"two hosts", "/v", []string{"Host: a", "Host: b"}, "", BadRequest},
		{"no host", "/v", nil, "", BadRequest},
		{"empty host", "/v", []string{"Host: "}, "", BadRequest},
		{"empty port", "/v", []string{"Host: a:"}, "", BadRequest},
		{"bad port", "/v", []string{"Host: a:8x"}, "", BadRequest},
		{"slash", "/v", []string{"Host: a/b"}, "", BadRequest},
		{"comma", "/v", []string{"Host: a, b"}, "", BadRequest},
		{"other scheme", "ftp://a/v", nil, "", BadRequest},
		{"asterisk", "*", []string{"Host: a"}, "", BadRequest},
		{"fragment", "/v#x", []string{"Host: a"}, "", BadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rd, f := read(t, tt.target, false, tt.lines...)
			if f != tt.f || f == OK && rd.Host != tt.host {
				t.Fatalf("got %q %v (%s), want %q %v", rd.Host, f, rd.Why, tt.host, tt.f)
			}
		})
	}
}

func TestReadPath(t *testing.T) {
	tests := []struct{ target, path, query string }{
		{"/a/b?x=1", "/a/b", "x=1"},
		{"/", "/", ""},
		{"/a/", "/a/", ""},
		{"/a/./b/../c", "/a/c", ""},
		{"/a//b///c", "/a/b/c", ""},
		{"/../..", "/", ""},
		{"/a/..", "/", ""},
		{"/a/b/.", "/a/b/", ""},
		{"/%61%2Fb", "/a/b", ""},
		{"/%2e%2e/x", "/x", ""},
		{"/a%20b%3Fc", "/a b?c", ""},
		{"/a?b/../c", "/a", "b/../c"},
		{"http://h", "/", ""},
		{"http://h?q", "/", "q"},
	}
	for _, tt := range tests {
		rd, f := read(t, tt.target, false, "Host: a")
		if f != OK || rd.Path != tt.path || rd.Query != tt.query {
			t.Errorf("%q: got %q %q %v, want %q %q", tt.target, rd.Path, rd.Query, f, tt.path, tt.query)
		}
	}
	for _, bad := range []string{"/a%2", "/a%zz", "/a\\b", "/a%5Cb", "/a%00", "/a%0A", "a/b"} {
		if _, f := read(t, bad, false, "Host: a"); f != BadRequest {
			t.Errorf("%q: got %v, want BadRequest", bad, f)
		}
	}
}

func TestReadFraming(t *testing.T) {
	tests := []struct {
		name    string
		lines   []string
		f       Failure
		length  int64
		chunked bool
	}{
		{"length", []string{"Content-Length: 005"}, OK, 5, false},
		{"chunked", []string{"Transfer-Encoding: Chunked"}, OK, 0, true},
		{"both", []string{"Content-Length: 4", "Transfer-Encoding: chunked"}, BadRequest, 0, false},
		{"two lengths", []string{"Content-Length: 4", "Content-Length: 4"}, BadRequest, 0, false},
		{"bad length", []string{"Content-Length: +4"}, BadRequest, 0, false},
		{"identity", []string{"Transfer-Encoding: identity"}, NotImplemented, 0, false},
		{"gzip chunked", []string{"Transfer-Encoding: gzip, chunked"}, NotImplemented, 0, false},
		{"two codings", []string{"Transfer-Encoding: chunked", "Transfer-Encoding: chunked"}, NotImplemented, 0, false},
		{"two content types", []string{"Content-Type: a/b", "Content-Type: c/d"}, BadRequest, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rd, f := read(t, "/", true, append([]string{"Host: a"}, tt.lines...)...)
			if f != tt.f || rd.Length != tt.length || rd.Chunked != tt.chunked {
				t.Fatalf("got %v %d %v (%s)", f, rd.Length, rd.Chunked, rd.Why)
			}
		})
	}
	// Sideband calls describe a request already framed by their gateway.
	if _, f := read(t, "/", false, "Host: a", "Content-Length: 4", "Transfer-Encoding: chunked"); f != OK {
		t.Fatalf("sideband framing checked: %v", f)
	}
}

func identityAPI(t testing.TB) *apidef.API {
	t.Helper()
	api, err := apidef.Decode("a", []byte(`{"api_metadata": {"url": "/", "cookie": "SID", "oauth2_access_token": true, "apikey_header": "X-API-Key", "apikey_qs": "key"}}`))
	if err != nil {
		t.Fatal(err)
	}
	return api
}

// values lists every value of a kind an identity holds.
func values(id *lists.Identity, kind lists.Kind) []string {
	var out []string
	switch kind {
	case lists.Token:
		out = append(out, id.Token)
	case lists.Cookie:
		out = append(out, id.Cookie)
	case lists.APIKey:
		out = append(out, id.APIKeyName+"="+id.APIKey)
	case lists.Username:
		// What a gateway asserts, then what the request claims.
		if id.Username != "" || id.ClaimedUsername == "" {
			out = append(out, id.Username)
		}
		if id.ClaimedUsername != "" {
			out = append(out, id.ClaimedUsername)
		}
	}
	for _, m := range id.More {
		if m.Kind == kind {
			if kind == lists.APIKey {
				out = append(out, m.Name+"="+m.Value)
			} else {
				out = append(out, m.Value)
			}
		}
	}
	return out
}

func TestIdentify(t *testing.T) {
	api := identityAPI(t)
	peer := netip.MustParseAddr("10.0.0.1")
	fs := fields(t, "X-Forwarded-For: 1.1.1.1, 8.8.8.8", "X-Forwarded-For: 9.9.9.9", "Cookie: SID=s1; a=1", "cookie: sid=s2, SID=s3",
		"Authorization: Bearer t1", "Authorization: bearer t2", "X-API-Key: k1", "x-api-key: k2, k3")
	id, f := Identify(api, fs, "key=q1&KEY=q2;k%65y=q%2F3&key=k1", &Client{Peer: peer, TrustProxy: true, Usernames: []string{"bob", "eve"}})
	if f != OK {
		t.Fatal(f)
	}
	for kind, want := range map[lists.Kind][]string{
		lists.Cookie:   {"s1", "s2, SID=s3", "s2", "s3"}, // ";"-readers see "s2, SID=s3"
		lists.Token:    {"t1", "t2"},
		lists.APIKey:   {"x-api-key=k1", "x-api-key=k2, k3", "x-api-key=k2", "x-api-key=k3", "key=q1", "key=q2", "key=q2;key=q/3", "key=q2;k%65y=q%2F3", "key=q/3", "key=q%2F3", "key=k1"}, // "&"-only readers see "q2;k%65y=q%2F3"
		lists.Username: {"bob", "eve"},
	} {
		if got := values(&id, kind); !slices.Equal(got, want) {
			t.Errorf("%v: got %q, want %q", kind, got, want)
		}
	}
	if id.IP.String() != "9.9.9.9" {
		t.Errorf("client %v, want the right-most address of the last X-Forwarded-For", id.IP)
	}
	if id, _ := Identify(api, fs, "", &Client{Peer: peer}); id.IP != peer {
		t.Errorf("untrusted proxy headers gave %v", id.IP)
	}
	if _, f := Identify(api, fields(t, "X-Real-IP: 1.1.1.1", "X-Real-IP: 2.2.2.2"), "", &Client{Peer: peer, TrustProxy: true}); f != BadRequest {
		t.Errorf("two X-Real-IP: %v", f)
	}
	none, _ := apidef.Decode("b", []byte(`{"api_metadata": {"url": "/"}}`))
	if id, _ := Identify(none, fs, "key=x", &Client{Peer: peer}); id.Token != "" || id.Cookie != "" || id.APIKey != "" || len(id.More) != 0 {
		t.Fatalf("identities read for an API that uses none: %+v", id)
	}
}

func TestIdentifyDoesNotAllocate(t *testing.T) {
	api := identityAPI(t)
	fs := fields(t, "X-Forwarded-For: 1.1.1.1", "Cookie: a=b; SID=s1", "Authorization: Bearer t1", "X-API-Key: k1")
	c := &Client{Peer: netip.MustParseAddr("10.0.0.1"), TrustProxy: true}
	if n := testing.AllocsPerRun(100, func() { Identify(api, fs, "a=1", c) }); n != 0 {
		t.Fatalf("Identify allocates %v times", n)
	}
	var rd Reading
	r := &Request{Method: []byte("GET"), Target: []byte("/a/b?c=d"), Fields: fields(t, "Host: a.example", "Content-Length: 4"), Framing: true}
	if n := testing.AllocsPerRun(100, func() { Read(r, &rd) }); n != 0 {
		t.Fatalf("Read allocates %v times", n)
	}
}

func TestClientIP(t *testing.T) {
	peer := netip.MustParseAddr("10.0.0.1")
	tests := []struct {
		name, xReal, xff string
		trust            bool
		want             string
	}{
		{"untrusted ignores headers", "1.1.1.1", "2.2.2.2", false, "10.0.0.1"},
		{"x-real-ip first", "1.1.1.1", "2.2.2.2", true, "1.1.1.1"},
		{"right-most xff", "", "6.6.6.6, 3.3.3.3", true, "3.3.3.3"},
		{"xff with port", "", "3.3.3.3:4444", true, "3.3.3.3"},
		{"xff v6 with port", "", "[2001:db8::1]:80", true, "2001:db8::1"},
		{"mapped", "::ffff:4.4.4.4", "", true, "4.4.4.4"},
		{"garbage falls back", "x", "y, z", true, "10.0.0.1"},
		{"garbage x-real-ip uses xff", "nope", "5.5.5.5", true, "5.5.5.5"},
		{"empty", "", "", true, "10.0.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ClientIP(peer, tt.xReal, tt.xff, tt.trust); got.String() != tt.want {
				t.Fatalf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestBearerToken(t *testing.T) {
	for in, want := range map[string]string{
		"Bearer abc": "abc", "bearer  abc ": "abc", "BEARER x.y.z": "x.y.z", "Basic dXNlcg==": "",
		"Bearer": "", "Bearer ": "", "": "", "Bearerabc": "",
	} {
		if got := BearerToken(in); got != want {
			t.Errorf("BearerToken(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzCookies checks that every value of the API's cookie that net/http
// reads from a Cookie header (as a Go backend would) is among the values
// the engine decides on.
func FuzzCookies(f *testing.F) {
	f.Add("a=1; SID=\"abc\"; b=2")
	f.Add("SID=good; SID=bad")
	f.Add("sid=x, SID=y;;=;")
	api := identityAPI(f)
	f.Fuzz(func(t *testing.T, header string) {
		if strings.ContainsAny(header, "\r\n\x00") {
			return
		}
		id, _ := Identify(api, []Field{{Name: []byte("Cookie"), Value: []byte(header)}}, "", &Client{})
		got := values(&id, lists.Cookie)
		r := &http.Request{Header: http.Header{"Cookie": {header}}}
		for _, c := range r.Cookies() {
			// Surrounding white space is not part of a value (RFC 6265
			// section 5.2), whatever a reader keeps of it.
			v := strings.TrimSpace(c.Value)
			if c.Name == "SID" && v != "" && !slices.ContainsFunc(got, func(g string) bool { return strings.TrimSpace(g) == v }) {
				t.Fatalf("net/http reads SID=%q from %q; the engine saw %q", c.Value, header, got)
			}
		}
		for _, v := range got {
			if v != "" && !strings.Contains(header, v) {
				t.Fatalf("value %q is not in the header %q", v, header)
			}
		}
	})
}

// FuzzQueryValues checks the values of the API's key parameter the engine
// decides on against a reference reading of the README's words ("every
// query parameter of the API's key name (in any case, names and values
// decoded and raw, & and ; both separating)"), against the reading of a
// backend that separates at "&" only (net/url, PHP, Python, Node: a ";"
// is part of the value to them), and against net/url itself: the engine
// has every value they read and no other.
func FuzzQueryValues(f *testing.F) {
	f.Add("a=1&key=k%2F1&key=k2")
	f.Add("key=a+b&KEY=c")
	f.Add("x=1;key=q")
	api := identityAPI(f)
	f.Fuzz(func(t *testing.T, q string) {
		id, _ := Identify(api, nil, q, &Client{})
		got := map[string]bool{}
		for _, v := range values(&id, lists.APIKey) {
			if v != "=" {
				got[strings.TrimPrefix(v, "key=")] = true
			}
		}
		want := map[string]bool{}
		for _, seps := range []string{"&;", "&"} {
			for v := range readQuery(q, "key", seps) {
				if !got[v] {
					t.Fatalf("a reader separating at %q reads key=%q from %q; the engine saw %q", seps, v, q, values(&id, lists.APIKey))
				}
				want[v] = true
			}
		}
		for v := range got {
			if !want[v] {
				t.Fatalf("the engine saw key=%q in %q, which no reader reads", v, q)
			}
		}
		parsed, _ := url.ParseQuery(q) // what it can read, even on an error
		for _, v := range parsed["key"] {
			if v != "" && !got[v] {
				t.Fatalf("net/url reads key=%q from %q; the engine saw %q", v, q, values(&id, lists.APIKey))
			}
		}
	})
}

// readQuery is the reference reading of FuzzQueryValues: the non-empty
// values of the parameters called name (ASCII case ignored, as written or
// decoded), as written and decoded, parameters separated by any byte of
// seps.
func readQuery(q, name, seps string) map[string]bool {
	lower := func(s string) string {
		return strings.Map(func(r rune) rune {
			if 'A' <= r && r <= 'Z' {
				return r + 'a' - 'A'
			}
			return r
		}, s)
	}
	out := map[string]bool{}
	for _, p := range strings.FieldsFunc(q, func(r rune) bool { return strings.ContainsRune(seps, r) }) {
		k, v, _ := strings.Cut(p, "=")
		dk, err := url.QueryUnescape(k)
		if lower(k) != name && (err != nil || lower(dk) != name) {
			continue
		}
		out[v] = true
		if dv, err := url.QueryUnescape(v); err == nil {
			out[dv] = true
		}
	}
	delete(out, "")
	return out
}

// FuzzRead checks the front door's reading of any request against
// net/http's reading of the head the backend receives: the same host, the
// same path, and for every field the backend gets, the client's value.
func FuzzRead(f *testing.F) {
	f.Add("GET", "/a/b?c=d", "Host: a.example\r\nCookie: SID=1")
	f.Add("POST", "http://B.example./x/../y", "Host: other\r\nContent-Length: 3")
	f.Add("GET", "/%2e%2e/%61?q", "Host: [::1]:80\r\nConnection: x-a\r\nX-A: 1")
	f.Fuzz(func(t *testing.T, method, target, lines string) {
		fs, ok := ParseFields([]byte(lines), nil)
		if !ok || !validMethod(method) {
			return
		}
		for _, fl := range fs {
			if strings.ContainsAny(string(fl.Value), "\r\n\x00") {
				return
			}
		}
		var rd Reading
		if Read(&Request{Method: []byte(method), Target: []byte(target), Fields: fs, Framing: true}, &rd) != OK {
			return
		}
		head := AppendHead(nil, &rd, &Head{Method: []byte(method), Fields: fs, Peer: netip.MustParseAddr("192.0.2.1"), BodyLen: rd.Length})
		r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(string(head))))
		if err != nil {
			t.Fatalf("net/http refuses the head sent to the backend: %v\n%q", err, head)
		}
		if r.Host != rd.Host {
			t.Fatalf("the backend reads host %q, the engine decided on %q", r.Host, rd.Host)
		}
		if r.URL.Path != rd.Path {
			t.Fatalf("the backend reads path %q, the engine decided on %q (target %q)", r.URL.Path, rd.Path, target)
		}
		if r.URL.RawQuery != rd.Query {
			t.Fatalf("the backend reads query %q, the engine decided on %q", r.URL.RawQuery, rd.Query)
		}
	})
}

func validMethod(m string) bool {
	if m == "" || len(m) > 16 {
		return false
	}
	for i := 0; i < len(m); i++ {
		if m[i] < 'A' || m[i] > 'Z' {
			return false
		}
	}
	return true
}

// BenchmarkInline is the front door's share of a typical inline request:
// reading it, reading its identities and writing the backend's head.
func BenchmarkInline(b *testing.B) {
	api := identityAPI(b)
	fs := fields(b, "Host: shop.example.com", "User-Agent: bench/1.0", "Accept: */*", "Cookie: SID=clean-session; theme=dark",
		"Authorization: Bearer clean-token", "X-API-Key: clean-key", "Content-Length: 0")
	r := &Request{Method: []byte("GET"), Target: []byte("/shop/items/42?x=1"), Fields: fs, Framing: true}
	c := &Client{Peer: netip.MustParseAddr("198.51.100.7")}
	var rd Reading
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		if Read(r, &rd) != OK {
			b.Fatal("refused")
		}
		id, _ := Identify(api, fs, rd.Query, c)
		buf = AppendHead(buf[:0], &rd, &Head{Method: r.Method, Fields: fs, API: api, Peer: id.IP})
	}
}

// testProxies is trusted_proxies=127.0.0.0/8,10.0.0.0/8,2001:db8::/32.
var testProxies = Proxies{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::/32")}

func TestProxiesClientIP(t *testing.T) {
	lb := netip.MustParseAddr("127.0.0.1")
	tests := []struct {
		name, peer, xReal, xff, want string
	}{
		{"untrusted peer is the client", "198.51.100.1", "203.0.113.9", "203.0.113.9", "198.51.100.1"},
		{"untrusted mapped peer", "::ffff:198.51.100.1", "203.0.113.9", "", "198.51.100.1"},
		{"trusted mapped peer", "::ffff:10.0.0.2", "", "203.0.113.9", "203.0.113.9"},
		{"no fields", "", "", "", "127.0.0.1"},
		{"one hop", "", "", "203.0.113.9", "203.0.113.9"},
		{"past a trusted hop", "", "", "203.0.113.9, 10.1.2.3", "203.0.113.9"},
		{"spoofed left part", "", "", "198.51.100.7, 203.0.113.9, 10.1.2.3", "203.0.113.9"},
		{"every hop trusted", "", "", "10.9.9.9, 127.0.0.5", "10.9.9.9"},
		{"ports and v6", "", "", "[2001:db8::7]:1, 203.0.113.9:80, [2001:db8::1]:443", "203.0.113.9"},
		{"untrusted v6", "", "", "203.0.113.9, 2001:db9::1, 10.0.0.1", "2001:db9::1"},
		{"x-real-ip untrusted wins", "", "203.0.113.9", "198.51.100.7", "203.0.113.9"},
		{"x-real-ip trusted walks on", "", "10.1.2.3", "198.51.100.7, 203.0.113.9", "203.0.113.9"},
		{"x-real-ip garbage ignored", "", "nope", "203.0.113.9", "203.0.113.9"},
		{"garbage stops at the last address", "", "", "203.0.113.9, junk, 10.1.2.3", "10.1.2.3"},
		{"empty entry stops", "", "", "203.0.113.9, , 10.1.2.3", "10.1.2.3"},
		{"garbage right-most keeps the peer", "", "", "203.0.113.9, junk", "127.0.0.1"},
		{"zone is garbage", "", "", "203.0.113.9, fe80::1%eth0", "127.0.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			peer := lb
			if tt.peer != "" {
				peer = netip.MustParseAddr(tt.peer)
			}
			if got := testProxies.ClientIP(peer, tt.xReal, tt.xff); got.String() != tt.want {
				t.Fatalf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestIdentifyTrustedProxies(t *testing.T) {
	api := identityAPI(t)
	lb := netip.MustParseAddr("127.0.0.1")
	c := &Client{Peer: lb, TrustProxy: true, Trusted: testProxies}
	for _, tt := range []struct {
		name  string
		lines []string
		want  string
	}{
		{"one field per hop", []string{"X-Forwarded-For: 198.51.100.7", "X-Forwarded-For: 203.0.113.9", "X-Forwarded-For: 10.1.2.3"}, "203.0.113.9"},
		{"a proxy's own field after a list", []string{"X-Forwarded-For: 198.51.100.7, 203.0.113.9", "Cookie: SID=1", "X-Forwarded-For: 10.1.2.3, 127.0.0.9"}, "203.0.113.9"},
		{"all trusted across fields", []string{"X-Forwarded-For: 10.0.0.1, 10.0.0.2", "X-Forwarded-For: 10.0.0.3"}, "10.0.0.1"},
		{"x-real-ip before the fields", []string{"X-Forwarded-For: 198.51.100.7", "X-Forwarded-For: 10.0.0.3", "X-Real-IP: 10.0.0.4"}, "198.51.100.7"},
		{"empty field stops", []string{"X-Forwarded-For: 203.0.113.9", "X-Forwarded-For: ", "X-Forwarded-For: 10.0.0.3"}, "10.0.0.3"},
	} {
		fs := fields(t, tt.lines...)
		id, f := Identify(api, fs, "", c)
		if f != OK || id.IP.String() != tt.want {
			t.Errorf("%s: got %v %v, want %s", tt.name, id.IP, f, tt.want)
		}
		if got := c.IP(fs); got != id.IP {
			t.Errorf("%s: Client.IP %v, Identify %v", tt.name, got, id.IP)
		}
	}
	// Without enable_xff nothing is read, whatever the ranges.
	fs := fields(t, "X-Forwarded-For: 203.0.113.9", "X-Real-IP: 203.0.113.9", "X-Real-IP: 203.0.113.8")
	if id, f := Identify(api, fs, "", &Client{Peer: lb, Trusted: testProxies}); f != OK || id.IP != lb {
		t.Errorf("enable_xff off: got %v %v, want the peer", id.IP, f)
	}
	// An untrusted peer's fields are not read, so its repeated X-Real-IP
	// is no reason to refuse it.
	other := netip.MustParseAddr("198.51.100.1")
	if id, f := Identify(api, fs, "", &Client{Peer: other, TrustProxy: true, Trusted: testProxies}); f != OK || id.IP != other {
		t.Errorf("untrusted peer: got %v %v, want the peer", id.IP, f)
	}
	if _, f := Identify(api, fs, "", c); f != BadRequest {
		t.Errorf("trusted peer, two X-Real-IP: got %v, want BadRequest", f)
	}
	// Allocation-free with the ranges too, several fields included.
	fs = fields(t, "X-Forwarded-For: 198.51.100.7, 203.0.113.9", "Cookie: a=b; SID=s1", "X-Forwarded-For: 10.1.2.3", "X-API-Key: k1")
	if n := testing.AllocsPerRun(100, func() { Identify(api, fs, "a=1", c) }); n != 0 {
		t.Fatalf("Identify with trusted proxies allocates %v times", n)
	}
}

// clientIPBefore is ClientIP as it was before trusted_proxies: the
// reference that the default reading stays the same.
func clientIPBefore(peer netip.Addr, xRealIP, xff string) netip.Addr {
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
	return peer.Unmap()
}

// FuzzClientIP checks the reading of X-Forwarded-For = left, right with
// trusted_proxies set: when right holds an untrusted address, nothing
// only the left part (what a client behind it wrote) names can be the
// client; a peer outside the ranges is the client; the result is always
// the peer or an address of the fields; Identify reads the two parts as
// two fields the same; and without ranges the reading is the one before
// trusted_proxies existed.
func FuzzClientIP(f *testing.F) {
	f.Add("203.0.113.9", "198.51.100.7, 10.1.2.3", "", uint8(0))
	f.Add("198.51.100.7, 203.0.113.9", "10.1.2.3, 127.0.0.2", "10.0.0.1", uint8(1))
	f.Add("10.0.0.1", "junk, 203.0.113.9", "", uint8(2))
	f.Add("[2001:db8::1]:80", "2001:db9::1, [2001:db8::2]:1", "x", uint8(3))
	f.Add("", "", "203.0.113.9", uint8(4))
	peers := []netip.Addr{
		netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("10.2.3.4"), netip.MustParseAddr("::ffff:10.0.0.1"),
		netip.MustParseAddr("2001:db8::5"), netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("::1"),
	}
	items := func(s string) []netip.Addr {
		var out []netip.Addr
		for _, it := range strings.Split(s, ",") {
			if a, ok := parseHostAddr(it); ok {
				out = append(out, a)
			}
		}
		return out
	}
	f.Fuzz(func(t *testing.T, left, right, xri string, p uint8) {
		peer := peers[int(p)%len(peers)]
		xff := left + "," + right
		got := testProxies.ClientIP(peer, xri, xff)
		if !testProxies.Trusts(peer.Unmap()) {
			if got != peer.Unmap() {
				t.Fatalf("untrusted peer %v: got %v", peer, got)
			}
			return
		}
		r := items(right)
		xr, xriOK := parseHostAddr(xri)
		if got != peer.Unmap() && !(xriOK && got == xr) && !slices.Contains(items(xff), got) {
			t.Fatalf("%v is neither the peer, X-Real-IP nor in %q", got, xff)
		}
		if slices.ContainsFunc(r, func(a netip.Addr) bool { return !testProxies.Trusts(a) }) {
			if got != peer.Unmap() && !(xriOK && got == xr) && !slices.Contains(r, got) {
				t.Fatalf("X-Forwarded-For %q: got %v from the left part, right of which is an untrusted address", xff, got)
			}
		}
		// The same as two fields, in Identify and Client.IP.
		fs := []Field{{Name: []byte("X-Forwarded-For"), Value: []byte(left)}, {Name: []byte("x-forwarded-for"), Value: []byte(right)}}
		if xri != "" {
			fs = append(fs, Field{Name: []byte("X-Real-IP"), Value: []byte(xri)})
		}
		c := &Client{Peer: peer, TrustProxy: true, Trusted: testProxies}
		if id, _ := Identify(nil, fs, "", c); id.IP != got {
			t.Fatalf("fields %q, %q: Identify read %v, the joined list %v", left, right, id.IP, got)
		}
		if ip := c.IP(fs); ip != got {
			t.Fatalf("fields %q, %q: Client.IP read %v, the joined list %v", left, right, ip, got)
		}
		// Without ranges, as before.
		if got, want := Proxies(nil).ClientIP(peer, xri, xff), clientIPBefore(peer, xri, xff); got != want {
			t.Fatalf("no trusted_proxies: got %v, before %v", got, want)
		}
		if got, want := ClientIP(peer, xri, xff, true), clientIPBefore(peer, xri, xff); got != want {
			t.Fatalf("ClientIP: got %v, before %v", got, want)
		}
	})
}

// BenchmarkIdentifyXFF is Identify's reading of a request that came
// through a CDN and a load balancer: one X-Forwarded-For field, then one
// per hop, without and with trusted_proxies.
func BenchmarkIdentifyXFF(b *testing.B) {
	api := identityAPI(b)
	for _, bc := range []struct {
		name  string
		lines []string
		c     *Client
	}{
		{"enable_xff", []string{"X-Forwarded-For: 198.51.100.7, 203.0.113.9, 10.1.2.3"}, &Client{Peer: netip.MustParseAddr("127.0.0.1"), TrustProxy: true}},
		{"trusted_proxies", []string{"X-Forwarded-For: 198.51.100.7, 203.0.113.9, 10.1.2.3"}, &Client{Peer: netip.MustParseAddr("127.0.0.1"), TrustProxy: true, Trusted: testProxies}},
		{"trusted_proxies,fields", []string{"X-Forwarded-For: 198.51.100.7, 203.0.113.9", "X-Forwarded-For: 10.1.2.3"}, &Client{Peer: netip.MustParseAddr("127.0.0.1"), TrustProxy: true, Trusted: testProxies}},
	} {
		fs := fields(b, append([]string{"Host: shop.example.com", "User-Agent: bench/1.0", "Cookie: SID=clean-session", "X-API-Key: clean-key"}, bc.lines...)...)
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				Identify(api, fs, "", bc.c)
			}
		})
	}
}

// token returns a JWT whose payload is claims, as the encoder writes it
// (base64url, no padding); ASE never looks at the signature.
func token(claims string) string {
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc.EncodeToString([]byte(claims)) + ".c2ln"
}

func usernameAPI(t testing.TB, location string) *apidef.API {
	t.Helper()
	api, err := apidef.Decode("u", []byte(`{"api_metadata": {"url": "/", "username_header": "X-User",
		"jwt": {"location": "`+location+`", "username": "username", "clientid": "client_id"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	return api
}

// TestIdentifyUsername: every value of the username header, and the
// username claim of every JWT at the API's location, is a username the
// lists check; the client id is the first JWT's.
func TestIdentifyUsername(t *testing.T) {
	alice, bob, eve := token(`{"username":"alice","client_id":"app-1"}`), token(`{"username":["bob","x"],"client_id":"app-2"}`), token(`{"username":"eve"}`)
	tests := []struct {
		name, location string
		lines          []string
		query          string
		users          []string
		clientID       string
	}{
		{"header", "h:authorization:bearer", []string{"X-User: u1", "x-user: u2, u3"}, "", []string{"u1", "u2, u3", "u2", "u3"}, ""},
		{"bearer", "h:authorization:bearer", []string{"Authorization: Bearer " + alice, "authorization: bearer " + bob, "Authorization: Bearer not-a-jwt"}, "", []string{"alice", "bob"}, "app-1"},
		{"bearer list", "h:authorization:bearer", []string{"Authorization: Bearer " + eve + ", Bearer " + alice}, "", []string{"eve", "alice"}, "app-1"},
		{"bearer only", "h:authorization:bearer", []string{"Authorization: " + alice}, "", nil, ""},
		{"mac", "h:Authorization:mac", []string{`Authorization: MAC id="` + alice + `", nonce="n", mac="m"`}, "", []string{"alice"}, "app-1"},
		{"alone", "h:X-Identity", []string{"X-Identity:  " + bob + " ", "Authorization: Bearer " + alice}, "", []string{"bob"}, "app-2"},
		{"query", "qs:access_token", []string{"Authorization: Bearer " + alice}, "access_token=" + bob + "&ACCESS_TOKEN=" + eve + ";access%5Ftoken=" + alice, []string{"bob", "eve", "alice"}, "app-2"},
		{"header and jwt", "h:authorization:bearer", []string{"Authorization: Bearer " + eve, "X-User: u1"}, "", []string{"eve", "u1"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api := usernameAPI(t, tt.location)
			fs := fields(t, tt.lines...)
			id, f := Identify(api, fs, tt.query, &Client{Peer: netip.MustParseAddr("10.0.0.1"), Usernames: nil})
			if f != OK {
				t.Fatal(f)
			}
			got := values(&id, lists.Username)
			if len(tt.users) == 0 && len(got) == 1 && got[0] == "" {
				got = nil
			}
			if !slices.Equal(got, tt.users) {
				t.Errorf("usernames: got %q, want %q", got, tt.users)
			}
			if got := ClientID(api, fs, tt.query); got != tt.clientID {
				t.Errorf("client id: got %q, want %q", got, tt.clientID)
			}
			var rec accesslog.Record
			LogUser(&rec, api, &id, fs, tt.query)
			if want := id.ClaimedUsername; rec.Username != want || rec.ClientID != tt.clientID {
				t.Errorf("logged %q %q", rec.Username, rec.ClientID)
			}
		})
	}
	// Without the features, nothing is read.
	none, _ := apidef.Decode("b", []byte(`{"api_metadata": {"url": "/"}}`))
	fs := fields(t, "X-User: u1", "Authorization: Bearer "+alice)
	if id, _ := Identify(none, fs, "access_token="+alice, &Client{}); id.Username != "" || len(id.More) != 0 || ClientID(none, fs, "") != "" {
		t.Fatalf("usernames read for an API that names none: %+v", id)
	}
}

func TestJWTClaim(t *testing.T) {
	tests := []struct {
		name, token, claim string
		array              bool
		want               string
	}{
		{"string", token(`{"sub":"1","username":"alice"}`), "username", true, "alice"},
		{"number as written", token(`{"username":1.50e3}`), "username", true, "1.50e3"},
		{"array", token(`{"username":[ "bob" ,"x"]}`), "username", true, "bob"},
		{"array of numbers", token(`{"username":[7]}`), "username", true, "7"},
		{"array not read", token(`{"client_id":["a"]}`), "client_id", false, ""},
		{"empty array", token(`{"username":[]}`), "username", true, ""},
		{"nested array", token(`{"username":[["a"]]}`), "username", true, ""},
		{"escapes", token(`{"user\u006eame":"mal\u006cory \"x\""}`), "username", true, `mallory "x"`},
		{"other types", token(`{"username":true}`), "username", true, ""},
		{"object", token(`{"username":{"name":"a"}}`), "username", true, ""},
		{"nested key not read", token(`{"a":{"username":"x"},"b":["username"]}`), "username", true, ""},
		{"after nesting", token(`{"a":{"b":[1,{"c":"}"}]},"username":"z"}`), "username", true, "z"},
		{"case", token(`{"Username":"a"}`), "username", true, ""},
		{"twice", token(`{"username":"a","username":"b"}`), "username", true, ""},
		{"padded", strings.Replace(token(`{"username":"ab"}`), ".c2ln", "==.c2ln", 1), "username", true, "ab"},
		{"standard alphabet", "a." + base64.StdEncoding.EncodeToString([]byte(`{"username":"???>>>"}`)) + ".s", "username", true, ""},
		{"not an object", token(`["username"]`), "username", true, ""},
		{"invalid json", token(`{"username":"a",}`), "username", true, ""},
		{"trailing data", token(`{"username":"a"} x`), "username", true, ""},
		{"two segments", strings.TrimSuffix(token(`{"username":"a"}`), ".c2ln"), "username", true, ""},
		{"four segments", token(`{"username":"a"}`) + ".x", "username", true, ""},
		{"unsigned", strings.TrimSuffix(token(`{"username":"a"}`), "c2ln"), "username", true, "a"},
		{"not base64", "a.b!c.d", "username", true, ""},
		{"large payload", token(`{"pad":"` + strings.Repeat("x", 5000) + `","username":"big"}`), "username", true, "big"},
		{"invalid utf-8", token("{\"username\":\"a\xffb\"}"), "username", true, "a\ufffdb"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := jwtClaim(tt.token, tt.claim, tt.array); got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// referenceClaim is the straightforward reading jwtClaim must agree with:
// encoding/base64, then encoding/json into a map.
func referenceClaim(token, name string, array bool) (string, bool) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", false
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return "", false
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if dec.Decode(&m) != nil {
		return "", false
	}
	if _, err := dec.Token(); err != io.EOF {
		return "", false
	}
	v := m[name]
	if a, ok := v.([]any); ok && array && len(a) > 0 {
		v = a[0]
	}
	switch v := v.(type) {
	case string:
		return v, true
	case json.Number:
		return string(v), true
	}
	return "", false
}

// claimCount counts the top-level members called name of a JSON object.
func claimCount(payload []byte, name string) int {
	dec := json.NewDecoder(bytes.NewReader(payload))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return 0
	}
	n := 0
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return n
		}
		if k == name {
			n++
		}
		var skip json.RawMessage
		if dec.Decode(&skip) != nil {
			return n
		}
	}
	return n
}

// FuzzJWTClaim checks jwtClaim against the straightforward reading: what it
// returns is exactly the claim encoding/base64 and encoding/json read, and
// it returns that claim whenever they read one, unless the payload names
// the claim twice (ambiguous: jwtClaim reads nothing).
func FuzzJWTClaim(f *testing.F) {
	f.Add(token(`{"username":"alice","client_id":"app"}`), "username", true)
	f.Add(token(`{"username":["bob",1],"x":{"username":"no"}}`), "username", true)
	f.Add(token(`{"u\u0073er":"\ud83d\ude00","user":2}`), "user", false)
	f.Add(token(`{"client_id":-0.5e-3}`), "client_id", false)
	f.Add("e30.eyJhIjoiYiJ9.", "a", false)
	f.Fuzz(func(t *testing.T, tok, name string, array bool) {
		got := jwtClaim(tok, name, array)
		want, ok := referenceClaim(tok, name, array)
		if got != "" && got != want {
			t.Fatalf("jwtClaim(%q, %q) = %q; encoding/json reads %q", tok, name, got, want)
		}
		if got == "" && ok && want != "" && name != "" {
			parts := strings.Split(tok, ".")
			b, _ := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
			if claimCount(b, name) < 2 && len(b) <= maxJWTPayload {
				t.Fatalf("jwtClaim(%q, %q) read nothing; encoding/json reads %q", tok, name, want)
			}
		}
	})
}

// TestIdentifyWithUsernamesAllocates bounds what the username features
// cost: a username header is read without allocating, a JWT's claim costs
// its string.
func TestIdentifyUsernameAllocs(t *testing.T) {
	api := usernameAPI(t, "h:authorization:bearer")
	c := &Client{Peer: netip.MustParseAddr("10.0.0.1")}
	hdr := fields(t, "X-User: alice")
	if n := testing.AllocsPerRun(100, func() { Identify(api, hdr, "", c) }); n != 0 {
		t.Errorf("Identify with a username header allocates %v times", n)
	}
	jwt := fields(t, "Authorization: Bearer "+token(`{"sub":"1","username":"alice","client_id":"app"}`))
	if n := testing.AllocsPerRun(100, func() { Identify(api, jwt, "", c) }); n > 1 {
		t.Errorf("Identify with a JWT allocates %v times", n)
	}
}

// BenchmarkIdentifyUsername is Identify's cost on a request carrying a
// username header and a bearer JWT, against the same request to an API
// that reads neither.
func BenchmarkIdentifyUsername(b *testing.B) {
	fs := fields(b, "Host: shop.example.com", "User-Agent: bench/1.0", "X-User: alice",
		"Authorization: Bearer "+token(`{"iss":"https://idp.example","sub":"248289761001","aud":"s6BhdRkqt3","exp":1311281970,"iat":1311280970,"username":"alice","client_id":"app-7"}`))
	c := &Client{Peer: netip.MustParseAddr("198.51.100.7")}
	for _, tt := range []struct {
		name string
		api  *apidef.API
	}{{"without", identityAPI(b)}, {"header", usernameAPI(b, "")}, {"header+jwt", usernameAPI(b, "h:authorization:bearer")}} {
		b.Run(tt.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				Identify(tt.api, fs, "", c)
			}
		})
	}
}
