package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
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
	wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=api", apiDoc("/api", servers(a)+`, "apikey_header": "X-Key", "flow_control": {"client_spike_threshold": "4/minute"}`), nil), 200, ok)
	wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=other", apiDoc("/other", servers(a)+`, "flow_control": {"client_spike_threshold": "4/minute"}`), nil), 200, ok)
	// 4/minute: one request every 15 s; a quarter second's worth of burst
	// is less than one, so exactly one goes through at once.
	if r := i.get("GET", "/api/x", nil); r.Code != 200 {
		t.Fatalf("first request: %d", r.Code)
	}
	r := i.get("GET", "/api/x", nil)
	if r.Code != 429 || string(r.Body) != "Error: Too Many Requests" {
		t.Fatalf("second request: %d %s", r.Code, r.Body)
	}
	if ra, _ := strconv.Atoi(r.Header.Get("Retry-After")); ra < 1 || ra > 15 {
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
	wantJSON(t, i.Do("POST", "/v5/ase/firewall/flowcontrol?api_id=shop", `{"flow_control": {"client_spike_threshold": "4/minute"}}`, nil), 200,
		`{"api_id": "shop", "flow_control": {"client_spike_threshold": "4/minute", "server_connection_queueing": false}}`)
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

// inFlightBackend counts requests in flight, holding each for hold, and
// records the order in which requests (numbered by the client) arrive.
type inFlightBackend struct {
	*httptest.Server
	hold     time.Duration
	cur, max atomic.Int64
	mu       sync.Mutex
	arrived  []int
	at       []time.Time
}

func newInFlightBackend(t *testing.T, hold time.Duration) *inFlightBackend {
	b := &inFlightBackend{hold: hold}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := b.cur.Add(1)
		for {
			m := b.max.Load()
			if n <= m || b.max.CompareAndSwap(m, n) {
				break
			}
		}
		if seq, err := strconv.Atoi(r.URL.Query().Get("seq")); err == nil {
			b.mu.Lock()
			b.arrived = append(b.arrived, seq)
			b.at = append(b.at, time.Now())
			b.mu.Unlock()
		}
		time.Sleep(b.hold)
		b.cur.Add(-1)
	}))
	t.Cleanup(b.Close)
	return b
}

func TestServerConnectionQuotaAndQueue(t *testing.T) {
	const quota = 3
	b1, b2 := newInFlightBackend(t, 150*time.Millisecond), newInFlightBackend(t, 150*time.Millisecond)
	i := startInstance(t, nil)
	srv := func(b *inFlightBackend) string {
		return fmt.Sprintf(`{"host": "127.0.0.1", "port": %s, "server_connection_quota": %d}`, b.URL[strings.LastIndex(b.URL, ":")+1:], quota)
	}
	doc := apiDoc("/q", `"flow_control": {"server_connection_queueing": true}, "servers": [`+srv(b1)+`, `+srv(b2)+`]`)
	wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=q", doc, nil), 200, ok)

	// 4N concurrent clients, started one after the other so their arrival
	// order is known.
	const clients = 4 * quota * 2
	var wg sync.WaitGroup
	codes := make([]int, clients)
	for n := 0; n < clients; n++ {
		wg.Add(1)
		go func(n int) {
			defer wg.Done()
			resp, err := http.Get(fmt.Sprintf("%s/q/x?seq=%d", i.dataURL(), n))
			if err != nil {
				t.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			codes[n] = resp.StatusCode
		}(n)
		time.Sleep(5 * time.Millisecond)
	}
	wg.Wait()
	for n, c := range codes {
		if c != 200 {
			t.Fatalf("client %d got %d; with queueing every request waits its turn", n, c)
		}
	}
	if b1.max.Load() > quota || b2.max.Load() > quota {
		t.Fatalf("in flight at most %d and %d, quota %d", b1.max.Load(), b2.max.Load(), quota)
	}
	if b1.max.Load() < quota || b2.max.Load() < quota {
		t.Fatalf("the servers were not used up to their quota: %d, %d", b1.max.Load(), b2.max.Load())
	}
	// Queued requests are served in arrival order: merged by the time
	// they reached a server, no request comes later than requests that
	// arrived more than the servers' concurrent slots after it. (Requests
	// holding slots at the same time race to their server; the queue's
	// strict order is shown by the flow package's tests.)
	type hit struct {
		seq int
		at  time.Time
	}
	var all []hit
	for _, b := range []*inFlightBackend{b1, b2} {
		for k, seq := range b.arrived {
			all = append(all, hit{seq, b.at[k]})
		}
	}
	sort.Slice(all, func(x, y int) bool { return all[x].at.Before(all[y].at) })
	highest, worst := -1, 0
	for _, h := range all {
		if highest-h.seq > worst {
			worst = highest - h.seq
		}
		highest = max(highest, h.seq)
	}
	if worst > 2*quota {
		t.Fatalf("a request was served %d places after later arrivals (more than the %d concurrent slots): %v", worst, 2*quota, all)
	}
	t.Logf("max in flight %d and %d (quota %d), %d requests, served in arrival order within %d places", b1.max.Load(), b2.max.Load(), quota, len(all), worst)

	// Without queueing, requests past the quotas get 503 at once.
	doc = strings.Replace(doc, `"server_connection_queueing": true`, `"server_connection_queueing": false`, 1)
	wantJSON(t, i.Do("PUT", "/v5/ase/api?api_id=q", doc, nil), 200, ok)
	var busy atomic.Int64
	for n := 0; n < clients; n++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Get(i.dataURL() + "/q/x")
			if err == nil {
				if resp.StatusCode == 503 {
					busy.Add(1)
				}
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	if busy.Load() == 0 || busy.Load() > clients-2*quota {
		t.Fatalf("%d of %d refused; want some, and at most those past the quotas", busy.Load(), clients)
	}
}

func TestServerSpikeThresholdAndCLI(t *testing.T) {
	a := newBackend(t, "a", false)
	i := startInstance(t, nil)
	wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=s", apiDoc("/s", servers(a)), nil), 200, ok)
	addr := fmt.Sprintf("127.0.0.1:%d", a.port())
	out, stderr, code := i.CLI("", "update_server_spike_threshold", "s", addr, "4/minute")
	if code != 0 || out != "server updated successfully\n" {
		t.Fatalf("got %q %q", out, stderr)
	}
	out, _, _ = i.CLI("", "update_server_connection_quota", "s", addr, "7")
	if out != "server updated successfully\n" {
		t.Fatalf("got %q", out)
	}
	// Each update kept the other limit.
	wantJSON(t, i.Do("GET", "/v5/ase/server?api_id=s", "", nil), 200, fmt.Sprintf(`{"api_id": "s", "server_count": 1, "server": [
		{"host": "127.0.0.1", "port": %d, "server_spike_threshold": "4/minute", "server_connection_quota": 7, "health_status": "Up"}]}`, a.port()))
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
