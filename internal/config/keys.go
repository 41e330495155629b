package config

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/ase-project/ase/internal/units"
)

// Key describes one ase.conf key, for help output and documentation.
type Key struct {
	Name    string // as written in ase.conf, e.g. "http_ws_port"
	Env     string // the variable that overrides it, e.g. "ASE_HTTP_WS_PORT"
	Default string // as written in ase.conf; "" for none
	Doc     string // one line
	Live    bool   // a reload applies a new value without a restart
}

// Keys lists every known key in the order Format writes them.
func Keys() []Key {
	d := Default()
	out := make([]Key, len(keys))
	for i, k := range keys {
		out[i] = Key{Name: k.name, Env: envName(k.name), Default: k.get(d), Doc: k.doc, Live: k.live}
	}
	return out
}

func envName(key string) string { return "ASE_" + strings.ToUpper(key) }

// key is how one key is read and written. Defaults live only in Default,
// and get renders them for Keys and for empty text values.
type key struct {
	name string
	doc  string
	text bool // an empty value means the default rather than an error
	// live keys take a new value on reload; the others need a restart.
	live bool
	// secret values are never logged, shown or reported as changed.
	secret bool
	set    func(c *Config, v string) error
	get    func(c *Config) string
}

var keys = []key{
	{
		name: "mode", doc: "inline (reverse proxy) or sideband (decisions for an API gateway)",
		set: func(c *Config, v string) error {
			switch m := Mode(strings.ToLower(v)); m {
			case ModeInline, ModeSideband:
				c.Mode = m
				return nil
			}
			return fmt.Errorf("%q is not a mode (use inline or sideband)", v)
		},
		get: func(c *Config) string { return string(c.Mode) },
	},
	intKey("http_ws_port", "data port for HTTP and WebSocket", 1, 65535, func(c *Config) *int { return &c.HTTPWSPort }),
	intKey("https_wss_port", "data port for HTTPS and WSS; 0 turns it off", 0, 65535, func(c *Config) *int { return &c.HTTPSWSSPort }),
	intKey("management_port", "management API port", 1, 65535, func(c *Config) *int { return &c.ManagementPort }),
	textKey("listen_address", "IP address of the data ports", checkAddr, func(c *Config) *string { return &c.ListenAddress }),
	textKey("management_address", "IP address of the management port", checkAddr, func(c *Config) *string { return &c.ManagementAddress }),
	textKey("data_dir", "directory of ASE's state", nil, func(c *Config) *string { return &c.DataDir }),
	live(textKey("api_dir", "directory of API JSON files imported at start and on reload (file name = api_id)", nil, func(c *Config) *string { return &c.APIDir })),
	boolKey("enable_firewall", "check requests against the API definitions and lists", func(c *Config) *bool { return &c.EnableFirewall }),
	boolKey("enable_ase_detected_attack", "deny-list clients that ASE detects attacking", func(c *Config) *bool { return &c.EnableASEDetectedAttack }),
	boolKey("enable_sideband_authentication", "require a token from sideband gateways", func(c *Config) *bool { return &c.EnableSidebandAuthentication }),
	boolKey("enable_sideband_keepalive", "keep sideband connections open", func(c *Config) *bool { return &c.EnableSidebandKeepalive }),
	boolKey("enable_xff", "take the client address from X-Real-IP or X-Forwarded-For (inline)", func(c *Config) *bool { return &c.EnableXFF }),
	boolKey("enable_abs", "behavioural detection: learn each API's traffic and find attackers in it (in process; the vendor's ABS)", func(c *Config) *bool { return &c.EnableABS }),
	boolKey("enable_abs_attack", "deny-list the attackers behavioural detection finds (false: report them only)", func(c *Config) *bool { return &c.EnableABSAttack }),
	durationKey("abs_training_period", "how long behavioural detection learns a new API's traffic before it enforces", func(c *Config) *units.Duration { return &c.ABSTraining }),
	durationKey("abs_window", "the window behavioural detection counts each client's figures over", func(c *Config) *units.Duration { return &c.ABSWindow }),
	intKey("abs_max_clients", "client identities behavioural detection tracks at most (512 bytes each)", 1024, 10_000_000, func(c *Config) *int { return &c.ABSMaxClients }),
	ttlKey("abs_ttl_ip", "how long an address behavioural detection found stays deny-listed (0: until removed)", func(c *Config) *units.Duration { return &c.ABSTTLIP }),
	ttlKey("abs_ttl_token", "how long a detected OAuth token stays deny-listed (0: until removed)", func(c *Config) *units.Duration { return &c.ABSTTLToken }),
	ttlKey("abs_ttl_cookie", "how long a detected cookie stays deny-listed (0: until removed)", func(c *Config) *units.Duration { return &c.ABSTTLCookie }),
	ttlKey("abs_ttl_api_key", "how long a detected API key stays deny-listed (0: until removed)", func(c *Config) *units.Duration { return &c.ABSTTLAPIKey }),
	ttlKey("abs_ttl_username", "how long a detected username stays deny-listed (0: until removed)", func(c *Config) *units.Duration { return &c.ABSTTLUsername }),
	{
		name: "trusted_proxies", doc: "comma-separated addresses and CIDR ranges of trusted proxies; X-Forwarded-For is walked past them", text: true,
		set: func(c *Config, v string) error {
			ps, err := parseProxies(v)
			if err != nil {
				return err
			}
			c.TrustedProxies = ps
			return nil
		},
		get: func(c *Config) string {
			s := make([]string, len(c.TrustedProxies))
			for i, p := range c.TrustedProxies {
				s[i] = p.String()
			}
			return strings.Join(s, ",")
		},
	},
	sizeKey("attack_list_memory", "memory for the lists of attacking clients", func(c *Config) *units.Size { return &c.AttackListMemory }),
	boolKey("enable_audit", "write the audit log of configuration changes", func(c *Config) *bool { return &c.EnableAudit }),
	boolKey("enable_access_log", "write the access log", func(c *Config) *bool { return &c.EnableAccessLog }),
	boolKey("enable_ase_health", "answer health checks on the data ports", func(c *Config) *bool { return &c.EnableASEHealth }),
	{
		name: "timezone", doc: "time zone of logs: utc, local or a name such as Europe/Paris", text: true,
		set: func(c *Config, v string) error {
			loc, err := loadLocation(v)
			if err != nil {
				return err
			}
			c.Timezone, c.Location = v, loc
			return nil
		},
		get: func(c *Config) string { return c.Timezone },
	},
	live(intKey("admin_log_level", "1 fatal, 2 error, 3 warning, 4 info, 5 debug", 1, 5, func(c *Config) *int { return &c.AdminLogLevel })),
	{
		name: "admin_log_format", doc: "format of the management log: text or json", live: true,
		set: func(c *Config, v string) error {
			switch f := LogFormat(strings.ToLower(v)); f {
			case LogText, LogJSON:
				c.AdminLogFormat = f
				return nil
			}
			return fmt.Errorf("%q is not a log format (use text or json)", v)
		},
		get: func(c *Config) string { return string(c.AdminLogFormat) },
	},
	{
		name: "session_timeout", doc: "idle time after which a management session ends",
		set: func(c *Config, v string) error {
			d, err := units.ParseDuration(v)
			if err != nil {
				return fmt.Errorf("%q is not a duration such as 20m (a whole number and s, m, h or d)", v)
			}
			if d <= 0 {
				return fmt.Errorf("%s is too short (at least 1s)", v)
			}
			c.SessionTimeout = d
			return nil
		},
		get: func(c *Config) string { return c.SessionTimeout.String() },
	},
	textKey("tls_cert_file", "certificate of the HTTPS/WSS port (PEM)", nil, func(c *Config) *string { return &c.TLSCertFile }),
	textKey("tls_key_file", "key of tls_cert_file (PEM)", nil, func(c *Config) *string { return &c.TLSKeyFile }),
	textKey("management_tls_cert_file", "certificate of the management port (PEM); empty serves plain HTTP", nil, func(c *Config) *string { return &c.ManagementTLSCertFile }),
	textKey("management_tls_key_file", "key of management_tls_cert_file (PEM)", nil, func(c *Config) *string { return &c.ManagementTLSKeyFile }),
	textKey("client_ca_file", "CAs of client certificates for x509 login (PEM)", nil, func(c *Config) *string { return &c.ClientCAFile }),
	textKey("server_ca_cert_path", "CAs trusted for backend TLS (PEM file or directory)", nil, func(c *Config) *string { return &c.ServerCACertPath }),
	boolKey("allow_default_password", "accept the default admin password", func(c *Config) *bool { return &c.AllowDefaultPassword }),
	textKey("log_dir", "directory of log files; empty means <data_dir>/logs", nil, func(c *Config) *string { return &c.LogDir }),
	boolKey("access_log_stdout", "write access log lines to stdout instead of a file", func(c *Config) *bool { return &c.AccessLogStdout }),
	boolKey("audit_log_stdout", "write audit log lines to stdout instead of a file", func(c *Config) *bool { return &c.AuditLogStdout }),
	boundedSizeKey("log_max_size", "size at which a log file is rotated", 1<<10, 1<<40, func(c *Config) *units.Size { return &c.LogMaxSize }),
	intKey("log_max_files", "rotated log files kept", 1, 1000, func(c *Config) *int { return &c.LogMaxFiles }),
	durationKey("read_timeout", "longest time to read a client's request on the data ports (slow clients are cut off)", func(c *Config) *units.Duration { return &c.ReadTimeout }),
	durationKey("write_timeout", "longest time to write a response on the data ports", func(c *Config) *units.Duration { return &c.WriteTimeout }),
	durationKey("idle_timeout", "how long an idle keep-alive connection of a client stays open", func(c *Config) *units.Duration { return &c.IdleTimeout }),
	durationKey("backend_timeout", "longest wait for a backend server's response (inline)", func(c *Config) *units.Duration { return &c.BackendTimeout }),
	intKey("server_queue_size", "requests an API may hold waiting for a server when server_connection_queueing is on", 1, 1_000_000, func(c *Config) *int { return &c.ServerQueueSize }),
	durationKey("server_queue_timeout", "longest wait for a server in that queue (then 503)", func(c *Config) *units.Duration { return &c.ServerQueueTimeout }),
	boundedSizeKey("max_request_body", "largest request body accepted on the data ports (413 past it)", 1<<10, 1<<30, func(c *Config) *units.Size { return &c.MaxRequestBody }),
	boundedSizeKey("max_request_header", "largest request header section accepted on the data ports (431 past it)", 1<<10, 1<<20, func(c *Config) *units.Size { return &c.MaxRequestHeader }),
	boolKey("inline_event_loops", "serve the data ports (plain and TLS) with event loops (false: every connection on the general server)", func(c *Config) *bool { return &c.InlineEventLoops }),
	boolKey("enable_cluster", "share state with other nodes through etcd", func(c *Config) *bool { return &c.EnableCluster }),
	textKey("cluster_id", "name of the cluster: 1 to 64 letters, digits, '_' or '-'", checkClusterID, func(c *Config) *string { return &c.ClusterID }),
	{
		name: "etcd_endpoints", doc: "comma-separated etcd URLs such as http://127.0.0.1:2379", text: true,
		set: func(c *Config, v string) error {
			eps, err := parseEndpoints(v)
			if err != nil {
				return err
			}
			c.EtcdEndpoints = eps
			return nil
		},
		get: func(c *Config) string { return strings.Join(c.EtcdEndpoints, ",") },
	},
	textKey("etcd_ca_file", "CAs trusted for etcd's certificate (PEM); set for TLS to etcd", nil, func(c *Config) *string { return &c.EtcdCAFile }),
	textKey("etcd_cert_file", "client certificate for etcd (PEM), with etcd_key_file", nil, func(c *Config) *string { return &c.EtcdCertFile }),
	textKey("etcd_key_file", "key of etcd_cert_file (PEM)", nil, func(c *Config) *string { return &c.EtcdKeyFile }),
	textKey("etcd_username", "etcd user, with etcd_password", nil, func(c *Config) *string { return &c.EtcdUsername }),
	secret(textKey("etcd_password", "password of etcd_username (better in ASE_ETCD_PASSWORD); never logged or shown", nil, func(c *Config) *string { return &c.EtcdPassword })),
	durationKey("cluster_node_ttl", "a node that stops renewing its lease shows inactive within this (2s to 5m)", func(c *Config) *units.Duration { return &c.ClusterNodeTTL }),
}

