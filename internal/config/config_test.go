package config

import (
	"errors"
	"io/fs"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ase-project/ase/internal/units"
)

// env returns a lookup function over m, standing in for os.LookupEnv.
func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

// equal compares configs; a zone loaded twice gives two distinct
// *time.Location values, so Locations are compared by name. The ignored
// vendor keys are not part of the configuration (Format leaves them out):
// TestVendor* cover them.
func equal(a, b *Config) bool {
	if a.Location.String() != b.Location.String() {
		return false
	}
	x, y := *a, *b
	x.Location, y.Location = nil, nil
	x.Ignored, y.Ignored = nil, nil
	return reflect.DeepEqual(x, y)
}

func TestDefault(t *testing.T) {
	want := map[string]string{
		"mode": "inline", "http_ws_port": "8000", "https_wss_port": "8443", "management_port": "8010",
		"listen_address": "0.0.0.0", "management_address": "127.0.0.1", "data_dir": "./data", "api_dir": "",
		"enable_firewall": "true", "enable_ase_detected_attack": "false", "enable_sideband_authentication": "false",
		"enable_sideband_keepalive": "false", "enable_xff": "false", "trusted_proxies": "", "attack_list_memory": "128mb",
		"enable_audit": "true", "enable_access_log": "true", "enable_ase_health": "false", "timezone": "utc",
		"admin_log_level": "4", "admin_log_format": "text", "session_timeout": "20m", "tls_cert_file": "", "tls_key_file": "",
		"management_tls_cert_file": "", "management_tls_key_file": "", "client_ca_file": "",
		"server_ca_cert_path": "", "allow_default_password": "false", "log_dir": "", "access_log_stdout": "false", "audit_log_stdout": "false",
		"log_max_size": "100mb", "log_max_files": "10", "enable_cluster": "false", "cluster_id": "",
		"etcd_endpoints": "", "read_timeout": "30s", "write_timeout": "1m", "idle_timeout": "2m",
		"backend_timeout": "1m", "max_request_body": "32mb", "max_request_header": "16kb",
		"server_queue_size": "1000", "server_queue_timeout": "10s", "inline_event_loops": "true",
		"etcd_ca_file": "", "etcd_cert_file": "", "etcd_key_file": "", "etcd_username": "", "etcd_password": "", "cluster_node_ttl": "10s",
		"enable_abs": "false", "enable_abs_attack": "true", "abs_training_period": "1d", "abs_window": "5m", "abs_max_clients": "65536",
		"abs_ttl_ip": "1h", "abs_ttl_token": "1d", "abs_ttl_cookie": "1d", "abs_ttl_api_key": "1d", "abs_ttl_username": "1d",
	}
	keys := Keys()
	if len(keys) != len(want) {
		t.Errorf("got %d keys, want %d", len(keys), len(want))
	}
	for _, k := range keys {
		w, ok := want[k.Name]
		if !ok {
			t.Errorf("unexpected key %q", k.Name)
			continue
		}
		if k.Default != w {
			t.Errorf("%s: got default %q, want %q", k.Name, k.Default, w)
		}
		if wantEnv := "ASE_" + strings.ToUpper(k.Name); k.Env != wantEnv {
			t.Errorf("%s: got variable %q, want %q", k.Name, k.Env, wantEnv)
		}
		if k.Doc == "" {
			t.Errorf("%s: no doc", k.Name)
		}
	}

	for _, tc := range []struct {
		name string
		load func() (*Config, error)
	}{
		{"Load no file", func() (*Config, error) { return Load("", nil) }},
		{"Parse empty", func() (*Config, error) { return Parse("ase.conf", nil, nil) }},
		{"Parse comments only", func() (*Config, error) { return Parse("ase.conf", []byte("; nothing\n\n  # here\n"), env(nil)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := tc.load()
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			if !equal(c, Default()) {
				t.Errorf("got %+v, want %+v", c, Default())
			}
			if c.Warnings != nil {
				t.Errorf("got warnings %q, want none", c.Warnings)
			}
		})
	}
}

func TestParseKeys(t *testing.T) {
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		line string
		want func(c *Config)
	}{
		{"mode=sideband", func(c *Config) { c.Mode = ModeSideband }},
		{"mode=InLine", func(c *Config) { c.Mode = ModeInline }},
		{"http_ws_port=80", func(c *Config) { c.HTTPWSPort = 80 }},
		{"https_wss_port=0", func(c *Config) { c.HTTPSWSSPort = 0 }},
		{"https_wss_port=65535", func(c *Config) { c.HTTPSWSSPort = 65535 }},
		{"management_port=1", func(c *Config) { c.ManagementPort = 1 }},
		{"listen_address=::", func(c *Config) { c.ListenAddress = "::" }},
		{"listen_address=", func(c *Config) {}}, // empty: the default
		{"management_address=10.1.2.3", func(c *Config) { c.ManagementAddress = "10.1.2.3" }},
		{"data_dir=/var/lib/ase", func(c *Config) { c.DataDir = "/var/lib/ase" }},
		{"data_dir=", func(c *Config) {}},
		{"api_dir=apis", func(c *Config) { c.APIDir = "apis" }},
		{"api_dir=", func(c *Config) {}},
		{"enable_firewall=false", func(c *Config) { c.EnableFirewall = false }},
		{"enable_firewall=FALSE", func(c *Config) { c.EnableFirewall = false }},
		{"enable_ase_detected_attack=true", func(c *Config) { c.EnableASEDetectedAttack = true }},
		{"mode=sideband\nenable_sideband_authentication=true", func(c *Config) {
			c.Mode, c.EnableSidebandAuthentication = ModeSideband, true
		}},
		{"mode=sideband\nenable_sideband_keepalive=True", func(c *Config) {
			c.Mode, c.EnableSidebandKeepalive = ModeSideband, true
		}},
		{"enable_xff=true", func(c *Config) { c.EnableXFF = true }},
		{"attack_list_memory=1MB", func(c *Config) { c.AttackListMemory = 1 << 20 }},
		{"attack_list_memory=2gb", func(c *Config) { c.AttackListMemory = 2 << 30 }},
		{"enable_audit=false", func(c *Config) { c.EnableAudit = false }},
		{"enable_access_log=false", func(c *Config) { c.EnableAccessLog = false }},
		{"enable_ase_health=true", func(c *Config) { c.EnableASEHealth = true }},
		{"timezone=UTC", func(c *Config) { c.Timezone = "UTC" }},
		{"timezone=local", func(c *Config) { c.Timezone, c.Location = "local", time.Local }},
		{"timezone=Europe/Paris", func(c *Config) { c.Timezone, c.Location = "Europe/Paris", paris }},
		{"timezone=", func(c *Config) {}},
		{"admin_log_level=1", func(c *Config) { c.AdminLogLevel = 1 }},
		{"admin_log_level=5", func(c *Config) { c.AdminLogLevel = 5 }},
		{"admin_log_format=JSON", func(c *Config) { c.AdminLogFormat = LogJSON }},
		{"admin_log_format=text", func(c *Config) {}},
		{"session_timeout=90s", func(c *Config) { c.SessionTimeout = units.Duration(90 * time.Second) }},
		{"session_timeout=1d", func(c *Config) { c.SessionTimeout = units.Duration(24 * time.Hour) }},
		{"tls_cert_file=c.pem\ntls_key_file=k.pem", func(c *Config) { c.TLSCertFile, c.TLSKeyFile = "c.pem", "k.pem" }},
		{"management_tls_cert_file=c.pem\nmanagement_tls_key_file=k.pem", func(c *Config) {
			c.ManagementTLSCertFile, c.ManagementTLSKeyFile = "c.pem", "k.pem"
		}},
		{"client_ca_file=ca.pem", func(c *Config) { c.ClientCAFile = "ca.pem" }},
		{"server_ca_cert_path=/etc/ssl/certs", func(c *Config) { c.ServerCACertPath = "/etc/ssl/certs" }},
		{"log_dir=/var/log/ase", func(c *Config) { c.LogDir = "/var/log/ase" }},
		{"access_log_stdout=true", func(c *Config) { c.AccessLogStdout = true }},
		{"audit_log_stdout=true", func(c *Config) { c.AuditLogStdout = true }},
		{"log_max_size=10mb", func(c *Config) { c.LogMaxSize = 10 << 20 }},
		{"log_max_files=1000", func(c *Config) { c.LogMaxFiles = 1000 }},
		{"enable_cluster=true\ncluster_id=prod_EU-1\netcd_endpoints=http://127.0.0.1:2379", func(c *Config) {
			c.EnableCluster, c.ClusterID, c.EtcdEndpoints = true, "prod_EU-1", []string{"http://127.0.0.1:2379"}
		}},
		{"enable_cluster=true\ncluster_id=" + strings.Repeat("a", 64) + "\netcd_endpoints= https://a:1/ , http://[::1]:2379 ", func(c *Config) {
			c.EnableCluster, c.ClusterID = true, strings.Repeat("a", 64)
			c.EtcdEndpoints = []string{"https://a:1/", "http://[::1]:2379"}
		}},
		// Values run to the end of the line: '=' and '#' are part of them.
		{"data_dir=/srv/a=b#1 ; not a comment", func(c *Config) { c.DataDir = "/srv/a=b#1 ; not a comment" }},
		{"  http_ws_port \t=\t 81  ", func(c *Config) { c.HTTPWSPort = 81 }},
		{"http_ws_port=0081", func(c *Config) { c.HTTPWSPort = 81 }},
	} {
		t.Run(tc.line, func(t *testing.T) {
			got, err := Parse("ase.conf", []byte(tc.line), nil)
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			got.Warnings = nil // TestWarnings covers them
			want := Default()
			tc.want(want)
			if !equal(got, want) {
				t.Errorf("got\n%s\nwant\n%s", got.Format(), want.Format())
			}
		})
	}
}

