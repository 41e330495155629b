package e2e

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// backend is a test API server that records what reaches it.
type backend struct {
	*httptest.Server
	name   string
	mu     sync.Mutex
	reqs   []*http.Request
	bodies []string // bodies[i] is what reqs[i] carried, as the backend read it
}

func newBackend(t *testing.T, name string, tlsOn bool) *backend {
	t.Helper()
	b := &backend{name: name}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := b.record(r)
		if r.URL.Path == "/ws" || strings.HasSuffix(r.URL.Path, "/ws") {
			echoWebSocket(w, r)
			return
		}
		body, _ := io.ReadAll(r.Body)
		b.mu.Lock()
		b.bodies[n] = string(body)
		b.mu.Unlock()
		w.Header().Set("X-Backend", name)
		w.Header().Set("Keep-Alive", "timeout=5") // hop-by-hop: must not reach the client
		fmt.Fprintf(w, "%s %s %s body=%s", name, r.Method, r.URL.RequestURI(), body)
	})
	if tlsOn {
		b.Server = httptest.NewTLSServer(h)
	} else {
		b.Server = httptest.NewServer(h)
	}
	t.Cleanup(b.Close)
	return b
}

// record notes r as it arrives (its body is filled in once read) and
// returns its index.
func (b *backend) record(r *http.Request) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.reqs = append(b.reqs, r.Clone(context.Background()))
	b.bodies = append(b.bodies, "")
	return len(b.reqs) - 1
}

// lastBody is the body of the last request that reached the backend.
func (b *backend) lastBody() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.bodies) == 0 {
		return ""
	}
	return b.bodies[len(b.bodies)-1]
}

func (b *backend) port() int { return b.Listener.Addr().(*net.TCPAddr).Port }

func (b *backend) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.reqs)
}

func (b *backend) last() *http.Request {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.reqs) == 0 {
		return nil
	}
	return b.reqs[len(b.reqs)-1]
}

func echoWebSocket(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer c.CloseNow()
	c.SetReadLimit(1 << 20)
	for {
		typ, msg, err := c.Read(r.Context())
		if err != nil {
			return
		}
		if string(msg) == "close, please" {
			c.Close(websocket.StatusGoingAway, "closing from the backend")
			return
		}
		if err := c.Write(r.Context(), typ, append([]byte("echo: "), msg...)); err != nil {
			return
		}
	}
}

func servers(bs ...*backend) string {
	var parts []string
	for _, b := range bs {
		parts = append(parts, fmt.Sprintf(`{"host": "127.0.0.1", "port": %d}`, b.port()))
	}
	return `"servers": [` + strings.Join(parts, ", ") + `]`
}

// get sends a request to the inline data port and returns the reply.
func (i *Instance) get(method, path string, headers map[string]string) Reply {
	i.t.Helper()
	return i.Data(method, path, "", headers)
}

