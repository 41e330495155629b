// Package config loads ase.conf: the vendor's key=value file, overridden by
// ASE_<KEY> environment variables, validated strictly.
//
// The format is the vendor's, so existing files work: one key=value per
// line, whitespace around key and value ignored, blank lines ignored, and
// lines whose first non-blank character is ';' or '#' are comments. There
// are no inline comments: everything after the first '=' is the value, so
// "data_dir=/srv/ase#1" names the directory "/srv/ase#1". CRLF line endings
// and a leading UTF-8 byte order mark are accepted.
//
// Unknown keys, duplicate keys and bad values are errors, and every problem
// is reported at once, each naming the file and line (or the environment
// variable) and the key. Keys of the vendor's ase.conf that ASE has no use
// for are accepted and listed in Config.Ignored, unless their value asks
// for something ASE cannot do (vendor.go).
package config

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/ase-project/ase/internal/typo"
	"github.com/ase-project/ase/internal/units"
)

// Mode is how ASE sits in front of the APIs.
type Mode string

// The modes of the mode key.
const (
	ModeInline   Mode = "inline"   // a reverse proxy on the data path
	ModeSideband Mode = "sideband" // an API gateway asks ASE for decisions
)

// LogFormat is how management log lines are written.
type LogFormat string

// The formats of the admin_log_format key.
const (
	LogText LogFormat = "text" // log/slog's key=value text
	LogJSON LogFormat = "json" // one JSON object per line
)

