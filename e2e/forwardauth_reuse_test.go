package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// acceptedConnections is ASE's count of the connections its data ports
// accepted in sideband mode.
func acceptedConnections(t *testing.T, i *Instance) float64 {
	t.Helper()
	return value(t, scrape(t, i), "ase_sideband_connections_accepted_total", nil)
}

// TestForwardAuthConnectionsReused runs the nginx and Caddy guides against
// the real gateways: 1,000 requests, a quarter of them refused, half of
// them with a client's X-ASE-Body, reach ASE over the few connections the
// gateway keeps open, not one connection each. nginx's auth_request never
// reads a subrequest's body, so it can keep a connection only when the
// answer has none.
func TestForwardAuthConnectionsReused(t *testing.T) {
	var seen atomic.Int64
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Add(1)
		fmt.Fprint(w, "ok")
	}))
	defer backend.Close()
	i := startSideband(t, map[string]string{"enable_sideband_keepalive": "true", "enable_sideband_authentication": "true"})
	var created struct{ Token string }
	decode(t, i.Do("POST", "/v5/ase/sideband/token", "", nil), &created)
	wantStatus(t, i.Do("POST", "/v5/ase/firewall/blacklist", `{"type": "cookie", "name": "SID", "value": "listed"}`, nil), 200, "success", "*")
	backendPort := strings.TrimPrefix(backend.URL, "http://127.0.0.1:")

	const (
		requests = 1000
		workers  = 8
		// At most workers calls are in flight at once, and both gateways
		// keep that many idle connections to ASE (the nginx guide's pool
		// is 64 a worker; Caddy's default is larger than workers). A few
		// more for connections a gateway replaces.
		bound = workers + 4
	)
	for _, gw := range []struct {
		name  string
		start func(t *testing.T, asePort, backendPort, token string) string
	}{
		{"nginx", startNginx},
		{"caddy", startCaddy},
	} {
		t.Run(gw.name, func(t *testing.T) {
			url := gw.start(t, i.Conf["http_ws_port"], backendPort, created.Token)
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
			defer client.CloseIdleConnections()
			decided := func(decision, reason string) float64 {
				fams := scrape(t, i)
				if fams["ase_requests_total"] == nil {
					return 0
				}
				for _, m := range fams["ase_requests_total"].Metric {
					labels := map[string]string{}
					for _, l := range m.Label {
						labels[l.GetName()] = l.GetValue()
					}
					if labels["api_id"] == "shop" && labels["protocol"] == "forward_auth" && labels["decision"] == decision && labels["reason"] == reason {
						return m.Counter.GetValue()
					}
				}
				return 0
			}
			acceptedBefore := acceptedConnections(t, i)
			allowedBefore, blockedBefore := decided("allow", "none"), decided("block", "deny_list")
			seenBefore := seen.Load()

			var next atomic.Int64
			var mu sync.Mutex
			var failures []string
			var wg sync.WaitGroup
			for w := 0; w < workers; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						n := next.Add(1) - 1
						if n >= requests {
							return
						}
						listed := n%4 == 0
						req, _ := http.NewRequest("GET", url+"/shop/items/"+strconv.FormatInt(n, 10), nil)
						if listed {
							req.Header.Set("Cookie", "SID=listed")
						} else {
							req.Header.Set("Cookie", "SID=clean-"+strconv.FormatInt(n, 10))
						}
						if n%2 == 1 {
							// A client asking for ASE's body changes nothing:
							// the guides remove its X-ASE-Body.
							req.Header.Set("X-ASE-Body", "json")
						}
						resp, err := client.Do(req)
						if err != nil {
							mu.Lock()
							failures = append(failures, fmt.Sprintf("request %d: %v", n, err))
							mu.Unlock()
							return
						}
						body, _ := io.ReadAll(resp.Body)
						resp.Body.Close()
						switch {
						case listed && (resp.StatusCode != 403 || resp.Header.Get("X-ASE-Reason") != "deny_list"):
						case !listed && (resp.StatusCode != 200 || string(body) != "ok"):
						default:
							continue
						}
						mu.Lock()
						failures = append(failures, fmt.Sprintf("request %d (listed %v): got %d %q, reason %q", n, listed, resp.StatusCode, body, resp.Header.Get("X-ASE-Reason")))
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			if len(failures) > 0 {
				t.Fatalf("%d requests answered wrong, first: %s", len(failures), failures[0])
			}
			const blocked = requests / 4
			if got := seen.Load() - seenBefore; got != requests-blocked {
				t.Fatalf("the backend saw %d requests, want %d", got, requests-blocked)
			}
			if got := decided("allow", "none") - allowedBefore; got != requests-blocked {
				t.Errorf("ase_requests_total counted %v forward-auth allows, want %d", got, requests-blocked)
			}
			if got := decided("block", "deny_list") - blockedBefore; got != blocked {
				t.Errorf("ase_requests_total counted %v forward-auth deny_list blocks, want %d", got, blocked)
			}
			got := acceptedConnections(t, i) - acceptedBefore
			if got > bound {
				t.Fatalf("ASE accepted %v connections for %d requests through %s, want at most %d", got, requests, gw.name, bound)
			}
			t.Logf("ASE accepted %v connections for %d requests through %s", got, requests, gw.name)
		})
	}
}