func TestInlineRoutingAndBackends(t *testing.T) {
	a, b := newBackend(t, "a", false), newBackend(t, "b", false)
	i := startInstance(t, nil)
	wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=shop", apiDoc("/shop", servers(a, b)+`, "api_mapping": {"internal_url": "/internal/v2"}`), nil), 200, ok)
	wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=cart", apiDoc("/shop/cart", servers(b)), nil), 200, ok)
	wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=host", apiDoc("/", `"hostname": "api.example.com", `+servers(a)), nil), 200, ok)

	// Round-robin over both servers, the url prefix rewritten.
	seen := map[string]int{}
	for n := 0; n < 10; n++ {
		r := i.get("GET", "/shop/items?x=1", nil)
		if r.Code != 200 || !strings.HasSuffix(string(r.Body), "GET /internal/v2/items?x=1 body=") {
			t.Fatalf("got %d %s", r.Code, r.Body)
		}
		seen[r.Header.Get("X-Backend")]++
		if r.Header.Get("Keep-Alive") != "" {
			t.Fatal("a hop-by-hop header of the backend reached the client")
		}
	}
	if seen["a"] != 5 || seen["b"] != 5 {
		t.Fatalf("round-robin gave %v", seen)
	}
	// Longest prefix on a segment boundary; /shopping is not /shop.
	if r := i.get("GET", "/shop/cart/1", nil); r.Header.Get("X-Backend") != "b" || !strings.Contains(string(r.Body), "GET /shop/cart/1") {
		t.Fatalf("got %s", r.Body)
	}
	if r := i.get("GET", "/shopping", nil); r.Code != 503 || string(r.Body) != "Error: Unknown API" {
		t.Fatalf("got %d %s", r.Code, r.Body)
	}
	if r := i.get("GET", "/x", map[string]string{"Host": "api.example.com"}); r.Code != 200 || r.Header.Get("X-Backend") != "a" {
		t.Fatalf("got %d %s", r.Code, r.Body)
	}

	// What the backend receives: the client's Host, forwarding headers,
	// no hop-by-hop headers.
	i.get("GET", "/shop/h", map[string]string{"Host": "shop.example.com", "Connection": "keep-alive, X-Secret-Hop", "X-Secret-Hop": "1", "Proxy-Authorization": "Basic x", "X-Forwarded-For": "10.9.9.9"})
	last := a.last()
	if b.count() > 0 && b.last().URL.Path == "/internal/v2/h" {
		last = b.last()
	}
	if last.Host != "shop.example.com" || last.Header.Get("X-Forwarded-Host") != "shop.example.com" || last.Header.Get("X-Forwarded-Proto") != "http" ||
		last.Header.Get("X-Forwarded-For") != "10.9.9.9, 127.0.0.1" || last.Header.Get("X-Secret-Hop") != "" || last.Header.Get("Proxy-Authorization") != "" {
		t.Fatalf("backend got Host %q and headers %v", last.Host, last.Header)
	}

	// A server added through the management API is used at once; a removed
	// one is dropped at once.
	c := newBackend(t, "c", false)
	wantJSON(t, i.Do("POST", "/v5/ase/server?api_id=cart", fmt.Sprintf(`{"server": {"host": "127.0.0.1", "port": %d}}`, c.port()), nil), 200, ok)
	i.get("GET", "/shop/cart/1", nil)
	i.get("GET", "/shop/cart/1", nil)
	if c.count() != 1 {
		t.Fatalf("the new server got %d of 2 requests", c.count())
	}
	wantJSON(t, i.Do("DELETE", "/v5/ase/server?api_id=cart", fmt.Sprintf(`{"server": {"host": "127.0.0.1", "port": %d}}`, b.port()), nil), 200, ok)
	before := b.count()
	for n := 0; n < 4; n++ {
		if r := i.get("GET", "/shop/cart/1", nil); r.Header.Get("X-Backend") != "c" {
			t.Fatalf("got %s", r.Body)
		}
	}
	if b.count() != before {
		t.Fatal("a removed server still gets requests")
	}

	// Access log.
	lines := accessLog(t, i, 1, func(l map[string]any) bool { return l["path"] == "/shop/cart/1" && l["backend"] != "" })
	l := lines[len(lines)-1]
	if l["protocol"] != "inline" || l["api_id"] != "cart" || l["decision"] != "allow" || l["status"] != 200.0 || l["client_ip"] != "127.0.0.1" || l["latency_us"] == nil {
		t.Fatalf("got %v", l)
	}
}

func TestInlineUnknownHostname(t *testing.T) {
	i := startInstance(t, nil)
	wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=only", apiDoc("/", `"hostname": "only.example.com"`), nil), 200, ok)
	if r := i.get("GET", "/", map[string]string{"Host": "other.example.com"}); r.Code != 503 || string(r.Body) != "Error: Unknown Hostname" {
		t.Fatalf("got %d %s", r.Code, r.Body)
	}
	if r := i.get("GET", "/", map[string]string{"Host": "only.example.com"}); r.Code != 503 || string(r.Body) != "Error: No Server Available" {
		t.Fatalf("an API without servers: got %d %s", r.Code, r.Body)
	}
}

