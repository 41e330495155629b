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
