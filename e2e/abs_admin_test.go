package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/ase-project/ase/internal/wire"
)

// Behavioural detection's management (issue 20) through the binary: its
// switches by CLI and API, its status, policies and their validation,
// retraining, and the vendor ABS's attack list: empty, with a real
// detection (a policy's tiny request threshold, crossed by one client),
// and emptied again by the vendor's bulk delete, which leaves manual
// entries alone.

// absAttackList reads the attack list under path (with its query).
func absAttackList(t *testing.T, i *Instance, path string) wire.ABSAttackList {
	t.Helper()
	r := i.Do("GET", path, "", nil)
	if r.Code != 200 {
		t.Fatalf("GET %s: %d %s", path, r.Code, r.Body)
	}
	var l wire.ABSAttackList
	decode(t, r, &l)
	return l
}

// metricValue returns the value of one series of a Prometheus text
// exposition, and whether it is there.
func metricValue(body []byte, series string) (float64, bool) {
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		if name, v, ok := strings.Cut(sc.Text(), " "); ok && name == series {
			f, err := strconv.ParseFloat(v, 64)
			return f, err == nil
		}
	}
	return 0, false
}

func TestABSAdmin(t *testing.T) {
	backend := newBackend(t, "b", false)
	i := startInstance(t, map[string]string{
		"enable_abs": "true", "abs_training_period": "1s", "abs_window": "1s", "enable_xff": "true",
	})
	wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=shop", apiDoc("/shop", servers(backend)), nil), 200, ok)

	// The switches: ase.conf's values first, then the API's and the CLI's.
	wantJSON(t, i.Do("GET", "/v5/ase/firewall/abs", "", nil), 200, `{"status": "enabled", "status_message": "Ok"}`)
	wantJSON(t, i.Do("GET", "/v4/ase/firewall/abs_attack", "", nil), 200, `{"status": "enabled", "status_message": "Ok"}`)
	for _, s := range []struct {
		args []string
		want string
	}{
		{[]string{"disable_abs"}, "Behavioural detection is now disabled\n"},
		{[]string{"disable_abs"}, "Behavioural detection is already disabled\n"},
		{[]string{"disable_abs_attack"}, "ABS attack is now disabled\n"},
		{[]string{"enable_abs_attack"}, "ABS attack is now enabled\n"},
	} {
		if stdout, stderr, code := i.CLI("", s.args...); code != 0 || stdout != s.want {
			t.Fatalf("ase %s: exit %d %q %q", s.args[0], code, stdout, stderr)
		}
	}
	wantJSON(t, i.Do("POST", "/v4/ase/firewall/abs?status=enable", "", nil), 200, `{"status": "enabled", "status_message": "Behavioural detection is now enabled"}`)
	wantStatus(t, i.Do("POST", "/v5/ase/firewall/abs_attack?status=yes", "", nil), 403, "invalid_value", "query parameter status contains invalid value")
	var st wire.StatusInfo
	decode(t, i.Do("GET", "/v5/ase/status", "", nil), &st)
	if st.ABS != "enabled" || st.ABSAttack != "enabled" {
		t.Fatalf("status: abs %q, abs_attack %q", st.ABS, st.ABSAttack)
	}
	if stdout, _, code := i.CLI("", "status"); code != 0 || !strings.Contains(stdout, "\nabs                     : enabled\nabs attack              : enabled\n") {
		t.Fatalf("ase status: %d %q", code, stdout)
	}

	// Status: the configuration, and the API training.
	var info wire.ABSInfo
	decode(t, i.Do("GET", "/v5/ase/abs", "", nil), &info)
	if !info.Enabled || !info.Enforcing || info.TrainingPeriod != "1s" || info.Window != "1s" || info.TTL["ip"] != "1h" ||
		len(info.APIs) != 1 || info.APIs[0].APIID != "shop" || len(info.APIs[0].Figures) == 0 {
		t.Fatalf("GET /abs: %+v", info)
	}
	var one wire.ABSAPIStatus
	decode(t, i.Do("GET", "/v4/ase/abs/shop", "", nil), &one)
	if one.APIID != "shop" || one.Modes["extreme_client_activity"] != "enforce" {
		t.Fatalf("GET /abs/shop: %+v", one)
	}
	wantStatus(t, i.Do("GET", "/v5/ase/abs/nope", "", nil), 404, "api_not_found", "api nope does not exist")

	// Policies: each mistake named; nothing stored until one is right.
	for body, msg := range map[string]string{
		`{"modes": {"sniffing": "report"}}`:       `modes: unknown detector "sniffing"*`,
		`{"modes": {"api_probing": "block"}}`:     `modes.api_probing: "block" is not a mode (enforce, report or off)`,
		`{"thresholds": {"requests": -3}}`:        `thresholds.requests: must be a number from 0 (the learned threshold) to 1e15, got -3`,
		`{"thresholds": {"requests": 3}, "x": 1}`: `not a detection policy*`,
	} {
		wantStatus(t, i.Do("PUT", "/v5/ase/abs/shop/policy", body, nil), 403, "validation_error", msg)
	}
	wantStatus(t, i.Do("PUT", "/v5/ase/abs/nope/policy", `{}`, nil), 404, "api_not_found", "api nope does not exist")
	if _, stderr, code := i.CLI("", "abs_policy", "shop", "--threshold", "requests=-1"); code != 1 || !strings.Contains(stderr, "thresholds.requests: must be") {
		t.Fatalf("abs_policy with a negative threshold: %d %q", code, stderr)
	}
	wantJSON(t, i.Do("PUT", "/v5/ase/abs/shop/policy", `{"modes": {"api_probing": "report"}}`, nil), 200,
		`{"status": "success", "status_message": "detection policy of api shop updated", "api_id": "shop", "policy": {"modes": {"api_probing": "report"}}}`)
	wantJSON(t, i.Do("DELETE", "/v5/ase/abs/shop/policy", "", nil), 200,
		`{"status": "success", "status_message": "detection policy of api shop reset to the defaults", "api_id": "shop", "policy": {}}`)
	decode(t, i.Do("GET", "/v5/ase/abs/shop", "", nil), &one)
	if one.Modes["api_probing"] != "enforce" {
		t.Fatalf("after the reset: %+v", one.Modes)
	}
	// Retrain: whether or not the API learned anything yet.
	wantJSON(t, i.Do("POST", "/v5/ase/abs/shop/retrain", "", nil), 200, `{"status": "success", "status_message": "api shop is training again"}`)
	if stdout, _, code := i.CLI("", "abs_retrain", "shop"); code != 0 || stdout != "api shop is training again\n" {
		t.Fatalf("abs_retrain: %d %q", code, stdout)
	}

	// The attack list, empty: the vendor's shape, under /v4/abs and /v5/abs.
	for _, p := range []string{"/v4/abs/attacklist", "/v5/abs/attacklist"} {
		var doc map[string]any
		decode(t, i.Do("GET", p, "", nil), &doc)
		if doc["name"] != "api_attacklist" || doc["status"] != "all" || doc["earlier_date"] != nil || doc["later_date"] != nil || doc["description"] == "" {
			t.Fatalf("GET %s: %v", p, doc)
		}
		for _, k := range []string{"ips", "cookies", "oauth_tokens", "api_keys", "usernames"} {
			if v, ok := doc[k].([]any); !ok || len(v) != 0 {
				t.Fatalf("GET %s: %s is %v", p, k, doc[k])
			}
		}
	}
	wantStatus(t, i.Do("GET", "/v4/abs/attacklist?earlier_date=monday", "", nil), 403, "invalid_value", "query parameter earlier_date contains invalid value")

	// A real detection: three requests per window at most, one client
	// sending more. A manual entry of the same type is listed beside it.
	wantJSON(t, i.Do("PUT", "/v5/ase/abs/shop/policy", `{"thresholds": {"requests": 3}}`, nil), 200,
		`{"status": "success", "status_message": "detection policy of api shop updated", "api_id": "shop", "policy": {"thresholds": {"requests": 3}}}`)
	wantStatus(t, i.Do("POST", "/v5/ase/firewall/blacklist", `{"type": "ip", "value": "127.0.0.77"}`, nil), 200, "success", "ip 127.0.0.77 added to blacklist")
	attacker := map[string]string{"X-Forwarded-For": "127.0.0.9"}
	var item wire.ABSAttack
	eventually(t, "127.0.0.9 on the attack list", func() bool {
		for range 5 {
			i.Data("GET", "/shop/items", "", attacker)
		}
		l := absAttackList(t, i, "/v5/abs/attacklist?status=active")
		for _, a := range l.IPs {
			if a.IP == "127.0.0.9" {
				item = a
				return true
			}
		}
		return false
	})
	if item.Status != "active" || item.Detector != "extreme_client_activity" || item.AttackType != "Extreme Client Activity Attack" ||
		item.APIName != "shop" || item.Expires == nil || item.DetectedTime == "" {
		t.Fatalf("attack list item %+v", item)
	}
	var ev struct {
		Detector  string            `json:"detector"`
		Figure    string            `json:"figure"`
		Observed  float64           `json:"observed"`
		Threshold float64           `json:"threshold"`
		Override  bool              `json:"override"`
		Samples   []json.RawMessage `json:"samples"`
	}
	if err := json.Unmarshal(item.Evidence, &ev); err != nil || ev.Detector != "extreme_client_activity" || ev.Figure != "requests" ||
		ev.Threshold != 3 || ev.Observed <= 3 || !ev.Override || len(ev.Samples) == 0 {
		t.Fatalf("evidence %s: %v", item.Evidence, err)
	}
	if r := i.Data("GET", "/shop/items", "", attacker); r.Code != 403 {
		t.Fatalf("the attacker got %d", r.Code)
	}
	if stdout, _, code := i.CLI("", "abs_attacklist", "--status", "active"); code != 0 ||
		!regexp.MustCompile(`^attack list \(active\) : 1\n  ip 127\.0\.0\.9 +active +extreme_client_activity +api shop +detected \S+ +expires \S+\n$`).MatchString(stdout) {
		t.Fatalf("abs_attacklist: %d %q", code, stdout)
	}
	// The metrics count it, by detector and mode, never by client.
	m := i.Do("GET", "/v5/ase/metrics", "", nil)
	if v, found := metricValue(m.Body, `ase_abs_detections_total{detector="extreme_client_activity",mode="enforce"}`); !found || v < 1 {
		t.Fatalf("ase_abs_detections_total: %v %v", v, found)
	}
	if v, found := metricValue(m.Body, `ase_abs_tracked_clients`); !found || v < 1 {
		t.Fatalf("ase_abs_tracked_clients: %v %v", v, found)
	}
	if _, found := metricValue(m.Body, `ase_abs_training{api_id="shop"}`); !found {
		t.Fatal("no ase_abs_training for shop")
	}
	if bytes.Contains(m.Body, []byte("127.0.0.9")) {
		t.Fatal("a metric names a client")
	}

	// The vendor's bulk delete: refused bodies name the field.
	wantStatus(t, i.Do("DELETE", "/v4/abs/attacklist", `{"ips": "127.0.0.9"}`, nil), 403, "validation_error", "ips: must be an array, got string")
	wantStatus(t, i.Do("DELETE", "/v4/abs/attacklist", `{"delete_all_ips": true, "delete_all_ipz": true}`, nil), 403, "validation_error", "delete_all_ipz: unknown field")
	wantJSON(t, i.Do("DELETE", "/v4/abs/attacklist", `{"delete_all_ips": true}`, nil), 200,
		`{"status": "success", "status_message": "1 entries deleted from the attack list", "removed": {"ips": 1, "cookies": 0, "oauth_tokens": 0, "api_keys": 0, "usernames": 0, "total": 1}}`)
	if l := absAttackList(t, i, "/v4/abs/attacklist?status=active"); len(l.IPs) != 0 {
		t.Fatalf("still active: %+v", l.IPs)
	}
	if l := absAttackList(t, i, "/v4/abs/attacklist?status=expired"); len(l.IPs) == 0 || l.IPs[0].IP != "127.0.0.9" {
		t.Fatalf("not expired: %+v", l.IPs)
	}
	var manual wire.ListView
	decode(t, i.Do("GET", "/v5/ase/firewall/blacklist?tag=manual&type=ip&limit=10", "", nil), &manual)
	if es := manual.Sections["manual_blacklist"]; len(es) != 1 || es[0].Value != "127.0.0.77" {
		t.Fatalf("the manual entry: %+v", manual.Sections)
	}
	if stdout, _, code := i.CLI("", "delete_abs_attacklist", "ip", "127.0.0.77"); code != 0 || stdout != "0 entries deleted from the attack list\n" {
		t.Fatalf("delete_abs_attacklist of a manual entry: %d %q", code, stdout)
	}
	// Audited.
	var audit struct {
		Entries []map[string]any `json:"entries"`
	}
	decode(t, i.Do("GET", "/v5/ase/audit?action=delete_abs_attacklist", "", nil), &audit)
	if len(audit.Entries) < 2 {
		t.Fatalf("audit: %+v", audit.Entries)
	}
	decode(t, i.Do("GET", "/v5/ase/audit?action=update_abs_policy", "", nil), &audit)
	if len(audit.Entries) == 0 {
		t.Fatal("no update_abs_policy in the audit log")
	}

	// An API's policy and what it learned go with it: an API added again
	// under the same id has the defaults, and trains afresh.
	wantJSON(t, i.Do("PUT", "/v5/ase/abs/shop/policy", `{"modes": {"api_probing": "off"}}`, nil), 200,
		`{"status": "success", "status_message": "detection policy of api shop updated", "api_id": "shop", "policy": {"modes": {"api_probing": "off"}}}`)
	if r := i.Do("DELETE", "/v5/ase/api?api_id=shop", "", nil); r.Code != 200 {
		t.Fatalf("DELETE api: %d %s", r.Code, r.Body)
	}
	wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=shop", apiDoc("/shop", servers(backend)), nil), 200, ok)
	var again struct {
		Training bool
		Modes    map[string]string
	}
	decode(t, i.Do("GET", "/v5/ase/abs/shop", "", nil), &again)
	if !again.Training || again.Modes["api_probing"] != "enforce" {
		t.Fatalf("the API added again: %+v", again)
	}
}

