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
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// nginxBinary finds nginx, installing it through the project's dependency
// script when it is missing: the test never skips.
func nginxBinary(t testing.TB) string {
	t.Helper()
	for _, p := range []string{"nginx", "/usr/sbin/nginx"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	cmd := exec.Command("../scripts/deps.sh")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("nginx is missing and installing it failed: %v", err)
	}
	path, err := exec.LookPath("/usr/sbin/nginx")
	if err != nil {
		t.Fatalf("nginx is still missing after installing it: %v", err)
	}
	return path
}

// nginxMain wraps the http-level blocks of docs/sideband-nginx.md in a
// main configuration that runs unprivileged in a temp dir.
const nginxMain = `
worker_processes 1;
daemon off;
pid {{dir}}/nginx.pid;
error_log {{dir}}/error.log warn;
{{user}}
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path {{dir}}/client_body;
    proxy_temp_path {{dir}}/proxy;
    fastcgi_temp_path {{dir}}/fastcgi;
    uwsgi_temp_path {{dir}}/uwsgi;
    scgi_temp_path {{dir}}/scgi;
{{guide}}
}
`

// guideNginxConf is the nginx configuration of docs/sideband-nginx.md with
// its example addresses and token replaced; each must be there exactly
// once, so the guide and this test cannot drift apart.
func guideNginxConf(t *testing.T, asePort, backendPort, listenPort, token string) string {
	t.Helper()
	blocks := fencedBlocks(t, "../docs/sideband-nginx.md", "nginx")
	if len(blocks) != 1 {
		t.Fatalf("docs/sideband-nginx.md has %d nginx blocks, want 1", len(blocks))
	}
	conf := blocks[0]
	for _, r := range [][2]string{
		{"server 127.0.0.1:8080;", "server 127.0.0.1:" + asePort + ";"},
		{"server 127.0.0.1:9000;", "server 127.0.0.1:" + backendPort + ";"},
		{"listen 80;", "listen 127.0.0.1:" + listenPort + ";"},
		{`"0123456789abcdef0123456789abcdef"`, `"` + token + `"`},
	} {
		if n := strings.Count(conf, r[0]); n != 1 {
			t.Fatalf("docs/sideband-nginx.md: %q appears %d times, want once", r[0], n)
		}
		conf = strings.Replace(conf, r[0], r[1], 1)
	}
	return conf
}

func startNginx(t *testing.T, asePort, backendPort, token string) string {
	t.Helper()
	bin := nginxBinary(t)
	dir := t.TempDir()
	port := fmt.Sprint(freePort(t))
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;" // workers must reach the temp dirs
	}
	guide := guideNginxConf(t, asePort, backendPort, port, token)
	conf := strings.NewReplacer("{{dir}}", dir, "{{user}}", user, "{{guide}}", guide).Replace(nginxMain)
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", path, "-p", dir)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	// nginx's worker is a child of its master: stop them as a group, or
	// an orphaned worker keeps running (and holding our pipes).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
	})
	url := "http://127.0.0.1:" + port
	deadline := time.Now().Add(20 * time.Second)
	for {
		if resp, err := http.Get(url + "/nginx-up"); err == nil {
			resp.Body.Close()
			return url
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("nginx did not start: %s\n%s", out.String(), log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestNginxAuthRequest(t *testing.T) {
	var seen atomic.Int64
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Add(1)
		fmt.Fprintf(w, "backend saw %s for api %s", r.URL.Path, r.Header.Get("X-ASE-API-ID"))
	}))
	defer backend.Close()
	// ASE configured as the guide says.
	i := startSideband(t, map[string]string{"enable_sideband_keepalive": "true", "enable_sideband_authentication": "true"})
	var created struct{ Token string }
	decode(t, i.Do("POST", "/v5/ase/sideband/token", "", nil), &created)
	gw := startNginx(t, i.Conf["http_ws_port"], strings.TrimPrefix(backend.URL, "http://127.0.0.1:"), created.Token)

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
	// expect checks one client through nginx: served (and seen by the
	// backend) or refused with 403 (and never reaching it).
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
	entries := []struct {
		name, entry string
		headers     map[string]string
	}{
		// nginx passes its peer, 127.0.0.1 here, as X-Real-IP.
		{"ip", `{"type": "ip", "value": "127.0.0.1"}`, nil},
		{"cookie", `{"type": "cookie", "name": "SID", "value": "s-123"}`, map[string]string{"Cookie": "theme=dark; SID=s-123"}},
		{"api key", `{"type": "api_key", "name": "X-API-Key", "value": "key-9"}`, map[string]string{"X-API-Key": "key-9"}},
	}
	for _, e := range entries {
		expect(e.name+": before listing", e.headers, true)
		wantStatus(t, i.Do("POST", "/v5/ase/firewall/blacklist", e.entry, nil), 200, "success", "*")
		expect(e.name+": listed", e.headers, false)
		wantStatus(t, i.Do("DELETE", "/v5/ase/firewall/blacklist", e.entry, nil), 200, "success", "*")
		expect(e.name+": removed", e.headers, true)
	}

	// Without a valid token ASE answers 401, and nginx refuses the client.
	wantJSON(t, i.Do("DELETE", "/v5/ase/sideband/token", `{"token": "`+created.Token+`"}`, nil), 200, `{"status": "success", "status_message": "Sideband token `+created.Token+` deleted."}`)
	before := seen.Load()
	if code, _, _ := get(nil); code != 401 || seen.Load() != before {
		t.Fatalf("with the gateway's token deleted: got %d, want 401 and nothing at the backend", code)
	}
	// ASE down: nginx fails closed, as the guide says.
	i.Stop()
	if code, _, _ := get(nil); code != 500 || seen.Load() != before {
		t.Fatalf("with ASE down: got %d, want 500 and nothing at the backend", code)
	}
}
