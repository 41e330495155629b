package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestConfigErrorsStopStartup(t *testing.T) {
	tests := []struct {
		name string
		conf map[string]string
		env  []string
		want []string
	}{
		{"unknown key", map[string]string{"htp_ws_port": "80"}, nil, []string{`unknown key "htp_ws_port" (did you mean "http_ws_port"?)`}},
		{"bad value", map[string]string{"enable_xff": "yes"}, nil, []string{`enable_xff: "yes" is not a boolean (use true or false)`, "ase.conf:"}},
		{"several", map[string]string{"mode": "proxy", "admin_log_level": "9"}, nil, []string{"admin_log_level", "mode"}},
		{"bad env", nil, []string{"ASE_HTTP_WS_PORT=abc"}, []string{`ASE_HTTP_WS_PORT: "abc" is not a whole number`}},
		{"cluster without etcd", map[string]string{"enable_cluster": "true", "cluster_id": "c1", "etcd_endpoints": fmt.Sprintf("http://127.0.0.1:%d", freePort(t))}, nil,
			[]string{"cannot be reached and this node has no state of its own yet"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			i := newInstance(t, tt.conf)
			i.Env = tt.env
			i.Launch()
			if err := i.Wait(60 * time.Second); err == nil {
				t.Fatalf("ase started despite a bad configuration:\n%s", i.Output())
			}
			for _, w := range tt.want {
				if !strings.Contains(i.Output(), w) {
					t.Errorf("output lacks %q:\n%s", w, i.Output())
				}
			}
			if _, err := os.Stat(filepath.Join(i.Conf["data_dir"], "ase.db")); err == nil {
				t.Error("a store was created despite the bad configuration")
			}
		})
	}
}

func TestEnvironmentOverridesFile(t *testing.T) {
	i := newInstance(t, map[string]string{"attack_list_memory": "64MB"})
	i.Env = []string{"ASE_ATTACK_LIST_MEMORY=32MB"}
	i.Start()
	var s map[string]any
	decode(t, i.Do("GET", "/v5/ase/status", "", nil), &s)
	if !strings.HasPrefix(s["attack_list_memory"].(string), "configured 32.00 MB") {
		t.Fatalf("got %v", s["attack_list_memory"])
	}
}

func TestSIGTERMStopsCleanly(t *testing.T) {
	i := startInstance(t, nil)
	i.Stop() // fails the test unless the exit status is 0
	if !strings.Contains(i.Output(), "ASE stopped") {
		t.Fatalf("no clean-stop message:\n%s", i.Output())
	}
	// The store is released: a new process opens it at once.
	i.Start()
}

func TestDefaultPasswordRefusesPublicManagement(t *testing.T) {
	i := newInstance(t, map[string]string{"management_address": "0.0.0.0"})
	i.MgmtURL = "http://127.0.0.1:" + i.Conf["management_port"]
	i.Launch()
	if err := i.Wait(60 * time.Second); err == nil {
		t.Fatal("ase served the management API on 0.0.0.0 with the default password")
	}
	if !strings.Contains(i.Output(), "refusing to serve the management API on 0.0.0.0 while the admin password is the default") {
		t.Fatalf("got:\n%s", i.Output())
	}

	// Explicitly allowed: starts, with a warning.
	i.Conf["allow_default_password"] = "true"
	i.Start()
	i.Stop()

	// After the password is changed, the public address is fine.
	i.Conf["management_address"] = "127.0.0.1"
	i.Conf["allow_default_password"] = "false"
	i.Start()
	if _, stderr, code := i.CLI("admin\nnew-secret-1\nnew-secret-1\n", "update_password"); code != 0 {
		t.Fatalf("update_password failed: %s", stderr)
	}
	i.Password = "new-secret-1"
	i.Stop()
	i.Conf["management_address"] = "0.0.0.0"
	i.Start()
}

