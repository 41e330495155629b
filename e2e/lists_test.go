package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestListsThroughTheAPI(t *testing.T) {
	i := startInstance(t, nil)
	entries := []struct{ body, describe string }{
		{`{"type": "ip", "value": "1.1.1.1"}`, "ip 1.1.1.1"},
		{`{"type": "ip", "value": "10.0.0.0/8"}`, "ip 10.0.0.0/8"},
		{`{"type": "ip", "value": "2001:db8::1"}`, "ip 2001:db8::1"},
		{`{"type": "ip", "value": "2001:db8:ff::/48"}`, "ip 2001:db8:ff::/48"},
		{`{"type": "token", "value": "sadjhasiufgkjdsbfkgfa"}`, "token sadjhasiufgkjdsbfkgfa"},
		{`{"type": "cookie", "name": "JSESSIONID", "value": "ljkhasioutfdqbjsfdmakhflia"}`, "cookie JSESSIONID ljkhasioutfdqbjsfdmakhflia"},
		{`{"type": "api_key", "name": "X-API-KEY", "value": "k1"}`, "api_key X-API-KEY k1"},
		{`{"type": "username", "value": "mallory"}`, "username mallory"},
	}
	for _, list := range []string{"blacklist", "whitelist"} {
		for _, e := range entries {
			wantStatus(t, i.Do("POST", "/v4/ase/firewall/"+list, e.body, nil), 200, "success", e.describe+" added to "+list)
			wantStatus(t, i.Do("POST", "/v5/ase/firewall/"+list, e.body, nil), 403, "fail", e.describe+" already exist")
		}
	}
	var view map[string][]map[string]any
	decode(t, i.Do("GET", "/v4/ase/firewall/blacklist?tag=all", "", nil), &view)
	if len(view["manual_blacklist"]) != len(entries) {
		t.Fatalf("got %v", view)
	}
	for _, tag := range []string{"abs_generated", "invalid_content_type", "invalid_method", "invalid_protocol", "decoy"} {
		if v, ok := view[tag+"_blacklist"]; !ok || len(v) != 0 {
			t.Fatalf("section %s: %v", tag, v)
		}
	}
	wantJSON(t, i.Do("GET", "/v4/ase/firewall/blacklist?tag=decoy", "", nil), 200, `{"decoy_blacklist": []}`)
	decode(t, i.Do("GET", "/v4/ase/firewall/blacklist", "", nil), &view)
	if len(view) != 6 {
		t.Fatalf("the default view (tag=all) has %d sections", len(view))
	}
	var wl map[string][]map[string]any
	decode(t, i.Do("GET", "/v4/ase/firewall/whitelist", "", nil), &wl)
	if len(wl["whitelist"]) != len(entries) || wl["whitelist"][0]["type"] == nil {
		t.Fatalf("got %v", wl)
	}
	wantStatus(t, i.Do("GET", "/v4/ase/firewall/blacklist?tag=bogus", "", nil), 403, "invalid_value", "query parameter tag contains invalid value")
	wantStatus(t, i.Do("GET", "/v4/ase/firewall/whitelist?tag=manual", "", nil), 403, "invalid_value", "query parameter tag contains invalid value")

	// Delete: present then absent.
	wantStatus(t, i.Do("DELETE", "/v4/ase/firewall/blacklist", entries[5].body, nil), 200, "success", entries[5].describe+" deleted from blacklist")
	wantStatus(t, i.Do("DELETE", "/v4/ase/firewall/blacklist", entries[5].body, nil), 404, "fail", entries[5].describe+" does not exist in blacklist")
	wantStatus(t, i.Do("DELETE", "/v4/ase/firewall/whitelist", `{"type": "ip", "value": "9.9.9.9"}`, nil), 404, "fail", "ip 9.9.9.9 does not exist in whitelist")
	wantStatus(t, i.Do("DELETE", "/v4/ase/firewall/blacklist", "", nil), 403, "validation_error", "give the entry to delete as a JSON body*")

	// Invalid entries.
	wantStatus(t, i.Do("POST", "/v4/ase/firewall/blacklist", `{"type": "ip", "value": "300.1.1.1"}`, nil), 403, "validation_error", `value: "300.1.1.1" is not an IP address or CIDR range`)
	wantStatus(t, i.Do("POST", "/v4/ase/firewall/blacklist", `{"type": "cookie", "value": "x"}`, nil), 403, "validation_error", "name: is required for a cookie entry")
	wantStatus(t, i.Do("POST", "/v4/ase/firewall/blacklist", `{"type": "ip", "value": "1.2.3.4"`, nil), 403, "fail", "json parsing error")
	wantStatus(t, i.Do("POST", "/v4/ase/firewall/blacklist", `{"type": "ip", "value": "1.2.3.4"}`, map[string]string{"Content-Type": "text/plain"}), 403, "fail", "content-type header missing")

	// Clear by tag, then everything; the whitelist keeps its entries.
	wantStatus(t, i.Do("DELETE", "/v4/ase/firewall/blacklist?tag=manual", "", nil), 200, "success", "Blacklist cleared")
	wantJSON(t, i.Do("GET", "/v4/ase/firewall/blacklist?tag=manual", "", nil), 200, `{"manual_blacklist": []}`)
	wantStatus(t, i.Do("DELETE", "/v4/ase/firewall/whitelist?tag=all", "", nil), 200, "success", "Whitelist cleared")
	wantJSON(t, i.Do("GET", "/v4/ase/firewall/whitelist", "", nil), 200, `{"whitelist": []}`)
	wantStatus(t, i.Do("DELETE", "/v4/ase/firewall/blacklist?tag=nope", "", nil), 403, "invalid_value", "query parameter tag contains invalid value")
}

