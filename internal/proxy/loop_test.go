//go:build linux && !ase_portable

package proxy

import (
	"bufio"
	"bytes"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/ase-project/ase/internal/apidef"
	"github.com/ase-project/ase/internal/frontdoor"
	"github.com/ase-project/ase/internal/h1"
	"github.com/ase-project/ase/internal/lists"
)

// TestGeneralServerSendsTheHead checks that the general server's backend
// client (fasthttp's HostClient) writes exactly the head the front door
// wrote, byte for byte, as the event loops do: no default User-Agent or
// Content-Type, no merged Cookie fields, the decided Host, the Content-Length
// of the body actually sent.
func TestGeneralServerSendsTheHead(t *testing.T) {
	peer := netip.MustParseAddr("198.51.100.7")
	apis := []*apidef.API{
		{URL: "/"},
		{URL: "/shop", InternalURL: "/v2/store"},
		{URL: "/shop", InternalURL: "/"},
		{URL: "/", InternalURL: "/api"},
		{URL: "/shop", ServerSSL: true},
	}
	raws := []string{
		"GET /shop/cart/1?x=1&y=%20 HTTP/1.1\r\nHost: shop.example.com\r\nAccept: */*\r\n\r\n",
		"GET /shop HTTP/1.1\r\nHost: A.example.\r\n\r\n",
		"GET http://b.example/shop/ HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /shop/%61%2Fb%20c/../d HTTP/1.1\r\nHost: a\r\nCookie: SID=1\r\nCookie: SID=2\r\nUser-Agent: x\r\nuser-agent: y\r\n\r\n",
		"DELETE /shop/x HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST /shop/order HTTP/1.1\r\nHost: a:8080\r\nContent-Type: application/json\r\nContent-Length: 007\r\n" +
			"X-Forwarded-For: 203.0.113.1\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: evil\r\n" +
			"Connection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\n" +
			"Proxy-Authorization: Basic eDp5\r\nAuthorization: Bearer t\r\nx-forwarded-for: 203.0.113.2\r\n\r\n{\"a\":1}",
	}
	for _, api := range apis {
		for _, raw := range raws {
			var r h1.Request
			var fields []frontdoor.Field
			var target, method []byte
			if h1.ParseRequest([]byte(raw), &r) == h1.Done {
				fields, target, method = r.Fields, r.Target, r.Method
			} else {
				line, rest, _ := strings.Cut(raw, "\r\n")
				parts := strings.Split(line, " ")
				method, target = []byte(parts[0]), []byte(parts[1])
				var ok bool
				if fields, ok = frontdoor.ParseFields([]byte(rest[:strings.Index(rest, "\r\n\r\n")]), nil); !ok {
					t.Fatalf("%q: fields", raw)
				}
			}
			var rd frontdoor.Reading
			if f := frontdoor.Read(&frontdoor.Request{Method: method, Target: target, Fields: fields, Framing: true}, &rd); f != frontdoor.OK {
				t.Fatalf("%q: %v (%s)", raw, f, rd.Why)
			}
			body := []byte(raw[strings.Index(raw, "\r\n\r\n")+4:])
			want := frontdoor.AppendHead(nil, &rd, &frontdoor.Head{Method: method, Fields: fields, API: api, Peer: peer, BodyLen: int64(len(body))})
			want = append(want, body...)

			out := fasthttp.AcquireRequest()
			loadHead(out, want[:len(want)-len(body)], api.ServerSSL)
			out.SetBodyRaw(body)
			out.URI() // as HostClient does before writing
			var got bytes.Buffer
			w := bufio.NewWriter(&got)
			if err := out.Write(w); err != nil {
				t.Fatal(err)
			}
			w.Flush()
			fasthttp.ReleaseRequest(out)
			if got.String() != string(want) {
				t.Errorf("url %q internal %q, %q:\nfront door %q\nfasthttp   %q", api.URL, api.InternalURL, raw, want, got.String())
			}
			back := readBack(t, want)
			if back.Header.Get("User-Agent") == "" && strings.Contains(raw, "User-Agent") || back.Header.Get("Proxy-Authorization") != "" ||
				back.Header.Get("X-Hop") != "" || back.Header.Get("Keep-Alive") != "" || back.Header.Get("X-Forwarded-Host") == "evil" {
				t.Errorf("%q: forwarded %v", raw, back.Header)
			}
		}
	}
}

type readRequest struct {
	*http.Request
	body string
}

func readBack(t *testing.T, b []byte) readRequest {
	t.Helper()
	r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(b)))
	if err != nil {
		t.Fatalf("%q: %v", b, err)
	}
	var body bytes.Buffer
	body.ReadFrom(r.Body)
	return readRequest{r, body.String()}
}

