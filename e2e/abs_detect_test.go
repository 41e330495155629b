package e2e

import (
	"bytes"
	"encoding/json"
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
)

// Behavioural detection (issue 20), through the real binary on both data
// paths: a normal traffic mix runs through the API's training period and
// on; then each detector's attack is mixed into it. Each attacker must be
// deny-listed under abs_generated, by its detector, with its evidence
// (the figure observed against the threshold, sample requests), and
// refused from then on; no normal client may be listed or refused.

// absAnswer is the backend of the API /abs, as a function (the sideband
// test answers the response calls with it too): logins succeed with the
// right password, items up to 999 exist, /abs/export is large.
func absAnswer(method, path string, hdr map[string]string) (int, int) {
	switch {
	case path == "/abs/login":
		if hdr["X-Password"] == "right" {
			return 200, 20
		}
		return 401, 20
	case strings.HasPrefix(path, "/abs/items/"):
		if n, err := strconv.Atoi(strings.TrimPrefix(path, "/abs/items/")); err == nil && n < 1000 {
			return 200, 60
		}
		return 404, 10
	case path == "/abs/export":
		return 200, 300_000
	}
	return 404, 10
}

// absClient sends one request as the client at ip and returns the status
// the client got.
type absClient func(ip, method, path string, hdr map[string]string) int

// absBackend starts the backend of /abs and returns its port.
func absBackend(t *testing.T) int {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hdr := map[string]string{"X-Password": r.Header.Get("X-Password")}
		code, n := absAnswer(r.Method, r.URL.Path, hdr)
		w.Header().Set("Content-Length", strconv.Itoa(n))
		w.WriteHeader(code)
		w.Write(bytes.Repeat([]byte("x"), n))
	}))
	t.Cleanup(be.Close)
	return be.Listener.Addr().(*net.TCPAddr).Port
}

func absInline(t *testing.T) (*Instance, absClient) {
	port := absBackend(t)
	i := startInstance(t, absConf(map[string]string{"enable_xff": "true"}))
	wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=abs", absInlineAPI(port), nil), 200, ok)
	return i, absInlineClient(t, i)
}

func absInlineAPI(port int) string {
	return apiDoc("/abs", absAPI+`, "servers": [{"host": "127.0.0.1", "port": `+strconv.Itoa(port)+`}]`)
}

// absInlineClient sends requests to i's inline data port.
func absInlineClient(t *testing.T, i *Instance) absClient {
	c := dataClient(t, 64)
	return func(ip, method, path string, hdr map[string]string) int {
		code, _, err := inlineCall(c, i, method, path, ip, hdr)
		if err != nil {
			t.Errorf("%s %s from %s: %v", method, path, ip, err)
		}
		return code
	}
}