func TestInlineFailover(t *testing.T) {
	live := newBackend(t, "live", false)
	dead := newBackend(t, "dead", false)
	deadPort := dead.port()
	dead.Close()
	i := startInstance(t, nil)
	doc := apiDoc("/api", fmt.Sprintf(`"servers": [{"host": "127.0.0.1", "port": %d}, {"host": "127.0.0.1", "port": %d}]`, deadPort, live.port()))
	wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=api", doc, nil), 200, ok)
	// Without health checks the dead server is still Up: an idempotent
	// request that hits it is retried on the other server.
	for n := 0; n < 4; n++ {
		if r := i.get("GET", "/api/x", nil); r.Code != 200 || r.Header.Get("X-Backend") != "live" {
			t.Fatalf("GET %d: got %d %s", n, r.Code, r.Body)
		}
	}
	// A POST is not retried: one of two goes to the dead server and fails.
	codes := map[int]int{}
	for n := 0; n < 4; n++ {
		codes[i.Data("POST", "/api/x", "data", map[string]string{"Content-Type": "text/plain"}).Code]++
	}
	if codes[200] != 2 || codes[502] != 2 {
		t.Fatalf("POSTs: got %v, want two 200 and two 502", codes)
	}
	// With health checks the dead server goes Down and gets nothing. (A
	// probe's timeout is the interval: 3 s, so that a probe of the live
	// server on a busy machine does not take it Down.)
	doc = apiDoc("/api", fmt.Sprintf(`"health_check": true, "health_check_interval": 3, "health_retry_count": 1, "servers": [{"host": "127.0.0.1", "port": %d}, {"host": "127.0.0.1", "port": %d}]`, deadPort, live.port()))
	wantJSON(t, i.Do("PUT", "/v5/ase/api?api_id=api", doc, nil), 200, ok)
	waitUntil(t, func() bool {
		out, _, _ := i.CLI("", "health_status", "api")
		return hasLine(out, fmt.Sprintf("server 127.0.0.1:%d Down", deadPort)) && hasLine(out, fmt.Sprintf("server 127.0.0.1:%d Up", live.port()))
	})
	for n := 0; n < 4; n++ {
		if r := i.Data("POST", "/api/x", "data", map[string]string{"Content-Type": "text/plain"}); r.Code != 200 {
			t.Fatalf("POST with the dead server Down: got %d", r.Code)
		}
	}
	// Everything down: 503.
	live.Close()
	eventually(t, "503 once every server is down", func() bool { return i.get("GET", "/api/x", nil).Code == 503 })
	if r := i.get("GET", "/api/x", nil); string(r.Body) != "Error: No Server Available" {
		t.Fatalf("got %s", r.Body)
	}
}

func TestInlineCookiePersistence(t *testing.T) {
	a, b, c := newBackend(t, "a", false), newBackend(t, "b", false), newBackend(t, "c", false)
	i := startInstance(t, nil)
	wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=app", apiDoc("/app", `"cookie": "SID", "cookie_persistence_enabled": true, `+servers(a, b, c)), nil), 200, ok)
	spread := map[string]bool{}
	for s := 0; s < 12; s++ {
		cookie := fmt.Sprintf("SID=session-%d", s)
		first := i.get("GET", "/app", map[string]string{"Cookie": cookie}).Header.Get("X-Backend")
		spread[first] = true
		for n := 0; n < 5; n++ {
			if got := i.get("GET", "/app", map[string]string{"Cookie": cookie}).Header.Get("X-Backend"); got != first {
				t.Fatalf("session %d moved from %s to %s", s, first, got)
			}
		}
	}
	if len(spread) < 2 {
		t.Fatalf("12 sessions all landed on %v", spread)
	}
}

