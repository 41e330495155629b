package config

import (
	"fmt"
	"strings"
)

// The vendor's keys that ASE has no use for. The vendor's container image
// writes every key of its ase.conf template (PingIntelligence ASE 5.x; see
// testdata/vendor-ase.conf), so a file carried over from it must start:
// such a key is accepted and reported as ignored, with the reason. A value
// that asks for something ASE cannot do (e-mail alerts, ABS, SSLv3, ...)
// is refused instead, saying what to do: a setting an operator relies on
// must not quietly do nothing. Keys the vendor shares with ASE, with the
// same meaning (mode, timezone, enable_audit, http_ws_port, ...), are in
// keys.go.

// vendorKey is one of the vendor's keys that ASE ignores.
type vendorKey struct {
	name string
	why  string // completes "ignored: <name>, because ..."
	// check refuses a value that asks for what ASE cannot do, saying what
	// to do instead; nil accepts every value. Its message never repeats
	// the value of a secret (sender_password, keystore_password, ...):
	// checks only look at keys whose values are not secret.
	check func(v string) error
}

// offOnly accepts false (or nothing) and refuses true with msg, which
// says what true would ask for and what to do instead.
func offOnly(msg string) func(string) error {
	return func(v string) error {
		switch {
		case v == "", strings.EqualFold(v, "false"):
			return nil
		case strings.EqualFold(v, "true"):
			return fmt.Errorf("true %s", msg)
		}
		return fmt.Errorf("%q is not a boolean (use true or false)", v)
	}
}

const (
	whyABS    = "it configures the connection to ABS, the vendor's AI engine, which ASE does not have"
	whyPubSub = "it configures publishing to Google Pub/Sub, which ASE does not do"
	whyEmail  = "it configures e-mail alerts and reports, and ASE sends no e-mail"
	whyAlert  = "it is a threshold of the e-mail alerts, and ASE sends no e-mail"
)

