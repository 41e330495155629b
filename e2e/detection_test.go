package e2e

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// Detected attacks (issue 14, points 3 and 4): a client that hits a decoy
// or breaks an API's pattern rules is deny-listed before its violating
// request is answered, and no detection is dropped below the memory
// budget.

// detectionAPIs defines, on an instance with a backend, the API "shop"
// (GET and POST only; bearer tokens are identities) and the
// out-of-context decoy "trap".
func detectionAPIs(t *testing.T, i *Instance, backendServers string) {
	t.Helper()
	shop := apiDoc("/shop", backendServers+`, "oauth2_access_token": true,
		"api_pattern_enforcement": {"methods_allowed": ["GET", "POST"], "error_code": "405", "error_def": "Method Not Allowed", "error_message_body": "no such method"}`)
	wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=shop", shop, nil), 200, ok)
	trap := apiDoc("/trap", `"oauth2_access_token": true, "decoy_config": {"decoy_enabled": true, "response_code": 200, "response_def": "OK", "response_message": "welcome, admin"}`)
	wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=trap", trap, nil), 200, ok)
}

// dataClient is an HTTP client for the data port that keeps up to n
// connections alive.
func dataClient(t *testing.T, n int) *http.Client {
	tr := &http.Transport{MaxIdleConns: n, MaxIdleConnsPerHost: n, DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// inlineCall sends one inline request as the client at ip (through
// X-Forwarded-For, enable_xff=true) and returns the status and body.
func inlineCall(c *http.Client, i *Instance, method, path, ip string, headers map[string]string) (int, string, error) {
	req, err := http.NewRequest(method, i.dataURL()+path, nil)
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("X-Forwarded-For", ip)
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// violation is one way of being detected: the request, and the reply it
// gets.
type violation struct {
	name, method, path string
	code               int
	body               string
	tag                string
}

var violations = []violation{
	{"method", "DELETE", "/shop/items/1", 405, "no such method", "invalid_method"},
	{"decoy", "GET", "/trap/wp-login.php", 200, "welcome, admin", "decoy"},
}

// The request right after a violation, from the same client, is refused:
// the client is deny-listed in memory before the violating request is
// answered, not once the store has written it.
func TestNextRequestAfterViolationIsBlocked(t *testing.T) {
	const trials = 100 // per kind of violation and per data path
	t.Run("inline", func(t *testing.T) {
		a := newBackend(t, "a", false)
		i := startInstance(t, map[string]string{"enable_xff": "true", "enable_ase_detected_attack": "true"})
		detectionAPIs(t, i, servers(a))
		c := dataClient(t, 1) // one keep-alive connection
		for vi, v := range violations {
			passed := 0
			for n := 0; n < trials; n++ {
				ip := fmt.Sprintf("198.51.100.%d", vi*trials+n+1)
				if vi == 1 {
					ip = fmt.Sprintf("203.0.113.%d", n+1)
				}
				code, body, err := inlineCall(c, i, v.method, v.path, ip, nil)
				if err != nil || code != v.code || body != v.body {
					t.Fatalf("%s from %s: got %d %q %v, want %d %q", v.name, ip, code, body, err, v.code, v.body)
				}
				code, body, err = inlineCall(c, i, "GET", "/shop/items", ip, nil)
				if err != nil {
					t.Fatal(err)
				}
				if code != 403 || body != "Error: Unauthorized" {
					passed++
				}
			}
			if passed > 0 {
				t.Errorf("after a %s violation, %d of %d next requests from the same client were not refused", v.name, passed, trials)
			}
		}
	})
	t.Run("sideband", func(t *testing.T) {
		i := startSideband(t, map[string]string{"enable_ase_detected_attack": "true", "enable_sideband_keepalive": "true"})
		trap := apiDoc("/trap", `"decoy_config": {"decoy_enabled": true, "response_code": 200, "response_message": "welcome, admin"}`)
		wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=trap", trap, nil), 200, ok)
		c := dataClient(t, 1)
		const host = `{"Host": "shop.example.com"}`
		call := func(body string) (int, string) {
			resp, err := c.Post(i.dataURL()+"/ase/request", "application/json", strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b)
		}
		for vi, v := range []struct{ name, method, url, reason string }{
			{"method", "PATCH", "/shop/items", "invalid_method"},
			{"decoy", "GET", "/trap/x", "decoy"},
		} {
			passed := 0
			for n := 0; n < trials; n++ {
				ip := fmt.Sprintf("2001:db8:14:3:%d::%x", vi, n+1)
				if code, body := call(aseCall(ip, v.method, v.url, host)); code != 403 || !strings.Contains(body, v.reason) {
					t.Fatalf("%s from %s: got %d %s", v.name, ip, code, body)
				}
				if code, body := call(aseCall(ip, "GET", "/shop/items", host)); code != 403 || !strings.Contains(body, "deny_list") {
					passed++
				}
			}
			if passed > 0 {
				t.Errorf("after a %s violation, %d of %d next sideband calls for the same client were not refused", v.name, passed, trials)
			}
		}
	})
}

// violatorIP is the address of violator n: IPv4 from the benchmarking
// range 198.18.0.0/15, every third one IPv6 from the documentation range.
func violatorIP(n int) string {
	if n%3 == 2 {
		return fmt.Sprintf("2001:db8:14:4::%x", n)
	}
	return fmt.Sprintf("198.%d.%d.%d", 18+n/65536, (n/256)%256, n%256)
}

// runParallel calls fn(n) for n in [0, total) from workers goroutines.
func runParallel(total, workers int, fn func(n int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				n := int(next.Add(1) - 1)
				if n >= total {
					return
				}
				fn(n)
			}
		}()
	}
	wg.Wait()
}

// A flood of violations from distinct addresses lists every one of them,
// including the attacker who hides its own violation in the flood; each
// is refused from its next request on; the listing survives a restart.
func TestEveryDetectionIsListed(t *testing.T) {
	const total, workers = 3000, 16
	a := newBackend(t, "a", false)
	i := startInstance(t, map[string]string{"enable_xff": "true", "enable_ase_detected_attack": "true"})
	detectionAPIs(t, i, servers(a))
	c := dataClient(t, workers)
	token := func(n int) map[string]string {
		if n%5 == 3 { // some violators (of both kinds) also present a bearer token
			return map[string]string{"Authorization": fmt.Sprintf("Bearer flood-token-%d", n)}
		}
		return nil
	}
	var bad atomic.Int64
	runParallel(total, workers, func(n int) {
		v := violations[n%2]
		code, body, err := inlineCall(c, i, v.method, v.path, violatorIP(n), token(n))
		if err != nil || code != v.code || body != v.body {
			if bad.Add(1) == 1 {
				t.Errorf("%s from %s: got %d %q %v", v.name, violatorIP(n), code, body, err)
			}
		}
	})
	if bad.Load() > 0 {
		t.Fatalf("%d violating requests got an unexpected reply", bad.Load())
	}
	// Every violator is refused from its next request on, by address, and
	// the token holders by token from any address.
	var passed, tokenPassed atomic.Int64
	runParallel(total, workers, func(n int) {
		if code, _, err := inlineCall(c, i, "GET", "/shop/items", violatorIP(n), nil); err != nil || code != 403 {
			passed.Add(1)
		}
		if h := token(n); h != nil {
			if code, _, err := inlineCall(c, i, "GET", "/shop/items", "192.0.2.1", h); err != nil || code != 403 {
				tokenPassed.Add(1)
			}
		}
	})
	if passed.Load() > 0 || tokenPassed.Load() > 0 {
		t.Errorf("after %d violations from distinct addresses, %d violators' next requests passed, and %d of %d tokens", total, passed.Load(), tokenPassed.Load(), total/5)
	}
	tokens := total / 5
	listed := func() (map[string]int, int) {
		var view map[string][]map[string]any
		decode(t, i.Do("GET", "/v5/ase/firewall/blacklist", "", nil), &view)
		byTag, n := map[string]int{}, 0
		for k, es := range view {
			byTag[strings.TrimSuffix(k, "_blacklist")] = len(es)
			n += len(es)
		}
		return byTag, n
	}
	waitUntil(t, func() bool { _, n := listed(); return n >= total+tokens })
	byTag, n := listed()
	if n != total+tokens || byTag["invalid_method"] != (total+tokens)/2 || byTag["decoy"] != (total+tokens)/2 {
		t.Fatalf("listed %d entries by tag %v, want %d (%d under each of invalid_method and decoy)", n, byTag, total+tokens, (total+tokens)/2)
	}
	fams := scrape(t, i)
	if got := value(t, fams, "ase_detections_total", map[string]string{"result": "listed"}); got != total {
		t.Errorf("ase_detections_total{result=listed} = %v, want %d", got, total)
	}
	if got := value(t, fams, "ase_detections_total", map[string]string{"result": "refused"}); got != 0 {
		t.Errorf("ase_detections_total{result=refused} = %v, want 0", got)
	}
	// A last violator, right before a clean stop: the stop writes what is
	// pending, and the restarted server still refuses every one.
	last := violatorIP(total)
	if code, _, _ := inlineCall(c, i, "DELETE", "/shop/items", last, nil); code != 405 {
		t.Fatalf("last violation: got %d", code)
	}
	c.CloseIdleConnections()
	i.Restart()
	if _, n := listed(); n != total+tokens+1 {
		t.Fatalf("after a restart, %d entries are listed, want %d", n, total+tokens+1)
	}
	for _, n := range []int{0, 1, 2, 7, total - 1, total} {
		if code, _, err := inlineCall(c, i, "GET", "/shop/items", violatorIP(n), nil); err != nil || code != 403 {
			t.Errorf("after a restart, violator %d (%s) got %d %v", n, violatorIP(n), code, err)
		}
	}
}

// Past attack_list_memory, a detection is refused, counted in the metrics
// and logged once per interval, not once per refusal; nothing already
// listed is dropped.
func TestDetectionPastTheMemoryBudget(t *testing.T) {
	a := newBackend(t, "a", false)
	i := startInstance(t, map[string]string{"enable_xff": "true", "enable_ase_detected_attack": "true", "attack_list_memory": "1MB"})
	detectionAPIs(t, i, servers(a))
	// 1 MB holds 66,639 IPv4 addresses (a table of 88,852 8-byte slots,
	// 3/4 full; one more doubles it past 1 MB): leave room for 100.
	const capacity, room, violators = 66639, 100, 300
	var feed []string
	for n := 0; n < capacity-room; n++ {
		feed = append(feed, fmt.Sprintf(`{"type": "ip", "value": "10.%d.%d.%d"}`, n/65536, (n/256)%256, n%256))
	}
	wantStatus(t, i.Do("POST", "/v5/ase/firewall/blacklist", "["+strings.Join(feed, ",")+"]", nil), 200, "success", "66539 entries added to blacklist, 0 already listed")
	c := dataClient(t, 1)
	ip := func(n int) string { return fmt.Sprintf("198.18.%d.%d", n/256, n%256) }
	for n := 0; n < violators; n++ {
		if code, _, err := inlineCall(c, i, "DELETE", "/shop/items", ip(n), nil); err != nil || code != 405 {
			t.Fatalf("violator %d: got %d %v", n, code, err)
		}
	}
	// The first violators fill the budget and are refused from then on;
	// the others are not listed.
	for n := 0; n < violators; n++ {
		want := 403
		if n >= room {
			want = 200
		}
		if code, _, err := inlineCall(c, i, "GET", "/shop/items", ip(n), nil); err != nil || code != want {
			t.Fatalf("violator %d's next request: got %d %v, want %d", n, code, err, want)
		}
	}
	var view map[string][]map[string]any
	decode(t, i.Do("GET", "/v5/ase/firewall/blacklist", "", nil), &view)
	if len(view["manual_blacklist"]) != capacity-room || len(view["invalid_method_blacklist"]) != room {
		t.Fatalf("listed %d manual and %d invalid_method entries, want %d and %d", len(view["manual_blacklist"]), len(view["invalid_method_blacklist"]), capacity-room, room)
	}
	fams := scrape(t, i)
	if got := value(t, fams, "ase_detections_total", map[string]string{"result": "refused"}); got != violators-room {
		t.Errorf("ase_detections_total{result=refused} = %v, want %d", got, violators-room)
	}
	if got := value(t, fams, "ase_detections_total", map[string]string{"result": "listed"}); got != room {
		t.Errorf("ase_detections_total{result=listed} = %v, want %d", got, room)
	}
	// The refusals are logged, but not once each.
	lines := 0
	for _, l := range strings.Split(i.Output(), "\n") {
		if strings.Contains(l, "not deny-listed") || strings.Contains(l, "could not deny-list") || strings.Contains(l, "dropping one") {
			lines++
		}
	}
	if lines == 0 || lines > 2 {
		t.Errorf("%d refusals wrote %d log lines, want 1 or 2:\n%s", violators-room, lines, tail(i.Output(), 5))
	}
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