func TestUpdatePasswordCLI(t *testing.T) {
	i := startInstance(t, nil)
	tests := []struct {
		name, stdin string
		code        int
		stderr      string
	}{
		{"wrong current", "nope\nnew-secret-1\nnew-secret-1\n", 1, "ase: authorization failure"},
		{"mismatch", "admin\nnew-secret-1\nnew-secret-2\n", 2, "the new passwords do not match"},
		{"too short", "admin\nshort\nshort\n", 2, "at least 8 characters"},
		{"no input", "", 2, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, stderr, code := i.CLI(tt.stdin, "update_password")
			if code == 0 || (tt.code != 0 && code != tt.code && tt.stdin != "") {
				t.Fatalf("got exit %d, want %d: %s", code, tt.code, stderr)
			}
			if !strings.Contains(stderr, tt.stderr) {
				t.Fatalf("got stderr %q, want %q", stderr, tt.stderr)
			}
		})
	}
	stdout, stderr, code := i.CLI("admin\nnew-secret-1\nnew-secret-1\n", "update_password")
	if code != 0 || stdout != "password updated successfully\n" {
		t.Fatalf("got %q %q exit %d", stdout, stderr, code)
	}
	wantStatus(t, i.Do("GET", "/v5/ase/api", "", nil), 403, "fail", "authorization failure")
	i.Password = "new-secret-1"
	var s map[string]any
	decode(t, i.Do("GET", "/v5/ase/status", "", nil), &s)
	if s["admin_password"] != "changed" {
		t.Fatalf("status says the password is %v", s["admin_password"])
	}
	// The server's own check, for clients other than the CLI.
	wantStatus(t, i.Do("PUT", "/v5/ase/password", `{"current_password": "new-secret-1", "new_password": "short"}`, nil), 403, "validation_error", "the new password must have at least 8 characters")
	wantStatus(t, i.Do("PUT", "/v5/ase/password", `{"current_password": "wrong-one", "new_password": "long-enough"}`, nil), 403, "fail", "the current password is not correct")
	wantStatus(t, i.Do("PUT", "/v5/ase/password", `{"current": "x"}`, nil), 403, "validation_error", "current: unknown field")

	i.Restart()
	wantJSON(t, i.Do("GET", "/v5/ase/api", "", nil), 200, `{"api_count": "0", "api": []}`)
	// No password, neither old nor new, is ever logged.
	for _, secret := range []string{"new-secret-1", "new-secret-2", "long-enough", "wrong-one"} {
		if strings.Contains(i.Output(), secret) {
			t.Errorf("server log contains %q", secret)
		}
		audit, _ := os.ReadFile(filepath.Join(i.Conf["data_dir"], "logs", "audit.log"))
		if strings.Contains(string(audit), secret) {
			t.Errorf("audit log contains %q", secret)
		}
	}
}

