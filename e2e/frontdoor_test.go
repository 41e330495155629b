package e2e

// One request, one reading (issue 14, points 1, 2 and 9): the host, path
// and every identity value ASE decides on are exactly what the backend
// receives, on both inline engines (the event loops, and the general
// server every connection is handed to with inline_event_loops=false) and
// in the sideband protocols.

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// wireBackend records every request as it arrived on the wire: the head
// byte for byte, and the body.
type wireBackend struct {
	ln   net.Listener
	mu   sync.Mutex
	reqs []wireRequest
}

type wireRequest struct{ head, body string }

func newWireBackend(t testing.TB) *wireBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &wireBackend{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go b.serve(c)
		}
	}()
	return b
}

func (b *wireBackend) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		var head bytes.Buffer
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			head.WriteString(line)
			if line == "\r\n" || line == "\n" {
				break
			}
		}
		// Framing as an HTTP/1.1 server reads it.
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(head.Bytes())))
		if err != nil {
			return
		}
		var body []byte
		switch {
		case len(req.TransferEncoding) > 0:
			body, err = io.ReadAll(httputil.NewChunkedReader(br))
			if err != nil {
				return
			}
			for { // trailers
				line, err := br.ReadString('\n')
				if err != nil || line == "\r\n" {
					break
				}
			}
		case req.ContentLength > 0:
			body = make([]byte, req.ContentLength)
			if _, err := io.ReadFull(br, body); err != nil {
				return
			}
		}
		b.mu.Lock()
		b.reqs = append(b.reqs, wireRequest{head.String(), string(body)})
		b.mu.Unlock()
		if _, err := c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nbackend")); err != nil {
			return
		}
	}
}

func (b *wireBackend) port() int { return b.ln.Addr().(*net.TCPAddr).Port }

func (b *wireBackend) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.reqs)
}

// since returns the requests received after the first n.
func (b *wireBackend) since(n int) []wireRequest {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]wireRequest(nil), b.reqs[n:]...)
}

func (b *wireBackend) servers() string {
	return fmt.Sprintf(`"servers": [{"host": "127.0.0.1", "port": %d}]`, b.port())
}

// exchange sends raw bytes on a new connection to the data port and reads
// one response (status, body); an empty status means the connection ended
// without one.
func exchange(t *testing.T, port, raw string) (int, string, http.Header) {
	t.Helper()
	return exchangeOver(t, func() (net.Conn, error) { return net.Dial("tcp", "127.0.0.1:"+port) }, raw)
}

// exchangeTLS is exchange over TLS (https_wss_port).
func exchangeTLS(t *testing.T, port, raw string) (int, string, http.Header) {
	t.Helper()
	return exchangeOver(t, func() (net.Conn, error) {
		return tls.Dial("tcp", "127.0.0.1:"+port, &tls.Config{InsecureSkipVerify: true})
	}, raw)
}

