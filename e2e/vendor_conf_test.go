package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ase-project/ase/internal/config"
)

// vendorConf is the vendor's ase.conf as its container image writes it:
// every key of the template, the image's defaults, ABS switched off (the
// file says where each value comes from).
const vendorConf = "../internal/config/testdata/vendor-ase.conf"

// vendorEnv puts i's ports and data directory in the environment, which
// wins over the file: the vendor's file itself stays as it is.
func vendorEnv(i *Instance) []string {
	return []string{
		"ASE_HTTP_WS_PORT=" + i.Conf["http_ws_port"], "ASE_HTTPS_WSS_PORT=0",
		"ASE_MANAGEMENT_PORT=" + i.Conf["management_port"], "ASE_DATA_DIR=" + i.Conf["data_dir"],
	}
}

// startOnFile starts i on the ase.conf at path as it is (Launch writes
// i.Conf instead), and waits for its management API.
func (i *Instance) startOnFile(path string) {
	i.t.Helper()
	i.ConfPath = path
	i.out = &syncBuffer{}
	i.cmd = exec.Command(aseBin, "serve", "--config", path)
	i.cmd.Dir = i.Dir
	i.cmd.Env = append(cleanEnv(), i.Env...)
	i.cmd.Stdout, i.cmd.Stderr = i.out, i.out
	if err := i.cmd.Start(); err != nil {
		i.t.Fatal(err)
	}
	i.done = make(chan error, 1)
	cmd := i.cmd
	go func() { i.done <- cmd.Wait() }()
	i.t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-i.done
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-i.done:
			i.done <- err // for the cleanup's wait
			i.t.Fatalf("ase exited during start-up (%v):\n%s", err, i.out.String())
		default:
		}
		if _, err := i.Client().Status(context.Background()); err == nil {
			return
		}
		if time.Now().After(deadline) {
			i.t.Fatalf("ase did not answer within 60s:\n%s", i.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// vendorKeys returns the keys a vendor file sets, in order.
func vendorKeys(t *testing.T, text string) []string {
	t.Helper()
	var keys []string
	for _, line := range strings.Split(text, "\n") {
		if k, _, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, ";") {
			keys = append(keys, k)
		}
	}
	return keys
}

// The 17 keys ASE shares with the vendor's template, with their meaning.
var sharedVendorKeys = map[string]bool{
	"mode": true, "http_ws_port": true, "https_wss_port": true, "management_port": true, "admin_log_level": true,
	"enable_access_log": true, "enable_cluster": true, "enable_firewall": true, "enable_xff": true,
	"enable_ase_detected_attack": true, "enable_audit": true, "enable_ase_health": true, "server_ca_cert_path": true,
	"enable_sideband_authentication": true, "enable_sideband_keepalive": true, "timezone": true, "attack_list_memory": true,
	"enable_abs": true, "enable_abs_attack": true, // behavioural detection, in process (issue 20)
}

// TestVendorConfStarts: ASE starts on the vendor's complete ase.conf,
// unchanged. The 36 keys it has no use for are reported once each at start
// ("ignored: <key>, because <why>") and by `ase serve --check`; the 19 it
// shares keep their meaning (sideband mode, audit off, as the image sets).
func TestVendorConfStarts(t *testing.T) {
	data, err := os.ReadFile(vendorConf)
	if err != nil {
		t.Fatal(err)
	}
	keys := vendorKeys(t, string(data))
	var ignored []string
	for _, k := range keys {
		if !sharedVendorKeys[k] {
			ignored = append(ignored, k)
		}
	}
	if len(keys) != 55 || len(ignored) != 36 {
		t.Fatalf("the vendor file sets %d keys, %d of them ignored; want 55 and 36", len(keys), len(ignored))
	}

	i := newInstance(t, nil)
	i.Env = vendorEnv(i)
	conf, err := filepath.Abs(vendorConf)
	if err != nil {
		t.Fatal(err)
	}
	i.startOnFile(conf)
	out := i.Output()
	for _, k := range ignored {
		re := regexp.MustCompile(`msg="ignored: ` + k + `, because [^"]+" at=` + regexp.QuoteMeta(conf) + `:\d+\n`)
		if n := len(re.FindAllString(out, -1)); n != 1 {
			t.Errorf("%s: reported %d times at start, want once", k, n)
		}
	}
	if n := strings.Count(out, `msg="ignored: `); n != 36 {
		t.Errorf("got %d ignored keys reported, want 36:\n%s", n, out)
	}
	// The shared keys as the image sets them.
	s, err := i.Client().Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if s.Mode != "sideband" || s.Audit != "disabled" || s.Firewall != "enabled" || s.LogLevel != "info" || s.Timezone != "utc" {
		t.Errorf("got status %+v", s)
	}
	// The image's keystore password (obfuscated, but a secret) is never
	// repeated.
	if strings.Contains(out, "OBF:AES") {
		t.Error("keystore_password's value is in the output")
	}

	// --check says the same, without starting anything.
	stdout, stderr, code := i.CLIEnv(vendorEnv(i), "", "serve", "--check", "--config", conf)
	if code != 0 || !strings.HasSuffix(stdout, "; configuration OK; 0 API definitions in api_dir OK\n") {
		t.Fatalf("--check: %d\n%s\n%s", code, stdout, stderr)
	}
	for _, k := range ignored {
		if !strings.Contains(stdout, "\n; ignored: "+k+", because ") {
			t.Errorf("--check does not report %s", k)
		}
	}
	if strings.Contains(stdout, "OBF:AES") {
		t.Error("--check shows keystore_password's value")
	}
}

// TestVendorConfRefusals: a vendor key whose value asks for what ASE
// cannot do stops start-up, naming the key, the line and what to do
// instead; typos and keys no one has stay errors with "did you mean"; the
// secrets of ignored keys are never echoed, whatever happens.
func TestVendorConfRefusals(t *testing.T) {
	data, err := os.ReadFile(vendorConf)
	if err != nil {
		t.Fatal(err)
	}
	const secret = "smtp-secret-9f8e7d"
	// The vendor's file with its e-mail password and Pub/Sub key filled
	// in: still accepted, the secrets never shown.
	base := strings.NewReplacer("\nsender_password=\n", "\nsender_password="+secret+"\n",
		"\ngoogle_pubsub_apikey=\n", "\ngoogle_pubsub_apikey="+secret+"\n").Replace(string(data))
	if strings.Count(base, secret) != 2 {
		t.Fatal("the vendor file changed: sender_password or google_pubsub_apikey not found empty")
	}
	i := newInstance(t, nil)
	i.Env = vendorEnv(i)
	path := filepath.Join(i.Dir, "ase.conf")
	write := func(text string) {
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(base)
	stdout, stderr, code := i.CLIEnv(i.Env, "", "serve", "--check", "--config", path)
	if code != 0 || strings.Contains(stdout+stderr, secret) || !strings.Contains(stdout, "; ignored: sender_password, because ") {
		t.Fatalf("--check: %d %q %q", code, stdout, stderr)
	}

	for _, tc := range []struct {
		from, to string
		want     string
	}{
		{"\nenable_email=false\n", "\nenable_email=true\n", `enable_email: true asks for e-mail alerts and reports, which ASE does not send: set enable_email=false and alert on GET /v5/ase/metrics`},
		{"\nenable_abs_publish=false\n", "\nenable_abs_publish=true\n", `enable_abs_publish: true asks ASE to fetch the API definitions ABS discovered`},
		{"\nenable_sslv3=false\n", "\nenable_sslv3=true\n", `enable_sslv3: true asks for SSLv3, which ASE never speaks (broken since POODLE; TLS 1.2 is the minimum): set enable_sslv3=false`},
		{"\nenable_google_pubsub=false\n", "\nenable_google_pubsub=true\n", `enable_google_pubsub: true asks ASE to publish API metrics to Google Pub/Sub`},
		{"\nsyslog_server=\n", "\nsyslog_server=logs.example:514\n", `syslog_server: "logs.example:514" asks ASE to send its logs to syslog`},
		{"\nauth_method=ase::db\n", "\nauth_method=pam::ldap\n", `auth_method: "pam::ldap" asks for another authentication method`},
		{"\nenable_email=false\n", "\nenable_emial=false\n", `unknown key "enable_emial" (did you mean "enable_email"?)`},
		{"\nhostname_refresh=60\n", "\nhostname_refesh=60\n", `unknown key "hostname_refesh" (did you mean "hostname_refresh"?)`},
		{"\nenable_1G=true\n", "\nenable_10G=true\n", `unknown key "enable_10G" (did you mean "enable_1G"?)`},
		{"\nbuffer_size=16KB\n", "\nfrobnicate=yes\nbuffer_size=16KB\n", `unknown key "frobnicate"`},
	} {
		text := strings.Replace(base, tc.from, tc.to, 1)
		if text == base {
			t.Fatalf("%q not found in the vendor file", tc.from)
		}
		write(text)
		// Both the check and a real start refuse it, with the line.
		_, stderr, code := i.CLIEnv(i.Env, "", "serve", "--check", "--config", path)
		line := strings.Count(text[:strings.Index(text, tc.to)+1], "\n") + 1
		want := path + ":" + strconv.Itoa(line) + ": " + tc.want
		if code != 1 || !strings.Contains(stderr, want) {
			t.Errorf("--check with %q: %d %q, want %q", strings.TrimSpace(tc.to), code, stderr, want)
		}
		cmd := exec.Command(aseBin, "serve", "--config", path)
		cmd.Env = append(cleanEnv(), i.Env...)
		done := make(chan []byte, 1)
		go func() { b, _ := cmd.CombinedOutput(); done <- b }()
		var serveOut []byte
		select {
		case serveOut = <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			t.Fatalf("ase serve with %q did not stop", tc.to)
		}
		if cmd.ProcessState.ExitCode() != 1 || !strings.Contains(string(serveOut), want) {
			t.Errorf("serve with %q: exit %d %q, want %q", strings.TrimSpace(tc.to), cmd.ProcessState.ExitCode(), serveOut, want)
		}
		if strings.Contains(stderr+string(serveOut), secret) {
			t.Errorf("a secret of an ignored key was echoed: %q", stderr+string(serveOut))
		}
	}

	// Started on it, the secrets appear nowhere: output, logs, status.
	write(base)
	i.startOnFile(path)
	s := i.Do("GET", "/v5/ase/status", "", nil)
	logs, _ := os.ReadFile(filepath.Join(i.Conf["data_dir"], "logs", "access.log"))
	if strings.Contains(i.Output()+string(s.Body)+string(logs), secret) {
		t.Error("a secret of an ignored key was logged or shown")
	}
}

// TestReadmeListsVendorKeys keeps the README's list of the vendor keys ASE
// ignores complete.
func TestReadmeListsVendorKeys(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range config.VendorKeys() {
		if !strings.Contains(string(b), "`"+k.Name+"`") {
			t.Errorf("the README does not list the vendor key %s", k.Name)
		}
	}
}
