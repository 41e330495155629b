// Package metrics exposes ASE's Prometheus metrics: requests and decisions
// by API and reason, latency histograms, backend health and requests in
// flight, list sizes and memory, sideband calls by protocol, and
// authentication failures. No label ever names a client.
//
// The data path counts into per-API atomic counters (no label hashing per
// request); a collector turns them into series at scrape time.
package metrics

import (
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ase-project/ase/internal/behave"
)

// The label values a request can take.
var (
	protocols = []string{"inline", "ase", "authorize", "forward_auth"}
	decisions = []string{"allow", "block", "reject", "redirect", "decoy", "limit", "refuse"}
	reasons   = []string{"none", "firewall_disabled", "allow_list", "deny_list", "decoy", "invalid_protocol", "invalid_method",
		"invalid_content_type", "rate_limited", "unknown_api", "malformed", "authentication", "no_server", "backend_error", "backend_timeout", "other"}
)

func indexOf(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return len(list) - 1 // the last value catches the unexpected
}

// apiStats are one API's counters.
type apiStats struct {
	counts  [4][7][16]atomic.Uint64 // protocol, decision, reason
	latency [4]prometheus.Observer
}

// Backend describes one backend server for the backend metrics.
type Backend struct {
	APIID, Server string
	Health        string // "Up", "Down" or "Unknown" (health_check on, not probed yet)
	InFlight      int64
}

// Sources are the gauges read at scrape time.
type Sources struct {
	Backends     func() []Backend
	ListEntries  func() map[[2]string]int64 // [list, kind] -> entries
	ListMemory   func() (used, configured int64)
	WebSockets   func() map[[2]string]int64 // [api_id, scheme] -> open connections
	LogDropped   func() int64
	TrackedUsers func() int64 // clients tracked by flow control
	// Detections: detected attackers deny-listed and refused (past
	// attack_list_memory) since start, and list entries enforced in memory
	// but not yet stored.
	Detections func() (listed, refused, pending int64)
	// SecretChecks: shared secrets not verified before, checked (argon2id)
	// or refused unchecked past the rate of such checks.
	SecretChecks func() (checked, refused int64)
	// RecentDetections: the last attackers deny-listed for a detection,
	// newest first (GET /activity).
	RecentDetections func() []Detection
	// Behavioural detection (behave.Engine's Counts, Tracked and Status):
	// its detections since start by detector and mode, the client
	// identities it tracks, and each API's training.
	ABSDetections func() [behave.NumDetectors][3]int64
	ABSTracked    func() int
	ABSStatus     func(apiID string) ([]behave.APIStatus, bool)
	// ABSDropped: detections whose audit line, or whose record in the
	// store (the cluster's attack list), was dropped, its queue full.
	ABSDropped func() (audit, records int64)
}

// Metrics is the registry and the counters.
type Metrics struct {
	reg     *prometheus.Registry
	apis    sync.Map // api_id -> *apiStats
	src     Sources
	latency *prometheus.HistogramVec

	sidebandCalls *prometheus.CounterVec
	authFailures  *prometheus.CounterVec
	changes       *prometheus.CounterVec
	inlineConns   *prometheus.CounterVec
	sidebandConns prometheus.Counter

	act activity   // GET /activity's steps (activity.go)
	top topBlocked // the clients refused most (topclients.go)
}

var latencyBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// New returns the metrics, reading gauges from src.
func New(src Sources) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), src: src}
	m.act.init(time.Now)
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "ase_request_duration_seconds", Help: "Time ASE took to answer a data-path request (inline: including the backend).", Buckets: latencyBuckets,
	}, []string{"api_id", "protocol"})
	m.sidebandCalls = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ase_sideband_calls_total", Help: "Sideband calls by protocol and call.",
	}, []string{"protocol", "call"})
	m.authFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ase_auth_failures_total", Help: "Failed authentications by surface (management, sideband).",
	}, []string{"surface"})
	m.changes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ase_config_changes_total", Help: "Configuration changes through the management API, by result.",
	}, []string{"result"})
	m.inlineConns = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ase_inline_connections_total", Help: "Inline connections (plain, and TLS once its handshake is done) by event: accepted by the event loops, handed_off to the general (fasthttp) server for a request outside the loops' subset.",
	}, []string{"event"})
	m.sidebandConns = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "ase_sideband_connections_accepted_total", Help: "Connections the data ports accepted in sideband mode: with gateways that keep their connections open, a few, not one per call.",
	})
	m.reg.MustRegister(m.latency, m.sidebandCalls, m.authFailures, m.changes, m.inlineConns, m.sidebandConns, collector{m},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *Metrics) stats(apiID string) *apiStats {
	if v, ok := m.apis.Load(apiID); ok {
		return v.(*apiStats)
	}
	s := &apiStats{}
	for i, p := range protocols {
		s.latency[i] = m.latency.WithLabelValues(apiID, p)
	}
	v, _ := m.apis.LoadOrStore(apiID, s)
	return v.(*apiStats)
}