func TestCLIManagesAPIsAndServers(t *testing.T) {
	i := startInstance(t, nil)
	file := filepath.Join(i.Dir, "shop.json")
	os.WriteFile(file, []byte(seed(t, "seed_rest.json")), 0o600)

	run := func(wantCode int, args ...string) string {
		t.Helper()
		stdout, stderr, code := i.CLI("", args...)
		if code != wantCode {
			t.Fatalf("ase %v: exit %d, want %d\nstdout %s\nstderr %s", args, code, wantCode, stdout, stderr)
		}
		if code != 0 {
			return stderr
		}
		return stdout
	}
	if got := run(0, "add_api", file); got != "api shop added successfully\n" {
		t.Fatalf("got %q", got)
	}
	if got := run(1, "add_api", file); got != "ase: api shop already exists\n" {
		t.Fatalf("got %q", got)
	}
	if got := run(0, "list_api"); got != "api count : 1\nshop : loaded\n" {
		t.Fatalf("got %q", got)
	}
	var def map[string]any
	if err := json.Unmarshal([]byte(run(0, "api_info", "shop")), &def); err != nil || def["api_metadata"] == nil {
		t.Fatalf("api_info: %v %v", def, err)
	}
	// A loopback port nothing listens on: the API checks health, so the
	// server is never shown Up (Unknown until its first probe, then Down).
	dead := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	if got := run(0, "add_server", "shop", dead, "5/second", "20"); got != "server "+dead+" added to api shop\n" {
		t.Fatalf("got %q", got)
	}
	if got := run(0, "health_status", "shop"); !hasLine(got, "server "+dead+" Unknown") && !hasLine(got, "server "+dead+" Down") {
		t.Fatalf("got %q", got)
	}
	out := run(0, "list_server", "shop", "-o", "json")
	var l struct {
		Count int `json:"server_count"`
	}
	if err := json.Unmarshal([]byte(out), &l); err != nil || l.Count != 3 {
		t.Fatalf("got %s", out)
	}
	run(0, "delete_server", "shop", dead)
	if got := run(1, "delete_server", "shop", dead); got != "ase: server does not exist\n" {
		t.Fatalf("got %q", got)
	}
	if got := run(0, "disable_firewall"); got != "Firewall is now disabled\n" {
		t.Fatalf("got %q", got)
	}
	if got := run(0, "disable_firewall"); got != "Firewall is already disabled\n" {
		t.Fatalf("got %q", got)
	}
	if got := run(1, "cluster_info"); got != "ase: ase is not in cluster mode\n" {
		t.Fatalf("got %q", got)
	}
	if got := run(0, "status"); !strings.Contains(got, "firewall                : disabled\n") || !strings.HasPrefix(got, "API Security Enforcer\n") {
		t.Fatalf("got %q", got)
	}
	run(2, "delete_api")          // missing argument
	run(2, "frobnicate")          // unknown command
	run(2, "list_api", "-o", "x") // bad output format
	if got := run(0, "delete_api", "shop"); got != "api shop deleted successfully\n" {
		t.Fatalf("got %q", got)
	}
	if got := run(0, "version"); !strings.HasPrefix(got, "ase version ") {
		t.Fatalf("got %q", got)
	}

	// The audit log names who did what, through which channel.
	audit, err := os.ReadFile(filepath.Join(i.Conf["data_dir"], "logs", "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, line := range strings.Split(strings.TrimSpace(string(audit)), "\n") {
		var e struct {
			User, Via, Action, Result string
			Time                      time.Time
		}
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("bad audit line %q: %v", line, err)
		}
		if e.User != "admin" || e.Via != "cli" || e.Time.IsZero() {
			t.Fatalf("got audit entry %+v", e)
		}
		actions = append(actions, e.Action+":"+e.Result)
	}
	want := "create_api:success create_api:api_already_exists add_server:success delete_server:success delete_server:server_not_found update_firewall:success update_firewall:success delete_api:success"
	if strings.Join(actions, " ") != want {
		t.Fatalf("got audit actions %v\nwant %s", actions, want)
	}
}

func TestAPIDirImport(t *testing.T) {
	i := newInstance(t, nil)
	dir := filepath.Join(i.Dir, "apis")
	os.Mkdir(dir, 0o700)
	i.Conf["api_dir"] = dir
	os.WriteFile(filepath.Join(dir, "shop.json"), []byte(seed(t, "seed_rest.json")), 0o600)
	os.WriteFile(filepath.Join(dir, "chat.json"), []byte(seed(t, "seed_ws.json")), 0o600)
	os.WriteFile(filepath.Join(dir, "README.txt"), []byte("not an API"), 0o600)
	i.Start()
	wantJSON(t, i.Do("GET", "/v5/ase/api", "", nil), 200,
		`{"api_count": "2", "api": [{"api_id": "chat", "status": "loaded"}, {"api_id": "shop", "status": "loaded"}]}`)

	// A change through the API survives a restart while the file is unchanged.
	wantJSON(t, i.Do("POST", "/v5/ase/server?api_id=shop", `{"server": {"host": "10.0.0.9", "port": 80}}`, nil), 200, ok)
	i.Restart()
	var l struct {
		Count int `json:"server_count"`
	}
	decode(t, i.Do("GET", "/v5/ase/server?api_id=shop", "", nil), &l)
	if l.Count != 3 {
		t.Fatalf("got %d servers after restart, want 3", l.Count)
	}
	// An edited file is imported again.
	os.WriteFile(filepath.Join(dir, "shop.json"), []byte(apiDoc("/shop", "")), 0o600)
	i.Restart()
	decode(t, i.Do("GET", "/v5/ase/server?api_id=shop", "", nil), &l)
	if l.Count != 0 {
		t.Fatalf("got %d servers after the file changed, want 0", l.Count)
	}
	// Invalid files stop start-up, every problem named, nothing imported.
	i.Stop()
	os.WriteFile(filepath.Join(dir, "bad.json"), []byte(apiDoc("nope", "")), 0o600)
	os.WriteFile(filepath.Join(dir, "worse.json"), []byte(`{`), 0o600)
	os.WriteFile(filepath.Join(dir, "new.json"), []byte(apiDoc("/new", "")), 0o600)
	i.Launch()
	if err := i.Wait(60 * time.Second); err == nil {
		t.Fatal("started with invalid api_dir files")
	}
	for _, w := range []string{"api_dir: bad.json: api_metadata.url: must be a path starting with /", "api_dir: worse.json: invalid JSON"} {
		if !strings.Contains(i.Output(), w) {
			t.Errorf("output lacks %q:\n%s", w, i.Output())
		}
	}
	os.Remove(filepath.Join(dir, "bad.json"))
	os.Remove(filepath.Join(dir, "worse.json"))
	i.Start()
	wantJSON(t, i.Do("GET", "/v5/ase/api", "", nil), 200,
		`{"api_count": "3", "api": [{"api_id": "chat", "status": "loaded"}, {"api_id": "new", "status": "loaded"}, {"api_id": "shop", "status": "loaded"}]}`)
}