// vendorList is in the order of the vendor's template (testdata/vendor-ase.conf).
var vendorList = []*vendorKey{
	{name: "http_ws_process", why: "ASE is one process that uses every CPU: there are no worker processes to count"},
	{name: "https_wss_process", why: "ASE is one process that uses every CPU: there are no worker processes to count"},
	{name: "flush_log_immediate", why: "ASE writes access log lines within 50 ms without holding any request for it, and syncs the audit log on every change: there is no slower mode to choose"},
	{name: "enable_sslv3", why: "ASE never speaks SSLv3 (TLS 1.2 at least), which is what false asks for",
		check: offOnly("asks for SSLv3, which ASE never speaks (broken since POODLE; TLS 1.2 is the minimum): set enable_sslv3=false")},

	{name: "abs_attack_request_minutes", why: "ASE's behavioural detection runs in process and enforces what it finds at once: there is no attack list to fetch every so many minutes"},

	{name: "syslog_server", why: "it is empty: the vendor's way of asking for no syslog, and ASE sends none",
		check: func(v string) error {
			if v == "" {
				return nil
			}
			return fmt.Errorf("%q asks ASE to send its logs to syslog, which it does not do itself: leave syslog_server empty; the management log goes to stderr (under systemd the journal, which can forward to syslog), and access_log_stdout=true and audit_log_stdout=true send the other two logs there too", v)
		}},
	{name: "keystore_password", why: "ASE keeps no keystore: its certificates and keys are PEM files (tls_cert_file, tls_key_file, management_tls_cert_file, management_tls_key_file)"},
	{name: "enable_hostname_rewrite", why: "ASE always sends backends the client's own Host header, which is what false asks for",
		check: offOnly("asks ASE to rewrite the Host header it sends to backends, which it does not do (backends receive the client's Host): set enable_hostname_rewrite=false")},

	{name: "enable_abs_publish", why: whyABS,
		check: offOnly("asks ASE to fetch the API definitions ABS discovered, and ASE does not connect to ABS: set enable_abs_publish=false and keep API definitions in api_dir (or add them with `ase add_api`)")},
	{name: "abs_publish_request_minutes", why: whyABS},

	{name: "enable_google_pubsub", why: whyPubSub,
		check: offOnly("asks ASE to publish API metrics to Google Pub/Sub, which it does not do: set enable_google_pubsub=false and scrape GET /v5/ase/metrics (Prometheus format) or ship the access log")},
	{name: "google_pubsub_topic", why: whyPubSub},
	{name: "google_pubsub_concurrency", why: whyPubSub},
	{name: "google_pubsub_qps", why: whyPubSub},
	{name: "google_pubsub_apikey", why: whyPubSub},
	{name: "cache_queue_size", why: whyPubSub},
	{name: "google_pubsub_timeout", why: whyPubSub},

	{name: "hostname_refresh", why: "ASE looks backend host names up when it connects and keeps each answer one minute, a fixed interval (the vendor's default is 60 seconds too)"},
	{name: "decoy_alert_interval", why: "it spaces decoy alerts, and ASE sends no alerts: every decoy hit is in the access log (reason decoy) and the metrics"},
	{name: "tcp_send_buffer_size", why: "ASE leaves socket buffer sizes to the kernel (net.ipv4.tcp_wmem)"},
	{name: "tcp_receive_buffer_size", why: "ASE leaves socket buffer sizes to the kernel (net.ipv4.tcp_rmem)"},
	{name: "auth_method", why: "ase::db, the vendor's name for ASE's own accounts, is how ASE always authenticates operators",
		check: func(v string) error {
			if v == "" || v == "ase::db" {
				return nil
			}
			return fmt.Errorf("%q asks for another authentication method than ASE's own accounts, which is the only one ASE has besides x509 logins: set auth_method=ase::db, manage operators with the users API (/api/configuration/aaa/local_database/users), or log in with client certificates (client_ca_file)", v)
		}},
	{name: "enable_1G", why: "ASE turns Nagle's algorithm off on every connection (Go's default), whatever the network card"},
	{name: "buffer_size", why: "ASE sizes its own buffers: the longest request head it reads is max_request_header"},

	{name: "enable_email", why: "ASE sends no e-mail alerts or reports, which is what false asks for",
		check: offOnly("asks for e-mail alerts and reports, which ASE does not send: set enable_email=false and alert on GET /v5/ase/metrics (for example with Prometheus Alertmanager)")},
	{name: "cpu_usage", why: whyAlert},
	{name: "memory_usage", why: whyAlert},
	{name: "filesystem_size", why: whyAlert},
	{name: "email_report", why: whyEmail},
	{name: "smtp_host", why: whyEmail},
	{name: "smtp_port", why: whyEmail},
	{name: "smtp_ssl", why: whyEmail},
	{name: "smtp_cert_verification", why: whyEmail},
	{name: "sender_email", why: whyEmail},
	{name: "sender_password", why: whyEmail},
	{name: "receiver_email", why: whyEmail},

	// Not in the container's template: the sideband reference's (5.1.3+).
	{name: "enable_mtls", why: "ASE asks gateways for no client certificate, which is what false asks for",
		check: offOnly("asks ASE to require client certificates from gateways on the data ports, which it does not do: set enable_mtls=false and use enable_sideband_authentication (sideband tokens or shared secrets)")},
}

var vendorKeys = func() map[string]*vendorKey {
	m := make(map[string]*vendorKey, len(vendorList))
	for _, vk := range vendorList {
		if lookup(vk.name) != nil || m[vk.name] != nil {
			panic("config: vendor key " + vk.name + " listed twice")
		}
		m[vk.name] = vk
	}
	return m
}()

// VendorKey describes a vendor key ASE ignores, for documentation.
type VendorKey struct {
	Name string
	Why  string
	// Refused is true when some values are refused (true for a boolean).
	Refused bool
}

// VendorKeys lists the vendor's keys that ASE accepts without acting on
// them.
func VendorKeys() []VendorKey {
	out := make([]VendorKey, len(vendorList))
	for i, vk := range vendorList {
		out[i] = VendorKey{Name: vk.name, Why: vk.why, Refused: vk.check != nil}
	}
	return out
}
