package admin

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ase-project/ase/internal/apidef"
	"github.com/ase-project/ase/internal/behave"
	"github.com/ase-project/ase/internal/catalog"
	"github.com/ase-project/ase/internal/lists"
	"github.com/ase-project/ase/internal/store"
	"github.com/ase-project/ase/internal/wire"
)

// absNode is a management handler with a behavioural detection engine
// whose enforced detections go on the deny list as the server's reporter
// puts them there, and APIs shop and chat.
type absNode struct {
	*node
	eng  *behave.Engine
	base *store.Bolt
	clk  *clock
	apis map[string]*apidef.API
}

func newABSNode(t *testing.T) *absNode {
	t.Helper()
	base, err := store.Open(filepath.Join(t.TempDir(), "ase.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { base.Close() })
	clk := &clock{}
	clk.ns.Store(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	n := &absNode{node: newNode(t, base, clk), base: base, clk: clk, apis: map[string]*apidef.API{}}
	lst := n.h.d.Lists
	found := 0
	n.eng = behave.New(behave.Config{Training: time.Minute, Window: time.Minute, MaxIdentities: 1 << 12, Now: clk.now}, func(d *behave.Detection) bool {
		// As the server's reporter: the record in this node's ring (at
		// once here), and the entry when enforced.
		v, _ := json.Marshal(behave.NewFound(d, d.Evidence().Encode(), time.Hour))
		if _, err := base.Commit(context.Background(), store.Batch{Ops: []store.Op{store.Put(behave.FoundKey("node-a", found), v)}}); err != nil {
			t.Error(err)
		}
		found++
		if d.Mode != behave.Enforce {
			return false
		}
		a := d.IP.Unmap()
		e := lists.Entry{Kind: lists.IP, Value: a.String(), Prefix: netip.PrefixFrom(a, a.BitLen()), Tag: lists.ABSGenerated,
			Created: clk.now(), Expires: clk.now().Add(time.Hour), Reason: d.Evidence().Encode()}
		return lst.ReportEntries([]lists.Entry{e})
	})
	n.h.d.Behave = n.eng
	n.h.d.ListMemoryUsed = lst.MemoryUsed
	n.want(201, "POST", "/api/configuration/aaa/local_database/users", `{"name": "ops", "password": "ops-password", "role": "admin"}`, adminKey)
	for _, id := range []string{"shop", "chat"} {
		n.want(200, "POST", "/v5/ase/api?api_id="+id, apiBody("/"+id), adminKey)
		n.apis[id] = &apidef.API{ID: id}
	}
	n.eng.Sync(n.apis)
	return n
}

// flood sends n requests to api from ip, at the node's clock.
func (n *absNode) flood(api string, ip netip.Addr, count int) {
	for range count {
		var tk behave.Ticket
		n.eng.Begin(n.apis[api], &lists.Identity{IP: ip}, "GET", "/"+api+"/items", n.clk.now().UnixNano(), &tk)
		n.eng.End(&tk, 200, 10, nil)
	}
}

func (n *absNode) attackList(query string) wire.ABSAttackList {
	n.t.Helper()
	var l wire.ABSAttackList
	if err := json.Unmarshal([]byte(n.want(200, "GET", "/v4/abs/attacklist"+query, "", adminKey)), &l); err != nil {
		n.t.Fatal(err)
	}
	return l
}

func wantError(t *testing.T, reply, status, contains string) {
	t.Helper()
	var s struct {
		Status  string `json:"status"`
		Message string `json:"status_message"`
		Detail  string `json:"detail"`
	}
	if err := json.Unmarshal([]byte(reply), &s); err != nil {
		t.Fatal(err)
	}
	if s.Status != status || !strings.Contains(s.Message+" "+s.Detail, contains) {
		t.Fatalf("got %s, want status %s with %q", reply, status, contains)
	}
}

func TestABSSettings(t *testing.T) {
	n := newABSNode(t)
	for _, c := range []struct {
		path, name, def, other string
	}{{"abs", "Behavioural detection", "disabled", "enable"}, {"abs_attack", "ABS attack", "enabled", "disable"}} {
		for _, prefix := range Prefixes {
			wantJSONEq(t, n.want(200, "GET", prefix+"/firewall/"+c.path, "", adminKey), `{"status": "`+c.def+`", "status_message": "Ok"}`)
		}
		now := map[string]string{"enable": "enabled", "disable": "disabled"}[c.other]
		wantJSONEq(t, n.want(200, "POST", "/v4/ase/firewall/"+c.path+"?status="+c.other, "", adminKey), `{"status": "`+now+`", "status_message": "`+c.name+` is now `+now+`"}`)
		wantJSONEq(t, n.want(200, "POST", "/v5/ase/firewall/"+c.path+"?status="+c.other, "", adminKey), `{"status": "`+now+`", "status_message": "`+c.name+` is already `+now+`"}`)
		wantError(t, n.want(403, "POST", "/v5/ase/firewall/"+c.path+"?status=on", "", adminKey), wire.StatusInvalidValue, "status")
		wantJSONEq(t, n.want(200, "GET", "/v5/ase/firewall/"+c.path, "", adminKey), `{"status": "`+now+`", "status_message": "Ok"}`)
	}
	var st wire.StatusInfo
	json.Unmarshal([]byte(n.want(200, "GET", "/v5/ase/status", "", adminKey)), &st)
	if st.ABS != "enabled" || st.ABSAttack != "disabled" {
		t.Fatalf("status: abs %q abs_attack %q", st.ABS, st.ABSAttack)
	}
	// Read role reads, and changes nothing.
	n.want(201, "POST", "/api/configuration/aaa/local_database/users", `{"name": "reader", "password": "reader-password", "role": "read"}`, adminKey)
	r := n.login("reader", "reader-password")
	n.want(200, "GET", "/v5/ase/firewall/abs", "", r)
	n.want(403, "POST", "/v5/ase/firewall/abs?status=disable", "", r)
}

func wantJSONEq(t *testing.T, got, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal([]byte(got), &g); err != nil {
		t.Fatalf("not JSON: %s", got)
	}
	json.Unmarshal([]byte(want), &w)
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	if string(gb) != string(wb) {
		t.Fatalf("got %s, want %s", gb, wb)
	}
}

func TestABSAttackList(t *testing.T) {
	n := newABSNode(t)
	// Empty: every key, empty arrays.
	wantJSONEq(t, n.want(200, "GET", "/v5/abs/attacklist", "", adminKey), `{"name": "api_attacklist", "description": "`+
		n.attackList("").Description+`", "earlier_date": null, "later_date": null, "status": "all", "ips": [], "cookies": [], "oauth_tokens": [], "api_keys": [], "usernames": []}`)

	// shop enforces with a threshold of 3 requests; chat only reports.
	n.eng.SetPolicy("shop", &behave.Policy{Thresholds: [behave.NumFigures]float64{behave.FigRequests: 3}})
	chat := &behave.Policy{Thresholds: [behave.NumFigures]float64{behave.FigRequests: 3}}
	chat.Modes[behave.ExtremeActivity] = behave.Report
	n.eng.SetPolicy("chat", chat)
	attacker, reported := netip.MustParseAddr("127.0.0.9"), netip.MustParseAddr("127.0.0.10")
	n.flood("shop", attacker, 5)
	n.clk.advance(time.Second)
	n.flood("chat", reported, 5)
	n.want(200, "POST", "/v5/ase/firewall/blacklist", `{"type": "ip", "value": "127.0.0.50"}`, adminKey)

	l := n.attackList("")
	if len(l.IPs) != 2 || len(l.Cookies)+len(l.OAuthTokens)+len(l.APIKeys)+len(l.Usernames) != 0 {
		t.Fatalf("attack list %+v", l)
	}
	// Newest first: the reported one came a second later.
	rep, act := l.IPs[0], l.IPs[1]
	if rep.IP != "127.0.0.10" || rep.Status != wire.ABSReported || rep.Expires != nil || rep.APIName != "chat" {
		t.Fatalf("reported item %+v", rep)
	}
	if act.IP != "127.0.0.9" || act.Status != wire.ABSActive || act.Detector != "extreme_client_activity" ||
		act.AttackType != "Extreme Client Activity Attack" || act.APIName != "shop" || act.Expires == nil || act.DetectedTime != "2030-01-01T00:00:00Z" {
		t.Fatalf("active item %+v", act)
	}
	var ev behave.Evidence
	if err := json.Unmarshal(act.Evidence, &ev); err != nil || ev.Figure != "requests" || ev.Threshold != 3 || ev.Observed != 4 || !ev.Override {
		t.Fatalf("evidence %s", act.Evidence)
	}
	// Filters.
	if l := n.attackList("?status=active"); len(l.IPs) != 1 || l.IPs[0].IP != "127.0.0.9" || l.Status != "active" {
		t.Fatalf("status=active: %+v", l.IPs)
	}
	if l := n.attackList("?status=reported&earlier_date=2030-01-01T00:00"); len(l.IPs) != 1 || l.IPs[0].IP != "127.0.0.10" || *l.EarlierDate != "2030-01-01T00:00" {
		t.Fatalf("status=reported: %+v", l.IPs)
	}
	if l := n.attackList("?earlier_date=2030-01-01T00:00:00.5Z"); len(l.IPs) != 1 || l.IPs[0].IP != "127.0.0.10" {
		t.Fatalf("earlier_date: %+v", l.IPs)
	}
	if l := n.attackList("?later_date=2030-01-01T00:00:00.5%2B00:00"); len(l.IPs) != 1 || l.IPs[0].IP != "127.0.0.9" {
		t.Fatalf("later_date: %+v", l.IPs)
	}
	for q, param := range map[string]string{
		"?earlier_date=yesterday": "earlier_date", "?later_date=2030-13-01T00:00": "later_date", "?status=gone": "status",
		"?earlier_date=2030-01-02T00:00&later_date=2030-01-01T00:00": "later_date",
	} {
		wantError(t, n.want(403, "GET", "/v4/abs/attacklist"+q, "", adminKey), wire.StatusInvalidValue, "query parameter "+param)
	}

	// Deletes: refused bodies name the field; nothing is removed.
	for body, field := range map[string]string{
		`{"ips": "127.0.0.9"}`:                       "ips: must be an array",
		`{"delete_everything": true}`:                "delete_everything: unknown field",
		`{"cookies": [{"name": "s", "val": "x"}]}`:   "val: unknown field",
		`{"delete_all_ips": "yes"}`:                  "delete_all_ips: must be true or false",
		`{"ips": ["not-an-ip"]}`:                     "ips[0]",
		`{}`:                                         "give delete_all",
		`{"api_keys": [{"name": "", "value": "k"}]}`: "api_keys[0]",
	} {
		wantError(t, n.want(403, "DELETE", "/v4/abs/attacklist", body, adminKey), wire.StatusValidation, field)
	}
	wantError(t, n.want(403, "DELETE", "/v4/abs/attacklist", "", adminKey), wire.StatusFail, "json parsing error")
	// One identity: only the abs_generated entry goes, never a manual one.
	var del wire.ABSDeleted
	json.Unmarshal([]byte(n.want(200, "DELETE", "/v5/abs/attacklist", `{"ips": ["127.0.0.9", "127.0.0.50"]}`, adminKey)), &del)
	if del.Removed != (wire.ABSCounts{IPs: 1, Total: 1}) || del.Status != wire.StatusSuccess {
		t.Fatalf("delete: %+v", del)
	}
	res, err := n.h.d.Lists.Check(context.Background(), lists.Entry{Kind: lists.IP, Value: "127.0.0.50", Prefix: netip.MustParsePrefix("127.0.0.50/32")})
	if err != nil || len(res.Deny) != 1 || res.Deny[0].Tag != lists.Manual {
		t.Fatalf("the manual entry: %+v %v", res, err)
	}
	// The detection is expired now (its record stays).
	if l := n.attackList("?status=expired"); len(l.IPs) != 1 || l.IPs[0].IP != "127.0.0.9" || l.IPs[0].Expires == nil {
		t.Fatalf("expired: %+v", l.IPs)
	}
	if l := n.attackList("?status=active"); len(l.IPs) != 0 {
		t.Fatalf("active after delete: %+v", l.IPs)
	}
	// Everything: a new detection goes, the manual entry stays.
	n.clk.advance(time.Minute)
	n.flood("shop", netip.MustParseAddr("127.0.0.11"), 5)
	json.Unmarshal([]byte(n.want(200, "DELETE", "/v5/abs/attacklist", `{"delete_all": true}`, adminKey)), &del)
	if del.Removed.Total != 1 || del.Removed.IPs != 1 {
		t.Fatalf("delete_all: %+v", del)
	}
	json.Unmarshal([]byte(n.want(200, "DELETE", "/v5/abs/attacklist", `{"delete_all_usernames": true, "usernames": ["bob"]}`, adminKey)), &del)
	if del.Removed.Total != 0 {
		t.Fatalf("nothing to delete: %+v", del)
	}
	if res, _ := n.h.d.Lists.Check(context.Background(), lists.Entry{Kind: lists.IP, Value: "127.0.0.50", Prefix: netip.MustParsePrefix("127.0.0.50/32")}); len(res.Deny) != 1 {
		t.Fatalf("the manual entry was removed")
	}
	// Reading needs no write role; deleting does.
	n.want(201, "POST", "/api/configuration/aaa/local_database/users", `{"name": "reader", "password": "reader-password", "role": "read"}`, adminKey)
	r := n.login("reader", "reader-password")
	n.want(200, "GET", "/v4/abs/attacklist", "", r)
	n.want(403, "DELETE", "/v4/abs/attacklist", `{"delete_all": true}`, r)
	// Not under /ase.
	n.want(404, "GET", "/v5/ase/abs/attacklist", "", adminKey)
}

func TestABSStatusPolicyRetrain(t *testing.T) {
	n := newABSNode(t)
	ctx := context.Background()
	var info wire.ABSInfo
	json.Unmarshal([]byte(n.want(200, "GET", "/v5/ase/abs", "", adminKey)), &info)
	if info.Enabled || !info.Enforcing || info.Window != "5m" || info.TrainingPeriod != "1d" || info.TTL["ip"] != "1h" || info.TTL["api_key"] != "1d" ||
		len(info.APIs) != 2 || info.APIs[0].APIID != "chat" || !info.APIs[0].Training || len(info.APIs[0].Figures) != 30 {
		t.Fatalf("abs info %+v", info)
	}
	var one wire.ABSAPIStatus
	json.Unmarshal([]byte(n.want(200, "GET", "/v4/ase/abs/shop", "", adminKey)), &one)
	if one.APIID != "shop" || one.Modes["content_scraping"] != "enforce" {
		t.Fatalf("abs shop %+v", one)
	}
	wantError(t, n.want(404, "GET", "/v5/ase/abs/nope", "", adminKey), wire.StatusAPINotFound, "api nope does not exist")
	wantError(t, n.want(403, "GET", "/v5/ase/abs/-bad", "", adminKey), wire.StatusValidation, "")

	// Policies: validated, stored on condition that the API exists.
	for body, msg := range map[string]string{
		`{"modes": {"sniffing": "enforce"}}`:        `unknown detector "sniffing"`,
		`{"modes": {"api_probing": "block"}}`:       `modes.api_probing: "block" is not a mode`,
		`{"thresholds": {"requests": -1}}`:          "thresholds.requests: must be a number from 0",
		`{"thresholds": {"bananas": 3}}`:            `unknown figure "bananas"`,
		`{"modes": {}, "extra": 1}`:                 "not a detection policy",
		`{"thresholds": {"requests": "many"}}`:      "not a detection policy",
		`{"modes": {"login_attack": "report"}} xxx`: "json parsing error",
		`[]`: "not a detection policy",
	} {
		reply := n.want(403, "PUT", "/v5/ase/abs/shop/policy", body, adminKey)
		status := wire.StatusValidation
		if msg == "json parsing error" {
			status = wire.StatusFail
		}
		wantError(t, reply, status, msg)
	}
	if _, err := n.base.Get(ctx, behave.PolicyPrefix+"shop"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a refused policy was stored: %v", err)
	}
	n.want(404, "PUT", "/v5/ase/abs/nope/policy", `{}`, adminKey)
	var pr wire.ABSPolicyReply
	json.Unmarshal([]byte(n.want(200, "PUT", "/v5/ase/abs/shop/policy", `{"modes": {"api_probing": "report", "content_scraping": "enforce"}, "thresholds": {"requests": 3}}`, adminKey)), &pr)
	if pr.Status != wire.StatusSuccess || pr.APIID != "shop" || len(pr.Policy.Modes) != 1 || pr.Policy.Modes["api_probing"] != "report" || pr.Policy.Thresholds["requests"] != 3 {
		t.Fatalf("policy reply %+v", pr)
	}
	v, err := n.base.Get(ctx, behave.PolicyPrefix+"shop")
	if err != nil {
		t.Fatal(err)
	}
	if p, err := behave.DecodePolicy(v); err != nil || p.Modes[behave.Probing] != behave.Report || p.Thresholds[behave.FigRequests] != 3 {
		t.Fatalf("stored policy %s: %v", v, err)
	}
	var reset wire.ABSPolicyReply
	json.Unmarshal([]byte(n.want(200, "DELETE", "/v5/ase/abs/shop/policy", "", adminKey)), &reset)
	if reset.Status != wire.StatusSuccess || reset.Policy.Modes != nil || reset.Policy.Thresholds != nil {
		t.Fatalf("reset reply %+v", reset)
	}
	if _, err := n.base.Get(ctx, behave.PolicyPrefix+"shop"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the policy is still stored: %v", err)
	}
	n.want(404, "DELETE", "/v5/ase/abs/nope/policy", "", adminKey)

	// Retrain: what was learned is deleted (every node retrains); with
	// nothing stored, this node starts again.
	n.clk.advance(2 * time.Minute)
	n.flood("shop", netip.MustParseAddr("127.0.0.1"), 1) // training ends
	if s, _ := n.eng.Status("shop"); s[0].Training {
		t.Fatal("still training")
	}
	n.want(200, "POST", "/v5/ase/abs/shop/retrain", "", adminKey)
	if s, _ := n.eng.Status("shop"); !s[0].Training {
		t.Fatal("not training again")
	}
	if _, err := n.base.Commit(ctx, store.Batch{Ops: []store.Op{store.Put(behave.LearnedPrefix+"chat", []byte(`{}`))}}); err != nil {
		t.Fatal(err)
	}
	wantJSONEq(t, n.want(200, "POST", "/v4/ase/abs/chat/retrain", "", adminKey), `{"status": "success", "status_message": "api chat is training again"}`)
	if _, err := n.base.Get(ctx, behave.LearnedPrefix+"chat"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("what chat learned is still stored: %v", err)
	}
	n.want(404, "POST", "/v5/ase/abs/nope/retrain", "", adminKey)

	// In a transaction a policy is staged, and applied at the commit.
	s := n.login("ops", "ops-password")
	n.want(200, "POST", "/api/transaction", "", s)
	n.want(200, "PUT", "/v5/ase/abs/shop/policy", `{"thresholds": {"requests": 7}}`, s)
	if _, err := n.base.Get(ctx, behave.PolicyPrefix+"shop"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a staged policy is stored: %v", err)
	}
	n.want(200, "PUT", "/api/transaction", `{"status": "commit", "message": "tighten shop"}`, s)
	if v, err := n.base.Get(ctx, behave.PolicyPrefix+"shop"); err != nil || !strings.Contains(string(v), `"requests":7`) {
		t.Fatalf("committed policy %s: %v", v, err)
	}
	// The API's definition going away refuses a policy for it.
	n.want(200, "DELETE", "/v5/ase/api?api_id=chat", "", adminKey)
	n.want(404, "PUT", "/v5/ase/abs/chat/policy", `{}`, adminKey)
	if _, err := catalog.GetAPI(ctx, n.base, "chat"); !errors.Is(err, catalog.ErrAPINotFound) {
		t.Fatal(err)
	}
}