// Config is the effective configuration: defaults, then ase.conf, then the
// environment.
type Config struct {
	// Path is the file the configuration was loaded from ("" for none), so
	// that a reload reads it again. Not a key.
	Path string

	Mode           Mode   // mode, default inline
	HTTPWSPort     int    // http_ws_port, default 8000
	HTTPSWSSPort   int    // https_wss_port, default 8443; 0 turns HTTPS/WSS off
	ManagementPort int    // management_port, default 8010
	ListenAddress  string // listen_address, default 0.0.0.0: the data ports' IP address
	// ManagementAddress is management_address, default 127.0.0.1, so the
	// management API is not exposed unless the operator asks for it.
	ManagementAddress string
	DataDir           string // data_dir, default ./data
	APIDir            string // api_dir, default empty (none): API JSON files imported at start

	EnableFirewall               bool // enable_firewall, default true
	EnableASEDetectedAttack      bool // enable_ase_detected_attack, default false
	EnableSidebandAuthentication bool // enable_sideband_authentication, default false
	EnableSidebandKeepalive      bool // enable_sideband_keepalive, default false
	EnableXFF                    bool // enable_xff, default false
	// Behavioural detection (issue 20; the vendor's ABS keys, in process).
	EnableABS        bool           // enable_abs, default false: learn each API's traffic and detect attackers
	EnableABSAttack  bool           // enable_abs_attack, default true: deny-list what detection finds (false: report only)
	ABSTraining      units.Duration // abs_training_period, default 24h
	ABSWindow        units.Duration // abs_window, default 5m: the window figures are counted over
	ABSMaxClients    int            // abs_max_clients, default 65536: identities tracked at most
	ABSTTLIP         units.Duration // abs_ttl_ip, default 1h: how long a detected address stays listed (0: for ever)
	ABSTTLToken      units.Duration // abs_ttl_token, default 24h
	ABSTTLCookie     units.Duration // abs_ttl_cookie, default 24h
	ABSTTLAPIKey     units.Duration // abs_ttl_api_key, default 24h
	ABSTTLUsername   units.Duration // abs_ttl_username, default 24h
	AttackListMemory units.Size     // attack_list_memory, default 128MB, at least 1MB
	EnableAudit      bool           // enable_audit, default true
	EnableAccessLog  bool           // enable_access_log, default true
	EnableASEHealth  bool           // enable_ase_health, default false
	// TrustedProxies is trusted_proxies, default none: the ranges whose
	// forwarding fields are believed, walked recursively (nginx's
	// set_real_ip_from with real_ip_recursive on). Inline it narrows
	// enable_xff to these peers; in sideband it applies to forward-auth.
	// Parsed once here; IPv4-mapped ranges are kept as IPv4.
	TrustedProxies []netip.Prefix

	Timezone string // timezone, default utc; also local or an IANA name such as Europe/Paris
	// Location is Timezone resolved once at load time; default time.UTC.
	Location       *time.Location
	AdminLogLevel  int            // admin_log_level, default 4: 1 fatal, 2 error, 3 warning, 4 info, 5 debug
	AdminLogFormat LogFormat      // admin_log_format, default text; or json
	SessionTimeout units.Duration // session_timeout, default 20m

	// The files below are named, not opened: the server opens them, so that
	// an error there is reported by the code that knows what the file is for.
	TLSCertFile           string // tls_cert_file, default empty; set with tls_key_file for HTTPS/WSS
	TLSKeyFile            string // tls_key_file, default empty
	ManagementTLSCertFile string // management_tls_cert_file, default empty; set with management_tls_key_file
	ManagementTLSKeyFile  string // management_tls_key_file, default empty
	ClientCAFile          string // client_ca_file, default empty; set to allow x509 login
	ServerCACertPath      string // server_ca_cert_path, default empty: the CAs trusted for backend TLS

	AllowDefaultPassword bool // allow_default_password, default false

	LogDir          string     // log_dir, default empty, meaning <data_dir>/logs
	AccessLogStdout bool       // access_log_stdout, default false; true writes access log lines to stdout
	AuditLogStdout  bool       // audit_log_stdout, default false; true writes audit log lines to stdout
	LogMaxSize      units.Size // log_max_size, default 100MB: a log file is rotated at this size
	LogMaxFiles     int        // log_max_files, default 10: rotated files kept

	ReadTimeout        units.Duration // read_timeout, default 30s: reading one client request on the data ports
	WriteTimeout       units.Duration // write_timeout, default 60s: writing one response on the data ports
	IdleTimeout        units.Duration // idle_timeout, default 120s: an idle client keep-alive connection
	BackendTimeout     units.Duration // backend_timeout, default 60s: waiting for a backend's response
	ServerQueueSize    int            // server_queue_size, default 1000: an API's queue for busy servers
	ServerQueueTimeout units.Duration // server_queue_timeout, default 10s: the longest wait in it
	MaxRequestBody     units.Size     // max_request_body, default 32MB (1KB to 1GB): 413 past it
	MaxRequestHeader   units.Size     // max_request_header, default 16KB (1KB to 1MB): 431 past it
	// InlineEventLoops is inline_event_loops, default true: the data ports
	// (plain, and TLS once a handshake is done) are served by event loops, which hand the connections they do not
	// take to the general server; false serves every connection on the
	// general server (the same decisions and answers, more CPU per request).
	InlineEventLoops bool

	EnableCluster bool     // enable_cluster, default false
	ClusterID     string   // cluster_id, default empty; required with enable_cluster
	EtcdEndpoints []string // etcd_endpoints, default none; comma-separated URLs, required with enable_cluster
	EtcdCAFile    string   // etcd_ca_file, default empty: CAs trusted for etcd's certificate (PEM); set for TLS
	EtcdCertFile  string   // etcd_cert_file, default empty: client certificate for etcd (PEM), with etcd_key_file
	EtcdKeyFile   string   // etcd_key_file, default empty
	EtcdUsername  string   // etcd_username, default empty: etcd authentication, with etcd_password
	// EtcdPassword is etcd_password, default empty; never logged, shown or
	// written back (ASE_ETCD_PASSWORD keeps it out of the file).
	EtcdPassword string
	// ClusterNodeTTL is cluster_node_ttl, default 10s: a node that stops
	// renewing its lease (killed, cut off) shows inactive within this.
	ClusterNodeTTL units.Duration

	// Warnings lists settings that are valid but probably not what the
	// operator meant; the server logs them at start-up.
	Warnings []string
	// Ignored lists the vendor's keys that were set and that ASE accepts
	// without acting on them, in the order they were set; the server
	// reports them at start-up. Their values are not kept.
	Ignored []Ignored
}