// SetSources replaces the gauges' sources (the proxy's exist only once it
// is built).
func (m *Metrics) SetSources(src Sources) { m.src = src }

// Request counts one data-path request from client (its address as
// decided on). A nil *Metrics counts nothing.
func (m *Metrics) Request(apiID, protocol, decision, reason string, took time.Duration, client netip.Addr) {
	if m == nil {
		return
	}
	switch decision {
	case "allow", "redirect":
	default:
		m.top.add(client, apiID, reason, time.Now())
	}
	s := m.stats(apiID)
	p := indexOf(protocols, protocol)
	s.counts[p][indexOf(decisions, decision)][indexOf(reasons, reason)].Add(1)
	s.latency[p].Observe(took.Seconds())
	m.act.touch(m)
}

// SidebandCall counts a sideband call (protocol ase, authorize or
// forward_auth; call request or response).
func (m *Metrics) SidebandCall(protocol, call string) {
	if m != nil {
		m.sidebandCalls.WithLabelValues(protocol, call).Inc()
	}
}

// AuthFailure counts a failed authentication on surface.
func (m *Metrics) AuthFailure(surface string) {
	if m != nil {
		m.authFailures.WithLabelValues(surface).Inc()
	}
}

// Change counts a configuration change and its result.
func (m *Metrics) Change(result string) {
	if m != nil {
		m.changes.WithLabelValues(result).Inc()
	}
}

// InlineConnection counts an event (accepted, handed_off) of a plain-port
// inline connection.
func (m *Metrics) InlineConnection(event string) {
	if m != nil {
		m.inlineConns.WithLabelValues(event).Inc()
	}
}