// TestForwardAuthAnswersWithoutBody: every forward-auth answer carries
// the decision in its status and headers and has an empty body
// (Content-Length: 0), so that every gateway can keep its connection; a
// gateway that sends X-ASE-Body: json gets the JSON body as well. The ASE
// protocol keeps its JSON answers.
func TestForwardAuthAnswersWithoutBody(t *testing.T) {
	i := startSideband(t, map[string]string{"enable_sideband_keepalive": "true"})
	wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=limited", apiDoc("/limited", `"flow_control": {"client_spike_threshold": "4/minute"}`), nil), 200, ok)
	wantStatus(t, i.Do("POST", "/v5/ase/firewall/blacklist", `{"type": "ip", "value": "203.0.113.66"}`, nil), 200, "success", "*")

	type answer struct {
		code                          int
		decision, reason, api, client string
		retryAfter                    bool
		json                          string
	}
	nginx := func(uri, ip string) map[string]string {
		return map[string]string{"X-Original-URI": uri, "X-Original-Method": "GET", "X-Real-IP": ip}
	}
	// cases are the answers to check; rated is a client not seen before,
	// for the rate limit's.
	cases := func(rated string) []struct {
		name, path string
		headers    map[string]string
		want       answer
	} {
		return []struct {
			name, path string
			headers    map[string]string
			want       answer
		}{
			{"allow", "/ase/authz", nginx("/shop/items", "198.51.100.1"),
				answer{200, "allow", "", "shop", "198.51.100.1", false, `{"decision": "allow", "api_id": "shop"}`}},
			{"allow, envoy path", "/ase/authz/shop/items?x=1", map[string]string{"X-Forwarded-For": "198.51.100.1"},
				answer{200, "allow", "", "shop", "198.51.100.1", false, `{"decision": "allow", "api_id": "shop"}`}},
			{"monitor only", "/ase/authz", nginx("/monitor/x", "203.0.113.66"),
				answer{200, "allow", "deny_list", "monitor", "203.0.113.66", false, `{"decision": "allow", "api_id": "monitor"}`}},
			{"deny list", "/ase/authz", nginx("/shop/items", "203.0.113.66"),
				answer{403, "block", "deny_list", "", "", false, `{"decision": "block", "api_id": "shop", "reason": "deny_list"}`}},
			{"decoy", "/ase/authz", nginx("/shop/admin", "198.51.100.2"),
				answer{403, "block", "decoy", "", "", false, `{"decision": "block", "api_id": "shop", "reason": "decoy"}`}},
			{"first within the rate", "/ase/authz", nginx("/limited/x", rated),
				answer{200, "allow", "", "limited", rated, false, `{"decision": "allow", "api_id": "limited"}`}},
			{"over the rate", "/ase/authz", nginx("/limited/x", rated),
				answer{403, "block", "rate_limited", "", "", true, `{"decision": "block", "api_id": "limited", "reason": "rate_limited"}`}},
			{"unknown api", "/ase/authz", nginx("/elsewhere", "198.51.100.1"),
				answer{403, "block", "unknown_api", "", "", false, `{"decision": "block", "reason": "unknown_api", "status_message": "Error: Unknown API"}`}},
		}
	}
	check := func(t *testing.T, r Reply, want answer, withBody bool) {
		t.Helper()
		if r.Code != want.code || r.Header.Get("X-ASE-Decision") != want.decision || r.Header.Get("X-ASE-Reason") != want.reason {
			t.Fatalf("got %d, X-ASE-Decision %q, X-ASE-Reason %q; want %d, %q, %q", r.Code, r.Header.Get("X-ASE-Decision"), r.Header.Get("X-ASE-Reason"), want.code, want.decision, want.reason)
		}
		if r.Header.Get("X-ASE-API-ID") != want.api || r.Header.Get("X-ASE-Client-IP") != want.client {
			t.Fatalf("got X-ASE-API-ID %q, X-ASE-Client-IP %q; want %q, %q", r.Header.Get("X-ASE-API-ID"), r.Header.Get("X-ASE-Client-IP"), want.api, want.client)
		}
		if got := r.Header.Get("Retry-After") != ""; got != want.retryAfter {
			t.Fatalf("got Retry-After %q, want one: %v", r.Header.Get("Retry-After"), want.retryAfter)
		}
		if withBody {
			wantJSON(t, r, want.code, want.json)
			return
		}
		if cl := r.Header.Values("Content-Length"); len(r.Body) != 0 || len(cl) != 1 || cl[0] != "0" {
			t.Fatalf("got body %q with Content-Length %q, want an empty body with Content-Length: 0", r.Body, cl)
		}
		if ct := r.Header.Get("Content-Type"); ct != "" {
			t.Fatalf("got Content-Type %q on an empty answer, want none", ct)
		}
	}
	for pass, withBody := range []bool{false, true} {
		for _, tt := range cases("198.51.100." + strconv.Itoa(30+pass)) {
			name := tt.name
			if withBody {
				name += ", X-ASE-Body: json"
				tt.headers["X-ASE-Body"] = "json"
			}
			t.Run(name, func(t *testing.T) { check(t, i.Data("GET", tt.path, "", tt.headers), tt.want, withBody) })
		}
	}

	// Anything but "json" is no body: a gateway's empty value too.
	for _, v := range []string{"", "JSON ", "xml", "1"} {
		r := i.Data("GET", "/ase/authz", "", map[string]string{"X-Original-URI": "/shop/items", "X-Real-IP": "198.51.100.1", "X-ASE-Body": v})
		if r.Code != 200 || len(r.Body) != 0 {
			t.Fatalf("X-ASE-Body %q: got %d %q, want 200 and no body", v, r.Code, r.Body)
		}
	}

	// A request the front door cannot read one way only.
	req, _ := http.NewRequest("GET", i.dataURL()+"/ase/authz", nil)
	req.Header["X-Original-Uri"] = []string{"/shop/a", "/shop/b"}
	r := i.send(req)
	if r.Code != 403 || r.Header.Get("X-ASE-Decision") != "block" || r.Header.Get("X-ASE-Reason") != "bad_request" || len(r.Body) != 0 || r.Header.Get("Content-Length") != "0" {
		t.Fatalf("a repeated X-Original-URI: got %d %v %q, want 403 block bad_request and no body", r.Code, r.Header, r.Body)
	}
	req.Header.Set("X-ASE-Body", "json")
	wantJSON(t, i.send(req), 403, `{"decision": "block", "reason": "bad_request", "status_message": "a forwarding header is repeated"}`)

	// A gateway with wrong credentials: 401, no decision, no body unless
	// asked for.
	wantJSON(t, i.Do("POST", "/v5/ase/sideband/authentication?status=enable", "", nil), 200, `{"status": "enabled", "status_message": "Sideband authentication is enabled"}`)
	r = i.Data("GET", "/ase/authz", "", nginx("/shop/items", "198.51.100.1"))
	if r.Code != 401 || r.Header.Get("X-ASE-Decision") != "" || len(r.Body) != 0 || r.Header.Get("Content-Length") != "0" || r.Header.Get("Content-Type") != "" {
		t.Fatalf("no token: got %d %v %q, want 401 with no decision and no body", r.Code, r.Header, r.Body)
	}
	h := nginx("/shop/items", "198.51.100.1")
	h["X-ASE-Body"] = "json"
	wantJSON(t, i.Data("GET", "/ase/authz", "", h), 401, `{"status": "fail", "status_message": "sideband authentication failed"}`)

	// The ASE protocol's answers are JSON as before, asked or not.
	wantJSON(t, i.Data("POST", "/ase/request", aseCall("198.51.100.1", "GET", "/shop", ``), nil), 401, `{"status": "fail", "status_message": "sideband authentication failed"}`)
	wantJSON(t, i.Do("POST", "/v5/ase/sideband/authentication?status=disable", "", nil), 200, `{"status": "disabled", "status_message": "Sideband authentication is disabled"}`)
	wantJSON(t, i.Data("POST", "/ase/request", aseCall("198.51.100.1", "GET", "/shop", ``), nil), 200, `{"decision": "allow", "api_id": "shop"}`)
	wantJSON(t, i.Data("POST", "/ase/response", `{"response_code": 200}`, nil), 200, `{"decision": "allow"}`)

	// Every answer above was counted and logged as before (the metrics and
	// the log name the engine's action, the header what the gateway does).
	fams := scrape(t, i)
	for _, c := range []struct {
		api, decision, reason string
		n                     float64
	}{
		{"shop", "allow", "none", 2*2 + 4}, {"monitor", "allow", "deny_list", 2}, {"shop", "block", "deny_list", 2}, {"shop", "decoy", "decoy", 2},
		{"limited", "allow", "none", 2}, {"limited", "limit", "rate_limited", 2},
	} {
		if got := value(t, fams, "ase_requests_total", map[string]string{"api_id": c.api, "protocol": "forward_auth", "decision": c.decision, "reason": c.reason}); got != c.n {
			t.Errorf("ase_requests_total{api_id=%s, protocol=forward_auth, decision=%s, reason=%s} = %v, want %v", c.api, c.decision, c.reason, got, c.n)
		}
	}
	lines := accessLog(t, i, 2, func(l map[string]any) bool { return l["protocol"] == "forward_auth" && l["reason"] == "unknown_api" })
	if len(lines) != 2 || lines[0]["decision"] != "block" || lines[0]["status"] != 403.0 {
		t.Fatalf("access log of the unknown API: %v", lines)
	}
}