// selfSigned makes a certificate no test CA file trusts.
func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "untrusted"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// writeCA writes a test server's certificate as a PEM file.
func writeCA(t *testing.T, s *httptest.Server) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate().Raw})
	if err := os.WriteFile(path, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestInlineTLSBothSides(t *testing.T) {
	secure := newBackend(t, "secure", true)
	i := newInstance(t, map[string]string{"server_ca_cert_path": writeCA(t, secure.Server), "https_wss_port": strconv.Itoa(freePort(t))})
	i.Start()
	wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=s", apiDoc("/s", `"server_ssl": true, `+servers(secure)), nil), 200, ok)
	// Client to ASE over TLS (the self-signed certificate ASE made), ASE to
	// the backend over TLS verified against server_ca_cert_path.
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := client.Get("https://127.0.0.1:" + i.Conf["https_wss_port"] + "/s/x")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "secure GET /s/x") || secure.last().Header.Get("X-Forwarded-Proto") != "https" {
		t.Fatalf("got %d %s", resp.StatusCode, body)
	}
	if resp.TLS == nil {
		t.Fatal("the data port did not speak TLS")
	}
	// A backend whose certificate is not trusted is refused. (Every
	// httptest TLS server shares one certificate: this one gets its own.)
	other := newBackend(t, "untrusted", false)
	other.Close()
	other.Server = httptest.NewUnstartedServer(other.Config.Handler)
	other.TLS = &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}}
	other.StartTLS()
	wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=u", apiDoc("/u", `"server_ssl": true, `+servers(other)), nil), 200, ok)
	if r := i.get("GET", "/u/x", nil); r.Code != 502 || other.count() != 0 {
		t.Fatalf("untrusted backend: got %d, backend saw %d", r.Code, other.count())
	}
}

func TestInlinePatternsAndDecoys(t *testing.T) {
	a := newBackend(t, "a", false)
	i := startInstance(t, nil)
	doc := apiDoc("/shop", servers(a)+`, "api_pattern_enforcement": {"methods_allowed": ["GET", "POST"], "content_type_allowed": "application/json",
		"error_code": "405", "error_def": "Method Not Allowed", "error_message_body": "{\"error\": \"not here\"}"},
		"decoy_config": {"decoy_enabled": true, "decoy_subpaths": ["/admin", "/.git"], "response_code": 200, "response_def": "OK", "response_message": "<h1>admin</h1>"}`)
	wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=shop", doc, nil), 200, ok)
	wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=secure", apiDoc("/secure", servers(a)+`, "api_pattern_enforcement": {"protocol_allowed": "https", "http_redirect": {"response_code": "301", "response_def": "Moved Permanently", "https_url": "https://secure.example.com"}}`), nil), 200, ok)
	wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=tlsonly", apiDoc("/tlsonly", servers(a)+`, "api_pattern_enforcement": {"protocol_allowed": "https", "error_code": "403", "error_def": "Forbidden", "error_message_body": "use https"}`), nil), 200, ok)
	wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=trap", apiDoc("/wp-admin", `"decoy_config": {"decoy_enabled": true, "response_code": 404, "response_message": "nothing"}`), nil), 200, ok)

	tests := []struct {
		name, method, path, ctype, body string
		code                            int
		status, wantBody, location      string
	}{
		{"method", "DELETE", "/shop/1", "", "", 405, "405 Method Not Allowed", `{"error": "not here"}`, ""},
		{"content type", "POST", "/shop/1", "text/xml", "<x/>", 405, "405 Method Not Allowed", `{"error": "not here"}`, ""},
		{"allowed", "POST", "/shop/1", "application/json; charset=utf-8", "{}", 200, "200 OK", "", ""},
		{"decoy", "GET", "/shop/admin/users", "", "", 200, "200 OK", "<h1>admin</h1>", ""},
		{"decoy .git", "GET", "/shop/.git/config", "", "", 200, "200 OK", "<h1>admin</h1>", ""},
		{"out of context decoy", "GET", "/wp-admin/login.php", "", "", 404, "404 Not Found", "nothing", ""},
		{"redirect", "GET", "/secure/a?b=1", "", "", 301, "301 Moved Permanently", "", "https://secure.example.com/secure/a?b=1"},
		{"protocol", "GET", "/tlsonly/a", "", "", 403, "403 Forbidden", "use https", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := a.count()
			req, _ := http.NewRequest(tt.method, i.dataURL()+tt.path, strings.NewReader(tt.body))
			if tt.ctype != "" {
				req.Header.Set("Content-Type", tt.ctype)
			}
			resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.code || resp.Status != tt.status || (tt.wantBody != "" && string(body) != tt.wantBody) || resp.Header.Get("Location") != tt.location {
				t.Fatalf("got %s %q location %q", resp.Status, body, resp.Header.Get("Location"))
			}
			forwarded := a.count() > before
			if forwarded != (tt.code == 200 && tt.name == "allowed") {
				t.Fatalf("forwarded=%v", forwarded)
			}
		})
	}
}

