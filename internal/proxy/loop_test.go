package proxy

import (
	"bufio"
	"bytes"
	"net"
	"net/http"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/ase-project/ase/internal/apidef"
	"github.com/ase-project/ase/internal/h1"
)

// TestBuildRequestMatchesFasthttpPath checks that the event loops send a
// backend the same request as the fasthttp path does (prepareRequest):
// target rewritten to internal_url, hop-by-hop headers and those the
// Connection header names removed, X-Forwarded-* set, everything else
// kept.
func TestBuildRequestMatchesFasthttpPath(t *testing.T) {
	peer := netip.MustParseAddr("198.51.100.7")
	apis := []*apidef.API{
		{URL: "/"},
		{URL: "/shop", InternalURL: "/v2/store"},
		{URL: "/shop", InternalURL: "/"},
		{URL: "/", InternalURL: "/api"},
	}
	raws := []string{
		"GET /shop/cart/1?x=1&y=%20 HTTP/1.1\r\nHost: shop.example.com\r\nAccept: */*\r\n\r\n",
		"GET /shop HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /shop/ HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST /shop/order HTTP/1.1\r\nHost: a:8080\r\nContent-Type: application/json\r\nContent-Length: 7\r\n" +
			"X-Forwarded-For: 203.0.113.1\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: evil\r\n" +
			"Connection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\n" +
			"Proxy-Authorization: Basic eDp5\r\nAuthorization: Bearer t\r\nCookie: SID=1\r\n\r\n{\"a\":1}",
	}
	for _, api := range apis {
		for _, raw := range raws {
			path := raw[strings.IndexByte(raw, ' ')+1:]
			path = path[:strings.IndexAny(path, " ?")]
			if api.URL != "/" && !strings.HasPrefix(path, api.URL) {
				continue
			}
			var r h1.Request
			if h1.ParseRequest([]byte(raw), &r) != h1.Done {
				t.Fatalf("%q: not taken", raw)
			}
			loop := buildRequest(nil, &r, []byte(raw[r.HeadLen:]), api, peer)

			var req fasthttp.Request
			if err := req.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
				t.Fatal(err)
			}
			var ctx fasthttp.RequestCtx
			ctx.Init(&req, &net.TCPAddr{IP: net.IP(peer.AsSlice()), Port: 5000}, nil)
			prepareRequest(&ctx.Request, api, &ctx, "http", peer)
			// What HostClient sends: the header with the URI's request
			// URI, then the body.
			hd := &ctx.Request.Header
			hd.SetRequestURIBytes(ctx.Request.URI().RequestURI())
			fast := append(append([]byte{}, hd.Header()...), ctx.Request.Body()...)

			a, b := readBack(t, loop), readBack(t, fast)
			// fasthttp keeps the client's Connection value in the header
			// (its connection handling reads it); the loops send none.
			if a.Header.Get("Connection") != "" {
				t.Errorf("the loops sent Connection: %q", a.Header.Get("Connection"))
			}
			b.Header.Del("Connection")
			if a.RequestURI != b.RequestURI || a.Host != b.Host || a.body != b.body {
				t.Errorf("url %q internal %q, %q:\nloop %q %q %q\nfasthttp %q %q %q", api.URL, api.InternalURL, raw,
					a.RequestURI, a.Host, a.body, b.RequestURI, b.Host, b.body)
			}
			if !reflect.DeepEqual(a.Header, b.Header) {
				t.Errorf("url %q internal %q, %q: headers\nloop     %v\nfasthttp %v", api.URL, api.InternalURL, raw, a.Header, b.Header)
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