func exchangeOver(t *testing.T, dial func() (net.Conn, error), raw string) (int, string, http.Header) {
	t.Helper()
	c, err := dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(15 * time.Second))
	if _, err := c.Write([]byte(raw)); err != nil {
		t.Fatal(err)
	}
	method := raw[:max(strings.IndexByte(raw, ' '), 0)]
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	for err == nil && resp.StatusCode == http.StatusContinue {
		resp, err = http.ReadResponse(br, &http.Request{Method: method})
	}
	if err != nil {
		t.Fatalf("%q: no response: %v", raw, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, string(body), resp.Header
}

// headerLines returns the values of a header in a raw head, in order.
func headerLines(head, name string) []string {
	var out []string
	for _, line := range strings.Split(head, "\r\n")[1:] {
		k, v, ok := strings.Cut(line, ":")
		if ok && strings.EqualFold(k, name) {
			out = append(out, strings.TrimSpace(v))
		}
	}
	return out
}

// bothEngines runs f against an instance on the event loops and one on the
// general server, each with its own wire backend.
func bothEngines(t *testing.T, conf map[string]string, f func(t *testing.T, i *Instance, b *wireBackend)) {
	for _, loops := range []string{"true", "false"} {
		t.Run("inline_event_loops="+loops, func(t *testing.T) {
			c := map[string]string{"inline_event_loops": loops}
			for k, v := range conf {
				c[k] = v
			}
			i := startInstance(t, c)
			f(t, i, newWireBackend(t))
		})
	}
}

// TestHostDerivedOnce: the host that routes a request is the host the
// backend receives. An absolute-form target wins over Host (RFC 9112
// 3.2.2), userinfo is refused, case and a trailing dot are normalised.
func TestHostDerivedOnce(t *testing.T) {
	bothEngines(t, nil, func(t *testing.T, i *Instance, b *wireBackend) {
		wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=v1", apiDoc("/v", `"hostname": "victim.example", `+b.servers()+`, "api_pattern_enforcement": {"methods_allowed": ["POST"]}`), nil), 200, ok)
		wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=v2", apiDoc("/v", `"hostname": "*", `+b.servers()), nil), 200, ok)
		port := i.Conf["http_ws_port"]
		tests := []struct {
			name, raw string
			code      int
			host      string // what the backend must receive; "" = nothing forwarded
			target    string
		}{
			{"host header", "GET /v HTTP/1.1\r\nHost: victim.example\r\n\r\n", 401, "", ""},
			{"absolute form wins", "GET http://victim.example/v HTTP/1.1\r\nHost: other\r\n\r\n", 401, "", ""},
			{"absolute form allowed", "POST http://victim.example/v?a=1 HTTP/1.1\r\nHost: other\r\nContent-Length: 0\r\n\r\n", 200, "victim.example", "/v?a=1"},
			{"absolute form with port", "POST http://Victim.Example.:8000/v HTTP/1.1\r\nHost: other\r\nContent-Length: 0\r\n\r\n", 200, "victim.example:8000", "/v"},
			{"userinfo", "GET /v HTTP/1.1\r\nHost: x@victim.example\r\n\r\n", 400, "", ""},
			{"userinfo in target", "GET http://x@victim.example/v HTTP/1.1\r\nHost: victim.example\r\n\r\n", 400, "", ""},
			{"trailing dot", "GET /v HTTP/1.1\r\nHost: victim.example.\r\n\r\n", 401, "", ""},
			{"trailing dot allowed", "POST /v HTTP/1.1\r\nHost: victim.example.\r\nContent-Length: 0\r\n\r\n", 200, "victim.example", "/v"},
			{"upper case", "GET /v HTTP/1.1\r\nHost: VICTIM.example\r\n\r\n", 401, "", ""},
			{"two hosts", "GET /v HTTP/1.1\r\nHost: other\r\nHost: victim.example\r\n\r\n", 400, "", ""},
			{"empty host", "GET /v HTTP/1.1\r\nHost: \r\n\r\n", 400, "", ""},
			{"bad host", "GET /v HTTP/1.1\r\nHost: victim.example/x\r\n\r\n", 400, "", ""},
			{"other host", "GET /v HTTP/1.1\r\nHost: other\r\n\r\n", 200, "other", "/v"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				before := b.count()
				code, body, _ := exchange(t, port, tt.raw)
				got := b.since(before)
				if code != tt.code {
					t.Fatalf("got %d %q, want %d (backend got %q)", code, body, tt.code, got)
				}
				if tt.host == "" {
					if len(got) != 0 {
						t.Fatalf("forwarded: %q", got[0].head)
					}
					return
				}
				if len(got) != 1 {
					t.Fatalf("the backend got %d requests", len(got))
				}
				line := got[0].head[:strings.Index(got[0].head, "\r\n")]
				if hosts := headerLines(got[0].head, "Host"); len(hosts) != 1 || hosts[0] != tt.host || line != "POST "+tt.target+" HTTP/1.1" && line != "GET "+tt.target+" HTTP/1.1" {
					t.Fatalf("the backend got %q with Host %q, want %s with Host %q", line, hosts, tt.target, tt.host)
				}
				if xfh := headerLines(got[0].head, "X-Forwarded-Host"); len(xfh) != 1 || xfh[0] != tt.host {
					t.Fatalf("X-Forwarded-Host %q, want %q", xfh, tt.host)
				}
				if auth := headerLines(got[0].head, "Authorization"); len(auth) != 0 {
					t.Fatalf("an Authorization the client never sent reached the backend: %q", auth)
				}
			})
		}
	})
}

