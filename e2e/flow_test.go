package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
)

func TestClientSpikeThresholdInline(t *testing.T) {
	a := newBackend(t, "a", false)
	i := startInstance(t, nil)
	wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=api", apiDoc("/api", servers(a)+`, "apikey_header": "X-Key", "flow_control": {"client_spike_threshold": "1/hour"}`), nil), 200, ok)
	wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=other", apiDoc("/other", servers(a)+`, "flow_control": {"client_spike_threshold": "1/hour"}`), nil), 200, ok)
	// 1/hour: one request an hour; a quarter second's worth of burst is
	// less than one, so exactly one goes through at once, and the limit
	// holds for the whole test however slowly it runs.
	if r := i.get("GET", "/api/x", nil); r.Code != 200 {
		t.Fatalf("first request: %d", r.Code)
	}
	r := i.get("GET", "/api/x", nil)
	if r.Code != 429 || string(r.Body) != "Error: Too Many Requests" {
		t.Fatalf("second request: %d %s", r.Code, r.Body)
	}
	if ra, _ := strconv.Atoi(r.Header.Get("Retry-After")); ra < 1 || ra > 3600 {
		t.Fatalf("Retry-After %q", r.Header.Get("Retry-After"))
	}
	// Another identity is another client; another API is another share.
	if r := i.get("GET", "/api/x", map[string]string{"X-Key": "k1"}); r.Code != 200 {
		t.Fatalf("another client: %d", r.Code)
	}
	if r := i.get("GET", "/other/x", nil); r.Code != 200 {
		t.Fatalf("another API: %d", r.Code)
	}
	// Changed live from the CLI: no restart, the other API untouched.
	out, stderr, code := i.CLI("", "update_client_spike_threshold", "api", "0/second")
	if code != 0 || out != "client_spike_threshold of api api is now 0/second\n" {
		t.Fatalf("got %q %q", out, stderr)
	}
	for n := 0; n < 20; n++ {
		if r := i.get("GET", "/api/x", nil); r.Code != 200 {
			t.Fatalf("with 0/second (no limit): %d", r.Code)
		}
	}
	if r := i.get("GET", "/other/x", nil); r.Code != 429 {
		t.Fatalf("the other API lost its state: %d", r.Code)
	}
	lines := accessLog(t, i, 1, func(l map[string]any) bool { return l["reason"] == "rate_limited" })
	if len(lines) == 0 || lines[0]["decision"] != "limit" || lines[0]["status"] != 429.0 {
		t.Fatalf("access log: %v", lines)
	}
}

func TestClientSpikeThresholdSideband(t *testing.T) {
	i := startSideband(t, nil)
	wantJSON(t, i.Do("POST", "/v5/ase/firewall/flowcontrol?api_id=shop", `{"flow_control": {"client_spike_threshold": "1/hour"}}`, nil), 200,
		`{"api_id": "shop", "flow_control": {"client_spike_threshold": "1/hour", "server_connection_queueing": false}}`)
	call := aseCall("198.51.100.5", "GET", "/shop/x", ``)
	if r := i.Data("POST", "/ase/request", call, nil); r.Code != 200 {
		t.Fatalf("first: %d", r.Code)
	}
	// The ASE protocol: 403 with the reason, and the client response.
	r := i.Data("POST", "/ase/request", call, nil)
	var v struct {
		Reason   string `json:"reason"`
		Response struct {
			Code    string              `json:"response_code"`
			Headers []map[string]string `json:"headers"`
		} `json:"response"`
	}
	decode(t, r, &v)
	if r.Code != 403 || v.Reason != "rate_limited" || v.Response.Code != "429" || len(v.Response.Headers) != 2 || v.Response.Headers[1]["retry-after"] == "" {
		t.Fatalf("ASE protocol: %d %s", r.Code, r.Body)
	}
	// Forward-auth: 403, the reason and Retry-After in headers.
	fa := i.Data("GET", "/ase/authz", "", map[string]string{"X-Original-URI": "/shop/x", "X-Real-IP": "198.51.100.5"})
	if fa.Code != 403 || fa.Header.Get("X-ASE-Reason") != "rate_limited" || fa.Header.Get("Retry-After") == "" {
		t.Fatalf("forward-auth: %d %v", fa.Code, fa.Header)
	}
	// The Authorize protocol: the client response itself, 429.
	az := i.Data("POST", "/sideband/request", `{"source_ip": "198.51.100.5", "method": "GET", "url": "/shop/x", "body": ""}`, nil)
	if az.Code != 200 || !strings.Contains(string(az.Body), `"response_code":"429"`) || !strings.Contains(string(az.Body), `"retry-after"`) {
		t.Fatalf("Authorize: %d %s", az.Code, az.Body)
	}
}

// heldBackend holds every request until the test releases one, counts
// those in flight, and reports each arrival (the client's seq number).
type heldBackend struct {
	*httptest.Server
	cur, max atomic.Int64
	arrived  chan int
	release  chan struct{}
}