var byName = func() map[string]*key {
	m := make(map[string]*key, len(keys))
	for i := range keys {
		m[keys[i].name] = &keys[i]
	}
	return m
}()

func lookup(name string) *key { return byName[name] }

// suggestNames are the known keys, ASE's in order then the vendor's, for
// typo suggestions.
var suggestNames = func() []string {
	out := make([]string, 0, len(keys)+len(vendorList))
	for i := range keys {
		out = append(out, keys[i].name)
	}
	for _, vk := range vendorList {
		out = append(out, vk.name)
	}
	return out
}()

// live marks k as taking a new value on reload.
func live(k key) key { k.live = true; return k }

// secret marks k's value as never to be shown.
func secret(k key) key { k.secret = true; return k }

func boolKey(name, doc string, field func(*Config) *bool) key {
	return key{
		name: name, doc: doc,
		set: func(c *Config, v string) error {
			switch {
			case strings.EqualFold(v, "true"):
				*field(c) = true
			case strings.EqualFold(v, "false"):
				*field(c) = false
			default:
				return fmt.Errorf("%q is not a boolean (use true or false)", v)
			}
			return nil
		},
		get: func(c *Config) string { return strconv.FormatBool(*field(c)) },
	}
}

func intKey(name, doc string, lo, hi int, field func(*Config) *int) key {
	return key{
		name: name, doc: doc,
		set: func(c *Config, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil && !errors.Is(err, strconv.ErrRange) {
				return fmt.Errorf("%q is not a whole number", v)
			}
			if err != nil || n < lo || n > hi {
				return fmt.Errorf("%s is out of range (%d to %d)", v, lo, hi)
			}
			*field(c) = n
			return nil
		},
		get: func(c *Config) string { return strconv.Itoa(*field(c)) },
	}
}

