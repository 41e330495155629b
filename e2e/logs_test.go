package e2e

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestHealthEndpoint: GET /ase on the data ports answers load balancers
// when enable_ase_health=true, in both modes, and is an ordinary path
// otherwise.
func TestHealthEndpoint(t *testing.T) {
	for _, mode := range []string{"inline", "sideband"} {
		t.Run(mode, func(t *testing.T) {
			on := startInstance(t, map[string]string{"mode": mode, "enable_ase_health": "true"})
			wantJSON(t, on.Data("GET", "/ase", "", nil), 200, `{"status": "ok"}`)
			if r := on.Data("HEAD", "/ase", "", nil); r.Code != 200 {
				t.Fatalf("HEAD /ase: %d", r.Code)
			}
			// Only the exact path and read methods: /ase/request stays the
			// sideband protocol, a POST to /ase is not a health check.
			if r := on.Data("POST", "/ase", "{}", nil); r.Code == 200 {
				t.Fatalf("POST /ase answered as a health check: %s", r.Body)
			}
			if r := on.Data("GET", "/ase/", "", nil); r.Code == 200 && strings.Contains(string(r.Body), `"ok"`) {
				t.Fatalf("GET /ase/ answered as a health check")
			}
			// It answers with the firewall off, too: health is about the process.
			wantStatus(t, on.Do("POST", "/v5/ase/firewall?status=disable", "", nil), 200, "disabled", "Firewall is now disabled")
			wantJSON(t, on.Data("GET", "/ase", "", nil), 200, `{"status": "ok"}`)

			off := startInstance(t, map[string]string{"mode": mode})
			if r := off.Data("GET", "/ase", "", nil); r.Code == 200 {
				t.Fatalf("health answered although enable_ase_health=false: %s", r.Body)
			}
		})
	}
}

// logLines reads a JSON-lines log file, failing on any line that is not a
// whole JSON object.
func logLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l map[string]any
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("%s: line is not a JSON object: %q", path, sc.Text())
		}
		out = append(out, l)
	}
	return out
}

// TestLogFiles: the access and audit logs are JSON lines under
// data_dir/logs, rotated by size keeping log_max_files; with
// *_log_stdout they go to standard output instead; the management log
// follows admin_log_level.
func TestLogFiles(t *testing.T) {
	i := startInstance(t, map[string]string{"log_max_size": "4kb", "log_max_files": "2", "admin_log_level": "5"})
	for n := 0; n < 60; n++ {
		i.Data("GET", fmt.Sprintf("/nothing/%d", n), "", nil)
		wantStatus(t, i.Do("POST", "/v5/ase/firewall/blacklist", fmt.Sprintf(`{"type": "ip", "value": "192.0.2.%d"}`, n), nil), 200, "success", "*")
	}
	i.Stop() // flushes the access log
	logs := filepath.Join(i.Conf["data_dir"], "logs")
	for _, name := range []string{"access.log", "audit.log"} {
		total := 0
		for _, f := range []string{name, name + ".1", name + ".2"} {
			st, err := os.Stat(filepath.Join(logs, f))
			if err != nil {
				t.Fatalf("%s was not rotated into %s: %v", name, f, err)
			}
			if st.Size() > 4096 {
				t.Errorf("%s is %d bytes, over log_max_size", f, st.Size())
			}
			if st.Mode().Perm()&0o077 != 0 {
				t.Errorf("%s is readable by others: %v", f, st.Mode())
			}
			total += len(logLines(t, filepath.Join(logs, f)))
		}
		if _, err := os.Stat(filepath.Join(logs, name+".3")); err == nil {
			t.Errorf("%s.3 kept although log_max_files=2", name)
		}
		if total == 0 {
			t.Errorf("%s has no lines", name)
		}
	}
	// The newest lines are in the current files, whole.
	last := logLines(t, filepath.Join(logs, "audit.log"))
	if l := last[len(last)-1]; l["action"] != "add_blacklist" || l["user"] != "admin" || l["result"] != "success" {
		t.Fatalf("last audit line: %v", l)
	}
	access := logLines(t, filepath.Join(logs, "access.log"))
	if l := access[len(access)-1]; l["path"] != "/nothing/59" || l["status"] != float64(503) {
		t.Fatalf("last access line: %v", l)
	}
	// admin_log_level=5 logs every management request (without its query).
	if !strings.Contains(i.Output(), `msg="management request" method=POST path=/v5/ase/firewall/blacklist status=200`) {
		t.Fatalf("no debug line for management requests:\n%.2000s", i.Output())
	}

	// Standard output instead of files; a quieter management log.
	s := startInstance(t, map[string]string{"access_log_stdout": "true", "audit_log_stdout": "true", "admin_log_level": "3"})
	s.Data("GET", "/to-stdout", "", nil)
	wantStatus(t, s.Do("POST", "/v5/ase/firewall/blacklist", `{"type": "ip", "value": "192.0.2.200"}`, nil), 200, "success", "*")
	s.Stop()
	var sawAccess, sawAudit bool
	for _, line := range strings.Split(s.Output(), "\n") {
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var l map[string]any
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("stdout line is not JSON: %q", line)
		}
		sawAccess = sawAccess || l["path"] == "/to-stdout"
		sawAudit = sawAudit || l["action"] == "add_blacklist"
	}
	if !sawAccess || !sawAudit {
		t.Fatalf("access %v, audit %v on stdout:\n%s", sawAccess, sawAudit, s.Output())
	}
	for _, f := range []string{"access.log", "audit.log"} {
		if _, err := os.Stat(filepath.Join(s.Conf["data_dir"], "logs", f)); err == nil {
			t.Errorf("%s written although it goes to stdout", f)
		}
	}
	if strings.Contains(s.Output(), "management request") {
		t.Error("debug lines at admin_log_level=3")
	}
}