func newHeldBackend(t *testing.T) *heldBackend {
	b := &heldBackend{arrived: make(chan int, 100), release: make(chan struct{})}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := b.cur.Add(1)
		for {
			m := b.max.Load()
			if n <= m || b.max.CompareAndSwap(m, n) {
				break
			}
		}
		seq, _ := strconv.Atoi(r.URL.Query().Get("seq"))
		b.arrived <- seq
		select {
		case <-b.release:
		case <-r.Context().Done():
		}
		b.cur.Add(-1)
	}))
	t.Cleanup(func() { close(b.release); b.Close() })
	return b
}

// arrival waits for the next request to reach b1 or b2 and returns its seq.
func arrival(t *testing.T, b1, b2 *heldBackend) int {
	t.Helper()
	select {
	case seq := <-b1.arrived:
		return seq
	case seq := <-b2.arrived:
		return seq
	case <-time.After(30 * time.Second):
		t.Fatal("no request reached a server within 30s")
		return -1
	}
}

// settled waits until ASE has taken in everything sent to its data port
// and rests: every byte the clients sent acknowledged and read, no
// connection waiting to be accepted, and the whole process asleep
// throughout the look. A request sent before is then as far as ASE can
// take it without more from outside: answered, at a server, or waiting in
// a queue.
func settled(t *testing.T, i *Instance) {
	t.Helper()
	port, _ := strconv.Atoi(i.Conf["http_ws_port"])
	pid := i.cmd.Process.Pid
	eventually(t, "ASE took in every request sent and rests", func() bool {
		var socks []tcpSocket
		if !asleepThroughout(t, pid, func() { socks = tcpSockets(t) }) {
			return false
		}
		for _, s := range socks {
			if s.local == port && s.rxq > 0 || s.remote == port && s.txq > 0 {
				return false
			}
		}
		return true
	})
}

func TestServerConnectionQuotaAndQueue(t *testing.T) {
	const quota = 3
	b1, b2 := newHeldBackend(t), newHeldBackend(t)
	// The queue's own timeout (10 s by default) out of the way: the test
	// decides when slots free.
	i := startInstance(t, map[string]string{"server_queue_timeout": "10m"})
	srv := func(b *heldBackend) string {
		return fmt.Sprintf(`{"host": "127.0.0.1", "port": %s, "server_connection_quota": %d}`, b.URL[strings.LastIndex(b.URL, ":")+1:], quota)
	}
	doc := apiDoc("/q", `"flow_control": {"server_connection_queueing": true}, "servers": [`+srv(b1)+`, `+srv(b2)+`]`)
	wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=q", doc, nil), 200, ok)

	// send writes request seq to the data port (it is in the kernel when
	// send returns) and reads the answer in the background.
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	send := func(seq int) {
		c, err := net.Dial("tcp", "127.0.0.1:"+i.Conf["http_ws_port"])
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Minute))
		if _, err := fmt.Fprintf(c, "GET /q/x?seq=%d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", seq); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			code := 0
			if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				code = resp.StatusCode
			}
			mu.Lock()
			codes[seq] = code
			mu.Unlock()
		}()
	}

	// Both servers up to their quota: 2×quota requests reach them.
	for n := 0; n < 2*quota; n++ {
		send(n)
	}
	for range 2 * quota {
		arrival(t, b1, b2)
	}
	if b1.cur.Load() != quota || b2.cur.Load() != quota {
		t.Fatalf("in flight %d and %d, want the quota (%d) on each", b1.cur.Load(), b2.cur.Load(), quota)
	}
	// More wait in the queue, in the order they came: each is sent once
	// ASE has taken in the one before.
	const queued = 2 * quota
	for n := 2 * quota; n < 2*quota+queued; n++ {
		send(n)
		settled(t, i)
	}
	// Freeing one slot at a time, each goes to the request that has waited
	// longest.
	for n := 2 * quota; n < 2*quota+queued; n++ {
		select {
		case b1.release <- struct{}{}:
		case b2.release <- struct{}{}:
		}
		if got := arrival(t, b1, b2); got != n {
			t.Fatalf("a freed slot went to request %d, want %d (arrival order)", got, n)
		}
	}
	for range 2 * quota {
		select {
		case b1.release <- struct{}{}:
		case b2.release <- struct{}{}:
		}
	}
	wg.Wait()
	for seq, c := range codes {
		if c != 200 {
			t.Fatalf("request %d got %d; with queueing every request waits its turn", seq, c)
		}
	}
	if b1.max.Load() != quota || b2.max.Load() != quota {
		t.Fatalf("in flight at most %d and %d, quota %d", b1.max.Load(), b2.max.Load(), quota)
	}

	// Without queueing, a request past the quotas gets 503 at once.
	doc = strings.Replace(doc, `"server_connection_queueing": true`, `"server_connection_queueing": false`, 1)
	wantJSON(t, i.Do("PUT", "/v5/ase/api?api_id=q", doc, nil), 200, ok)
	codes = map[int]int{}
	for n := 0; n < 2*quota; n++ {
		send(n)
	}
	for range 2 * quota {
		arrival(t, b1, b2)
	}
	for n := 2 * quota; n < 2*quota+3; n++ {
		r := i.get("GET", fmt.Sprintf("/q/x?seq=%d", n), nil)
		if r.Code != 503 || string(r.Body) != "Error: No Server Available" {
			t.Fatalf("request %d past the quotas: %d %s, want 503", n, r.Code, r.Body)
		}
	}
	for range 2 * quota {
		select {
		case b1.release <- struct{}{}:
		case b2.release <- struct{}{}:
		}
	}
	wg.Wait()
	for n := 0; n < 2*quota; n++ {
		if codes[n] != 200 {
			t.Fatalf("request %d within the quotas got %d", n, codes[n])
		}
	}
}

