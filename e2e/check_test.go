package e2e

import (
	"encoding/json"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// Issue 16, point 6: "why is this client blocked?" in one call and one
// command, answered from both lists as decisions answer it.

// checkReply is the reply of GET /firewall/check.
type checkReply struct {
	Type      string      `json:"type"`
	Name      string      `json:"name"`
	Value     string      `json:"value"`
	Verdict   string      `json:"verdict"`
	List      string      `json:"list"`
	Entry     *viewEntry  `json:"entry"`
	Whitelist []viewEntry `json:"whitelist"`
	Blacklist []viewEntry `json:"blacklist"`
	Firewall  string      `json:"firewall"`
}

func checkCall(t *testing.T, i *Instance, query string) checkReply {
	t.Helper()
	r := i.Do("GET", "/v5/ase/firewall/check?"+query, "", nil)
	if r.Code != 200 {
		t.Fatalf("check %s: HTTP %d %s", query, r.Code, r.Body)
	}
	var c checkReply
	decode(t, r, &c)
	return c
}

func describeEntries(es []viewEntry) string {
	var out []string
	for _, e := range es {
		out = append(out, e.describe())
	}
	return strings.Join(out, ", ")
}

func TestCheck(t *testing.T) {
	a := newBackend(t, "a", false)
	i := startInstance(t, map[string]string{"enable_xff": "true"})
	wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=shop", apiDoc("/shop", servers(a)+`, "oauth2_access_token": true, "cookie": "SID", "apikey_header": "X-API-Key"`), nil), 200, ok)
	for _, tt := range []struct{ list, body string }{
		{"blacklist", `{"type": "ip", "value": "203.0.113.0/24", "reason": "scanner network"}`},
		{"blacklist", `{"type": "ip", "value": "203.0.0.0/16"}`},
		{"blacklist", `{"type": "ip", "value": "203.0.113.7", "ttl": "1h", "reason": "brute force"}`},
		{"whitelist", `{"type": "ip", "value": "203.0.113.8", "reason": "our monitoring"}`},
		{"blacklist", `{"type": "ip", "value": "203.0.113.8"}`},
		{"blacklist", `{"type": "ip", "value": "2001:db8::/32"}`},
		{"blacklist", `{"type": "token", "value": "leaked-token", "reason": "leaked on a paste site"}`},
		{"blacklist", `{"type": "cookie", "name": "SID", "value": "stolen"}`},
		{"blacklist", `{"type": "api_key", "name": "X-API-Key", "value": "k1"}`},
		{"whitelist", `{"type": "username", "value": "alice"}`},
		{"blacklist", `{"type": "username", "value": "mallory"}`},
	} {
		wantStatus(t, i.Do("POST", "/v5/ase/firewall/"+tt.list, tt.body, nil), 200, "success", "*")
	}

	for _, tt := range []struct {
		query, verdict, list, entry, whitelist, blacklist string
	}{
		// The exact address decides, before the ranges covering it;
		// every covering entry is listed, most specific first.
		{"type=ip&value=203.0.113.7", "denied", "blacklist", "ip 203.0.113.7", "", "ip 203.0.113.7, ip 203.0.113.0/24, ip 203.0.0.0/16"},
		{"type=ip&value=203.0.113.9", "denied", "blacklist", "ip 203.0.113.0/24", "", "ip 203.0.113.0/24, ip 203.0.0.0/16"},
		{"type=ip&value=203.0.9.9", "denied", "blacklist", "ip 203.0.0.0/16", "", "ip 203.0.0.0/16"},
		// The allow list wins, as in decisions.
		{"type=ip&value=203.0.113.8", "allowed", "whitelist", "ip 203.0.113.8", "ip 203.0.113.8", "ip 203.0.113.8, ip 203.0.113.0/24, ip 203.0.0.0/16"},
		// An IPv4-mapped address is its IPv4 form.
		{"type=ip&value=" + url.QueryEscape("::ffff:203.0.113.9"), "denied", "blacklist", "ip 203.0.113.0/24", "", "ip 203.0.113.0/24, ip 203.0.0.0/16"},
		{"type=ip&value=2001:db8::1", "denied", "blacklist", "ip 2001:db8::/32", "", "ip 2001:db8::/32"},
		{"type=ip&value=192.0.2.1", "not_listed", "", "", "", ""},
		{"type=token&value=leaked-token", "denied", "blacklist", "token leaked-token", "", "token leaked-token"},
		{"type=token&value=other", "not_listed", "", "", "", ""},
		{"type=cookie&name=SID&value=stolen", "denied", "blacklist", "cookie SID stolen", "", "cookie SID stolen"},
		{"type=cookie&name=sid&value=stolen", "not_listed", "", "", "", ""}, // cookie names have case
		// API key names do not (they are header names).
		{"type=api_key&name=x-api-key&value=k1", "denied", "blacklist", "api_key X-API-Key k1", "", "api_key X-API-Key k1"},
		{"type=username&value=alice", "allowed", "whitelist", "username alice", "username alice", ""},
		{"type=username&value=mallory", "denied", "blacklist", "username mallory", "", "username mallory"},
	} {
		c := checkCall(t, i, tt.query)
		entry := ""
		if c.Entry != nil {
			entry = c.Entry.describe()
		}
		if c.Verdict != tt.verdict || c.List != tt.list || entry != tt.entry || describeEntries(c.Whitelist) != tt.whitelist || describeEntries(c.Blacklist) != tt.blacklist || c.Firewall != "enabled" {
			t.Fatalf("check %s: got verdict %q by %q entry %q, whitelist [%s], blacklist [%s], firewall %q\nwant %q by %q entry %q, whitelist [%s], blacklist [%s]",
				tt.query, c.Verdict, c.List, entry, describeEntries(c.Whitelist), describeEntries(c.Blacklist), c.Firewall, tt.verdict, tt.list, tt.entry, tt.whitelist, tt.blacklist)
		}
	}
	// The deciding entry comes with its origin, reason and times.
	c := checkCall(t, i, "type=ip&value=203.0.113.7")
	if e := c.Entry; e.Tag != "manual" || e.Reason != "brute force" || e.CreatedAt == "" || mustTime(t, e.ExpiresAt).Sub(mustTime(t, e.CreatedAt)).String() != "1h0m0s" {
		t.Fatalf("deciding entry: %+v", e)
	}
	if c.Type != "ip" || c.Value != "203.0.113.7" || c.Blacklist[1].Reason != "scanner network" {
		t.Fatalf("check reply: %+v", c)
	}

	// The data path agrees.
	for _, tt := range []struct {
		ip      string
		headers map[string]string
		code    int
	}{
		{"203.0.113.9", nil, 403},
		{"203.0.113.8", nil, 200},
		{"192.0.2.1", nil, 200},
		{"192.0.2.1", map[string]string{"X-API-Key": "k1"}, 403},
		{"192.0.2.1", map[string]string{"Cookie": "SID=stolen"}, 403},
	} {
		if code, _, err := inlineCall(dataClient(t, 1), i, "GET", "/shop/items", tt.ip, tt.headers); err != nil || code != tt.code {
			t.Fatalf("request from %s %v: got %d %v, want %d", tt.ip, tt.headers, code, err, tt.code)
		}
	}

	// Wrong questions are named.
	for _, tt := range []struct{ query, status, msg string }{
		{"type=ip&value=203.0.113.0/24", "validation_error", `value: "203.0.113.0/24" is not an IP address*`},
		{"type=ip&value=nope", "validation_error", `value: "nope" is not an IP address*`},
		{"type=ip", "validation_error", "query parameter value is required"},
		{"value=1.2.3.4", "validation_error", "query parameter type is required*"},
		{"type=mac&value=1", "invalid_value", "query parameter type contains invalid value"},
		{"type=cookie&value=x", "validation_error", "name: is required for a cookie entry"},
		{"type=ip&name=x&value=1.2.3.4", "validation_error", "name: applies to cookie and api_key entries only"},
	} {
		wantStatus(t, i.Do("GET", "/v5/ase/firewall/check?"+tt.query, "", nil), 403, tt.status, tt.msg)
	}

	// A read-only user may ask.
	i.createUser("reader", "reader-password", "read")
	if r := i.as("GET", "/v5/ase/firewall/check?type=ip&value=203.0.113.9", "", i.login("reader", "reader-password")); r.Code != 200 {
		t.Fatalf("a reader's check: %d %s", r.Code, r.Body)
	}

	// The CLI: one command per type.
	run := func(want string, args ...string) string {
		t.Helper()
		out, stderr, code := i.CLI("", args...)
		if code != 0 || !regexp.MustCompile(want).MatchString(out) {
			t.Fatalf("ase %s: exit %d\n%s%s\nwant %s", strings.Join(args, " "), code, out, stderr, want)
		}
		return out
	}
	run(`^ip 203\.0\.113\.7 : denied by the blacklist\n`+
		`  blacklist : ip 203\.0\.113\.7 +tag manual +added \S+ +expires \S+ \(in 59m\d\ds\) +reason brute force +<- decides\n`+
		`  blacklist : ip 203\.0\.113\.0/24 +tag manual +added \S+ +expires never +reason scanner network\n`+
		`  blacklist : ip 203\.0\.0\.0/16 +tag manual +added \S+ +expires never\n$`, "check_ip", "203.0.113.7")
	run(`^ip 203\.0\.113\.8 : allowed by the whitelist \(it wins over the blacklist\)\n`+
		`  whitelist : ip 203\.0\.113\.8 +tag manual +added \S+ +expires never +reason our monitoring +<- decides\n`+
		`  blacklist : ip 203\.0\.113\.8 .*\n  blacklist : ip 203\.0\.113\.0/24 .*\n  blacklist : ip 203\.0\.0\.0/16 .*\n$`, "check_ip", "203.0.113.8")
	run(`^ip 192\.0\.2\.1 : not listed\n$`, "check_ip", "192.0.2.1")
	run(`^token leaked-token : denied by the blacklist\n  blacklist : token leaked-token +tag manual .*reason leaked on a paste site +<- decides\n$`, "check_token", "leaked-token")
	run(`^cookie SID stolen : denied by the blacklist\n`, "check_cookie", "SID", "stolen")
	run(`^api_key x-api-key k1 : denied by the blacklist\n  blacklist : api_key X-API-Key k1 `, "check_api_key", "x-api-key", "k1")
	run(`^username alice : allowed by the whitelist\n`, "check_username", "alice")
	out := run(`"verdict": "denied"`, "check_ip", "203.0.113.9", "-o", "json")
	var j checkReply
	if err := json.Unmarshal([]byte(out), &j); err != nil || j.Entry == nil || j.Entry.Value != "203.0.113.0/24" {
		t.Fatalf("check_ip -o json: %v\n%s", err, out)
	}
	if _, stderr, code := i.CLI("", "check_cookie", "stolen"); code != 2 || !strings.Contains(stderr, "accepts 2 arg(s)") {
		t.Fatalf("check_cookie with one argument: exit %d %s", code, stderr)
	}
	if _, stderr, code := i.CLI("", "check_ip", "nope"); code != 1 || !strings.Contains(stderr, `"nope" is not an IP address`) {
		t.Fatalf("check_ip nope: exit %d %s", code, stderr)
	}

	// With the firewall disabled, nothing is blocked, and the answer says so.
	wantStatus(t, i.Do("POST", "/v5/ase/firewall?status=disable", "", nil), 200, "disabled", "Firewall is now disabled")
	if c := checkCall(t, i, "type=ip&value=203.0.113.9"); c.Verdict != "denied" || c.Firewall != "disabled" {
		t.Fatalf("firewall disabled: %+v", c)
	}
	run(`^ip 203\.0\.113\.9 : denied by the blacklist\n(  blacklist : .*\n){2}note : the firewall is disabled: nothing is blocked until it is enabled\n$`, "check_ip", "203.0.113.9")
}