// SidebandConnection counts a connection a data port accepted in sideband
// mode.
func (m *Metrics) SidebandConnection() {
	if m != nil {
		m.sidebandConns.Inc()
	}
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// collector turns the counters and sources into series at scrape time.
type collector struct{ m *Metrics }

var (
	descRequests  = prometheus.NewDesc("ase_requests_total", "Data-path requests by API, protocol, decision and reason.", []string{"api_id", "protocol", "decision", "reason"}, nil)
	descBackendUp = prometheus.NewDesc("ase_backend_up", "Whether a backend server is known healthy (1) or not (0: down, or not probed yet).", []string{"api_id", "server"}, nil)
	descInFlight  = prometheus.NewDesc("ase_backend_in_flight", "Requests in flight at a backend server.", []string{"api_id", "server"}, nil)
	descEntries   = prometheus.NewDesc("ase_list_entries", "Entries of the deny and allow lists by kind.", []string{"list", "kind"}, nil)
	descMemory    = prometheus.NewDesc("ase_list_memory_bytes", "Memory of the lists: used (estimated upper bound) and configured (attack_list_memory).", []string{"state"}, nil)
	descWS        = prometheus.NewDesc("ase_websocket_connections", "Open WebSocket connections by API and scheme.", []string{"api_id", "scheme"}, nil)
	descDropped   = prometheus.NewDesc("ase_access_log_dropped_total", "Access log lines dropped because the disk could not keep up.", nil, nil)
	descClients   = prometheus.NewDesc("ase_flow_clients_tracked", "Clients whose request rate flow control is tracking.", nil, nil)
	descDetected  = prometheus.NewDesc("ase_detections_total", "ASE-detected attackers by result: listed (deny-listed), refused (not listed: attack_list_memory is full).", []string{"result"}, nil)
	descPending   = prometheus.NewDesc("ase_detections_pending", "Deny-list entries of detected attackers enforced in memory and not yet written to the store.", nil, nil)
	descSecrets   = prometheus.NewDesc("ase_sideband_secret_checks_total", "Presented shared secrets not verified before, by result: checked (an argon2id check), refused (unchecked: over 20 checks a second).", []string{"result"}, nil)
	descABS       = prometheus.NewDesc("ase_abs_detections_total", "Behavioural detections by detector and mode: enforce (deny-listed, or listed already) or report (reported only: the detector's mode, or abs_attack disabled).", []string{"detector", "mode"}, nil)
	descABSClient = prometheus.NewDesc("ase_abs_tracked_clients", "Client identities (addresses and credentials, per API) behavioural detection is tracking.", nil, nil)
	descABSDrop   = prometheus.NewDesc("ase_abs_dropped_total", "Behavioural detections whose audit line (what=audit) or record in the store for the attack list (what=record) was dropped because its queue was full; the deny list and ase_abs_detections_total still have them.", []string{"what"}, nil)
	descABSTrain  = prometheus.NewDesc("ase_abs_training", "Whether behavioural detection is learning an API's traffic (1) or enforcing (0).", []string{"api_id"}, nil)
)

// descBackendHealth is a state set: one series per state, 1 for the
// server's current one.
var descBackendHealth = prometheus.NewDesc("ase_backend_health", "A backend server's health: 1 for its current state (up, down, or unknown until the first probe answers), 0 for the others.", []string{"api_id", "server", "state"}, nil)

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRequests, descBackendUp, descBackendHealth, descInFlight, descEntries, descMemory, descWS, descDropped, descClients, descDetected, descPending, descSecrets, descABS, descABSClient, descABSTrain, descABSDrop} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	c.m.apis.Range(func(k, v any) bool {
		s := v.(*apiStats)
		for p := range protocols {
			for d := range decisions {
				for r := range reasons {
					if n := s.counts[p][d][r].Load(); n > 0 {
						ch <- prometheus.MustNewConstMetric(descRequests, prometheus.CounterValue, float64(n), k.(string), protocols[p], decisions[d], reasons[r])
					}
				}
			}
		}
		return true
	})
	src := c.m.src
	if src.Backends != nil {
		for _, b := range src.Backends() {
			for _, st := range [...][2]string{{"Up", "up"}, {"Down", "down"}, {"Unknown", "unknown"}} {
				v := 0.0
				if b.Health == st[0] {
					v = 1
				}
				if st[0] == "Up" {
					ch <- prometheus.MustNewConstMetric(descBackendUp, prometheus.GaugeValue, v, b.APIID, b.Server)
				}
				ch <- prometheus.MustNewConstMetric(descBackendHealth, prometheus.GaugeValue, v, b.APIID, b.Server, st[1])
			}
			ch <- prometheus.MustNewConstMetric(descInFlight, prometheus.GaugeValue, float64(b.InFlight), b.APIID, b.Server)
		}
	}
	if src.ListEntries != nil {
		for k, n := range src.ListEntries() {
			ch <- prometheus.MustNewConstMetric(descEntries, prometheus.GaugeValue, float64(n), k[0], k[1])
		}
	}
	if src.ListMemory != nil {
		used, configured := src.ListMemory()
		ch <- prometheus.MustNewConstMetric(descMemory, prometheus.GaugeValue, float64(used), "used")
		ch <- prometheus.MustNewConstMetric(descMemory, prometheus.GaugeValue, float64(configured), "configured")
	}
	if src.WebSockets != nil {
		for k, n := range src.WebSockets() {
			ch <- prometheus.MustNewConstMetric(descWS, prometheus.GaugeValue, float64(n), k[0], k[1])
		}
	}
	if src.LogDropped != nil {
		ch <- prometheus.MustNewConstMetric(descDropped, prometheus.CounterValue, float64(src.LogDropped()))
	}
	if src.TrackedUsers != nil {
		ch <- prometheus.MustNewConstMetric(descClients, prometheus.GaugeValue, float64(src.TrackedUsers()))
	}
	if src.Detections != nil {
		listed, refused, pending := src.Detections()
		ch <- prometheus.MustNewConstMetric(descDetected, prometheus.CounterValue, float64(listed), "listed")
		ch <- prometheus.MustNewConstMetric(descDetected, prometheus.CounterValue, float64(refused), "refused")
		ch <- prometheus.MustNewConstMetric(descPending, prometheus.GaugeValue, float64(pending))
	}
	if src.SecretChecks != nil {
		checked, refused := src.SecretChecks()
		ch <- prometheus.MustNewConstMetric(descSecrets, prometheus.CounterValue, float64(checked), "checked")
		ch <- prometheus.MustNewConstMetric(descSecrets, prometheus.CounterValue, float64(refused), "refused")
	}
	if src.ABSDetections != nil {
		counts := src.ABSDetections()
		for d := range counts {
			for _, m := range []behave.Mode{behave.Enforce, behave.Report} { // an off detector finds nothing
				ch <- prometheus.MustNewConstMetric(descABS, prometheus.CounterValue, float64(counts[d][m]), behave.Detector(d).String(), m.String())
			}
		}
	}
	if src.ABSTracked != nil {
		ch <- prometheus.MustNewConstMetric(descABSClient, prometheus.GaugeValue, float64(src.ABSTracked()))
	}
	if src.ABSDropped != nil {
		a, r := src.ABSDropped()
		ch <- prometheus.MustNewConstMetric(descABSDrop, prometheus.CounterValue, float64(a), "audit")
		ch <- prometheus.MustNewConstMetric(descABSDrop, prometheus.CounterValue, float64(r), "record")
	}
	if src.ABSStatus != nil {
		all, _ := src.ABSStatus("")
		for _, s := range all {
			v := 0.0
			if s.Training {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(descABSTrain, prometheus.GaugeValue, v, s.API)
		}
	}
}