func TestServerSpikeThresholdAndCLI(t *testing.T) {
	a := newBackend(t, "a", false)
	i := startInstance(t, nil)
	wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=s", apiDoc("/s", servers(a)), nil), 200, ok)
	addr := fmt.Sprintf("127.0.0.1:%d", a.port())
	out, stderr, code := i.CLI("", "update_server_spike_threshold", "s", addr, "1/hour")
	if code != 0 || out != "server updated successfully\n" {
		t.Fatalf("got %q %q", out, stderr)
	}
	out, _, _ = i.CLI("", "update_server_connection_quota", "s", addr, "7")
	if out != "server updated successfully\n" {
		t.Fatalf("got %q", out)
	}
	// Each update kept the other limit.
	wantJSON(t, i.Do("GET", "/v5/ase/server?api_id=s", "", nil), 200, fmt.Sprintf(`{"api_id": "s", "server_count": 1, "server": [
		{"host": "127.0.0.1", "port": %d, "server_spike_threshold": "1/hour", "server_connection_quota": 7, "health_status": "Up"}]}`, a.port()))
	if r := i.get("GET", "/s/x", nil); r.Code != 200 {
		t.Fatalf("first: %d", r.Code)
	}
	if r := i.get("GET", "/s/x", nil); r.Code != 503 || string(r.Body) != "Error: No Server Available" {
		t.Fatalf("past the server's spike threshold: %d %s", r.Code, r.Body)
	}
	if _, _, code := i.CLI("", "update_server_connection_quota", "s", addr, "-1"); code != 2 {
		t.Fatalf("a negative quota: exit %d", code)
	}
	if _, stderr, code := i.CLI("", "update_server_spike_threshold", "s", "127.0.0.1:1", "1/second"); code != 1 || stderr != "ase: server does not exist\n" {
		t.Fatalf("unknown server: %d %q", code, stderr)
	}
}

func TestWebSocketByteThresholds(t *testing.T) {
	a := newBackend(t, "a", false)
	i := startInstance(t, nil)
	wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=chat", apiDoc("/chat", `"protocol": "ws", `+servers(a)+`, "flow_control": {"bytes_in_threshold": "20000/second"}`), nil), 200, ok)
	ctx := context.Background()
	c, _, err := websocket.Dial(ctx, "ws://127.0.0.1:"+i.Conf["http_ws_port"]+"/chat/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	c.SetReadLimit(1 << 20)
	// 80 KB at 20 KB/s with a second of burst: at least 3 s, and nothing
	// lost. (Only the lower bound is checked: a busy machine is slower,
	// never faster.)
	start := time.Now()
	msg := strings.Repeat("y", 80_000)
	if err := c.Write(ctx, websocket.MessageBinary, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	_, got, err := c.Read(ctx)
	if err != nil || len(got) != len(msg)+6 {
		t.Fatalf("got %d bytes, %v", len(got), err)
	}
	if el := time.Since(start); el < 2900*time.Millisecond {
		t.Fatalf("80 KB passed in %v: not throttled to 20 KB/s", el)
	}
	// Lifted live: the next message passes at full speed on the same
	// connection.
	wantJSON(t, i.Do("POST", "/v5/ase/firewall/flowcontrol?api_id=chat", `{"flow_control": {"bytes_in_threshold": "0/second"}}`, nil), 200,
		`{"api_id": "chat", "flow_control": {"client_spike_threshold": "0/second", "bytes_in_threshold": "0/second", "bytes_out_threshold": "0/second", "server_connection_queueing": false}}`)
	c.Write(ctx, websocket.MessageBinary, []byte(msg))
	if _, got, err := c.Read(ctx); err != nil || len(got) != len(msg)+6 {
		t.Fatalf("after lifting: %d bytes, %v", len(got), err)
	}
}