// identityAPI is an API that reads every kind of identity, with one value
// of each deny-listed.
func identityAPI(t *testing.T, i *Instance, servers string) {
	t.Helper()
	doc := apiDoc("/id", servers+`, "cookie": "SID", "oauth2_access_token": true, "apikey_header": "X-Api-Key", "apikey_qs": "key"`)
	if servers == "" {
		doc = apiDoc("/id", `"cookie": "SID", "oauth2_access_token": true, "apikey_header": "X-Api-Key", "apikey_qs": "key"`)
	}
	wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=id", doc, nil), 200, ok)
	wantStatus(t, i.Do("POST", "/v5/ase/firewall/blacklist", `[{"type": "api_key", "name": "X-Api-Key", "value": "kbad"}, {"type": "token", "value": "tbad"},
		{"type": "cookie", "name": "SID", "value": "cbad"}, {"type": "api_key", "name": "key", "value": "qbad"}]`, nil), 200, "success", "*")
}

// identityCases are requests that carry a listed value somewhere the
// backend could read it. Each must be refused.
var identityCases = []struct{ name, target, headers string }{
	{"api key alone", "/id", "X-Api-Key: kbad\r\n"},
	{"two api keys", "/id", "X-Api-Key: good\r\nX-Api-Key: kbad\r\n"},
	{"api key list", "/id", "X-Api-Key: good, kbad\r\n"},
	{"token alone", "/id", "Authorization: Bearer tbad\r\n"},
	{"two tokens", "/id", "Authorization: Bearer good\r\nAuthorization: Bearer tbad\r\n"},
	{"cookie alone", "/id", "Cookie: SID=cbad\r\n"},
	{"two cookies", "/id", "Cookie: SID=good; SID=cbad\r\n"},
	{"two cookie headers", "/id", "Cookie: SID=good\r\nCookie: a=1; SID=cbad\r\n"},
	{"query key alone", "/id?key=qbad", ""},
	{"two query keys", "/id?key=good&key=qbad", ""},
	{"semicolon query", "/id?x=1;key=qbad", ""},
	{"encoded query name", "/id?k%65y=qbad", ""},
	{"header and query", "/id?key=qbad", "X-Api-Key: good\r\n"},
}