func absSideband(t *testing.T) (*Instance, absClient) {
	i := newSideband(t, absConf(nil))
	i.Start()
	wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=abs", apiDoc("/abs", absAPI), nil), 200, ok)
	c := dataClient(t, 64)
	var corr atomic.Int64
	post := func(path, body, id string) (int, error) {
		req, _ := http.NewRequest("POST", i.dataURL()+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-CorrelationID", id)
		resp, err := c.Do(req)
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	return i, func(ip, method, path string, hdr map[string]string) int {
		var hs []string
		for k, v := range hdr {
			hs = append(hs, fmt.Sprintf(`{%q: %q}`, k, v))
		}
		id := "abs-" + strconv.FormatInt(corr.Add(1), 10)
		code, err := post("/ase/request", aseCall(ip, method, path, strings.Join(hs, ", ")), id)
		if err != nil || (code != 200 && code != 403) {
			t.Errorf("/ase/request %s %s from %s: %d %v", method, path, ip, code, err)
			return code
		}
		if code == 403 {
			return 403
		}
		status, n := absAnswer(method, path, hdr)
		body := fmt.Sprintf(`{"response_code": "%d", "response_status": "x", "http_version": "1.1", "headers": [{"content-length": "%d"}]}`, status, n)
		if code, err := post("/ase/response", body, id); err != nil || code != 200 {
			t.Errorf("/ase/response: %d %v", code, err)
		}
		return status
	}
}

// absAPI: tokens, the session cookie and an API key are identities; the
// username of a login is in X-Username.
const absAPI = `"oauth2_access_token": true, "cookie": "SID", "apikey_header": "X-API-Key", "login_url": "/abs/login", "username_header": "X-Username"`

func absConf(extra map[string]string) map[string]string {
	c := map[string]string{"enable_abs": "true", "abs_training_period": "5s", "abs_window": "1s", "abs_ttl_ip": "90m", "abs_ttl_token": "0"}
	for k, v := range extra {
		c[k] = v
	}
	return c
}

// absNormal runs the normal mix until stop: 10 clients, each with its
// address and token, 20 requests a second over three resources of their
// own, a login every two seconds (client 3 mistypes its password now and
// then), a missing resource now and then; plus the victim, whose token is
// stolen later. Every refusal of a normal client is counted.
func absNormal(t *testing.T, do absClient, stop <-chan struct{}) (refused *atomic.Int64, done *sync.WaitGroup) {
	refused, done = new(atomic.Int64), new(sync.WaitGroup)
	for c := 0; c <= 10; c++ {
		done.Add(1)
		go func() {
			defer done.Done()
			ip := fmt.Sprintf("127.0.1.%d", c+1)
			tok := fmt.Sprintf("normal-%d", c)
			if c == 10 {
				tok = "victim-token"
			}
			tick := time.NewTicker(50 * time.Millisecond)
			defer tick.Stop()
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				hdr := map[string]string{"Authorization": "Bearer " + tok}
				method, path := "GET", fmt.Sprintf("/abs/items/%d", c*3+k%3)
				switch {
				case k%40 == 7:
					method, path = "POST", "/abs/login"
					hdr["X-Username"] = fmt.Sprintf("user%d", c)
					hdr["X-Password"] = "right"
					if c == 3 && k%80 == 7 {
						hdr["X-Password"] = "wrong"
					}
				case k%60 == 13:
					path = fmt.Sprintf("/abs/items/%d", 5000+c)
				}
				if code := do(ip, method, path, hdr); code == 403 && c != 10 {
					refused.Add(1) // the victim is refused once its stolen token is listed
				}
			}
		}()
	}
	return refused, done
}

// absEntry is a deny-list entry with its evidence.
type absEntry struct {
	Type, Name, Value string
	Reason            string
	CreatedAt         string `json:"created_at"`
	ExpiresAt         string `json:"expires_at"`
	Evidence          struct {
		Detector, Figure, Note string
		Observed, Threshold    float64
		Samples                []struct{ Method, Path, IP string }
	}
}

func absListed(t *testing.T, i *Instance) []absEntry {
	t.Helper()
	var v map[string][]absEntry
	decode(t, i.Do("GET", "/v5/ase/firewall/blacklist?tag=abs_generated", "", nil), &v)
	out := v["abs_generated_blacklist"]
	for k := range out {
		if err := json.Unmarshal([]byte(out[k].Reason), &out[k].Evidence); err != nil {
			t.Fatalf("entry %+v: reason is not evidence: %v", out[k], err)
		}
	}
	return out
}

func TestBehaviouralDetection(t *testing.T) {
	for _, mode := range []string{"inline", "sideband"} {
		t.Run(mode, func(t *testing.T) {
			var i *Instance
			var do absClient
			if mode == "inline" {
				i, do = absInline(t)
			} else {
				i, do = absSideband(t)
			}
			stop := make(chan struct{})
			refused, done := absNormal(t, do, stop)
			defer func() { close(stop); done.Wait() }()
			// Training: nothing is enforced until it ends.
			eventually(t, "the API's training to end", func() bool {
				var st struct{ Training bool }
				r := i.Do("GET", "/v5/ase/abs/abs", "", nil)
				if r.Code != 200 {
					return false
				}
				decode(t, r, &st)
				return !st.Training
			})
			hdr := func(kv ...string) map[string]string {
				m := map[string]string{}
				for j := 0; j+1 < len(kv); j += 2 {
					m[kv[j]] = kv[j+1]
				}
				return m
			}
			// until sends the attack's requests until its client is refused
			// (the detection listed it) or max were sent, and returns how
			// many were answered.
			until := func(max int, req func(k int) (ip, method, path string, h map[string]string)) int {
				for k := 0; k < max; k++ {
					ip, method, path, h := req(k)
					if do(ip, method, path, h) == 403 {
						return k
					}
				}
				return max
			}
			attacks := []struct {
				name, detector, figure string
				typ, value             string
				run                    func()
			}{
				{"stolen token", "stolen_credential", "distinct_ips", "token", "victim-token", func() {
					until(30, func(k int) (string, string, string, map[string]string) {
						return fmt.Sprintf("127.0.2.%d", 10+k), "GET", "/abs/items/1", hdr("Authorization", "Bearer victim-token")
					})
				}},
				{"failed logins", "login_attack", "failed_logins", "ip", "127.0.2.60", func() {
					until(60, func(k int) (string, string, string, map[string]string) {
						return "127.0.2.60", "POST", "/abs/login", hdr("X-Username", fmt.Sprintf("guess%d", k), "X-Password", "wrong")
					})
				}},
				{"credential stuffing", "login_attack", "failing_clients", "ip", "127.0.2.79", func() {
					for k := 0; k < 10; k++ {
						do(fmt.Sprintf("127.0.2.%d", 70+k), "POST", "/abs/login", hdr("X-Username", "alice", "X-Password", "wrong"))
					}
				}},
				{"probing", "api_probing", "error_paths", "ip", "127.0.2.90", func() {
					until(60, func(k int) (string, string, string, map[string]string) {
						return "127.0.2.90", "GET", fmt.Sprintf("/abs/secret/%d", k), nil
					})
				}},
				{"extreme activity", "extreme_client_activity", "requests", "ip", "127.0.2.100", func() {
					until(2000, func(k int) (string, string, string, map[string]string) {
						return "127.0.2.100", "GET", "/abs/items/1", nil
					})
				}},
				{"exfiltration", "data_exfiltration", "response_bytes", "ip", "127.0.2.110", func() {
					until(20, func(k int) (string, string, string, map[string]string) {
						return "127.0.2.110", "GET", "/abs/export", nil
					})
				}},
				// An answer-side detection on a credential lists it at once,
				// before its next request: each answer is given (never a 403)
				// until the token is listed, and the request after is refused.
				{"exfiltration by a token", "data_exfiltration", "response_bytes", "token", "exfil-token", func() {
					for k := 0; k < 20; k++ {
						h := hdr("Authorization", "Bearer exfil-token")
						if code := do(fmt.Sprintf("127.0.2.%d", 130+k), "GET", "/abs/export", h); code != 200 {
							t.Fatalf("exfiltrating request %d got %d before the token was listed", k, code)
						}
						for _, e := range absListed(t, i) {
							if e.Type == "token" && e.Value == "exfil-token" {
								if code := do("127.0.2.160", "GET", "/abs/items/1", h); code != 403 {
									t.Fatalf("the listed token's next request got %d, want 403", code)
								}
								return
							}
						}
					}
					t.Fatal("the exfiltrating token was not listed by its answers")
				}},
				{"scraping", "content_scraping", "distinct_paths", "ip", "127.0.2.120", func() {
					until(300, func(k int) (string, string, string, map[string]string) {
						return "127.0.2.120", "GET", fmt.Sprintf("/abs/items/%d", 100+k), nil
					})
				}},
			}
			for _, a := range attacks {
				t.Run(strings.ReplaceAll(a.name, " ", "_"), func(t *testing.T) {
					a.run()
					var got *absEntry
					eventually(t, a.typ+" "+a.value+" listed", func() bool {
						for _, e := range absListed(t, i) {
							if e.Type == a.typ && e.Value == a.value {
								got = &e
								return true
							}
						}
						return false
					})
					ev := got.Evidence
					if ev.Detector != a.detector || ev.Figure != a.figure || !(ev.Observed > ev.Threshold) || ev.Threshold <= 0 || len(ev.Samples) == 0 {
						t.Fatalf("%s %s listed with evidence %+v, want detector %s, figure %s, observed over threshold, samples", a.typ, a.value, ev, a.detector, a.figure)
					}
					// Each identifier type has its TTL: addresses 90m here,
					// tokens none.
					created, err1 := time.Parse(time.RFC3339Nano, got.CreatedAt)
					expires, err2 := time.Parse(time.RFC3339Nano, got.ExpiresAt)
					switch {
					case a.typ == "token" && got.ExpiresAt != "":
						t.Errorf("the token expires at %s, want never (abs_ttl_token=0)", got.ExpiresAt)
					case a.typ == "ip" && (err1 != nil || err2 != nil || expires.Sub(created) != 90*time.Minute):
						t.Errorf("the address is listed from %q to %q, want 90m (abs_ttl_ip)", got.CreatedAt, got.ExpiresAt)
					}
					if a.typ == "ip" {
						// From then on, the attacker is refused.
						if code := do(a.value, "GET", "/abs/items/2", nil); code != 403 {
							t.Fatalf("the listed attacker's next request got %d, want 403", code)
						}
					}
				})
			}
			// A false positive: the operator clears the result and allow-lists
			// the client; the same traffic no longer lists it.
			r := i.Do("DELETE", "/v4/abs/attacklist", `{"ips": ["127.0.2.100"]}`, nil)
			if r.Code != 200 {
				t.Fatalf("DELETE /v4/abs/attacklist: %d %s", r.Code, r.Body)
			}
			wantStatus(t, i.Do("POST", "/v5/ase/firewall/whitelist", `{"type": "ip", "value": "127.0.2.100"}`, nil), 200, "success", "ip 127.0.2.100 added to whitelist")
			for k := 0; k < 300; k++ {
				if code := do("127.0.2.100", "GET", "/abs/items/1", nil); code != 200 {
					t.Fatalf("the allow-listed client got %d", code)
				}
			}
			for _, e := range absListed(t, i) {
				if e.Value == "127.0.2.100" {
					t.Fatalf("the allow-listed client was listed again: %+v", e)
				}
			}
			// No normal client was listed or refused (the victim's token is,
			// rightly; its address is not).
			for _, e := range absListed(t, i) {
				if strings.HasPrefix(e.Value, "127.0.1.") || strings.HasPrefix(e.Value, "normal-") {
					t.Errorf("a normal client was listed: %+v", e)
				}
			}
			if n := refused.Load(); n > 0 {
				t.Errorf("%d requests of normal clients were refused", n)
			}
		})
	}
}