func TestListTTLAndBulk(t *testing.T) {
	i := startInstance(t, nil)
	wantStatus(t, i.Do("POST", "/v5/ase/firewall/blacklist", `{"type": "ip", "value": "1.1.1.1", "ttl": 3600}`, nil), 200, "success", "ip 1.1.1.1 added to blacklist")
	var view map[string][]map[string]any
	decode(t, i.Do("GET", "/v5/ase/firewall/blacklist?tag=manual", "", nil), &view)
	if view["manual_blacklist"][0]["expires_at"] == nil {
		t.Fatalf("no expires_at: %v", view)
	}

	// Bulk: all or nothing on invalid entries.
	bad := `[{"type": "ip", "value": "2.2.2.2"}, {"type": "ip", "value": "nope"}, {"type": "token"}]`
	wantStatus(t, i.Do("POST", "/v5/ase/firewall/blacklist", bad, nil), 403, "validation_error", `[1].value: "nope" is not an IP address or CIDR range; [2].value: is required`)
	var feed []string
	for n := 0; n < 5000; n++ {
		feed = append(feed, fmt.Sprintf(`{"type": "ip", "value": "10.%d.%d.1"}`, n/256, n%256))
	}
	feed = append(feed, `{"type": "ip", "value": "1.1.1.1"}`) // already listed: skipped
	wantStatus(t, i.Do("POST", "/v5/ase/firewall/blacklist", "["+strings.Join(feed, ",")+"]", nil), 200, "success", "5000 entries added to blacklist, 1 already listed")
	var s map[string]any
	decode(t, i.Do("GET", "/v5/ase/status", "", nil), &s)
	// 5,001 addresses: a table of 7,798 8-byte slots (the expiry of one of
	// them a few hundred bytes more).
	if !strings.Contains(s["attack_list_memory"].(string), "used 0.06 MB") {
		t.Fatalf("status: %v", s["attack_list_memory"])
	}

	// Everything survives a restart.
	i.Restart()
	decode(t, i.Do("GET", "/v5/ase/firewall/blacklist?tag=manual", "", nil), &view)
	if len(view["manual_blacklist"]) != 5001 {
		t.Fatalf("got %d entries after restart", len(view["manual_blacklist"]))
	}
}

func TestListMemoryBound(t *testing.T) {
	i := startInstance(t, map[string]string{"attack_list_memory": "1MB"})
	var feed []string
	for n := 0; n < 70000; n++ {
		feed = append(feed, fmt.Sprintf(`{"type": "ip", "value": "10.%d.%d.%d"}`, n/65536, (n/256)%256, n%256))
	}
	r := i.Do("POST", "/v5/ase/firewall/blacklist", "["+strings.Join(feed, ",")+"]", nil)
	wantStatus(t, r, 507, "fail", "attack list memory is full: configured 1.00 MB, used 0.00 MB, free 1.00 MB, and this change needs 1.11 MB*")
	// The budget counts what the lists' structures take: IPv4 addresses
	// are a table of 8-byte slots, grown to twice what it holds when 3/4
	// full, with a negative filter of 6 bits a slot once it has 65,536
	// slots or more. 66,639 fill a table of 88,852 slots and its filter
	// (0.68 + 0.06 MB); one more would grow them to 133,280 slots (1.02 +
	// 0.10 MB), past 1 MB.
	wantStatus(t, i.Do("POST", "/v5/ase/firewall/blacklist", "["+strings.Join(feed[:66639], ",")+"]", nil), 200, "success", "66639 entries added to blacklist, 0 already listed")
	wantStatus(t, i.Do("POST", "/v5/ase/firewall/blacklist", `{"type": "ip", "value": "192.0.2.1"}`, nil), 507, "fail", "attack list memory is full: configured 1.00 MB, used 0.74 MB, free 0.26 MB, and this change needs 0.37 MB*")
	var view map[string][]map[string]any
	decode(t, i.Do("GET", "/v5/ase/firewall/blacklist?tag=manual", "", nil), &view)
	if len(view["manual_blacklist"]) != 66639 {
		t.Fatalf("got %d entries: something was dropped", len(view["manual_blacklist"]))
	}
	out, _, _ := i.CLI("", "status")
	if !hasLine(out, "attack list memory : configured 1.00 MB, used 0.74 MB, free 0.26 MB") {
		t.Fatalf("got %q", out)
	}
}