// minSize keeps sizes meaningful: below a megabyte a list or a log file
// would thrash.
const minSize = units.Size(1 << 20)

func durationKey(name, doc string, field func(*Config) *units.Duration) key {
	return key{
		name: name, doc: doc,
		set: func(c *Config, v string) error {
			d, err := units.ParseDuration(v)
			if err != nil {
				return fmt.Errorf("%q is not a duration such as 30s (a whole number and s, m, h or d)", v)
			}
			if d <= 0 {
				return fmt.Errorf("%s is too short (at least 1s)", v)
			}
			*field(c) = d
			return nil
		},
		get: func(c *Config) string { return field(c).String() },
	}
}

// ttlKey is a duration that may be 0 (for ever).
func ttlKey(name, doc string, field func(*Config) *units.Duration) key {
	return key{
		name: name, doc: doc,
		set: func(c *Config, v string) error {
			if v == "0" {
				*field(c) = 0
				return nil
			}
			d, err := units.ParseDuration(v)
			if err != nil || d <= 0 {
				return fmt.Errorf("%q is not a duration such as 30m (a whole number and s, m, h or d), or 0 for no expiry", v)
			}
			*field(c) = d
			return nil
		},
		get: func(c *Config) string {
			if *field(c) == 0 {
				return "0"
			}
			return field(c).String()
		},
	}
}