// TestEveryIdentityValueChecked: every value of an identity that the
// backend could read is checked; trailers never become headers.
func TestEveryIdentityValueChecked(t *testing.T) {
	bothEngines(t, nil, func(t *testing.T, i *Instance, b *wireBackend) {
		identityAPI(t, i, b.servers())
		port := i.Conf["http_ws_port"]
		for _, tt := range identityCases {
			t.Run(tt.name, func(t *testing.T) {
				before := b.count()
				raw := "GET " + tt.target + " HTTP/1.1\r\nHost: a\r\n" + tt.headers + "\r\n"
				if code, body, _ := exchange(t, port, raw); code != 403 || body != "Error: Unauthorized" {
					t.Fatalf("got %d %q, want 403", code, body)
				}
				if got := b.since(before); len(got) != 0 {
					t.Fatalf("forwarded: %q", got[0].head)
				}
			})
		}
		t.Run("clean values pass", func(t *testing.T) {
			before := b.count()
			raw := "GET /id?key=good&key=fine HTTP/1.1\r\nHost: a\r\nX-Api-Key: good\r\nX-Api-Key: fine\r\nCookie: SID=good; SID=fine\r\nAuthorization: Bearer good\r\n\r\n"
			if code, body, _ := exchange(t, port, raw); code != 200 {
				t.Fatalf("got %d %q", code, body)
			}
			got := b.since(before)
			if len(got) != 1 || len(headerLines(got[0].head, "X-Api-Key")) != 2 {
				t.Fatalf("the backend got %q", got)
			}
		})
		t.Run("trailer not promoted", func(t *testing.T) {
			before := b.count()
			raw := "POST /id HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTrailer: X-Api-Key\r\n\r\n4\r\nabcd\r\n0\r\nX-Api-Key: kbad\r\n\r\n"
			code, body, _ := exchange(t, port, raw)
			got := b.since(before)
			if code == 200 && (len(got) != 1 || strings.Contains(got[0].head, "kbad") || got[0].body != "abcd") {
				t.Fatalf("the backend got %q", got)
			}
			if code != 200 && code != 400 {
				t.Fatalf("got %d %q", code, body)
			}
		})
	})
}

// TestSidebandReadsLikeInline: the sideband protocols derive the host and
// the identities with the same rules.
func TestSidebandReadsLikeInline(t *testing.T) {
	i := startInstance(t, map[string]string{"mode": "sideband"})
	identityAPI(t, i, "")
	wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=v1", apiDoc("/v", `"hostname": "victim.example", "api_pattern_enforcement": {"methods_allowed": ["POST"]}`), nil), 200, ok)
	wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=v2", apiDoc("/v", `"hostname": "*"`), nil), 200, ok)

	// The ASE protocol.
	hostCases := []struct {
		name, url, headers, decision string
	}{
		{"absolute url wins", "http://victim.example/v", `{"host": "other"}`, "block"},
		{"trailing dot", "/v", `{"host": "victim.example."}`, "block"},
		{"upper case", "/v", `{"host": "VICTIM.EXAMPLE"}`, "block"},
		{"userinfo", "/v", `{"host": "x@victim.example"}`, "block"},
		{"two hosts", "/v", `{"host": "other"}, {"host": "victim.example"}`, "block"},
		{"other", "/v", `{"host": "other"}`, "allow"},
	}
	for _, tt := range hostCases {
		r := i.Data("POST", "/ase/request", aseCall("192.0.2.1", "GET", tt.url, tt.headers), nil)
		var d struct{ Decision, Reason string }
		decode(t, r, &d)
		if d.Decision != tt.decision {
			t.Errorf("ASE protocol, %s: got %d %s", tt.name, r.Code, r.Body)
		}
	}
	// The Authorize protocol answers with the client's response: 400 for a
	// request read two ways, 403 for a listed value in any position.
	wantJSON(t, i.Data("POST", "/sideband/request", `{"source_ip": "192.0.2.1", "method": "GET", "url": "/v", "headers": [{"host": "a"}, {"host": "victim.example"}], "body": ""}`, nil), 200,
		`{"response": {"response_code": "400", "response_status": "Bad Request", "headers": [{"content-type": "text/plain"}], "body": "Error: Bad Request"}}`)
	wantJSON(t, i.Data("POST", "/sideband/request", `{"source_ip": "192.0.2.1", "method": "GET", "url": "/id?key=good&key=qbad", "headers": [{"host": "a"}], "body": ""}`, nil), 200,
		`{"response": {"response_code": "403", "response_status": "Forbidden", "headers": [{"content-type": "text/plain"}], "body": "Error: Unauthorized"}}`)
	for _, tt := range identityCases {
		var hs []string
		for _, line := range strings.Split(strings.TrimSuffix(tt.headers, "\r\n"), "\r\n") {
			if k, v, ok := strings.Cut(line, ": "); ok {
				hs = append(hs, fmt.Sprintf(`{%q: %q}`, k, v))
			}
		}
		hs = append(hs, `{"host": "a"}`)
		r := i.Data("POST", "/ase/request", aseCall("192.0.2.1", "GET", tt.target, strings.Join(hs, ", ")), nil)
		if r.Code != 403 {
			t.Errorf("ASE protocol, %s: got %d %s", tt.name, r.Code, r.Body)
		}
		// Forward-auth: the gateway passes the client's headers on.
		req, _ := http.NewRequest("GET", i.dataURL()+"/ase/authz", nil)
		req.Header.Set("X-Original-URI", tt.target)
		for _, line := range strings.Split(strings.TrimSuffix(tt.headers, "\r\n"), "\r\n") {
			if k, v, ok := strings.Cut(line, ": "); ok {
				req.Header.Add(k, v)
			}
		}
		if r := i.send(req); r.Code != 403 {
			t.Errorf("forward-auth, %s: got %d %s", tt.name, r.Code, r.Body)
		}
	}
	for _, tt := range []struct{ name, host string }{
		{"trailing dot", "victim.example."}, {"userinfo", "x@victim.example"}, {"two hosts", "other, victim.example"},
	} {
		req, _ := http.NewRequest("GET", i.dataURL()+"/ase/authz", nil)
		req.Header.Set("X-Original-URI", "/v")
		req.Header.Set("X-Forwarded-Host", tt.host)
		if r := i.send(req); r.Code != 403 {
			t.Errorf("forward-auth, %s: got %d %s", tt.name, r.Code, r.Body)
		}
	}
}