func TestListCLI(t *testing.T) {
	i := startInstance(t, nil)
	run := func(wantCode int, args ...string) string {
		t.Helper()
		stdout, stderr, code := i.CLI("", args...)
		if code != wantCode {
			t.Fatalf("ase %v: exit %d, want %d\nstdout %s\nstderr %s", args, code, wantCode, stdout, stderr)
		}
		return stdout + stderr
	}
	for _, tt := range []struct {
		args []string
		out  string
	}{
		{[]string{"add_blacklist", "ip", "1.1.1.1"}, "ip 1.1.1.1 added to blacklist\n"},
		{[]string{"add_blacklist", "cookie", "JSESSIONID", "abc"}, "cookie JSESSIONID abc added to blacklist\n"},
		{[]string{"add_blacklist", "api_key", "X-API-KEY", "k1", "--ttl", "600"}, "api_key X-API-KEY k1 added to blacklist\n"},
		{[]string{"add_whitelist", "username", "alice"}, "username alice added to whitelist\n"},
		{[]string{"delete_blacklist", "cookie", "JSESSIONID", "abc"}, "cookie JSESSIONID abc deleted from blacklist\n"},
		{[]string{"enable_ase_detected_attack"}, "ASE detected attack is now enabled\n"},
		{[]string{"enable_ase_detected_attack"}, "ASE detected attack is already enabled\n"},
	} {
		if got := run(0, tt.args...); got != tt.out {
			t.Fatalf("ase %v: got %q, want %q", tt.args, got, tt.out)
		}
	}
	if got := run(1, "add_blacklist", "ip", "1.1.1.1"); got != "ase: ip 1.1.1.1 already exist\n" {
		t.Fatalf("got %q", got)
	}
	if got := run(1, "delete_whitelist", "ip", "1.1.1.1"); got != "ase: ip 1.1.1.1 does not exist in whitelist\n" {
		t.Fatalf("got %q", got)
	}
	run(2, "add_blacklist", "cookie", "abc")
	run(2, "add_blacklist", "ip", "NAME", "1.1.1.1")
	view := run(0, "view_blacklist")
	if !hasLine(view, "manual blacklist : 2") || !regexp.MustCompile(`(?m)^  ip 1\.1\.1\.1 +tag manual `).MatchString(view) || !regexp.MustCompile(`(?m)^  api_key X-API-KEY k1 +tag manual +added \S+ +expires \S+ \(in `).MatchString(view) {
		t.Fatalf("got %q", view)
	}
	var j map[string][]map[string]any
	if err := json.Unmarshal([]byte(run(0, "view_whitelist", "-o", "json")), &j); err != nil || len(j["whitelist"]) != 1 {
		t.Fatalf("got %v %v", j, err)
	}
	feed := filepath.Join(i.Dir, "feed.json")
	os.WriteFile(feed, []byte(`[{"type": "ip", "value": "203.0.113.0/24"}, {"type": "token", "value": "t1", "ttl": 60}]`), 0o600)
	if got := run(0, "add_blacklist", "--file", feed); got != "2 entries added to blacklist, 0 already listed\n" {
		t.Fatalf("got %q", got)
	}
	if got := run(0, "clear_blacklist"); got != "Blacklist cleared\n" {
		t.Fatalf("got %q", got)
	}
	if got := run(0, "view_blacklist", "manual"); got != "manual blacklist : 0\n" {
		t.Fatalf("got %q", got)
	}
	if got := run(0, "disable_ase_detected_attack"); got != "ASE detected attack is now disabled\n" {
		t.Fatalf("got %q", got)
	}
	// The audit log records list changes without credential values.
	audit, _ := os.ReadFile(filepath.Join(i.Conf["data_dir"], "logs", "audit.log"))
	if strings.Contains(string(audit), `"k1"`) || !strings.Contains(string(audit), `"value":"1.1.1.1"`) || !strings.Contains(string(audit), "value_sha256") {
		t.Fatalf("audit log: %s", audit)
	}
}