func boundedSizeKey(name, doc string, lo, hi units.Size, field func(*Config) *units.Size) key {
	return key{
		name: name, doc: doc,
		set: func(c *Config, v string) error {
			s, err := units.ParseSize(v)
			if err != nil {
				return fmt.Errorf("%q is not a size such as 16KB (a whole number and b, kb, mb or gb)", v)
			}
			if s < lo || s > hi {
				return fmt.Errorf("%s is out of range (%s to %s)", v, lo, hi)
			}
			*field(c) = s
			return nil
		},
		get: func(c *Config) string { return field(c).String() },
	}
}

func sizeKey(name, doc string, field func(*Config) *units.Size) key {
	return key{
		name: name, doc: doc,
		set: func(c *Config, v string) error {
			s, err := units.ParseSize(v)
			if err != nil {
				return fmt.Errorf("%q is not a size such as 128MB (a whole number and b, kb, mb or gb)", v)
			}
			if s < minSize {
				return fmt.Errorf("%s is too small (at least 1MB)", v)
			}
			*field(c) = s
			return nil
		},
		get: func(c *Config) string { return field(c).String() },
	}
}

func textKey(name, doc string, check func(string) error, field func(*Config) *string) key {
	return key{
		name: name, doc: doc, text: true,
		set: func(c *Config, v string) error {
			// A control character is never meant, and a newline would not
			// survive Format.
			if strings.ContainsFunc(v, isControl) {
				return fmt.Errorf("%q contains a control character", v)
			}
			if check != nil {
				if err := check(v); err != nil {
					return err
				}
			}
			*field(c) = v
			return nil
		},
		get: func(c *Config) string { return *field(c) },
	}
}