// Report-only (issue 20): a detector in report mode, or every detector
// with enable_abs_attack off, lists nobody and refuses nothing; the
// detection is in the attack list as reported, in the audit log and the
// metrics.
func TestBehaviouralDetectionReportOnly(t *testing.T) {
	backend := newBackend(t, "b", false)
	i := startInstance(t, map[string]string{"enable_abs": "true", "abs_training_period": "1h", "abs_window": "1m", "enable_xff": "true"})
	wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=shop", apiDoc("/shop", servers(backend)), nil), 200, ok)
	c := dataClient(t, 4)
	burst := func(ip string) {
		for k := 0; k < 10; k++ {
			if code, _, err := inlineCall(c, i, "GET", "/shop/items", ip, nil); err != nil || code != 200 {
				t.Fatalf("request %d from %s: %d %v", k, ip, code, err)
			}
		}
	}
	reported := func(ip string) bool {
		for _, a := range absAttackList(t, i, "/v4/abs/attacklist?status=reported").IPs {
			if a.IP == ip && a.Detector == "extreme_client_activity" {
				return true
			}
		}
		return false
	}
	// The detector in report mode (a threshold override applies during
	// training too).
	wantJSON(t, i.Do("PUT", "/v5/ase/abs/shop/policy", `{"modes": {"extreme_client_activity": "report"}, "thresholds": {"requests": 3}}`, nil), 200,
		`{"status": "success", "status_message": "detection policy of api shop updated", "api_id": "shop", "policy": {"modes": {"extreme_client_activity": "report"}, "thresholds": {"requests": 3}}}`)
	burst("127.0.0.21")
	eventually(t, "127.0.0.21 in the attack list as reported", func() bool { return reported("127.0.0.21") })
	// Every detector enforcing, but enable_abs_attack off.
	wantJSON(t, i.Do("PUT", "/v5/ase/abs/shop/policy", `{"thresholds": {"requests": 3}}`, nil), 200,
		`{"status": "success", "status_message": "detection policy of api shop updated", "api_id": "shop", "policy": {"thresholds": {"requests": 3}}}`)
	if _, _, code := i.CLI("", "disable_abs_attack"); code != 0 {
		t.Fatal("disable_abs_attack failed")
	}
	burst("127.0.0.22")
	eventually(t, "127.0.0.22 in the attack list as reported", func() bool { return reported("127.0.0.22") })
	if l := absAttackList(t, i, "/v4/abs/attacklist?status=active"); len(l.IPs) != 0 {
		t.Fatalf("listed in report-only mode: %+v", l.IPs)
	}
	var audit struct {
		Entries []struct {
			Result string `json:"result"`
		} `json:"entries"`
	}
	eventually(t, "two abs_detection audit lines", func() bool {
		decode(t, i.Do("GET", "/v5/ase/audit?action=abs_detection", "", nil), &audit)
		return len(audit.Entries) >= 2
	})
	for _, e := range audit.Entries {
		if e.Result != "report_only" {
			t.Fatalf("audit result %q, want report_only", e.Result)
		}
	}
	// Enforcing again: the next such client is listed and refused.
	if _, _, code := i.CLI("", "enable_abs_attack"); code != 0 {
		t.Fatal("enable_abs_attack failed")
	}
	refused := false
	for k := 0; k < 10 && !refused; k++ {
		code, _, _ := inlineCall(c, i, "GET", "/shop/items", "127.0.0.23", nil)
		refused = code == 403
	}
	if !refused {
		t.Fatal("enforcing again: 127.0.0.23 never refused")
	}
}