// hasLine reports whether text has a line whose words are those of want
// (columns are aligned with variable spacing).
func hasLine(text, want string) bool {
	w := strings.Join(strings.Fields(want), " ")
	for _, line := range strings.Split(text, "\n") {
		if strings.Join(strings.Fields(line), " ") == w {
			return true
		}
	}
	return false
}

// TestServeCheck: `ase serve --check` validates a configuration and its
// api_dir (as a migration starts), names every problem, and touches no
// data.
func TestServeCheck(t *testing.T) {
	i := newInstance(t, nil)
	apis := filepath.Join(i.Dir, "apis")
	os.MkdirAll(apis, 0o700)
	os.WriteFile(filepath.Join(apis, "shop.json"), []byte(apiDoc("/shop", "")), 0o600)
	os.WriteFile(filepath.Join(apis, "copy.json"), []byte(apiDoc("/shop", "")), 0o600)
	os.WriteFile(filepath.Join(apis, "bad.json"), []byte(apiDoc("/bad", `"login_url": 5, "colour": "red"`)), 0o600)
	i.Conf["api_dir"] = apis
	i.Conf["enable_abs_publish"] = "true"
	i.Conf["attack_list_memory"] = "lots"
	i.writeConf()
	check := func() (string, string, int) {
		t.Helper()
		return i.CLIEnv(nil, "", "serve", "--check", "--config", i.ConfPath)
	}
	// Every configuration problem at once, by line.
	_, stderr, code := check()
	if code != 1 || !strings.Contains(stderr, "enable_abs_publish: true asks ASE to fetch the API definitions ABS discovered") || !strings.Contains(stderr, "attack_list_memory") {
		t.Fatalf("got %d %q", code, stderr)
	}
	delete(i.Conf, "enable_abs_publish")
	delete(i.Conf, "attack_list_memory")
	i.writeConf()
	// Every broken file at once.
	_, stderr, code = check()
	if code != 1 || !strings.Contains(stderr, "bad.json: ") || !strings.Contains(stderr, "api_metadata.login_url") || !strings.Contains(stderr, "colour") {
		t.Fatalf("got %d %q", code, stderr)
	}
	os.Remove(filepath.Join(apis, "bad.json"))
	// Files conflicting with each other.
	_, stderr, code = check()
	if code != 1 || !strings.Contains(stderr, "shop.json: api_metadata.url: api copy already serves hostname * and url /shop") {
		t.Fatalf("got %d %q", code, stderr)
	}
	os.Remove(filepath.Join(apis, "copy.json"))
	stdout, stderr, code := check()
	if code != 0 || !hasLine(stdout, "mode=inline") || !hasLine(stdout, "attack_list_memory=128mb") || !strings.HasSuffix(stdout, "; configuration OK; 1 API definitions in api_dir OK\n") {
		t.Fatalf("got %d %q %q", code, stdout, stderr)
	}
	if _, err := os.Stat(i.Conf["data_dir"]); err == nil {
		t.Fatal("--check created the data directory")
	}
}
