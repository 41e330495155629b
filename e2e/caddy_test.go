package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// caddyBinary finds Caddy, installing it through the project's dependency
// script when it is missing: the test never skips.
func caddyBinary(t testing.TB) string {
	t.Helper()
	for _, p := range []string{"caddy", "/usr/bin/caddy"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	cmd := exec.Command("../scripts/deps.sh")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("caddy is missing and installing it failed: %v", err)
	}
	path, err := exec.LookPath("/usr/bin/caddy")
	if err != nil {
		t.Fatalf("caddy is still missing after installing it: %v", err)
	}
	return path
}

// caddyGlobal is put before the guide's site block: no admin endpoint (the
// saved copy of the configuration goes to the temp dir, see startCaddy).
const caddyGlobal = `{
	admin off
}
`

// guideCaddyfile is the Caddyfile of docs/sideband-caddy.md with its example
// addresses and token replaced; each must be there exactly once, so the
// guide and this test cannot drift apart.
func guideCaddyfile(t *testing.T, asePort, backendPort, listenPort, token string) string {
	t.Helper()
	blocks := fencedBlocks(t, "../docs/sideband-caddy.md", "caddyfile")
	if len(blocks) != 1 {
		t.Fatalf("docs/sideband-caddy.md has %d caddyfile blocks, want 1", len(blocks))
	}
	conf := blocks[0]
	for _, r := range [][2]string{
		{"api.example.com {", "http://127.0.0.1:" + listenPort + " {"},
		{"forward_auth 127.0.0.1:8080 {", "forward_auth 127.0.0.1:" + asePort + " {"},
		{"reverse_proxy 127.0.0.1:9000", "reverse_proxy 127.0.0.1:" + backendPort},
		{`"0123456789abcdef0123456789abcdef"`, `"` + token + `"`},
	} {
		if n := strings.Count(conf, r[0]); n != 1 {
			t.Fatalf("docs/sideband-caddy.md: %q appears %d times, want once", r[0], n)
		}
		conf = strings.Replace(conf, r[0], r[1], 1)
	}
	return caddyGlobal + conf
}

