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

// NginxAuthRequestConf is the gateway configuration of docs/sideband-nginx.md,
// with the addresses filled in: nginx asks ASE's forward-auth endpoint about
// every request before proxying it.
const nginxAuthRequestConf = `
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

    upstream ase_authz { server 127.0.0.1:{{ase}}; keepalive 16; }

    server {
        listen 127.0.0.1:{{port}};

        location / {
            auth_request /_ase_authz;
            # ASE says why it refused; keep it in the gateway's logs.
            auth_request_set $ase_reason $upstream_http_x_ase_reason;
            add_header X-ASE-Reason $ase_reason always;
            proxy_set_header Host $host;
            proxy_pass http://127.0.0.1:{{backend}};
        }

        location = /_ase_authz {
            internal;
            proxy_pass http://ase_authz/ase/authz;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-URI $request_uri;
            proxy_set_header X-Original-Method $request_method;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header Host $host;
        }
    }
}
`

func startNginx(t *testing.T, asePort, backendPort string) string {
	t.Helper()
	bin := nginxBinary(t)
	dir := t.TempDir()
	port := fmt.Sprint(freePort(t))
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;" // workers must reach the temp dirs
	}
	conf := strings.NewReplacer("{{dir}}", dir, "{{user}}", user, "{{ase}}", asePort, "{{port}}", port, "{{backend}}", backendPort).Replace(nginxAuthRequestConf)
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
		fmt.Fprintf(w, "backend saw %s", r.URL.Path)
	}))
	defer backend.Close()
	i := startSideband(t, nil)
	gw := startNginx(t, i.Conf["http_ws_port"], strings.TrimPrefix(backend.URL, "http://127.0.0.1:"))

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
		case served && (code != 200 || body != "backend saw /shop/items" || seen.Load() != before+1):
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
}