// TestDataPortFraming: what the general server used to add or pass on
// unchanged, and the timeouts of connections that send nothing or bare
// line ends.
func TestDataPortFraming(t *testing.T) {
	bothEngines(t, map[string]string{"read_timeout": "1s", "idle_timeout": "1h"}, func(t *testing.T, i *Instance, b *wireBackend) {
		wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=api", apiDoc("/", b.servers()), nil), 200, ok)
		port := i.Conf["http_ws_port"]
		t.Run("nothing added, length normalised", func(t *testing.T) {
			for _, raw := range []string{
				"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 005\r\n\r\nabcde",
				"POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\n0\r\n\r\n",
				"POST /p HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nabcde",
			} {
				before := b.count()
				if code, body, _ := exchange(t, port, raw); code != 200 {
					t.Fatalf("%q: got %d %q", raw, code, body)
				}
				got := b.since(before)
				if len(got) != 1 || got[0].body != "abcde" {
					t.Fatalf("%q: the backend got %q", raw, got)
				}
				h := got[0].head
				if cl := headerLines(h, "Content-Length"); len(cl) != 1 || cl[0] != "5" {
					t.Errorf("%q: Content-Length %q, want 5", raw, cl)
				}
				for _, name := range []string{"User-Agent", "Content-Type", "Transfer-Encoding", "Expect"} {
					if v := headerLines(h, name); len(v) != 0 {
						t.Errorf("%q: the backend got %s %q the client never sent or that is not forwarded", raw, name, v)
					}
				}
			}
		})
		t.Run("transfer-encoding identity", func(t *testing.T) {
			before := b.count()
			code, _, _ := exchange(t, port, "POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\nabcde")
			if code != 501 || b.count() != before {
				t.Fatalf("got %d, forwarded %d", code, b.count()-before)
			}
		})
		t.Run("bare line ends answered at once", func(t *testing.T) {
			c, err := net.Dial("tcp", "127.0.0.1:"+port)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.Write([]byte("GET /p HTTP/1.1\nHost: a\n\n"))
			// read_timeout is 1s; an answer only after it is a 408.
			c.SetReadDeadline(time.Now().Add(30 * time.Second))
			line, err := bufio.NewReader(c).ReadString('\n')
			if err != nil || strings.Contains(line, "408") {
				t.Fatalf("got %q %v, want an answer to the request itself", line, err)
			}
		})
		t.Run("silent connection closed after read_timeout", func(t *testing.T) {
			c, err := net.Dial("tcp", "127.0.0.1:"+port)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			// idle_timeout is 1h: only read_timeout can end it.
			c.SetReadDeadline(time.Now().Add(30 * time.Second))
			n, err := c.Read(make([]byte, 1))
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatal("a connection that sent nothing was kept past read_timeout")
			}
			_ = n
		})
	})
}