// TestNoSecretInAnyLog runs through every kind of secret ASE handles:
// admin and user passwords (right and wrong), sessions, API keys, sideband
// tokens, shared secrets, and the credentials clients send on the data
// ports (bearer tokens, cookies, API keys, Basic passwords), including
// listed ones, in both modes and over the CLI, then reads every log file
// and the server's own output and fails on any secret found there.
func TestNoSecretInAnyLog(t *testing.T) {
	backend := newBackend(t, "b", false)
	conf := map[string]string{"admin_log_level": "5", "enable_ase_detected_attack": "true", "log_max_size": "64kb"}
	in := startInstance(t, conf)
	sconf := map[string]string{"enable_sideband_keepalive": "true"}
	for k, v := range conf {
		sconf[k] = v
	}
	sb := startSideband(t, sconf)

	secrets := map[string]string{} // what → value
	secret := func(what, value string) string { secrets[what] = value; return value }

	// Admin password changed over the CLI (prompted on stdin); wrong
	// passwords tried on every door.
	for _, i := range []*Instance{in, sb} {
		pw := secret("admin password "+i.Conf["mode"], "N3w-Adm1n-Pa55-"+i.Conf["mode"])
		if out, errOut, code := i.CLI(i.Password+"\n"+pw+"\n"+pw+"\n", "update_password"); code != 0 {
			t.Fatalf("update_password: %s %s", out, errOut)
		}
		i.Password = pw
		wrong := secret("wrong admin password", "Wr0ng-Guess-0f-Adm1n")
		if r := i.Do("GET", "/v5/ase/status", "", map[string]string{"x-ase-secret-key": wrong}); r.Code != 403 {
			t.Fatalf("wrong password: %d", r.Code)
		}
		if _, _, code := i.CLIEnv([]string{"ASE_URL=" + i.MgmtURL, "ASE_PASSWORD=" + wrong}, "", "status"); code == 0 {
			t.Fatal("CLI with a wrong password succeeded")
		}
		req, _ := http.NewRequest("GET", i.MgmtURL+"/api/authentication?login_method=local&type=password", nil)
		req.SetBasicAuth("admin", secret("wrong basic password", "Wr0ng-Basic-Pa55"))
		if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 401 {
			t.Fatalf("wrong Basic login: %v %v", resp, err)
		} else {
			resp.Body.Close()
		}

		// A user, a session, an API key.
		userPW := secret("user password", "0ps-User-Pa55word")
		i.createUser("ops", userPW, "write")
		sess := i.login("ops", userPW)
		secrets["session "+i.Conf["mode"]] = strings.TrimPrefix(sess["Cookie"], "session_id=")
		r := i.as("POST", "/api/configuration/aaa/local_database/api_keys", `{"name": "monitoring"}`, sess)
		var key struct {
			Body struct {
				Token string `json:"token"`
			} `json:"body"`
		}
		decode(t, r, &key)
		if key.Body.Token == "" {
			t.Fatalf("no API key token: %d %s", r.Code, r.Body)
		}
		secret("api key token "+i.Conf["mode"], key.Body.Token)
		if r := i.as("GET", "/v5/ase/api", "", map[string]string{"Authorization": "apikey " + key.Body.Token}); r.Code != 200 {
			t.Fatalf("API key read: %d", r.Code)
		}
		if r := i.as("POST", "/v5/ase/firewall?status=disable", "", map[string]string{"Authorization": "apikey " + key.Body.Token}); r.Code != 403 {
			t.Fatalf("API key write: %d", r.Code)
		}
		if r := i.as("GET", "/v5/ase/api", "", map[string]string{"Authorization": "apikey " + secret("wrong api key", "notakey0123456789abcdef")}); r.Code != 403 {
			t.Fatalf("wrong API key: %d", r.Code)
		}
		// A user's password changed.
		newUserPW := secret("changed user password", "0ps-Changed-Pa55")
		if r := i.Do("PUT", "/api/configuration/aaa/local_database/users/ops", fmt.Sprintf(`{"password": %q}`, newUserPW), nil); r.Code != 200 {
			t.Fatalf("change user password: %d %s", r.Code, r.Body)
		}

		// Listed credentials: allow-listed ones are keys to the building.
		for _, e := range []struct{ typ, name, value string }{
			{"token", "", secret("allow-listed token", "Allow-L1sted-T0ken")},
			{"cookie", "SID", secret("allow-listed cookie", "Allow-L1sted-C00kie")},
			{"api_key", "X-API-Key", secret("allow-listed api key", "Allow-L1sted-ApiKey")},
		} {
			body := fmt.Sprintf(`{"type": %q, "value": %q}`, e.typ, e.value)
			if e.name != "" {
				body = fmt.Sprintf(`{"type": %q, "name": %q, "value": %q}`, e.typ, e.name, e.value)
			}
			wantStatus(t, i.Do("POST", "/v5/ase/firewall/whitelist", body, nil), 200, "success", "*")
		}
		if out, errOut, code := i.CLI("", "add_blacklist", "token", secret("deny-listed token (CLI)", "Deny-L1sted-T0ken")); code != 0 {
			t.Fatalf("add_blacklist: %s %s", out, errOut)
		}
		if out, errOut, code := i.CLI("", "add_blacklist", "cookie", "SID", secret("deny-listed cookie (CLI)", "Deny-L1sted-C00kie")); code != 0 {
			t.Fatalf("add_blacklist: %s %s", out, errOut)
		}
		// A transaction staging a secret-bearing change.
		tx := i.login("ops", newUserPW)
		if r := i.as("POST", "/api/transaction", "{}", tx); r.Code != 200 && r.Code != 201 {
			t.Fatalf("open transaction: %d %s", r.Code, r.Body)
		}
		wantStatus(t, i.as("POST", "/v5/ase/firewall/blacklist", fmt.Sprintf(`{"type": "token", "value": %q}`, secret("staged token", "Staged-T0ken-Value")), tx), 200, "success", "*")
		if r := i.as("GET", "/api/transaction/changes", "", tx); r.Code != 200 || strings.Contains(string(r.Body), "Staged-T0ken-Value") {
			t.Fatalf("transaction changes: %d %s", r.Code, r.Body)
		}
		if r := i.as("PUT", "/api/transaction", `{"status": "commit"}`, tx); r.Code != 200 {
			t.Fatalf("commit: %d %s", r.Code, r.Body)
		}
	}

	// Client credentials on the data ports, inline.
	wantJSON(t, in.Do("POST", "/v5/ase/api?api_id=shop", apiDoc("/shop", `"cookie": "SID", "oauth2_access_token": true, "apikey_header": "X-API-Key", `+servers(backend)), nil), 200, ok)
	clientHeaders := []map[string]string{
		{"Authorization": "Bearer " + secret("bearer token", "Client-Bearer-T0ken")},
		{"Cookie": "SID=" + secret("session cookie", "Client-C00kie-Value") + "; other=1"},
		{"X-API-Key": secret("client api key", "Client-Api-Key-Value")},
		{"Authorization": "Basic " + basic("alice", secret("client basic password", "Client-Basic-Pa55"))},
		{"Authorization": "Bearer Allow-L1sted-T0ken"},
		{"Authorization": "Bearer Deny-L1sted-T0ken"},
		{"Cookie": "SID=Deny-L1sted-C00kie"},
	}
	for _, h := range clientHeaders {
		in.Data("GET", "/shop/items?q=1", "", h)
	}

	// And in sideband, on every protocol.
	shared := secret("shared secret", "Shared-S3cret-Value")
	wantStatus(t, sb.Do("POST", "/v5/ase/sideband/secret", `{"name": "gw", "secret": "`+shared+`"}`, nil), 200, "success", "*")
	wantStatus(t, sb.Do("PUT", "/v5/ase/sideband/secret", `{"name": "gw", "active": true}`, nil), 200, "success", "*")
	var created struct{ Token string }
	decode(t, sb.Do("POST", "/v5/ase/sideband/token", "", nil), &created)
	secret("sideband token", created.Token)
	imported := secret("imported sideband token", "0a1b2c3d4e5f60718293a4b5c6d7e8f9")
	if out, errOut, code := sb.CLI("", "import_sideband_token", imported); code != 0 {
		t.Fatalf("import: %s %s", out, errOut)
	}
	wantJSON(t, sb.Do("POST", "/v5/ase/sideband/authentication?status=enable", "", nil), 200, `{"status": "enabled", "status_message": "Sideband authentication is enabled"}`)
	auths := []map[string]string{{"ASE-Token": created.Token}, {"ASE-Token": imported}, {"CLIENT-TOKEN": shared},
		{"ASE-Token": secret("wrong sideband token", "ffffffffffffffffffffffffffffffff")}, {"CLIENT-TOKEN": secret("wrong shared secret", "Wrong-Shared-S3cret")}}
	for _, auth := range auths {
		for _, h := range clientHeaders {
			var hdr []string
			for k, v := range h {
				hdr = append(hdr, fmt.Sprintf(`{%q: %q}`, k, v))
			}
			call := aseCall("198.51.100.9", "GET", "/shop/items?q=1", strings.Join(hdr, ","))
			sb.Data("POST", "/ase/request", call, auth)
			sb.Data("POST", "/sideband/request", strings.Replace(call, `"http_version": "1.1", `, `"body": "", `, 1), auth)
			fwd := map[string]string{"X-Original-URI": "/shop/items", "X-Original-Method": "GET", "X-Forwarded-For": "198.51.100.9"}
			for k, v := range auth {
				fwd[k] = v
			}
			for k, v := range h {
				fwd[k] = v
			}
			sb.Data("GET", "/ase/authz", "", fwd)
		}
	}
	sb.Data("POST", "/ase/response", `{"response_code": "200", "headers": [{"Set-Cookie": "SID=Response-C00kie-Value"}]}`, map[string]string{"ASE-Token": created.Token})
	secret("cookie set in a response", "Response-C00kie-Value")

	// Everything flushed: stop both, then read every log.
	in.Stop()
	sb.Stop()
	var checked []string
	for _, i := range []*Instance{in, sb} {
		texts := map[string]string{"server output (" + i.Conf["mode"] + ")": i.Output()}
		logs := filepath.Join(i.Conf["data_dir"], "logs")
		entries, err := os.ReadDir(logs)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join(logs, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			texts[e.Name()+" ("+i.Conf["mode"]+")"] = string(b)
		}
		for name, text := range texts {
			checked = append(checked, fmt.Sprintf("%s: %d bytes", name, len(text)))
			for what, value := range secrets {
				if strings.Contains(text, value) {
					t.Errorf("%s contains the %s %q", name, what, value)
				}
			}
		}
		// The logs did record the activity, so the check above is not vacuous.
		access := texts["access.log ("+i.Conf["mode"]+")"]
		audit := texts["audit.log ("+i.Conf["mode"]+")"]
		if !strings.Contains(access, "/shop/items") || !regexp.MustCompile(`"action":"add_whitelist"`).MatchString(audit) ||
			!strings.Contains(audit, `"action":"create_user"`) || !strings.Contains(audit, `"action":"update_password"`) {
			t.Errorf("%s: the logs lack the activity:\naccess %.500s\naudit %.2000s", i.Conf["mode"], access, audit)
		}
	}
	t.Logf("checked %d secrets in %s", len(secrets), strings.Join(checked, ", "))
}

// basic is the value of an HTTP Basic credential.
func basic(user, password string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
}