func TestSyntax(t *testing.T) {
	for _, tc := range []struct {
		name, data string
	}{
		{"LF", "mode=sideband\nhttp_ws_port=81\n"},
		{"CRLF", "mode=sideband\r\nhttp_ws_port=81\r\n"},
		{"BOM", "\uFEFFmode=sideband\nhttp_ws_port=81"},
		{"BOM and CRLF", "\uFEFFmode=sideband\r\nhttp_ws_port=81\r\n"},
		{"comments", "; vendor comment\n# shell comment\n   ;indented\n\t# indented\nmode=sideband\n\n\nhttp_ws_port=81\n;http_ws_port=82\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse("ase.conf", []byte(tc.data), nil)
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			if c.Mode != ModeSideband || c.HTTPWSPort != 81 {
				t.Errorf("got mode %q and port %d, want sideband and 81", c.Mode, c.HTTPWSPort)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		data string
		env  map[string]string
		want []string // the lines of the joined error, in order
	}{
		{"bad bool", "\n\nenable_xff=yes", nil, []string{`ase.conf:3: enable_xff: "yes" is not a boolean (use true or false)`}},
		{"bool as number", "enable_audit=1", nil, []string{`ase.conf:1: enable_audit: "1" is not a boolean (use true or false)`}},
		{"bad int", "http_ws_port=abc", nil, []string{`ase.conf:1: http_ws_port: "abc" is not a whole number`}},
		{"hex int", "http_ws_port=0x1f", nil, []string{`ase.conf:1: http_ws_port: "0x1f" is not a whole number`}},
		{"port too high", "http_ws_port=65536", nil, []string{`ase.conf:1: http_ws_port: 65536 is out of range (1 to 65535)`}},
		{"port zero", "management_port=0", nil, []string{`ase.conf:1: management_port: 0 is out of range (1 to 65535)`}},
		{"negative port", "https_wss_port=-1", nil, []string{`ase.conf:1: https_wss_port: -1 is out of range (0 to 65535)`}},
		{"huge int", "log_max_files=99999999999999999999", nil, []string{`ase.conf:1: log_max_files: 99999999999999999999 is out of range (1 to 1000)`}},
		{"log level", "admin_log_level=6", nil, []string{`ase.conf:1: admin_log_level: 6 is out of range (1 to 5)`}},
		{"log format", "admin_log_format=xml", nil, []string{`ase.conf:1: admin_log_format: "xml" is not a log format (use text or json)`}},
		{"empty int", "http_ws_port=", nil, []string{`ase.conf:1: http_ws_port: missing value`}},
		{"empty bool", "enable_xff=  ", nil, []string{`ase.conf:1: enable_xff: missing value`}},
		{"bad mode", "mode=proxy", nil, []string{`ase.conf:1: mode: "proxy" is not a mode (use inline or sideband)`}},
		{"bad address", "listen_address=localhost", nil, []string{`ase.conf:1: listen_address: "localhost" is not an IP address`}},
		{"bad size", "attack_list_memory=lots", nil, []string{`ase.conf:1: attack_list_memory: "lots" is not a size such as 128MB (a whole number and b, kb, mb or gb)`}},
		{"small size", "log_max_size=512b", nil, []string{`ase.conf:1: log_max_size: 512b is out of range (1kb to 1024gb)`}},
		{"bad duration", "session_timeout=20 minutes", nil, []string{`ase.conf:1: session_timeout: "20 minutes" is not a duration such as 20m (a whole number and s, m, h or d)`}},
		{"zero duration", "session_timeout=0m", nil, []string{`ase.conf:1: session_timeout: 0m is too short (at least 1s)`}},
		{"bad timezone", "timezone=Mars/Olympus", nil, []string{`ase.conf:1: timezone: "Mars/Olympus" is not utc, local or a time zone name such as Europe/Paris`}},
		{"bad cluster id", "cluster_id=a b", nil, []string{`ase.conf:1: cluster_id: "a b" is not a cluster ID (1 to 64 letters, digits, '_' or '-')`}},
		{"long cluster id", "cluster_id=" + strings.Repeat("a", 65), nil, []string{`ase.conf:1: cluster_id: "` + strings.Repeat("a", 65) + `" is not a cluster ID (1 to 64 letters, digits, '_' or '-')`}},
		{"bad endpoint", "etcd_endpoints=http://a:2379,127.0.0.1:2379", nil, []string{`ase.conf:1: etcd_endpoints: "127.0.0.1:2379" is not an etcd endpoint such as http://127.0.0.1:2379`}},
		{"endpoint path", "etcd_endpoints=http://a:2379/v3", nil, []string{`ase.conf:1: etcd_endpoints: "http://a:2379/v3" is not an etcd endpoint such as http://127.0.0.1:2379`}},
		{"empty endpoint", "etcd_endpoints=http://a:2379,", nil, []string{`ase.conf:1: etcd_endpoints: "" is not an etcd endpoint such as http://127.0.0.1:2379`}},
		{"unknown key with suggestion", "\n\nhtp_ws_port=8000", nil, []string{`ase.conf:3: unknown key "htp_ws_port" (did you mean "http_ws_port"?)`}},
		{"unknown key in capitals", "MODE=inline", nil, []string{`ase.conf:1: unknown key "MODE" (did you mean "mode"?)`}},
		{"unknown key", "color=blue", nil, []string{`ase.conf:1: unknown key "color"`}},
		{"empty key", "=blue", nil, []string{`ase.conf:1: unknown key ""`}},
		{"duplicate key", "mode=inline\n; again\nmode=sideband", nil, []string{`ase.conf:3: mode: duplicate key, first set on line 1`}},
		{"missing =", "mode inline", nil, []string{`ase.conf:1: "mode inline" is not a key=value line`}},
		{"env bad int", "", map[string]string{"ASE_HTTP_WS_PORT": "abc"}, []string{`ASE_HTTP_WS_PORT: "abc" is not a whole number`}},
		{"env bad bool", "enable_xff=true", map[string]string{"ASE_ENABLE_XFF": "on"}, []string{`ASE_ENABLE_XFF: "on" is not a boolean (use true or false)`}},
		{"env empty int", "", map[string]string{"ASE_LOG_MAX_FILES": ""}, []string{`ASE_LOG_MAX_FILES: missing value`}},
		{"env newline", "", map[string]string{"ASE_DATA_DIR": "a\nb"}, []string{`ASE_DATA_DIR: "a\nb" contains a control character`}},
		{"same ports", "http_ws_port=8010", nil, []string{`ase.conf:1: http_ws_port: port 8010 is also management_port`}},
		{"same ports both set", "https_wss_port=9000\nhttp_ws_port=9000", nil, []string{`ase.conf:1: https_wss_port: port 9000 is also http_ws_port`}},
		{"same ports from env", "", map[string]string{"ASE_MANAGEMENT_PORT": "8443"}, []string{`ASE_MANAGEMENT_PORT: port 8443 is also https_wss_port`}},
		{"tls cert alone", "tls_cert_file=c.pem", nil, []string{`ase.conf:1: tls_cert_file: tls_key_file is required too`}},
		{"management tls key alone", "management_tls_key_file=k.pem", nil, []string{`ase.conf:1: management_tls_key_file: management_tls_cert_file is required too`}},
		{"cluster without id and endpoints", "enable_cluster=true", nil, []string{
			`ase.conf:1: enable_cluster: cluster_id is required in a cluster`,
			`ase.conf:1: enable_cluster: etcd_endpoints is required in a cluster`,
		}},
		{"cluster from env", "cluster_id=c", map[string]string{"ASE_ENABLE_CLUSTER": "true"}, []string{
			`ASE_ENABLE_CLUSTER: etcd_endpoints is required in a cluster`,
		}},
		{"everything at once", "mode=inline\nhtp_ws_port=1\nmode=sideband\nenable_xff=yes\nno equals sign\nadmin_log_level=9\ntls_cert_file=a.pem\n",
			map[string]string{"ASE_HTTPS_WSS_PORT": "x"}, []string{
				`ase.conf:2: unknown key "htp_ws_port" (did you mean "http_ws_port"?)`,
				`ase.conf:3: mode: duplicate key, first set on line 1`,
				`ase.conf:4: enable_xff: "yes" is not a boolean (use true or false)`,
				`ase.conf:5: "no equals sign" is not a key=value line`,
				`ase.conf:6: admin_log_level: 9 is out of range (1 to 5)`,
				`ASE_HTTPS_WSS_PORT: "x" is not a whole number`,
				`ase.conf:7: tls_cert_file: tls_key_file is required too`,
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse("ase.conf", []byte(tc.data), env(tc.env))
			if err == nil {
				t.Fatalf("got config %+v, want an error", c)
			}
			if c != nil {
				t.Errorf("got config %+v with the error, want nil", c)
			}
			got := strings.Split(err.Error(), "\n")
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got errors\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestErrorType(t *testing.T) {
	_, err := Parse("ase.conf", []byte("mode=inline\nenable_xff=maybe"), nil)
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("got %T, want an *Error inside", err)
	}
	if e.Pos != "ase.conf:2" || e.Key != "enable_xff" {
		t.Errorf("got Pos %q Key %q, want ase.conf:2 and enable_xff", e.Pos, e.Key)
	}
	_, err = Parse("", []byte("mode=x"), nil)
	if want := `line 1: mode: "x" is not a mode (use inline or sideband)`; err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
}

func TestEnv(t *testing.T) {
	file := "mode=inline\nhttp_ws_port=8000\napi_dir=apis\nenable_xff=false\n"
	for _, tc := range []struct {
		name string
		env  map[string]string
		want func(c *Config)
	}{
		{"none", nil, func(c *Config) {}},
		{"env wins over file", map[string]string{"ASE_HTTP_WS_PORT": "9000", "ASE_MODE": "sideband"}, func(c *Config) {
			c.HTTPWSPort, c.Mode = 9000, ModeSideband
		}},
		{"env sets a key the file lacks", map[string]string{"ASE_SESSION_TIMEOUT": "5m"}, func(c *Config) {
			c.SessionTimeout = units.Duration(5 * time.Minute)
		}},
		{"env is trimmed", map[string]string{"ASE_ENABLE_XFF": " true\n"}, func(c *Config) { c.EnableXFF = true }},
		{"empty env resets a text key", map[string]string{"ASE_API_DIR": ""}, func(c *Config) { c.APIDir = "" }},
		{"lower-case name is not a key", map[string]string{"ase_http_ws_port": "9000"}, func(c *Config) {}},
		{"CLI variables are not keys", map[string]string{"ASE_URL": "http://x", "ASE_USER": "admin", "ASE_PASSWORD": "p"}, func(c *Config) {}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse("ase.conf", []byte(file), env(tc.env))
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			got.Warnings = nil // TestWarnings covers them
			want := Default()
			want.APIDir = "apis"
			tc.want(want)
			if !equal(got, want) {
				t.Errorf("got\n%s\nwant\n%s", got.Format(), want.Format())
			}
		})
	}
}

func TestWarnings(t *testing.T) {
	for _, tc := range []struct {
		data string
		want []string
	}{
		{"mode=sideband\nenable_sideband_authentication=true\nenable_sideband_keepalive=true", nil},
		{"enable_sideband_keepalive=true", []string{"enable_sideband_keepalive=true has no effect in inline mode"}},
		{"mode=sideband\nenable_xff=true", []string{"enable_xff=true has no effect in sideband mode: the gateway reports the client address"}},
		{"cluster_id=c", []string{"cluster_id and etcd_endpoints are ignored without enable_cluster=true"}},
		{"allow_default_password=true", []string{"allow_default_password=true: the default admin password is accepted; change it"}},
		{"management_address=0.0.0.0", []string{"the management API on 0.0.0.0 is served without TLS (set management_tls_cert_file and management_tls_key_file)"}},
		{"management_address=::1", nil},
		{"management_address=0.0.0.0\nmanagement_tls_cert_file=c\nmanagement_tls_key_file=k", nil},
	} {
		t.Run(tc.data, func(t *testing.T) {
			c, err := Parse("ase.conf", []byte(tc.data), nil)
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			if !reflect.DeepEqual(c.Warnings, tc.want) {
				t.Errorf("got warnings %q, want %q", c.Warnings, tc.want)
			}
		})
	}
}

func TestFormatRoundTrip(t *testing.T) {
	all := strings.Join([]string{
		"mode=sideband", "http_ws_port=1", "https_wss_port=2", "management_port=3",
		"listen_address=fe80::1%eth0", "management_address=10.0.0.1", "data_dir=/d=1#x", "api_dir=a p i",
		"enable_firewall=false", "enable_ase_detected_attack=true", "enable_sideband_authentication=true",
		"enable_sideband_keepalive=true", "enable_xff=true", "attack_list_memory=1025kb", "enable_audit=false",
		"enable_access_log=false", "enable_ase_health=true", "timezone=America/New_York", "admin_log_level=5", "admin_log_format=json",
		"session_timeout=61s", "tls_cert_file=c", "tls_key_file=k", "management_tls_cert_file=mc",
		"management_tls_key_file=mk", "client_ca_file=ca", "server_ca_cert_path=sca",
		"allow_default_password=true", "log_dir=l", "access_log_stdout=true", "audit_log_stdout=true", "log_max_size=3gb",
		"log_max_files=7", "enable_cluster=true", "cluster_id=x", "etcd_endpoints=http://a:1,https://b",
	}, "\n")
	for _, tc := range []struct{ name, data string }{
		{"defaults", ""},
		{"every key set", all},
		{"vendor sample", "timezone=local\nattack_list_memory=128MB\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse("ase.conf", []byte(tc.data), nil)
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			text := c.Format()
			c2, err := Parse("formatted", []byte(text), nil)
			if err != nil {
				t.Fatalf("Parse(Format()): got error %v, want none; text:\n%s", err, text)
			}
			if !equal(c, c2) {
				t.Errorf("got\n%s\nwant\n%s", c2.Format(), text)
			}
			if n := strings.Count(text, "\n"); n != len(Keys())+1 {
				t.Errorf("got %d lines, want %d", n, len(Keys())+1)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	c, err := Load("testdata/ase.conf", nil)
	if err != nil {
		t.Fatalf("got error %v, want none", err)
	}
	want := Default()
	want.Path = "testdata/ase.conf"
	want.Timezone, want.Location = "local", time.Local
	if !equal(c, want) {
		t.Errorf("got\n%s\nwant\n%s", c.Format(), want.Format())
	}

	_, err = Load("testdata/ase.conf", env(map[string]string{"ASE_ADMIN_LOG_LEVEL": "0"}))
	if want := `ASE_ADMIN_LOG_LEVEL: 0 is out of range (1 to 5)`; err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}

	_, err = Load("testdata/missing.conf", nil)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("got %v, want fs.ErrNotExist", err)
	}
}

func TestLoadErrorNamesFile(t *testing.T) {
	path := t.TempDir() + "/ase.conf"
	if err := os.WriteFile(path, []byte("enable_xff=yes\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path, nil)
	if want := path + `:1: enable_xff: "yes" is not a boolean (use true or false)`; err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
}

func TestSuggest(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"mdoe", ` (did you mean "mode"?)`},
		{"enable_xf", ` (did you mean "enable_xff"?)`},
		{"Enable_Audit", ` (did you mean "enable_audit"?)`},
		{"timezon", ` (did you mean "timezone"?)`},
		{"tz", ""},
		{strings.Repeat("x", 1000), ""},
	} {
		if got := suggest(tc.in); got != tc.want {
			t.Errorf("suggest(%q): got %q, want %q", tc.in, got, tc.want)
		}
	}
}