// accessLines returns the access log lines written so far.
func accessLines(t *testing.T, i *Instance) int {
	return len(accessLog(t, i, 0, func(map[string]any) bool { return true }))
}

// TestInlineEnginesAgree runs every inline case on both engines and
// compares what the client got, what the backend received and the access
// log line.
func TestInlineEnginesAgree(t *testing.T) {
	type outcome struct {
		code     int
		body     string
		forwards []wireRequest
		log      map[string]any
	}
	var cases []string
	for _, tt := range identityCases {
		cases = append(cases, "GET "+tt.target+" HTTP/1.1\r\nHost: a\r\n"+tt.headers+"\r\n")
	}
	cases = append(cases,
		"GET /v HTTP/1.1\r\nHost: victim.example\r\n\r\n",
		"GET http://victim.example/v HTTP/1.1\r\nHost: other\r\n\r\n",
		"POST http://victim.example/v?a=1 HTTP/1.1\r\nHost: other\r\nContent-Length: 3\r\n\r\nabc",
		"GET /v HTTP/1.1\r\nHost: x@victim.example\r\n\r\n",
		"POST /v HTTP/1.1\r\nHost: Victim.Example.\r\nContent-Length: 0\r\n\r\n",
		"GET /v HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
		"GET /id/x?key=good&key=fine HTTP/1.1\r\nHost: a\r\nX-Api-Key: good\r\nX-Api-Key: fine\r\nCookie: SID=good\r\nCookie: SID=fine\r\n\r\n",
		"POST /id/x HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: 5\r\nTE: trailers\r\nProxy-Authorization: Basic eDp5\r\n"+
			"X-Forwarded-For: 203.0.113.1\r\nX-Forwarded-For: 203.0.113.2\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: evil\r\nContent-Length: 003\r\n\r\nabc",
		"POST /id/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-Api-Key: kbad\r\n\r\n",
		"POST /id/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n",
		"POST /id/x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"GET /id/a/../b/./c//d HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /id/%61%2Fb%3Fc%20d HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /id/a%5Cb HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /v/../id HTTP/1.1\r\nHost: victim.example\r\n\r\n",
		"DELETE /id/x HTTP/1.1\r\nHost: a\r\nContent-Type: text/plain\r\nContent-Type: application/json\r\n\r\n",
		"GET /nothing HTTP/1.1\r\nHost: nowhere\r\n\r\n",
		"POST /id/logged?q=1&r=%20 HTTP/1.1\r\nHost: Logged.Example\r\nUser-Agent: agent/1.0\r\nX-Request-ID: forged\r\nContent-Length: 5\r\n\r\nhello",
		"HEAD /id/head HTTP/1.1\r\nHost: a\r\n\r\n",
	)
	results := map[string][]outcome{}
	// Both ports: the loops serve TLS too (looptls.go), and must agree
	// with the general server there as well.
	bothEngines(t, map[string]string{"https_wss_port": strconv.Itoa(freePort(t))}, func(t *testing.T, i *Instance, b *wireBackend) {
		identityAPI(t, i, b.servers())
		wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=v1", apiDoc("/v", `"hostname": "victim.example", `+b.servers()+`, "api_pattern_enforcement": {"methods_allowed": ["POST"]}`), nil), 200, ok)
		wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=v2", apiDoc("/v", `"hostname": "other", `+b.servers()), nil), 200, ok)
		var out []outcome
		for n := range 2 * len(cases) {
			raw := cases[n%len(cases)]
			lines := accessLines(t, i)
			before := b.count()
			var code int
			var body string
			if n < len(cases) {
				code, body, _ = exchange(t, i.Conf["http_ws_port"], raw)
			} else {
				code, body, _ = exchangeTLS(t, i.Conf["https_wss_port"], raw)
			}
			o := outcome{code: code, body: body, forwards: b.since(before)}
			logs := accessLog(t, i, lines+1, func(map[string]any) bool { return true })
			if len(logs) != lines+1 {
				t.Fatalf("%q: %d access log lines, want %d", raw, len(logs), lines+1)
			}
			o.log = logs[lines]
			for _, k := range []string{"time", "latency_us"} {
				delete(o.log, k)
			}
			// Request ids are random: the backend's must be the log's.
			if id, ok := o.log["request_id"].(string); ok {
				for k, f := range o.forwards {
					if !strings.Contains(f.head, "X-Request-ID: "+id+"\r\n") {
						t.Fatalf("%q: the backend did not get the logged request id %s: %q", raw, id, f.head)
					}
					o.forwards[k].head = strings.Replace(f.head, id, "(request id)", 1)
				}
				o.log["request_id"] = "(request id)"
			}
			if o.log["backend"] != nil {
				o.log["backend"] = "(the backend)" // each engine has its own
			}
			out = append(out, o)
		}
		results[t.Name()] = out
	})
	if len(results) != 2 {
		t.Fatal("an engine did not run")
	}
	loops, general := results[t.Name()+"/inline_event_loops=true"], results[t.Name()+"/inline_event_loops=false"]
	for n := range 2 * len(cases) {
		raw := cases[n%len(cases)]
		if n >= len(cases) {
			raw = "(TLS) " + raw
		}
		a, b := loops[n], general[n]
		if a.code != b.code || a.body != b.body {
			t.Errorf("%q: loops answered %d %q, the general server %d %q", raw, a.code, a.body, b.code, b.body)
		}
		if fmt.Sprint(a.forwards) != fmt.Sprint(b.forwards) {
			t.Errorf("%q: the backend got\nfrom the loops          %q\nfrom the general server %q", raw, a.forwards, b.forwards)
		}
		if fmt.Sprint(a.log) != fmt.Sprint(b.log) {
			t.Errorf("%q: access log\nloops          %v\ngeneral server %v", raw, a.log, b.log)
		}
	}
}