// FuzzForwardedIsDecided checks, for any request either engine takes,
// that the backend reads the host, path and identity values the engine
// decided on: the loops' reading (h1, then the front door, then the head
// written for the backend) and the general server's (fasthttp's parser,
// the raw header section, the front door, and what fasthttp's client
// writes), each read back by net/http as a Go backend would.
func FuzzForwardedIsDecided(f *testing.F) {
	for _, s := range []string{
		"GET /a?key=k1&key=k2 HTTP/1.1\r\nHost: a\r\nCookie: SID=1; SID=2\r\nX-Api-Key: x, y\r\n\r\n",
		"POST http://B.example./x/%2e%2e/y HTTP/1.1\r\nHost: other\r\nAuthorization: Bearer t\r\nContent-Length: 3\r\n\r\nabc",
		"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-Api-Key: late\r\n\r\n",
		"GET /%61/b;c HTTP/1.1\r\nHost: [::1]:80\r\nCookie: a=b, SID=3\r\nCookie: SID=4\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	api, err := apidef.Decode("a", []byte(`{"api_metadata": {"url": "/", "cookie": "SID", "oauth2_access_token": true, "apikey_header": "X-Api-Key", "apikey_qs": "key"}}`))
	if err != nil {
		f.Fatal(err)
	}
	peer := netip.MustParseAddr("192.0.2.1")
	f.Fuzz(func(t *testing.T, raw []byte) {
		check := func(engine string, method, target []byte, fields []frontdoor.Field, body []byte, general bool) {
			var rd frontdoor.Reading
			if frontdoor.Read(&frontdoor.Request{Method: method, Target: target, Fields: fields, Framing: true}, &rd) != frontdoor.OK {
				return
			}
			id, fail := frontdoor.Identify(api, fields, rd.Query, &frontdoor.Client{Peer: peer})
			if fail != frontdoor.OK {
				return
			}
			head := frontdoor.AppendHead(nil, &rd, &frontdoor.Head{Method: method, Fields: fields, API: api, Peer: peer, BodyLen: int64(len(body))})
			sent := append(head, body...)
			if general {
				out := fasthttp.AcquireRequest()
				defer fasthttp.ReleaseRequest(out)
				loadHead(out, head, false)
				out.SetBodyRaw(body)
				out.URI()
				var b bytes.Buffer
				w := bufio.NewWriter(&b)
				if err := out.Write(w); err != nil {
					t.Fatalf("%s: fasthttp cannot write the head: %v", engine, err)
				}
				w.Flush()
				sent = b.Bytes()
			}
			r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(sent)))
			if err != nil {
				t.Fatalf("%s: the backend cannot read %q: %v", engine, sent, err)
			}
			if r.Host != rd.Host || r.URL.Path != rd.Path || r.URL.RawQuery != rd.Query {
				t.Fatalf("%s: the backend reads %q %q %q, the engine decided on %q %q %q", engine, r.Host, r.URL.Path, r.URL.RawQuery, rd.Host, rd.Path, rd.Query)
			}
			seen := map[string]bool{}
			for _, v := range []string{id.Token, id.Cookie, id.APIKeyName + "=" + id.APIKey} {
				seen[v] = true
			}
			for _, m := range id.More {
				if m.Kind == lists.APIKey {
					seen[m.Name+"="+m.Value] = true
				} else {
					seen[m.Value] = true
				}
			}
			want := func(what, v string) {
				if v = strings.TrimSpace(v); v != "" && !seen[v] {
					t.Fatalf("%s: the backend reads %s %q; the engine decided on %v\n%q", engine, what, v, seen, raw)
				}
			}
			for _, c := range r.Cookies() {
				if c.Name == "SID" {
					want("cookie", c.Value)
				}
			}
			for _, a := range r.Header.Values("Authorization") {
				if tok := frontdoor.BearerToken(a); tok != "" {
					want("token", tok)
				}
			}
			for _, k := range r.Header.Values("X-Api-Key") {
				if k = strings.TrimSpace(k); k != "" {
					want("api key", "x-api-key="+k)
				}
			}
			for _, k := range r.URL.Query()["key"] {
				if k != "" {
					want("query key", "key="+k)
				}
			}
		}
		var r h1.Request
		if h1.ParseRequest(raw, &r) == h1.Done && len(raw) >= r.HeadLen+int(r.ContentLength) {
			check("loops", r.Method, r.Target, r.Fields, raw[r.HeadLen:r.HeadLen+int(r.ContentLength)], false)
		}
		var req fasthttp.Request
		if err := req.Read(bufio.NewReader(bytes.NewReader(raw))); err == nil {
			fields, ok := frontdoor.ParseFields(req.Header.RawHeaders(), nil)
			if ok {
				check("general server", req.Header.Method(), req.Header.RequestURI(), fields, req.Body(), true)
			}
		}
	})
}
