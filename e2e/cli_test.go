package e2e

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ase-project/ase/internal/cli"
)

// TestEveryCLICommand runs every command of the CLI against a real server,
// checking its output and exit code, and fails if the CLI has a command
// this test does not run.
func TestEveryCLICommand(t *testing.T) {
	backend := newBackend(t, "b", false)
	i := startInstance(t, nil)
	dir := i.Dir
	os.WriteFile(filepath.Join(dir, "shop.json"), []byte(apiDoc("/shop", servers(backend))), 0o600)
	os.WriteFile(filepath.Join(dir, "chat.json"), []byte(apiDoc("/chat", `"protocol": "ws"`)), 0o600)
	os.WriteFile(filepath.Join(dir, "feed.json"), []byte(`[{"type": "ip", "value": "198.51.100.0/24"}]`), 0o600)
	addr := fmt.Sprintf("127.0.0.1:%d", backend.port())
	token := "0123456789abcdef0123456789abcdef"

	steps := []struct {
		args  []string
		stdin string
		code  int
		want  string // a regexp the output (stdout, or stderr on failure) must match
	}{
		{[]string{"version"}, "", 0, `^ase version \S+\n$`},
		{[]string{"help", "add_blacklist"}, "", 0, `Usage:\n  ase add_blacklist TYPE \[NAME\] VALUE`},
		{[]string{"completion", "bash"}, "", 0, `bash completion`},
		{[]string{"status"}, "", 0, `(?s)^API Security Enforcer\nstatus +: started\n.*mode +: inline\n.*attack list memory +: configured 128.00 MB, used 0.00 MB, free 128.00 MB\n`},
		{[]string{"add_api", filepath.Join(dir, "shop.json")}, "", 0, `^api shop added successfully\n$`},
		{[]string{"add_api", filepath.Join(dir, "chat.json")}, "", 0, `^api chat added successfully\n$`},
		{[]string{"update_api", filepath.Join(dir, "shop.json")}, "", 0, `^api shop updated successfully\n$`},
		{[]string{"update_api", filepath.Join(dir, "nope.json")}, "", 1, `no such file`},
		{[]string{"list_api"}, "", 0, `^api count : 2\nchat : loaded\nshop : loaded\n$`},
		{[]string{"api_info", "shop"}, "", 0, `"url": "/shop"`},
		{[]string{"api_info", "nope"}, "", 1, `^ase: api nope does not exist\n$`},
		{[]string{"add_server", "shop", "127.0.0.1:9", "5/second", "3"}, "", 0, `^server 127.0.0.1:9 added to api shop\n$`},
		{[]string{"list_server", "shop"}, "", 0, `server 127.0.0.1:9 +quota 3 +spike 5/second +Up`},
		{[]string{"health_status", "shop"}, "", 0, `server ` + regexp.QuoteMeta(addr) + ` +Up`},
		{[]string{"delete_server", "shop", "127.0.0.1:9"}, "", 0, `^server 127.0.0.1:9 deleted from api shop\n$`},
		{[]string{"firewall_status"}, "", 0, `^firewall : enabled\n$`},
		{[]string{"disable_firewall"}, "", 0, `^Firewall is now disabled\n$`},
		{[]string{"enable_firewall"}, "", 0, `^Firewall is now enabled\n$`},
		{[]string{"enable_ase_detected_attack"}, "", 0, `^ASE detected attack is now enabled\n$`},
		{[]string{"disable_ase_detected_attack"}, "", 0, `^ASE detected attack is now disabled\n$`},
		{[]string{"enable_abs"}, "", 0, `^Behavioural detection is now enabled\n$`},
		{[]string{"disable_abs"}, "", 0, `^Behavioural detection is now disabled\n$`},
		{[]string{"disable_abs_attack"}, "", 0, `^ABS attack is now disabled\n$`},
		{[]string{"enable_abs_attack"}, "", 0, `^ABS attack is now enabled\n$`},
		{[]string{"abs_status"}, "", 0, `(?s)^behavioural detection : disabled\nabs attack +: enabled\n.*apis +: 2\n  chat +training until \S+\n  shop +training until `},
		{[]string{"abs_policy", "shop", "--mode", "api_probing=report", "--threshold", "requests=600"}, "", 0, `^detection policy of api shop updated\n$`},
		{[]string{"abs_policy", "shop", "--mode", "api_probing=block"}, "", 1, `modes.api_probing: "block" is not a mode`},
		{[]string{"abs_status", "shop"}, "", 0, `(?s)^api : shop\nstate : training until .*  api_probing +report\n.*  requests +extreme_client_activity +threshold 600 \(override\)`},
		{[]string{"abs_policy", "shop", "--reset"}, "", 0, `^detection policy of api shop reset to the defaults\n$`},
		{[]string{"abs_retrain", "shop"}, "", 0, `^api shop is training again\n$`},
		{[]string{"abs_attacklist", "--status", "active"}, "", 0, `^attack list \(active\) : 0\n$`},
		{[]string{"delete_abs_attacklist", "--all"}, "", 0, `^0 entries deleted from the attack list\n$`},
		{[]string{"add_blacklist", "ip", "1.1.1.1"}, "", 0, `^ip 1.1.1.1 added to blacklist\n$`},
		{[]string{"add_blacklist", "--file", filepath.Join(dir, "feed.json")}, "", 0, `^1 entries added to blacklist, 0 already listed\n$`},
		{[]string{"view_blacklist", "manual"}, "", 0, `^manual blacklist : 2\n  ip 1\.1\.1\.1 +tag manual +added \S+ +expires never\n  ip 198\.51\.100\.0/24 +tag manual +added \S+ +expires never\n$`},
		{[]string{"check_ip", "198.51.100.7"}, "", 0, `^ip 198\.51\.100\.7 : denied by the blacklist\n  blacklist : ip 198\.51\.100\.0/24 +tag manual .*<- decides\n$`},
		{[]string{"check_token", "t1"}, "", 0, `^token t1 : not listed\n$`},
		{[]string{"check_api_key", "X-API-Key", "k1"}, "", 0, `^api_key X-API-Key k1 : not listed\n$`},
		{[]string{"check_username", "alice"}, "", 0, `^username alice : not listed\n$`},
		{[]string{"delete_blacklist", "ip", "1.1.1.1"}, "", 0, `^ip 1.1.1.1 deleted from blacklist\n$`},
		{[]string{"clear_blacklist"}, "", 0, `^Blacklist cleared\n$`},
		{[]string{"add_whitelist", "cookie", "SID", "abc"}, "", 0, `^cookie SID abc added to whitelist\n$`},
		{[]string{"view_whitelist"}, "", 0, `^whitelist : 1\n  cookie SID abc +tag manual +added \S+ +expires never\n$`},
		{[]string{"check_cookie", "SID", "abc"}, "", 0, `^cookie SID abc : allowed by the whitelist\n  whitelist : cookie SID abc +tag manual .*<- decides\n$`},
		{[]string{"delete_whitelist", "cookie", "SID", "abc"}, "", 0, `^cookie SID abc deleted from whitelist\n$`},
		{[]string{"clear_whitelist"}, "", 0, `^Whitelist cleared\n$`},
		{[]string{"enable_sideband_authentication"}, "", 0, `^Sideband authentication is enabled\n$`},
		{[]string{"sideband_authentication_status"}, "", 0, `^Sideband authentication is enabled\n$`},
		{[]string{"disable_sideband_authentication"}, "", 0, `^Sideband authentication is disabled\n$`},
		{[]string{"create_sideband_token"}, "", 0, `^sideband token created: [a-z0-9]{32}\n$`},
		{[]string{"import_sideband_token", token}, "", 0, `^Sideband token ` + token + ` imported.\n$`},
		{[]string{"list_sideband_token"}, "", 0, `^sideband tokens : 2\n`},
		{[]string{"delete_sideband_token", token}, "", 0, `^Sideband token ` + token + ` deleted.\n$`},
		{[]string{"create_shared_secret", "gw"}, "gateway-secret-1\n", 0, `^shared secret gw created; it is accepted once activated\n$`},
		{[]string{"activate_shared_secret", "gw"}, "", 0, `^shared secret gw is now active\n$`},
		{[]string{"list_shared_secret"}, "", 0, `shared secrets : 1\n  gw  active  created `},
		{[]string{"delete_shared_secret", "gw"}, "", 1, `^ase: shared secret gw is active: deactivate it before deleting it\n$`},
		{[]string{"deactivate_shared_secret", "gw"}, "", 0, `^shared secret gw is now inactive\n$`},
		{[]string{"delete_shared_secret", "gw"}, "", 0, `^shared secret gw deleted\n$`},
		{[]string{"set_shared_secret_header", "X-Gateway-Secret"}, "", 0, `^shared secret header is now X-Gateway-Secret\n$`},
		{[]string{"set_shared_secret_header"}, "", 0, `^shared secret header reset to CLIENT-TOKEN\n$`},
		{[]string{"update_client_spike_threshold", "shop", "100/second"}, "", 0, `^client_spike_threshold of api shop is now 100/second\n$`},
		{[]string{"update_client_spike_threshold", "shop", "fast"}, "", 1, `flow_control.client_spike_threshold: must be a rate`},
		{[]string{"update_server_spike_threshold", "shop", addr, "50/second"}, "", 0, `^server updated successfully\n$`},
		{[]string{"update_server_connection_quota", "shop", addr, "10"}, "", 0, `^server updated successfully\n$`},
		{[]string{"update_bytes_in_threshold", "chat", "1000/second"}, "", 0, `^bytes_in_threshold of api chat is now 1000/second\n$`},
		{[]string{"update_bytes_out_threshold", "chat", "2000/second"}, "", 0, `^bytes_out_threshold of api chat is now 2000/second\n$`},
		{[]string{"flow_control", "chat"}, "", 0, `^api : chat\nclient spike threshold : 0/second\nbytes in threshold : 1000/second\nbytes out threshold : 2000/second\nserver connection queueing : false\n$`},
		{[]string{"cluster_info"}, "", 1, `^ase: ase is not in cluster mode\n$`},
		{[]string{"create_user", "carol", "write"}, "carol-password\ncarol-password\n", 0, `^user carol created with the write role\n$`},
		{[]string{"list_user"}, "", 0, `^users : 2\n  admin +admin +created \S+\n  carol +write +created \S+\n$`},
		{[]string{"update_user", "carol", "--role", "read"}, "", 0, `^user carol now has the read role\n$`},
		{[]string{"create_api_key", "grafana", "-u", "carol", "-p", "carol-password"}, "", 0, `^api key grafana \(key [0-9a-f-]{36}\) created for user carol\ntoken : \S+\n`},
		{[]string{"create_scraper_key", "prometheus"}, "", 0, `^user prometheus created with the read role .*\napi key prometheus \(key [0-9a-f-]{36}\) created for user prometheus\ntoken : \S+\n`},
		{[]string{"list_api_key"}, "", 0, `^api keys : 2\n.* grafana +user carol .*\n.* prometheus +user prometheus `},
		{[]string{"delete_api_key", "no-such-key"}, "", 1, `^ase: API key does not exist\n$`},
		{[]string{"delete_user", "carol"}, "", 0, `^user carol deleted\n$`},
		{[]string{"reload"}, "", 0, `^configuration reloaded: no key changed\n$`},
		{[]string{"delete_api", "chat"}, "", 0, `^api chat deleted successfully\n$`},
		{[]string{"update_password"}, "admin\nanother-pass1\nanother-pass1\n", 0, `^password updated successfully\n$`},
		// From here on the old password fails, and says so.
		{[]string{"list_api"}, "", 1, `^ase: authorization failure\n$`},
		{[]string{"list_api", "-p", "another-pass1", "-o", "json"}, "", 0, `"api_count": "1"`},
		{[]string{"serve", "--config", filepath.Join(dir, "missing.conf")}, "", 1, `configuration:\n.*no such file`},
	}
	covered := map[string]bool{}
	for _, s := range steps {
		covered[s.args[0]] = true
		stdout, stderr, code := i.CLI(s.stdin, s.args...)
		out := stdout
		if s.code != 0 {
			out = stderr
		}
		if code != s.code || !regexp.MustCompile(s.want).MatchString(out) {
			t.Fatalf("ase %s: exit %d, want %d\nstdout %q\nstderr %q\nwant %s", strings.Join(s.args, " "), code, s.code, stdout, stderr, s.want)
		}
	}
	var missing []string
	for _, name := range cli.CommandNames() {
		if !covered[name] {
			missing = append(missing, name)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Fatalf("CLI commands this test does not run: %v", missing)
	}
}

// TestCLICredentials covers how the CLI gets its URL and credentials.
func TestCLICredentials(t *testing.T) {
	i := startInstance(t, nil)
	run := func(env []string, args ...string) (string, string, int) {
		t.Helper()
		i.t = t
		return i.CLIEnv(env, "", args...)
	}
	// Flags beat the environment.
	if out, _, code := run([]string{"ASE_URL=http://127.0.0.1:1", "ASE_PASSWORD=wrong"}, "list_api", "--url", i.MgmtURL, "-u", "admin", "-p", "admin"); code != 0 || !strings.HasPrefix(out, "api count : 0") {
		t.Fatalf("got %q %d", out, code)
	}
	// No password and no terminal: a clear usage error, not a prompt.
	if _, stderr, code := run([]string{"ASE_URL=" + i.MgmtURL}, "list_api"); code != 2 || !strings.Contains(stderr, "no password: give -p PASSWORD or set ASE_PASSWORD") {
		t.Fatalf("got %q %d", stderr, code)
	}
	// -p without a value asks for it; without a terminal that is refused.
	if _, stderr, code := run([]string{"ASE_URL=" + i.MgmtURL}, "list_api", "-p"); code != 2 || !strings.Contains(stderr, "no password") {
		t.Fatalf("got %q %d", stderr, code)
	}
	// An unreachable server: exit 1 and what failed.
	if _, stderr, code := run([]string{"ASE_URL=http://127.0.0.1:1", "ASE_PASSWORD=admin"}, "status"); code != 1 || !strings.Contains(stderr, "cannot reach the ASE management API at http://127.0.0.1:1") {
		t.Fatalf("got %q %d", stderr, code)
	}
}

// openPTY opens a pseudo-terminal: the controlling side (what a user
// types into) and the terminal side (the CLI's standard input).
func openPTY(t *testing.T) (control, term *os.File) {
	t.Helper()
	control, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { control.Close() })
	fd := int(control.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlock pty: %v", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("pty number: %v", err)
	}
	term, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { term.Close() })
	return control, term
}