// TestAccessLogFields: the access log records the host, query, user agent,
// body bytes each way and the request id the backend got (issue 16, point
// 12); a client's own X-Request-ID is replaced, never passed on.
func TestAccessLogFields(t *testing.T) {
	bothEngines(t, nil, func(t *testing.T, i *Instance, b *wireBackend) {
		wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=api", apiDoc("/", b.servers()), nil), 200, ok)
		before := b.count()
		code, body, _ := exchange(t, i.Conf["http_ws_port"], "POST /p?x=1 HTTP/1.1\r\nHost: Shop.Example\r\nUser-Agent: agent/2\r\nX-Request-ID: forged-by-client\r\nContent-Length: 3\r\n\r\nabc")
		if code != 200 || body != "backend" {
			t.Fatalf("got %d %q", code, body)
		}
		got := b.since(before)
		ids := headerLines(got[0].head, "X-Request-ID")
		if len(ids) != 1 || ids[0] == "forged-by-client" || len(ids[0]) != 32 {
			t.Fatalf("the backend got X-Request-ID %q", ids)
		}
		lines := accessLog(t, i, 1, func(l map[string]any) bool { return l["path"] == "/p" })
		l := lines[0]
		want := map[string]any{"host": "shop.example", "query": "x=1", "user_agent": "agent/2", "bytes_in": 3.0, "bytes_out": 7.0, "request_id": ids[0]}
		for k, v := range want {
			if l[k] != v {
				t.Errorf("access log %s = %v, want %v (line %v)", k, l[k], v, l)
			}
		}
	})
}