// Ignored is a vendor key ASE accepted without acting on it.
type Ignored struct {
	Key string
	Pos string // where it was set: "ase.conf:12" or "ASE_ENABLE_EMAIL"
	Why string // completes "because ..."
}

func (n Ignored) String() string { return "ignored: " + n.Key + ", because " + n.Why }

// Default returns the configuration used when there is no ase.conf.
func Default() *Config {
	return &Config{
		Mode:               ModeInline,
		HTTPWSPort:         8000,
		HTTPSWSSPort:       8443,
		ManagementPort:     8010,
		ListenAddress:      "0.0.0.0",
		ManagementAddress:  "127.0.0.1",
		DataDir:            "./data",
		EnableFirewall:     true,
		AttackListMemory:   128 << 20,
		EnableABSAttack:    true,
		ABSTraining:        units.Duration(24 * time.Hour),
		ABSWindow:          units.Duration(5 * time.Minute),
		ABSMaxClients:      65536,
		ABSTTLIP:           units.Duration(time.Hour),
		ABSTTLToken:        units.Duration(24 * time.Hour),
		ABSTTLCookie:       units.Duration(24 * time.Hour),
		ABSTTLAPIKey:       units.Duration(24 * time.Hour),
		ABSTTLUsername:     units.Duration(24 * time.Hour),
		EnableAudit:        true,
		EnableAccessLog:    true,
		Timezone:           "utc",
		Location:           time.UTC,
		AdminLogLevel:      4,
		AdminLogFormat:     LogText,
		SessionTimeout:     units.Duration(20 * time.Minute),
		LogMaxSize:         100 << 20,
		LogMaxFiles:        10,
		ReadTimeout:        units.Duration(30 * time.Second),
		WriteTimeout:       units.Duration(60 * time.Second),
		IdleTimeout:        units.Duration(120 * time.Second),
		BackendTimeout:     units.Duration(60 * time.Second),
		MaxRequestBody:     32 << 20,
		ServerQueueSize:    1000,
		ServerQueueTimeout: units.Duration(10 * time.Second),
		MaxRequestHeader:   16 << 10,
		InlineEventLoops:   true,
		ClusterNodeTTL:     units.Duration(10 * time.Second),
	}
}