// TestCLIPromptsOnTerminal: `-p` without a value, with a terminal
// attached, prompts for the password on stderr and reads it without echo.
func TestCLIPromptsOnTerminal(t *testing.T) {
	i := startInstance(t, nil)
	control, term := openPTY(t)
	echoed := &syncBuffer{}
	go io.Copy(echoed, control) // what the terminal displays

	cmd := exec.Command(aseBin, "list_api", "--url", i.MgmtURL, "-u", "admin", "-p")
	cmd.Env = cleanEnv()
	cmd.Stdin = term
	stderr := &syncBuffer{}
	var stdout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	// Type the password once the prompt is up and the CLI has turned the
	// terminal's echo off.
	echoOff := func() bool {
		tio, err := unix.IoctlGetTermios(int(term.Fd()), unix.TCGETS)
		return err == nil && tio.Lflag&unix.ECHO == 0
	}
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(stderr.String(), "Password: ") || !echoOff() {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("no prompt; stderr %q", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	io.WriteString(control, i.Password+"\n")
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit %v; stdout %q stderr %q", err, stdout.String(), stderr.String())
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("the CLI did not finish after the password was typed")
	}
	if !strings.HasPrefix(stdout.String(), "api count : 0") {
		t.Fatalf("got %q", stdout.String())
	}
	// Everything the terminal displayed up to the CLI's exit (its echo of
	// typed input included: the line discipline writes pending echoes out
	// before any later output) comes before a marker written now; once
	// the marker is read, all of it has been.
	const marker = "--end of the CLI's session--"
	if _, err := io.WriteString(term, marker); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(30 * time.Second)
	for !strings.Contains(echoed.String(), marker) {
		if time.Now().After(deadline) {
			t.Fatalf("the terminal never displayed the marker: %q", echoed.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if shown, _, _ := strings.Cut(echoed.String(), marker); strings.Contains(shown, i.Password) {
		t.Fatalf("the password was echoed: %q", shown)
	}

	// A wrong password typed at the prompt fails like a wrong -p.
	control2, term2 := openPTY(t)
	go io.Copy(io.Discard, control2)
	io.WriteString(control2, "not-the-password\n")
	cmd = exec.Command(aseBin, "status", "--url", i.MgmtURL, "-p")
	cmd.Env = cleanEnv()
	cmd.Stdin = term2
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), "authorization failure") {
		t.Fatalf("got %v %q", err, out)
	}
}