func TestInlineDenyListAndXFF(t *testing.T) {
	a := newBackend(t, "a", false)
	i := startInstance(t, map[string]string{"enable_xff": "true"})
	wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=api", apiDoc("/", servers(a)+`, "oauth2_access_token": true`), nil), 200, ok)
	wantStatus(t, i.Do("POST", "/v5/ase/firewall/blacklist", `[{"type": "ip", "value": "203.0.113.0/24"}, {"type": "token", "value": "stolen"}]`, nil), 200, "success", "*")
	tests := []struct {
		name    string
		headers map[string]string
		code    int
	}{
		{"clean", nil, 200},
		{"right-most xff listed", map[string]string{"X-Forwarded-For": "10.0.0.1, 203.0.113.9"}, 403},
		{"spoofed left xff", map[string]string{"X-Forwarded-For": "203.0.113.9, 10.0.0.1"}, 200},
		{"x-real-ip listed", map[string]string{"X-Real-IP": "203.0.113.200"}, 403},
		{"token", map[string]string{"Authorization": "Bearer stolen"}, 403},
	}
	for _, tt := range tests {
		r := i.get("GET", "/x", tt.headers)
		if r.Code != tt.code || (tt.code == 403 && string(r.Body) != "Error: Unauthorized") {
			t.Fatalf("%s: got %d %s", tt.name, r.Code, r.Body)
		}
	}
}

func TestInlineWebSocket(t *testing.T) {
	a := newBackend(t, "a", false)
	i := newInstance(t, map[string]string{"https_wss_port": strconv.Itoa(freePort(t))})
	i.Start()
	wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=chat", apiDoc("/chat", `"protocol": "ws", `+servers(a)), nil), 200, ok)
	counts := func() string {
		r := i.Do("GET", "/v5/ase/persistentconnection?api_id=chat", "", nil)
		var c struct {
			Count struct{ WS, WSS int } `json:"persistent_connection_count"`
		}
		decode(t, r, &c)
		return fmt.Sprintf("ws=%d wss=%d", c.Count.WS, c.Count.WSS)
	}
	ctx := context.Background()
	for _, tt := range []struct{ url, count string }{
		{"ws://127.0.0.1:" + i.Conf["http_ws_port"] + "/chat/ws", "ws=1 wss=0"},
		{"wss://127.0.0.1:" + i.Conf["https_wss_port"] + "/chat/ws", "ws=0 wss=1"},
	} {
		c, _, err := websocket.Dial(ctx, tt.url, &websocket.DialOptions{HTTPClient: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}})
		if err != nil {
			t.Fatalf("%s: %v", tt.url, err)
		}
		c.SetReadLimit(1 << 20)
		for n := 0; n < 3; n++ {
			msg := fmt.Sprintf("hello %d", n)
			if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
				t.Fatal(err)
			}
			_, got, err := c.Read(ctx)
			if err != nil || string(got) != "echo: "+msg {
				t.Fatalf("got %q %v", got, err)
			}
		}
		big := strings.Repeat("x", 200_000)
		c.Write(ctx, websocket.MessageBinary, []byte(big))
		if _, got, err := c.Read(ctx); err != nil || len(got) != len(big)+6 {
			t.Fatalf("a 200 KB frame: got %d bytes, %v", len(got), err)
		}
		if got := counts(); got != tt.count {
			t.Fatalf("while open: %s, want %s", got, tt.count)
		}
		// A clean close from the client side: the backend's close frame
		// comes back through ASE.
		if err := c.Close(websocket.StatusNormalClosure, "bye"); err != nil {
			t.Fatalf("close handshake: %v", err)
		}
		waitUntil(t, func() bool { return counts() == "ws=0 wss=0" })
	}
	// A clean close from the backend side reaches the client.
	c, _, err := websocket.Dial(ctx, "ws://127.0.0.1:"+i.Conf["http_ws_port"]+"/chat/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Write(ctx, websocket.MessageText, []byte("close, please"))
	_, _, err = c.Read(ctx)
	if websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Fatalf("got %v, want the backend's close frame (going away)", err)
	}
	waitUntil(t, func() bool { return counts() == "ws=0 wss=0" })
	// A plain request to the WebSocket API is still forwarded.
	if r := i.get("GET", "/chat/history", nil); r.Code != 200 {
		t.Fatalf("got %d", r.Code)
	}
}

