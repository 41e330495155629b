package config

import (
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// TestVendorConf: the vendor's ase.conf as its container image writes it
// (every key of the template, the image's defaults, ABS off) loads: the 17
// keys ASE shares keep their meaning, the 38 others are reported ignored,
// each once, in the file's order, with its line.
func TestVendorConf(t *testing.T) {
	const path = "testdata/vendor-ase.conf"
	c, err := Load(path, nil)
	if err != nil {
		t.Fatalf("got error %v, want none", err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var set []string // the keys the file sets, in order
	lineOf := map[string]int{}
	for n, line := range strings.Split(string(data), "\n") {
		if k, _, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, ";") {
			set = append(set, k)
			lineOf[k] = n + 1
		}
	}
	if len(set) != 55 {
		t.Fatalf("the file sets %d keys, want the template's 55", len(set))
	}
	var shared, ignored []string
	for _, k := range set {
		if lookup(k) != nil {
			shared = append(shared, k)
		} else {
			ignored = append(ignored, k)
		}
	}
	if len(shared) != 19 || len(ignored) != 36 {
		t.Errorf("got %d shared and %d ignored keys, want 19 and 36", len(shared), len(ignored))
	}
	var got []string
	for _, n := range c.Ignored {
		got = append(got, n.Key)
		if want := path + ":" + strconv.Itoa(lineOf[n.Key]); n.Pos != want {
			t.Errorf("%s: got position %q, want %q", n.Key, n.Pos, want)
		}
		if n.Why == "" || !strings.HasPrefix(n.String(), "ignored: "+n.Key+", because ") {
			t.Errorf("got %q", n.String())
		}
	}
	if !reflect.DeepEqual(got, ignored) {
		t.Errorf("got ignored\n%q\nwant\n%q", got, ignored)
	}

	// The shared keys: the image's values, with ASE's meaning.
	want := Default()
	want.Path = path
	want.Mode = ModeSideband
	want.EnableAudit = false
	want.EnableABSAttack = false
	if !equal(c, want) {
		t.Errorf("got\n%s\nwant\n%s", c.Format(), want.Format())
	}
	// The image's keystore password (an obfuscated default) is not kept.
	if strings.Contains(strings.Join(got, " ")+c.Format(), "OBF:AES") {
		t.Error("a secret value was kept")
	}
}

// TestVendorRefused: a vendor key whose value asks for what ASE cannot do
// stops start-up, saying what to do instead.
func TestVendorRefused(t *testing.T) {
	for _, tc := range []struct {
		line string
		want string // the whole message
	}{
		{"enable_email=true", "ase.conf:1: enable_email: true asks for e-mail alerts and reports, which ASE does not send: set enable_email=false and alert on GET /v5/ase/metrics (for example with Prometheus Alertmanager)"},
		{"enable_email=yes", `ase.conf:1: enable_email: "yes" is not a boolean (use true or false)`},
		{"enable_abs=maybe", `ase.conf:1: enable_abs: "maybe" is not a boolean (use true or false)`},
		{"enable_abs_publish=true", "set enable_abs_publish=false"},
		{"enable_google_pubsub=true", "set enable_google_pubsub=false and scrape GET /v5/ase/metrics"},
		{"enable_sslv3=true", "ase.conf:1: enable_sslv3: true asks for SSLv3, which ASE never speaks (broken since POODLE; TLS 1.2 is the minimum): set enable_sslv3=false"},
		{"enable_hostname_rewrite=true", "set enable_hostname_rewrite=false"},
		{"enable_mtls=true", "set enable_mtls=false and use enable_sideband_authentication"},
		{"syslog_server=10.0.0.1:514", `ase.conf:1: syslog_server: "10.0.0.1:514" asks ASE to send its logs to syslog, which it does not do itself: leave syslog_server empty;`},
		{"auth_method=pam::ldap", `ase.conf:1: auth_method: "pam::ldap" asks for another authentication method than ASE's own accounts`},
	} {
		t.Run(tc.line, func(t *testing.T) {
			c, err := Parse("ase.conf", []byte(tc.line), nil)
			if err == nil {
				t.Fatalf("got config with ignored %v, want an error", c.Ignored)
			}
			if !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("got %q, want one line containing %q", err, tc.want)
			}
		})
	}
}

// TestVendorAccepted: the values that ask for nothing, including the
// vendor's other ways of writing them, are ignored.
func TestVendorAccepted(t *testing.T) {
	for _, line := range []string{
		"enable_email=FALSE", "enable_email=", "enable_abs_publish=false", "syslog_server=", "auth_method=ase::db",
		"auth_method=", "enable_1G=false", "enable_1G=true", "http_ws_process=6", "smtp_host=smtp://<smtp-server>",
		"email_report=7", "hostname_refresh=anything", "enable_mtls=false",
	} {
		c, err := Parse("ase.conf", []byte(line), nil)
		if err != nil {
			t.Errorf("%s: got error %v, want none", line, err)
			continue
		}
		if len(c.Ignored) != 1 {
			t.Errorf("%s: got ignored %v, want one", line, c.Ignored)
		}
	}
}

// TestVendorSecretsNeverEchoed: secrets in ignored keys appear in no
// error, no report and no formatted configuration.
func TestVendorSecretsNeverEchoed(t *testing.T) {
	const secret = "hunter2-very-secret"
	file := strings.Join([]string{
		"sender_password=" + secret, "keystore_password=" + secret, "google_pubsub_apikey=" + secret,
		"enable_email=true", "sender_pasword=" + secret, // a refusal and a typo next to them
	}, "\n")
	_, err := Parse("ase.conf", []byte(file), nil)
	if err == nil || strings.Count(err.Error(), "\n") != 1 {
		t.Fatalf("got %v, want two errors", err)
	}
	if strings.Contains(err.Error(), secret) {
		t.Errorf("a secret is in %q", err)
	}
	c, err := Parse("ase.conf", []byte(strings.Join(strings.Split(file, "\n")[:3], "\n")), env(map[string]string{"ASE_SENDER_PASSWORD": secret}))
	if err != nil {
		t.Fatal(err)
	}
	if s := c.Format() + strings.Join(stringsOf(c.Ignored), "\n"); strings.Contains(s, secret) {
		t.Errorf("a secret is in %q", s)
	}
}

// TestSecretKeyErrorsHideTheValue: a bad etcd_password is refused
// without repeating it.
func TestSecretKeyErrorsHideTheValue(t *testing.T) {
	_, err := Parse("ase.conf", []byte("etcd_username=u\netcd_password=s3cr\x01et"), nil)
	if want := "ase.conf:2: etcd_password: the value (not shown) contains a control character"; err == nil || !strings.HasPrefix(err.Error(), want+"\n") || strings.Contains(err.Error(), "s3cr") {
		t.Errorf("got %v, want %s", err, want)
	}
}

func stringsOf(ns []Ignored) []string {
	var out []string
	for _, n := range ns {
		out = append(out, n.String(), n.Pos)
	}
	return out
}

// TestVendorKeysAreStrict: a typo or a key no one has stays an error,
// with a suggestion among ASE's and the vendor's keys; a vendor key may be
// set once.
func TestVendorKeysAreStrict(t *testing.T) {
	for _, tc := range []struct{ data, want string }{
		{"enable_emial=false", `ase.conf:1: unknown key "enable_emial" (did you mean "enable_email"?)`},
		{"smtp_hots=x", `ase.conf:1: unknown key "smtp_hots" (did you mean "smtp_host"?)`},
		{"hostname_refres=60", `ase.conf:1: unknown key "hostname_refres" (did you mean "hostname_refresh"?)`},
		{"enable_xf=true", `ase.conf:1: unknown key "enable_xf" (did you mean "enable_xff"?)`},
		{"color=blue", `ase.conf:1: unknown key "color"`},
		{"smtp_port=25\nsmtp_port=587", `ase.conf:2: smtp_port: duplicate key, first set on line 1`},
	} {
		_, err := Parse("ase.conf", []byte(tc.data), nil)
		if err == nil || err.Error() != tc.want {
			t.Errorf("%q: got %v, want %s", tc.data, err, tc.want)
		}
	}
}

// TestVendorEnv: the vendor's keys can be set through ASE_<KEY> too, with
// the same rules; the variable wins over the file.
func TestVendorEnv(t *testing.T) {
	c, err := Parse("ase.conf", []byte("enable_email=false\n"), env(map[string]string{"ASE_ENABLE_EMAIL": "false", "ASE_SMTP_PORT": "25"}))
	if err != nil {
		t.Fatal(err)
	}
	want := []Ignored{
		{Key: "enable_email", Pos: "ASE_ENABLE_EMAIL", Why: vendorKeys["enable_email"].why},
		{Key: "smtp_port", Pos: "ASE_SMTP_PORT", Why: vendorKeys["smtp_port"].why},
	}
	if !reflect.DeepEqual(c.Ignored, want) {
		t.Errorf("got %+v, want %+v", c.Ignored, want)
	}
	_, err = Parse("ase.conf", []byte("enable_email=false\n"), env(map[string]string{"ASE_ENABLE_EMAIL": "true"}))
	if err == nil || !strings.HasPrefix(err.Error(), "ASE_ENABLE_EMAIL: true asks for e-mail alerts") {
		t.Errorf("got %v", err)
	}
}

func TestReload(t *testing.T) {
	cur, err := Parse("ase.conf", []byte("mode=inline\napi_dir=a\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	next, err := Parse("ase.conf", []byte(strings.Join([]string{
		"mode=inline", "api_dir=b", "admin_log_level=5", "admin_log_format=json", "http_ws_port=9000",
		"enable_firewall=false", "etcd_username=u", "etcd_password=p4ss", "enable_email=false",
	}, "\n")), nil)
	if err != nil {
		t.Fatal(err)
	}
	next.Path = "ase.conf"
	eff, changes := Reload(cur, next)
	var got []string
	for _, ch := range changes {
		s := ch.String()
		if ch.Live {
			s += " (live)"
		}
		if ch.Hint != "" {
			s += " [" + ch.Hint + "]"
		}
		got = append(got, s)
	}
	want := []string{
		"http_ws_port 8000 -> 9000",
		"api_dir a -> b (live)",
		"enable_firewall true -> false [`ase enable_firewall` or `ase disable_firewall` changes it now]",
		"admin_log_level 4 -> 5 (live)",
		"admin_log_format text -> json (live)",
		`etcd_username "" -> u`,
		"etcd_password changed",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got changes\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Live keys from next, the others as they were.
	if eff.APIDir != "b" || eff.AdminLogLevel != 5 || eff.AdminLogFormat != LogJSON ||
		eff.HTTPWSPort != 8000 || !eff.EnableFirewall || eff.EtcdPassword != "" {
		t.Errorf("got\n%s", eff.Format())
	}
	if eff.Path != "ase.conf" || len(eff.Ignored) != 1 || cur.AdminLogLevel != 4 {
		t.Errorf("got path %q, ignored %v; cur changed: %v", eff.Path, eff.Ignored, cur.AdminLogLevel)
	}
	if _, changes := Reload(cur, cur); len(changes) != 0 {
		t.Errorf("got changes %v from the same configuration", changes)
	}
}

// TestLiveKeys: the keys a reload applies, and only those (the server
// applies each of them).
func TestLiveKeys(t *testing.T) {
	var got []string
	for _, k := range Keys() {
		if k.Live {
			got = append(got, k.Name)
		}
	}
	if want := []string{"api_dir", "admin_log_level", "admin_log_format"}; !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}
