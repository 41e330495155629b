package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ase-project/ase/internal/wire"
)

// hangup sends SIGHUP and waits for the reload's last log line (matched
// after what the output held before).
func (i *Instance) hangup(t *testing.T, want string) {
	t.Helper()
	before := len(i.Output())
	if err := i.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the reload is logged: "+want, func() bool { return strings.Contains(i.Output()[before:], want) })
	i.alive(t)
}

// alive fails the test if the server has exited.
func (i *Instance) alive(t *testing.T) {
	t.Helper()
	select {
	case err := <-i.done:
		i.done <- err
		t.Fatalf("ase exited (%v):\n%s", err, i.Output())
	default:
	}
}

// rawGet sends one GET on an open connection and reads the answer.
func rawGet(t *testing.T, c net.Conn, br *bufio.Reader, path string, headers ...string) (int, string) {
	t.Helper()
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: shop.example\r\n%s\r\n", path, strings.Join(headers, ""))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("GET %s on the kept-alive connection: %v", path, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, string(body)
}

// TestReloadOnHangup: SIGHUP re-reads ase.conf and applies a live key at
// once (admin_log_level=5 logs every management request; admin_log_format
// switches the log to JSON), without dropping a connection, a request in
// flight, a session or a list entry.
func TestReloadOnHangup(t *testing.T) {
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/shop/slow" {
			<-release
		}
		fmt.Fprintf(w, "backend %s", r.URL.Path)
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(release) })
	port := slow.Listener.Addr().(*net.TCPAddr).Port

	i := startInstance(t, nil)
	wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=shop", apiDoc("/shop", fmt.Sprintf(`"cookie": "SID", "servers": [{"host": "127.0.0.1", "port": %d}]`, port)), nil), 200, ok)
	wantStatus(t, i.Do("POST", "/v5/ase/firewall/blacklist", `{"type": "cookie", "name": "SID", "value": "attacker"}`, nil), 200, "success", "*")
	i.createUser("alice", "alice-password", "read")
	alice := i.login("alice", "alice-password")

	// A kept-alive data connection, and a request in flight.
	conn, err := net.Dial("tcp", "127.0.0.1:"+i.Conf["http_ws_port"])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	if code, body := rawGet(t, conn, br, "/shop/a"); code != 200 || body != "backend /shop/a" {
		t.Fatalf("before: got %d %q", code, body)
	}
	inflight := make(chan string, 1)
	go func() {
		resp, err := http.Get(i.dataURL() + "/shop/slow")
		if err != nil {
			inflight <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		inflight <- strconv.Itoa(resp.StatusCode) + " " + string(b)
	}()

	// At level 4, management requests are not logged.
	i.Do("GET", "/v5/ase/status", "", nil)
	if strings.Contains(i.Output(), "management request") {
		t.Fatal("a management request was logged at admin_log_level=4")
	}

	i.Conf["admin_log_level"] = "5"
	i.Conf["admin_log_format"] = "json"
	i.writeConf()
	i.hangup(t, `msg="configuration reloaded: 2 changed keys applied, 0 need a restart" by=SIGHUP`)
	out := i.Output()
	for _, want := range []string{`msg="reload: admin_log_level 4 -> 5: applied"`, `msg="reload: admin_log_format text -> json: applied"`} {
		if !strings.Contains(out, want) {
			t.Errorf("the change is not logged: %s\n%s", want, out)
		}
	}

	// The new level and format are in effect: this request is logged, as
	// JSON, and status says debug.
	before := len(i.Output())
	var s wire.StatusInfo
	decode(t, i.Do("GET", "/v5/ase/status", "", nil), &s)
	if s.LogLevel != "debug" {
		t.Errorf("status: got log level %q, want debug", s.LogLevel)
	}
	eventually(t, "the request is logged as JSON", func() bool {
		for _, line := range strings.Split(i.Output()[before:], "\n") {
			var rec map[string]any
			if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == "management request" && rec["path"] == "/v5/ase/status" && rec["level"] == "DEBUG" {
				return true
			}
		}
		return false
	})

	// Nothing was dropped: the kept-alive connection answers again, the
	// request in flight completes, the session and the deny list hold.
	if code, body := rawGet(t, conn, br, "/shop/b"); code != 200 || body != "backend /shop/b" {
		t.Fatalf("after: got %d %q on the same connection", code, body)
	}
	if code, _ := rawGet(t, conn, br, "/shop/c", "Cookie: SID=attacker\r\n"); code != 403 {
		t.Fatalf("the deny-listed cookie got %d after the reload", code)
	}
	release <- struct{}{}
	select {
	case got := <-inflight:
		if got != "200 backend /shop/slow" {
			t.Fatalf("the request in flight got %q", got)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the request in flight never completed")
	}
	if r := i.as("GET", "/v5/ase/api", "", alice); r.Code != 200 {
		t.Fatalf("alice's session ended with the reload: %d", r.Code)
	}

	// The reload is in the audit log, keys only.
	audit, _ := os.ReadFile(filepath.Join(i.Conf["data_dir"], "logs", "audit.log"))
	if !regexp.MustCompile(`"via":"signal","auth":"SIGHUP","client":"","action":"reload","params":\{"applied":\["admin_log_level","admin_log_format"\],"needs_restart":\[\]\},"result":"success"`).Match(audit) {
		t.Errorf("no audit entry for the reload:\n%s", audit)
	}
}

// TestReloadCommand: `ase reload` (POST /v5/ase/reload) applies the live
// keys and names the others as needing a restart, leaving them as they
// are; it is an audited admin change.
func TestReloadCommand(t *testing.T) {
	i := startInstance(t, nil)
	stdout, stderr, code := i.CLI("", "reload")
	if code != 0 || stdout != "configuration reloaded: no key changed\n" {
		t.Fatalf("reload: %d %q %q", code, stdout, stderr)
	}

	oldPort, newPort := i.Conf["http_ws_port"], strconv.Itoa(freePort(t))
	i.Conf["http_ws_port"] = newPort
	i.Conf["enable_firewall"] = "false"
	i.Conf["admin_log_level"] = "3"
	i.writeConf()
	stdout, stderr, code = i.CLI("", "reload")
	want := "configuration reloaded: 1 changed key applied, 2 need a restart\n" +
		`applied       : admin_log_level "4" -> "3"` + "\n" +
		`needs restart : http_ws_port "` + oldPort + `" -> "` + newPort + `"` + "\n" +
		"needs restart : enable_firewall \"true\" -> \"false\" (`ase enable_firewall` or `ase disable_firewall` changes it now)\n"
	if code != 0 || stdout != want {
		t.Fatalf("reload: %d\n%s\nwant\n%s%s", code, stdout, want, stderr)
	}
	// The restart keys kept their values: the data port is where it was,
	// the firewall still on.
	if _, err := net.DialTimeout("tcp", "127.0.0.1:"+newPort, time.Second); err == nil {
		t.Error("the new http_ws_port was bound without a restart")
	}
	if c, err := net.DialTimeout("tcp", "127.0.0.1:"+oldPort, time.Second); err != nil {
		t.Errorf("the data port closed: %v", err)
	} else {
		c.Close()
	}
	var s wire.StatusInfo
	decode(t, i.Do("GET", "/v5/ase/status", "", nil), &s)
	if s.LogLevel != "warning" || s.Firewall != "enabled" || s.HTTPWS != "port "+oldPort {
		t.Errorf("status: got %+v", s)
	}
	if out := i.Output(); !strings.Contains(out, `msg="reload: http_ws_port `+oldPort+` -> `+newPort+`: needs a restart, not applied"`) {
		t.Errorf("the restart key is not logged:\n%s", out)
	}

	// The API's reply, for scripts: still pending, nothing newly applied.
	r := i.Do("POST", "/v5/ase/reload", "", nil)
	var reply wire.Reload
	decode(t, r, &reply)
	if r.Code != 200 || reply.Status != "success" || len(reply.Applied) != 0 || len(reply.NeedsRestart) != 2 ||
		reply.NeedsRestart[1] != (wire.ReloadChange{Key: "enable_firewall", From: "true", To: "false", Hint: "`ase enable_firewall` or `ase disable_firewall` changes it now"}) {
		t.Errorf("got %d %s", r.Code, r.Body)
	}

	// An admin-only change, audited as such.
	i.createUser("writer", "writer-password", "write")
	r = i.as("POST", "/v5/ase/reload", "", i.login("writer", "writer-password"))
	if r.Code != 403 || !strings.Contains(string(r.Body), "needs the admin role") {
		t.Errorf("a write user reloaded: %d %s", r.Code, r.Body)
	}
	audit, _ := os.ReadFile(filepath.Join(i.Conf["data_dir"], "logs", "audit.log"))
	if !strings.Contains(string(audit), `"user":"admin","via":"cli","auth":"secret_key","client":"127.0.0.1","action":"reload","params":{"applied":["admin_log_level"],"needs_restart":["http_ws_port","enable_firewall"]},"result":"success"`) {
		t.Errorf("no audit entry for the reload:\n%s", audit)
	}

	// It applies at once, so it cannot join a transaction, and another
	// session's open transaction holds it off like any change.
	i.createUser("ops", "ops-password", "admin")
	ops := i.login("ops", "ops-password")
	if r := i.as("POST", "/api/transaction", "{}", ops); r.Code != 200 {
		t.Fatalf("open: %d %s", r.Code, r.Body)
	}
	wantStatus(t, i.as("POST", "/v5/ase/reload", "", ops), 409, "transaction_in_progress", "a reload applies at once and cannot be staged: commit or roll back your transaction first")
	wantStatus(t, i.Do("POST", "/v5/ase/reload", "", nil), 409, "transaction_in_progress", "user ops has a transaction open; retry when it ends")
}

// TestReloadRefusesABadConfiguration: a file with problems changes
// nothing; every problem is named, in the reply and in the log, and ASE
// runs on. The same for api_dir: one invalid file and no file is imported.
func TestReloadRefusesABadConfiguration(t *testing.T) {
	apiDir := filepath.Join(t.TempDir(), "apis")
	if err := os.Mkdir(apiDir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeAPI := func(name, doc string) {
		if err := os.WriteFile(filepath.Join(apiDir, name), []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeAPI("shop.json", apiDoc("/shop", ""))
	i := startInstance(t, map[string]string{"api_dir": apiDir})

	good, err := os.ReadFile(i.ConfPath)
	if err != nil {
		t.Fatal(err)
	}
	bad := string(good) + "admin_log_level=9\nenable_email=true\nenable_emial=false\nenable_xff=maybe\n"
	if err := os.WriteFile(i.ConfPath, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	n := strings.Count(string(good), "\n")
	problems := []string{
		fmt.Sprintf("%s:%d: admin_log_level: 9 is out of range (1 to 5)", i.ConfPath, n+1),
		fmt.Sprintf("%s:%d: enable_email: true asks for e-mail alerts and reports, which ASE does not send: set enable_email=false and alert on GET /v5/ase/metrics (for example with Prometheus Alertmanager)", i.ConfPath, n+2),
		fmt.Sprintf(`%s:%d: unknown key "enable_emial" (did you mean "enable_email"?)`, i.ConfPath, n+3),
		fmt.Sprintf(`%s:%d: enable_xff: "maybe" is not a boolean (use true or false)`, i.ConfPath, n+4),
	}
	_, stderr, code := i.CLI("", "reload")
	if want := "ase: configuration not reloaded: ASE runs on as before: " + strings.Join(problems, "\n") + "\n"; code != 1 || stderr != want {
		t.Fatalf("reload: %d\n%s\nwant\n%s", code, stderr, want)
	}
	r := i.Do("POST", "/v5/ase/reload", "", nil)
	var e struct{ Status, StatusMessage, Detail string }
	json.Unmarshal(r.Body, &e)
	if r.Code != 403 || e.Status != "validation_error" || e.Detail != strings.Join(problems, "\n") {
		t.Fatalf("got %d %s", r.Code, r.Body)
	}
	i.hangup(t, "configuration not reloaded; ASE runs on as before\" by=SIGHUP problems=4")
	for _, p := range problems {
		if !strings.Contains(i.Output(), `msg="reload: `+p+`"`) && !strings.Contains(i.Output(), `msg="reload: `+strings.ReplaceAll(p, `"`, `\"`)+`"`) {
			t.Errorf("the log does not name %s", p)
		}
	}
	var s wire.StatusInfo
	decode(t, i.Do("GET", "/v5/ase/status", "", nil), &s)
	if s.LogLevel != "info" {
		t.Errorf("got log level %s after a refused reload", s.LogLevel)
	}

	// api_dir: a new valid file next to an invalid one; nothing imported.
	if err := os.WriteFile(i.ConfPath, good, 0o600); err != nil {
		t.Fatal(err)
	}
	writeAPI("cart.json", apiDoc("/cart", ""))
	writeAPI("broken.json", `{"api_metadata": {"url": "/broken", "protocol": "gopher"}}`)
	_, stderr, code = i.CLI("", "reload")
	if code != 1 || !strings.Contains(stderr, "ase: configuration not reloaded: ASE runs on as before: api_dir: broken.json: ") || !strings.Contains(stderr, "protocol") {
		t.Fatalf("reload: %d %q", code, stderr)
	}
	if r := i.Do("GET", "/v5/ase/api?api_id=cart", "", nil); r.Code != 404 {
		t.Fatalf("cart was imported from an api_dir with an invalid file: %d", r.Code)
	}
	// Fixed: both imported, by the same reload.
	os.Remove(filepath.Join(apiDir, "broken.json"))
	stdout, stderr, code := i.CLI("", "reload")
	if code != 0 || stdout != "configuration reloaded: no key changed\n" {
		t.Fatalf("reload: %d %q %q", code, stdout, stderr)
	}
	if r := i.Do("GET", "/v5/ase/api?api_id=cart", "", nil); r.Code != 200 {
		t.Fatalf("cart not imported: %d %s", r.Code, r.Body)
	}
	i.alive(t)
}

// TestSystemdUnitReloads: the unit's ExecReload is what makes `systemctl
// reload ase` reload (and not stop) the server: run as systemd runs it.
func TestSystemdUnitReloads(t *testing.T) {
	b, err := os.ReadFile("../docs/ase.service")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^ExecReload=(.*)$`).FindStringSubmatch(string(b))
	if m == nil {
		t.Fatal("no ExecReload= line: `systemctl reload ase` would fail")
	}
	i := startInstance(t, nil)
	i.Conf["admin_log_level"] = "5"
	i.writeConf()
	args := strings.Fields(strings.ReplaceAll(m[1], "$MAINPID", strconv.Itoa(i.cmd.Process.Pid)))
	before := len(i.Output())
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v %s", m[1], err, out)
	}
	eventually(t, "the unit's reload reloads", func() bool {
		return strings.Contains(i.Output()[before:], `msg="configuration reloaded: 1 changed key applied, 0 need a restart" by=SIGHUP`)
	})
	i.alive(t)
}