func startCaddy(t *testing.T, asePort, backendPort, token string) string {
	t.Helper()
	bin := caddyBinary(t)
	dir := t.TempDir()
	port := fmt.Sprint(freePort(t))
	path := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(path, []byte(guideCaddyfile(t, asePort, backendPort, port, token)), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "--config", path, "--adapter", "caddyfile")
	cmd.Dir = dir
	// Caddy keeps its data and configuration under the home directory:
	// the temp dir's, not the machine's.
	cmd.Env = append(cleanEnv(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	})
	url := "http://127.0.0.1:" + port
	deadline := time.Now().Add(20 * time.Second)
	for {
		if resp, err := http.Get(url + "/caddy-up"); err == nil {
			resp.Body.Close()
			return url
		}
		select {
		case err := <-exited:
			exited <- err // for the cleanup
			t.Fatalf("caddy exited (%v): %s", err, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("caddy did not start: %s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestCaddyForwardAuth runs docs/sideband-caddy.md against a real Caddy:
// listed clients are refused before the backend, a client's own
// X-Forwarded-For does not choose its address, a deleted token and a
// stopped ASE fail closed.
func TestCaddyForwardAuth(t *testing.T) {
	var seen atomic.Int64
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Add(1)
		fmt.Fprintf(w, "backend saw %s for api %s", r.URL.Path, r.Header.Get("X-ASE-API-ID"))
	}))
	defer backend.Close()
	i := startSideband(t, map[string]string{"enable_sideband_keepalive": "true", "enable_sideband_authentication": "true"})
	var created struct{ Token string }
	decode(t, i.Do("POST", "/v5/ase/sideband/token", "", nil), &created)
	gw := startCaddy(t, i.Conf["http_ws_port"], strings.TrimPrefix(backend.URL, "http://127.0.0.1:"), created.Token)

	get := func(headers map[string]string) (int, string, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", gw+"/shop/items", nil)
		for k, v := range headers {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header.Get("X-ASE-Reason")
	}
	expect := func(step string, headers map[string]string, served bool) {
		t.Helper()
		before := seen.Load()
		code, body, reason := get(headers)
		switch {
		case served && (code != 200 || body != "backend saw /shop/items for api shop" || seen.Load() != before+1):
			t.Fatalf("%s: got %d %q, want the backend's answer", step, code, body)
		case !served && (code != 403 || reason != "deny_list"):
			t.Fatalf("%s: got %d %q (reason %q), want 403 deny_list", step, code, body, reason)
		case !served && seen.Load() != before:
			t.Fatalf("%s: the backend saw a refused request", step)
		}
	}
	for _, e := range []struct {
		name, entry string
		headers     map[string]string
	}{
		// Caddy passes its peer, 127.0.0.1 here, in X-Forwarded-For.
		{"ip", `{"type": "ip", "value": "127.0.0.1"}`, nil},
		{"cookie", `{"type": "cookie", "name": "SID", "value": "s-123"}`, map[string]string{"Cookie": "theme=dark; SID=s-123"}},
		{"api key", `{"type": "api_key", "name": "X-API-Key", "value": "key-9"}`, map[string]string{"X-API-Key": "key-9"}},
		{"token", `{"type": "token", "value": "tok-1"}`, map[string]string{"Authorization": "Bearer tok-1"}},
	} {
		expect(e.name+": before listing", e.headers, true)
		wantStatus(t, i.Do("POST", "/v5/ase/firewall/blacklist", e.entry, nil), 200, "success", "*")
		expect(e.name+": listed", e.headers, false)
		wantStatus(t, i.Do("DELETE", "/v5/ase/firewall/blacklist", e.entry, nil), 200, "success", "*")
		expect(e.name+": removed", e.headers, true)
	}
	// A client naming a listed address as its own changes nothing: Caddy
	// replaces an untrusted client's X-Forwarded-For.
	wantStatus(t, i.Do("POST", "/v5/ase/firewall/blacklist", `{"type": "ip", "value": "203.0.113.66"}`, nil), 200, "success", "*")
	expect("forged X-Forwarded-For", map[string]string{"X-Forwarded-For": "203.0.113.66"}, true)

	// Without a valid token ASE answers 401, and Caddy passes it on.
	wantJSON(t, i.Do("DELETE", "/v5/ase/sideband/token", `{"token": "`+created.Token+`"}`, nil), 200, `{"status": "success", "status_message": "Sideband token `+created.Token+` deleted."}`)
	before := seen.Load()
	if code, _, _ := get(nil); code != 401 || seen.Load() != before {
		t.Fatalf("with the gateway's token deleted: got %d, want 401 and nothing at the backend", code)
	}
	// ASE down: Caddy fails closed, as the guide says.
	i.Stop()
	if code, _, _ := get(nil); code != 502 || seen.Load() != before {
		t.Fatalf("with ASE down: got %d, want 502 and nothing at the backend", code)
	}
}

// TestGatewaysNeverPassClientASEHeaders runs the nginx and Caddy guides
// against the real gateways with a client that sends its own X-ASE-*
// headers: the backend gets ASE's values or none, never the client's, and
// never an unexpanded placeholder.
func TestGatewaysNeverPassClientASEHeaders(t *testing.T) {
	var mu sync.Mutex
	var got http.Header
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = r.Header.Clone()
		mu.Unlock()
		fmt.Fprint(w, "ok")
	}))
	defer backend.Close()
	i := startSideband(t, map[string]string{"enable_sideband_keepalive": "true", "enable_sideband_authentication": "true"})
	var created struct{ Token string }
	decode(t, i.Do("POST", "/v5/ase/sideband/token", "", nil), &created)
	backendPort := strings.TrimPrefix(backend.URL, "http://127.0.0.1:")

	for _, gw := range []struct {
		name  string
		start func(t *testing.T, asePort, backendPort, token string) string
	}{
		{"nginx", startNginx},
		{"caddy", startCaddy},
	} {
		t.Run(gw.name, func(t *testing.T) {
			url := gw.start(t, i.Conf["http_ws_port"], backendPort, created.Token)
			req, _ := http.NewRequest("GET", url+"/shop/items", nil)
			req.Header["X-ASE-Username"] = []string{"forged-user", "forged-too"}
			req.Header["x-ase-username"] = []string{"forged-lower"}
			req.Header.Set("X-ASE-Client-IP", "203.0.113.66")
			req.Header.Set("X-ASE-API-ID", "forged-api")
			req.Header.Set("X-ASE-Reason", "forged-reason")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(body) != "ok" {
				t.Fatalf("got %d %q, want the backend's answer", resp.StatusCode, body)
			}
			mu.Lock()
			h := got
			mu.Unlock()
			want := map[string][]string{"X-Ase-Api-Id": {"shop"}, "X-Ase-Client-Ip": {"127.0.0.1"}}
			for name, values := range h {
				if !strings.HasPrefix(strings.ToLower(name), "x-ase-") {
					continue
				}
				if w, ok := want[http.CanonicalHeaderKey(name)]; !ok || strings.Join(values, "|") != strings.Join(w, "|") {
					t.Errorf("the backend got %s: %q, want %q", name, values, w)
				}
			}
			for name := range want {
				if len(h.Values(name)) == 0 {
					t.Errorf("the backend got no %s, want ASE's", name)
				}
			}
			for name, values := range h {
				for _, v := range values {
					if strings.Contains(v, "forged") || strings.Contains(v, "203.0.113.66") || strings.Contains(v, "{http.") {
						t.Errorf("the backend got %s: %q", name, v)
					}
				}
			}
		})
	}
}