func isControl(r rune) bool { return (r < 0x20 && r != '\t') || r == 0x7f }

func checkAddr(v string) error {
	if _, err := netip.ParseAddr(v); err != nil {
		return fmt.Errorf("%q is not an IP address", v)
	}
	return nil
}

func isLoopback(v string) bool {
	a, err := netip.ParseAddr(v)
	return err == nil && a.IsLoopback()
}

func checkClusterID(v string) error {
	ok := len(v) <= 64
	for i := 0; ok && i < len(v); i++ {
		b := v[i]
		ok = 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || b == '_' || b == '-'
	}
	if !ok {
		return fmt.Errorf("%q is not a cluster ID (1 to 64 letters, digits, '_' or '-')", v)
	}
	return nil
}

func loadLocation(v string) (*time.Location, error) {
	switch {
	case strings.EqualFold(v, "utc"):
		return time.UTC, nil
	case strings.EqualFold(v, "local"):
		return time.Local, nil
	}
	loc, err := time.LoadLocation(v)
	if err != nil {
		return nil, fmt.Errorf("%q is not utc, local or a time zone name such as Europe/Paris", v)
	}
	return loc, nil
}

// parseEndpoints accepts only scheme://host[:port][/], the form the etcd
// client expects, so a typo fails here rather than at the first dial.
func parseEndpoints(v string) ([]string, error) {
	if v == "" {
		return nil, nil
	}
	var eps []string
	for _, e := range strings.Split(v, ",") {
		e = strings.TrimSpace(e)
		u, err := url.Parse(e)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" ||
			u.User != nil || u.Opaque != "" || (u.Path != "" && u.Path != "/") || strings.ContainsAny(e, "?#") {
			return nil, fmt.Errorf("%q is not an etcd endpoint such as http://127.0.0.1:2379", e)
		}
		eps = append(eps, e)
	}
	return eps, nil
}

// parseProxies reads trusted_proxies: addresses (a host range) and CIDR
// ranges, comma-separated. A range with bits set past its length is
// refused rather than masked (10.0.0.1/8 is more likely a typo for /32
// than a wish to trust 16 million addresses), and so are zones and empty
// entries; an IPv4-mapped range becomes its IPv4 range, since peers are
// compared unmapped.
func parseProxies(v string) ([]netip.Prefix, error) {
	if strings.TrimSpace(v) == "" {
		return nil, nil
	}
	var out []netip.Prefix
	for _, e := range strings.Split(v, ",") {
		e = strings.TrimSpace(e)
		if e == "" {
			return nil, fmt.Errorf("%q has an empty entry", v)
		}
		var p netip.Prefix
		if strings.IndexByte(e, '/') >= 0 {
			var err error
			if p, err = netip.ParsePrefix(e); err != nil {
				return nil, fmt.Errorf("%q is not an IP address or CIDR range", e)
			}
			if m := p.Masked(); m != p {
				return nil, fmt.Errorf("%q has bits set past its length (%s or %s?)", e, m, netip.PrefixFrom(p.Addr(), p.Addr().BitLen()))
			}
		} else {
			a, err := netip.ParseAddr(e)
			if err != nil || a.Zone() != "" {
				return nil, fmt.Errorf("%q is not an IP address or CIDR range", e)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		out = append(out, p)
	}
	return out, nil
}
