package e2e

import (
	"bytes"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func scrape(t *testing.T, i *Instance) map[string]*dto.MetricFamily {
	t.Helper()
	r := i.Do("GET", "/v5/ase/metrics", "", nil)
	if r.Code != 200 || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("metrics: %d %s", r.Code, r.Header.Get("Content-Type"))
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(r.Body))
	if err != nil {
		t.Fatalf("the metrics do not parse: %v", err)
	}
	return fams
}

func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	t.Helper()
	f := fams[name]
	if f == nil {
		t.Fatalf("no metric %s", name)
	}
	for _, m := range f.Metric {
		match := true
		for k, v := range labels {
			found := false
			for _, l := range m.Label {
				if l.GetName() == k && l.GetValue() == v {
					found = true
				}
			}
			match = match && found
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	t.Fatalf("no %s with %v", name, labels)
	return 0
}

func TestMetricsInline(t *testing.T) {
	a := newBackend(t, "a", false)
	dead := newBackend(t, "dead", false)
	dead.Close()
	i := startInstance(t, nil)
	wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=shop", apiDoc("/shop", servers(a, dead)+`, "health_check": true, "health_check_interval": 1, "health_retry_count": 1,
		"api_pattern_enforcement": {"methods_allowed": ["GET"]}`), nil), 200, ok)
	wantStatus(t, i.Do("POST", "/v5/ase/firewall/blacklist", `[{"type": "ip", "value": "192.0.2.1"}, {"type": "token", "value": "t"}]`, nil), 200, "success", "*")
	for n := 0; n < 5; n++ {
		i.get("GET", "/shop/x", nil)
	}
	i.get("DELETE", "/shop/x", nil)
	i.get("GET", "/nowhere", nil)
	i.Do("GET", "/v5/ase/api", "", map[string]string{"x-ase-secret-key": "wrong"})

	waitUntil(t, func() bool {
		return value(t, scrape(t, i), "ase_backend_up", map[string]string{"api_id": "shop", "server": strings.TrimPrefix(dead.URL, "http://")}) == 0
	})
	fams := scrape(t, i)
	if n := value(t, fams, "ase_requests_total", map[string]string{"api_id": "shop", "protocol": "inline", "decision": "allow", "reason": "none"}); n != 5 {
		t.Fatalf("allowed requests: %v", n)
	}
	if n := value(t, fams, "ase_requests_total", map[string]string{"api_id": "shop", "decision": "reject", "reason": "invalid_method"}); n != 1 {
		t.Fatalf("rejected requests: %v", n)
	}
	if n := value(t, fams, "ase_requests_total", map[string]string{"api_id": "", "decision": "refuse", "reason": "unknown_api"}); n != 1 {
		t.Fatalf("unknown API: %v", n)
	}
	if n := value(t, fams, "ase_request_duration_seconds", map[string]string{"api_id": "shop", "protocol": "inline"}); n != 6 {
		t.Fatalf("latency samples: %v", n)
	}
	if value(t, fams, "ase_backend_up", map[string]string{"server": strings.TrimPrefix(a.URL, "http://")}) != 1 {
		t.Fatal("the live backend is not up")
	}
	value(t, fams, "ase_backend_in_flight", map[string]string{"api_id": "shop"})
	if value(t, fams, "ase_list_entries", map[string]string{"list": "blacklist", "kind": "ip"}) != 1 || value(t, fams, "ase_list_entries", map[string]string{"list": "blacklist", "kind": "token"}) != 1 {
		t.Fatal("list sizes")
	}
	if value(t, fams, "ase_list_memory_bytes", map[string]string{"state": "configured"}) != 128<<20 || value(t, fams, "ase_list_memory_bytes", map[string]string{"state": "used"}) <= 0 {
		t.Fatal("list memory")
	}
	if value(t, fams, "ase_auth_failures_total", map[string]string{"surface": "management"}) != 1 {
		t.Fatal("auth failures")
	}
	if value(t, fams, "ase_config_changes_total", map[string]string{"result": "success"}) != 2 {
		t.Fatal("configuration changes")
	}
	// No label names a client.
	for name, f := range fams {
		for _, m := range f.Metric {
			for _, l := range m.Label {
				if strings.Contains(l.GetValue(), "127.0.0.1") && l.GetName() != "server" || l.GetName() == "client_ip" || l.GetName() == "client" {
					t.Fatalf("%s has a per-client label %s=%s", name, l.GetName(), l.GetValue())
				}
			}
		}
	}
}

func TestMetricsSideband(t *testing.T) {
	i := startSideband(t, map[string]string{"enable_sideband_authentication": "true"})
	var created struct{ Token string }
	decode(t, i.Do("POST", "/v5/ase/sideband/token", "", nil), &created)
	tok := map[string]string{"ASE-Token": created.Token}
	i.Data("POST", "/ase/request", aseCall("198.51.100.1", "GET", "/shop/x", ``), tok)
	i.Data("POST", "/ase/response", `{"response_code": 200}`, tok)
	i.Data("POST", "/sideband/request", `{"source_ip": "198.51.100.1", "method": "GET", "url": "/shop", "body": ""}`, tok)
	i.Data("GET", "/ase/authz", "", map[string]string{"ASE-Token": created.Token, "X-Original-URI": "/shop"})
	i.Data("POST", "/ase/request", aseCall("198.51.100.1", "GET", "/shop/x", ``), nil) // no token
	fams := scrape(t, i)
	for _, c := range []struct{ protocol, call string }{{"ase", "request"}, {"ase", "response"}, {"authorize", "request"}, {"forward_auth", "request"}} {
		if value(t, fams, "ase_sideband_calls_total", map[string]string{"protocol": c.protocol, "call": c.call}) < 1 {
			t.Fatalf("no %s %s call counted", c.protocol, c.call)
		}
	}
	if value(t, fams, "ase_auth_failures_total", map[string]string{"surface": "sideband"}) != 1 {
		t.Fatal("sideband auth failure not counted")
	}
	if value(t, fams, "ase_requests_total", map[string]string{"api_id": "shop", "protocol": "ase", "decision": "allow"}) != 1 {
		t.Fatal("sideband decision not counted")
	}
	// Metrics need credentials, like every management endpoint.
	wantStatus(t, i.Do("GET", "/v5/ase/metrics", "", map[string]string{"x-ase-access-key": ""}), 403, "fail", "x-ase-access-key header missing")
}