// Error is one problem in the configuration.
type Error struct {
	// Pos is where the value came from: "ase.conf:12" for a line,
	// "ASE_HTTP_WS_PORT" for an environment variable, empty for a default.
	Pos string
	Key string // the known key concerned, if any
	Msg string
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.Pos != "" {
		b.WriteString(e.Pos)
		b.WriteString(": ")
	}
	// The variable's name already names the key.
	if e.Key != "" && e.Pos != envName(e.Key) {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Load reads the ase.conf at path ("" for none: defaults only), applies the
// ASE_<KEY> overrides found by lookupEnv (os.LookupEnv in the server; nil
// for none) and validates the result. The error joins every problem found.
func Load(path string, lookupEnv func(string) (string, bool)) (*Config, error) {
	var data []byte
	if path != "" {
		var err error
		if data, err = os.ReadFile(path); err != nil {
			return nil, err
		}
	}
	c, err := Parse(path, data, lookupEnv)
	if err != nil {
		return nil, err
	}
	c.Path = path
	return c, nil
}

// Parse is Load for ase.conf content already in memory; name is the file's
// name in messages.
func Parse(name string, data []byte, lookupEnv func(string) (string, bool)) (*Config, error) {
	p := parser{name: name, c: Default(), pos: make(map[string]string)}
	p.file(string(data))
	if lookupEnv != nil {
		p.env(lookupEnv)
	}
	p.check()
	if len(p.errs) > 0 {
		return nil, errors.Join(p.errs...)
	}
	p.c.Warnings = warnings(p.c)
	return p.c, nil
}

type parser struct {
	name string
	c    *Config
	pos  map[string]string // key -> where its value was set
	errs []error
}

func (p *parser) errorf(pos, key, format string, args ...any) {
	p.errs = append(p.errs, &Error{Pos: pos, Key: key, Msg: fmt.Sprintf(format, args...)})
}

func (p *parser) file(data string) {
	data = strings.TrimPrefix(data, "\uFEFF")
	lineOf := make(map[string]int) // key -> first line setting it
	for i, line := range strings.Split(data, "\n") {
		n := i + 1
		pos := p.lineName(n)
		line = strings.TrimSpace(line)
		if line == "" || line[0] == ';' || line[0] == '#' {
			continue
		}
		name, value, ok := strings.Cut(line, "=")
		if !ok {
			p.errorf(pos, "", "%q is not a key=value line", line)
			continue
		}
		name = strings.TrimSpace(name)
		k, vk := lookup(name), vendorKeys[name]
		if k == nil && vk == nil {
			p.errorf(pos, "", "unknown key %q%s", name, suggest(name))
			continue
		}
		if first, dup := lineOf[name]; dup {
			p.errorf(pos, name, "duplicate key, first set on line %d", first)
			continue
		}
		lineOf[name] = n
		if vk != nil {
			p.vendor(vk, pos, strings.TrimSpace(value))
			continue
		}
		p.set(k, pos, strings.TrimSpace(value))
	}
}

func (p *parser) lineName(n int) string {
	if p.name == "" {
		return fmt.Sprintf("line %d", n)
	}
	return fmt.Sprintf("%s:%d", p.name, n)
}

func (p *parser) env(lookupEnv func(string) (string, bool)) {
	for i := range keys {
		k := &keys[i]
		v, ok := lookupEnv(envName(k.name))
		if ok {
			p.set(k, envName(k.name), strings.TrimSpace(v))
		}
	}
	for _, vk := range vendorList {
		if v, ok := lookupEnv(envName(vk.name)); ok {
			p.vendor(vk, envName(vk.name), strings.TrimSpace(v))
		}
	}
}

// vendor accepts a vendor key's value, recording the key as ignored, or
// refuses a value that asks for what ASE cannot do. The value itself is
// never repeated for a secret key.
func (p *parser) vendor(vk *vendorKey, pos, v string) {
	if vk.check != nil {
		if err := vk.check(v); err != nil {
			p.errorf(pos, vk.name, "%v", err)
			return
		}
	}
	for i, n := range p.c.Ignored {
		if n.Key == vk.name { // the environment overrides the file
			p.c.Ignored = append(p.c.Ignored[:i], p.c.Ignored[i+1:]...)
			break
		}
	}
	p.c.Ignored = append(p.c.Ignored, Ignored{Key: vk.name, Pos: pos, Why: vk.why})
}

func (p *parser) set(k *key, pos, v string) {
	p.pos[k.name] = pos
	if v == "" {
		if !k.text {
			p.errorf(pos, k.name, "missing value")
			return
		}
		// An empty text value means the default, as in the vendor's "api_dir=".
		v = k.get(Default())
	}
	if err := k.set(p.c, v); err != nil {
		msg := err.Error()
		if k.secret { // messages quote the value; a secret is never repeated
			msg = strings.ReplaceAll(msg, strconv.Quote(v), "the value (not shown)")
		}
		p.errorf(pos, k.name, "%s", msg)
	}
}

// check validates what no single key can.
func (p *parser) check() {
	c := p.c
	ports := []struct {
		key  string
		port int
	}{
		{"http_ws_port", c.HTTPWSPort},
		{"https_wss_port", c.HTTPSWSSPort},
		{"management_port", c.ManagementPort},
	}
	// All enabled ports must differ, even though the data and management
	// addresses may differ: "0.0.0.0" overlaps every address anyway.
	for i, a := range ports {
		for _, b := range ports[i+1:] {
			if a.port == 0 || a.port != b.port {
				continue
			}
			blame, other := b.key, a.key
			if p.pos[b.key] == "" && p.pos[a.key] != "" {
				blame, other = a.key, b.key
			}
			p.errorf(p.pos[blame], blame, "port %d is also %s", a.port, other)
		}
	}
	p.pair("tls_cert_file", c.TLSCertFile, "tls_key_file", c.TLSKeyFile)
	p.pair("management_tls_cert_file", c.ManagementTLSCertFile, "management_tls_key_file", c.ManagementTLSKeyFile)
	if c.EnableCluster {
		if c.ClusterID == "" {
			p.errorf(p.pos["enable_cluster"], "enable_cluster", "cluster_id is required in a cluster")
		}
		if len(c.EtcdEndpoints) == 0 {
			p.errorf(p.pos["enable_cluster"], "enable_cluster", "etcd_endpoints is required in a cluster")
		}
	}
	p.pair("etcd_cert_file", c.EtcdCertFile, "etcd_key_file", c.EtcdKeyFile)
	p.pair("etcd_username", c.EtcdUsername, "etcd_password", c.EtcdPassword)
	if c.ClusterNodeTTL.Std() < 2*time.Second || c.ClusterNodeTTL.Std() > 5*time.Minute {
		p.errorf(p.pos["cluster_node_ttl"], "cluster_node_ttl", "%s is out of range (2s to 5m)", c.ClusterNodeTTL)
	}
}

// pair requires both keys or neither.
func (p *parser) pair(k1, v1, k2, v2 string) {
	switch {
	case v1 != "" && v2 == "":
		p.errorf(p.pos[k1], k1, "%s is required too", k2)
	case v1 == "" && v2 != "":
		p.errorf(p.pos[k2], k2, "%s is required too", k1)
	}
}

func warnings(c *Config) []string {
	var w []string
	if c.Mode == ModeInline {
		if c.EnableSidebandAuthentication {
			w = append(w, "enable_sideband_authentication=true has no effect in inline mode")
		}
		if c.EnableSidebandKeepalive {
			w = append(w, "enable_sideband_keepalive=true has no effect in inline mode")
		}
	}
	if c.Mode == ModeSideband && c.EnableXFF {
		w = append(w, "enable_xff=true has no effect in sideband mode: the gateway reports the client address")
	}
	if c.Mode == ModeInline && !c.EnableXFF && len(c.TrustedProxies) > 0 {
		w = append(w, "trusted_proxies has no effect in inline mode without enable_xff=true: the client is the TCP peer")
	}
	for _, p := range c.TrustedProxies {
		if p.Bits() == 0 {
			w = append(w, fmt.Sprintf("trusted_proxies contains %s: every peer of that family is trusted, so its client is the left-most X-Forwarded-For address, which the client itself writes", p))
		}
	}
	if !c.EnableCluster && (c.ClusterID != "" || len(c.EtcdEndpoints) > 0) {
		w = append(w, "cluster_id and etcd_endpoints are ignored without enable_cluster=true")
	}
	if c.AllowDefaultPassword {
		w = append(w, "allow_default_password=true: the default admin password is accepted; change it")
	}
	if c.ManagementTLSCertFile == "" && !isLoopback(c.ManagementAddress) {
		w = append(w, fmt.Sprintf("the management API on %s is served without TLS (set management_tls_cert_file and management_tls_key_file)", c.ManagementAddress))
	}
	return w
}

// Format renders c as ase.conf text that Parse reads back to an equal
// Config: every key, in the order of Keys.
func (c *Config) Format() string {
	var b strings.Builder
	b.WriteString("; ASE configuration.\n")
	for i := range keys {
		b.WriteString(keys[i].name)
		b.WriteByte('=')
		b.WriteString(keys[i].get(c))
		b.WriteByte('\n')
	}
	return b.String()
}

// suggest returns ` (did you mean "k"?)` for the known key (ASE's or the
// vendor's) closest to name, or "" when none is within two edits.
func suggest(name string) string {
	best := typo.Closest(strings.ToLower(name), suggestNames)
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}