// rawExchange sends raw bytes to the data port and returns the status line
// of the answer.
func rawExchange(t *testing.T, i *Instance, raw string) string {
	t.Helper()
	c, err := net.Dial("tcp", "127.0.0.1:"+i.Conf["http_ws_port"])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Write([]byte(raw))
	line, _ := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line)
}

// rawResponse sends raw bytes to the data port and returns the whole
// answer, its body read.
func rawResponse(t *testing.T, i *Instance, raw string) (*http.Response, string) {
	t.Helper()
	c, err := net.Dial("tcp", "127.0.0.1:"+i.Conf["http_ws_port"])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte(raw)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the answer's body: %v", err)
	}
	return resp, string(body)
}

func TestInlineHTTPHygiene(t *testing.T) {
	a := newBackend(t, "a", false)
	i := startInstance(t, map[string]string{"max_request_body": "64kb", "max_request_header": "4kb", "read_timeout": "2s"})
	wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=api", apiDoc("/", servers(a)), nil), 200, ok)
	tests := []struct{ name, raw, status string }{
		{"cl and te", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "HTTP/1.1 400 Bad Request"},
		{"te and cl", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n", "HTTP/1.1 400 Bad Request"},
		{"two lengths", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde", "HTTP/1.1 400 Bad Request"},
		{"obs fold", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n", "HTTP/1.1 400 Bad Request"},
		{"space in name", "GET / HTTP/1.1\r\nHost: a\r\nX A: b\r\n\r\n", "HTTP/1.1 400 Bad Request"},
		{"bad te", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", "HTTP/1.1 400 Bad Request"},
		{"no host", "GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 400 Bad Request"},
		{"huge header", "GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + strings.Repeat("x", 8000) + "\r\n\r\n", "HTTP/1.1 431 Request Header Fields Too Large"},
		{"huge body", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n" + strings.Repeat("x", 100000), "HTTP/1.1 413 Request Entity Too Large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := a.count()
			if got := rawExchange(t, i, tt.raw); got != tt.status {
				t.Fatalf("got %q, want %q", got, tt.status)
			}
			if a.count() != before {
				t.Fatalf("a malformed request reached the backend")
			}
		})
	}

	// A chunked body reaches the backend whole, and the client gets the
	// backend's own answer (not merely a 200 status line).
	for _, chunks := range []string{"4\r\nabcd\r\n0\r\n\r\n", "1\r\na\r\n3;ext=1\r\nbcd\r\n0\r\n\r\n"} {
		before := a.count()
		resp, body := rawResponse(t, i, "POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"+chunks)
		if resp.StatusCode != 200 || resp.Header.Get("X-Backend") != "a" || body != "a POST /c body=abcd" {
			t.Fatalf("chunked %q: got %d, X-Backend %q, body %q; want 200 from backend a with %q",
				chunks, resp.StatusCode, resp.Header.Get("X-Backend"), body, "a POST /c body=abcd")
		}
		if a.count() != before+1 {
			t.Fatalf("chunked %q: the backend saw %d requests, want 1", chunks, a.count()-before)
		}
		if got := a.lastBody(); got != "abcd" {
			t.Fatalf("chunked %q: the backend received body %q, want %q", chunks, got, "abcd")
		}
	}

	// A slow client (headers trickling in) is cut off after read_timeout.
	c, err := net.Dial("tcp", "127.0.0.1:"+i.Conf["http_ws_port"])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("GET / HTTP/1.1\r\nHost: a\r\n"))
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	buf := make([]byte, 512)
	n, err := c.Read(buf)
	if err == nil && !strings.Contains(string(buf[:n]), "408") {
		t.Fatalf("a slow client was answered %q instead of being cut off", buf[:n])
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the server kept a slow client's connection for 30s")
	}
}
