package engine

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ase-project/ase/internal/apidef"
	"github.com/ase-project/ase/internal/catalog"
	"github.com/ase-project/ase/internal/lists"
	"github.com/ase-project/ase/internal/store"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

type fixture struct {
	st    *store.Bolt
	lists *lists.Lists
	live  *catalog.Live
	clock *clock
	eng   *Engine
}

func newFixture(t testing.TB, limiter Limiter) *fixture {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(filepath.Join(t.TempDir(), "ase.db"))
	if err != nil {
		t.Fatal(err)
	}
	c := &clock{t: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)}
	l, err := lists.Open(ctx, st, lists.Options{Limit: 8 << 30, Now: c.now, Log: slog.Default()})
	if err != nil {
		t.Fatal(err)
	}
	live, err := catalog.NewLive(ctx, st, catalog.Defaults{catalog.Firewall: true}, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { live.Close(); l.Close(); st.Close() })
	return &fixture{st: st, lists: l, live: live, clock: c, eng: New(l, live, limiter)}
}

func (f *fixture) list(t testing.TB, list lists.List, body string) {
	t.Helper()
	es, bulk, err := lists.DecodeEntries([]byte(body), true, f.clock.now())
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := f.lists.Add(context.Background(), f.st, list, es, bulk)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.Commit(context.Background(), b); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) set(s catalog.Setting, on bool) {
	f.st.Commit(context.Background(), catalog.SetSetting(s, on))
}

func mustAPI(t testing.TB, doc string) *apidef.API {
	t.Helper()
	a, err := apidef.Decode("api", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

type stubLimiter struct{ over bool }

func (s *stubLimiter) Allow(*apidef.API, *lists.Identity, int64) (bool, time.Duration) {
	if s.over {
		return false, 3 * time.Second
	}
	return true, 0
}

func TestDecisionOrder(t *testing.T) {
	limiter := &stubLimiter{}
	f := newFixture(t, limiter)
	f.list(t, lists.Deny, `[{"type": "ip", "value": "192.0.2.66"}, {"type": "ip", "value": "198.51.100.0/24"}, {"type": "token", "value": "stolen"}]`)
	f.list(t, lists.Allow, `[{"type": "ip", "value": "198.51.100.7"}]`)

	shop := mustAPI(t, `{"api_metadata": {"url": "/shop", "oauth2_access_token": true, "flow_control": {"client_spike_threshold": "10/second"},
		"api_pattern_enforcement": {"protocol_allowed": "https", "methods_allowed": ["GET", "POST"], "content_type_allowed": "application/json",
			"error_code": "405", "error_def": "Method Not Allowed", "error_message_body": "no"},
		"decoy_config": {"decoy_enabled": true, "decoy_subpaths": ["/admin"]}}}`)
	monitor := mustAPI(t, `{"api_metadata": {"url": "/m", "enable_blocking": false, "flow_control": {"client_spike_threshold": "10/second"}, "api_pattern_enforcement": {"methods_allowed": ["GET"]}}}`)
	redirect := mustAPI(t, `{"api_metadata": {"url": "/r", "api_pattern_enforcement": {"protocol_allowed": "https",
		"http_redirect": {"response_code": "301", "response_def": "Moved", "https_url": "https://example.com"}}}}`)
	trap := mustAPI(t, `{"api_metadata": {"url": "/trap", "decoy_config": {"decoy_enabled": true}}}`)

	good := netip.MustParseAddr("192.0.2.1")
	req := func(api *apidef.API, ip netip.Addr, mutate func(r *Request)) *Request {
		r := &Request{API: api, Path: api.URL + "/items", Method: "GET", Scheme: "https", ID: lists.Identity{IP: ip}}
		if mutate != nil {
			mutate(r)
		}
		return r
	}
	tests := []struct {
		name    string
		r       *Request
		limited bool
		want    Decision
	}{
		{"clean", req(shop, good, nil), false, Decision{Action: Allow}},
		{"deny ip", req(shop, netip.MustParseAddr("192.0.2.66"), nil), false, Decision{Action: Block, Reason: ReasonDenyList, Match: lists.Match{Kind: lists.IP}}},
		{"deny cidr", req(shop, netip.MustParseAddr("198.51.100.9"), nil), false, Decision{Action: Block, Reason: ReasonDenyList, Match: lists.Match{Kind: lists.IP}}},
		{"deny token", req(shop, good, func(r *Request) { r.ID.Token = "stolen" }), false, Decision{Action: Block, Reason: ReasonDenyList, Match: lists.Match{Kind: lists.Token}}},
		{"allow beats deny", req(shop, netip.MustParseAddr("198.51.100.7"), func(r *Request) { r.ID.Token = "stolen"; r.Method = "DELETE" }), true, Decision{Action: Allow, Reason: ReasonAllowList, Match: lists.Match{Kind: lists.IP}}},
		{"deny beats decoy", req(shop, netip.MustParseAddr("192.0.2.66"), func(r *Request) { r.Path = "/shop/admin" }), false, Decision{Action: Block, Reason: ReasonDenyList, Match: lists.Match{Kind: lists.IP}}},
		{"decoy subpath", req(shop, good, func(r *Request) { r.Path = "/shop/admin/users" }), false, Decision{Action: Decoy, Reason: ReasonDecoy}},
		{"not a decoy", req(shop, good, func(r *Request) { r.Path = "/shop/administrator" }), false, Decision{Action: Allow}},
		{"decoy beats pattern", req(shop, good, func(r *Request) { r.Path = "/shop/admin"; r.Method = "DELETE" }), false, Decision{Action: Decoy, Reason: ReasonDecoy}},
		{"out of context decoy", req(trap, good, nil), false, Decision{Action: Decoy, Reason: ReasonDecoy}},
		{"protocol", req(shop, good, func(r *Request) { r.Scheme = "http" }), false, Decision{Action: Reject, Reason: ReasonInvalidProtocol}},
		{"redirect", req(redirect, good, func(r *Request) { r.Scheme = "http" }), false, Decision{Action: Redirect, Reason: ReasonInvalidProtocol}},
		{"method", req(shop, good, func(r *Request) { r.Method = "DELETE" }), false, Decision{Action: Reject, Reason: ReasonInvalidMethod}},
		{"content type", req(shop, good, func(r *Request) { r.Method = "POST"; r.ContentType = "text/xml"; r.HasBody = true }), false, Decision{Action: Reject, Reason: ReasonInvalidContentType}},
		{"content type with params", req(shop, good, func(r *Request) { r.Method = "POST"; r.ContentType = "Application/JSON; charset=utf-8" }), false, Decision{Action: Allow}},
		{"body without content type", req(shop, good, func(r *Request) { r.Method = "POST"; r.HasBody = true }), false, Decision{Action: Reject, Reason: ReasonInvalidContentType}},
		{"pattern beats flow", req(shop, good, func(r *Request) { r.Method = "PUT" }), true, Decision{Action: Reject, Reason: ReasonInvalidMethod}},
		{"flow control", req(shop, good, nil), true, Decision{Action: Limit, Reason: ReasonRateLimited, RetryAfter: 3 * time.Second}},
		{"monitor deny", req(monitor, netip.MustParseAddr("192.0.2.66"), nil), false, Decision{Action: Allow, Reason: ReasonDenyList, Monitor: true, Match: lists.Match{Kind: lists.IP}}},
		{"monitor pattern", req(monitor, good, func(r *Request) { r.Method = "POST" }), false, Decision{Action: Allow, Reason: ReasonInvalidMethod, Monitor: true}},
		{"monitor flow", req(monitor, good, nil), true, Decision{Action: Allow, Reason: ReasonRateLimited, Monitor: true, RetryAfter: 3 * time.Second}},
		// flow control is asked only about APIs with a client spike threshold
		{"no threshold, no flow control", req(trap, good, func(r *Request) { r.API = redirect; r.Path = "/r/items" }), true, Decision{Action: Allow}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			limiter.over = tt.limited
			if got := f.eng.Decide(tt.r); got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}

	t.Run("firewall disabled", func(t *testing.T) {
		f.set(catalog.Firewall, false)
		defer f.set(catalog.Firewall, true)
		limiter.over = true
		got := f.eng.Decide(req(shop, netip.MustParseAddr("192.0.2.66"), func(r *Request) { r.Path = "/shop/admin" }))
		if got != (Decision{Action: Allow, Reason: ReasonFirewallDisabled}) {
			t.Fatalf("got %+v", got)
		}
	})
}

func TestTTLWithInjectedClock(t *testing.T) {
	f := newFixture(t, nil)
	f.list(t, lists.Deny, `{"type": "ip", "value": "192.0.2.5", "ttl": 30}`)
	api := mustAPI(t, `{"api_metadata": {"url": "/"}}`)
	r := &Request{API: api, Path: "/", Method: "GET", Scheme: "http", ID: lists.Identity{IP: netip.MustParseAddr("192.0.2.5")}}
	f.clock.add(30*time.Second - time.Millisecond)
	if d := f.eng.Decide(r); d.Action != Block {
		t.Fatalf("before expiry: got %+v", d)
	}
	f.clock.add(time.Millisecond)
	if d := f.eng.Decide(r); d.Action != Allow {
		t.Fatalf("at expiry: got %+v", d)
	}
}

func TestDetectedAttacksListClients(t *testing.T) {
	f := newFixture(t, nil)
	api := mustAPI(t, `{"api_metadata": {"url": "/a", "cookie": "SID", "api_pattern_enforcement": {"methods_allowed": ["GET"]},
		"decoy_config": {"decoy_enabled": true, "decoy_subpaths": ["/.env"]}}}`)
	other := mustAPI(t, `{"api_metadata": {"url": "/b"}}`)
	attacker := lists.Identity{IP: netip.MustParseAddr("203.0.113.9"), CookieName: "SID", Cookie: "s3ss"}

	// A detection is reported, and enforced, before Decide returns (the
	// setting is applied inside the store's Commit, lists.Report lists
	// before it returns): what Decide did not list when it returned, it
	// never lists.
	listed := func() string {
		n, _, pending := f.lists.Detections()
		return fmt.Sprintf("deny ip %d, deny cookie %d, detections %d, pending %d",
			f.lists.Count(lists.Deny, lists.IP), f.lists.Count(lists.Deny, lists.Cookie), n, pending)
	}

	// Off: nothing is listed.
	if d := f.eng.Decide(&Request{API: api, Path: "/a/.env", Method: "GET", Scheme: "http", ID: attacker}); d.Action != Decoy {
		t.Fatalf("got %+v", d)
	}
	if got, want := listed(), "deny ip 0, deny cookie 0, detections 0, pending 0"; got != want {
		t.Fatalf("ASE-detected attacks off: got %s, want %s", got, want)
	}

	f.set(catalog.ASEDetectedAttack, true)
	if d := f.eng.Decide(&Request{API: api, Path: "/a/.env", Method: "GET", Scheme: "http", ID: attacker}); d.Action != Decoy {
		t.Fatalf("got %+v", d)
	}
	if got, want := listed(), "deny ip 1, deny cookie 1, detections 1, "; !strings.HasPrefix(got, want) {
		t.Fatalf("right after Decide: got %s, want %s...", got, want)
	}
	// Blocked on every API from then on, by IP and by cookie.
	if d := f.eng.Decide(&Request{API: other, Path: "/b", Method: "GET", Scheme: "http", ID: attacker}); d.Action != Block || d.Match.Tag != lists.Decoy {
		t.Fatalf("got %+v", d)
	}
	if d := f.eng.Decide(&Request{API: api, Path: "/a", Method: "GET", Scheme: "http", ID: lists.Identity{IP: netip.MustParseAddr("198.51.100.1"), CookieName: "SID", Cookie: "s3ss"}}); d.Action != Block {
		t.Fatalf("the attacker's cookie from a new address: got %+v", d)
	}

	// A pattern violation lists under its own tag.
	f.eng.Decide(&Request{API: api, Path: "/a", Method: "TRACE", Scheme: "http", ID: lists.Identity{IP: netip.MustParseAddr("203.0.113.10")}})
	if got := f.lists.Count(lists.Deny, lists.IP); got != 2 {
		t.Fatalf("right after Decide: %d addresses denied, want 2", got)
	}
	if err := f.lists.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	var tags []string
	f.lists.View(context.Background(), f.st, lists.Deny, nil, func(e lists.Entry) error { tags = append(tags, e.Describe()+":"+e.Tag.String()); return nil })
	want := "[cookie SID s3ss:decoy ip 203.0.113.10:invalid_method ip 203.0.113.9:decoy]"
	if got := fmtList(tags); got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

func fmtList(s []string) string {
	out := "["
	for i, v := range s {
		if i > 0 {
			out += " "
		}
		out += v
	}
	return out + "]"
}

func TestRouter(t *testing.T) {
	snap := &catalog.Snapshot{APIs: map[string]*apidef.API{}}
	for id, doc := range map[string]string{
		"root":  `{"api_metadata": {"url": "/"}}`,
		"shop":  `{"api_metadata": {"url": "/shop"}}`,
		"cart":  `{"api_metadata": {"url": "/shop/cart"}}`,
		"host":  `{"api_metadata": {"url": "/shop", "hostname": "api.example.com"}}`,
		"port":  `{"api_metadata": {"url": "/p", "hostname": "api.example.com:8443"}}`,
		"other": `{"api_metadata": {"url": "/o", "hostname": "other.example.com"}}`,
	} {
		a, err := apidef.Decode(id, []byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		snap.APIs[id] = a
	}
	r := NewRouter(snap)
	tests := []struct{ host, path, want string }{
		{"x", "/shop", "shop"},
		{"x", "/shop/cart/1", "cart"},
		{"x", "/shopping", "root"},
		{"x", "/", "root"},
		{"API.Example.com", "/shop/x", "host"},
		{"api.example.com:8000", "/shop", "host"},
		{"api.example.com:8443", "/p/1", "port"},
		{"api.example.com", "/p", "root"},
		{"other.example.com", "/shop", "shop"},
	}
	for _, tt := range tests {
		a, e := r.Route(tt.host, tt.path)
		if e != RouteOK || a.ID != tt.want {
			t.Errorf("Route(%s, %s) = %v, %v, want %s", tt.host, tt.path, a, e, tt.want)
		}
	}
	// Without a catch-all API, routing failures are told apart.
	delete(snap.APIs, "root")
	delete(snap.APIs, "shop")
	delete(snap.APIs, "cart")
	r = NewRouter(snap)
	if _, e := r.Route("nowhere.example.com", "/o"); e != UnknownHostname || e.Message() != "Error: Unknown Hostname" {
		t.Errorf("got %v", e)
	}
	if _, e := r.Route("other.example.com", "/x"); e != UnknownAPI || e.Message() != "Error: Unknown API" {
		t.Errorf("got %v", e)
	}
}

// TestIsDecoyFullAndRelativeSubpaths: the vendor's full-path subpaths and
// the relative ones both name paths under the API's url, on segment
// boundaries.
func TestIsDecoyFullAndRelativeSubpaths(t *testing.T) {
	decoy := func(url, subpaths string) *apidef.API {
		return mustAPI(t, `{"api_metadata": {"url": "`+url+`", "decoy_config": {"decoy_enabled": true, "decoy_subpaths": `+subpaths+`}}}`)
	}
	vendor := decoy("/shop", `["/shop/root", "/shop/admin"]`)
	relative := decoy("/shop", `["/admin", "/shopping"]`)
	root := decoy("/", `["/admin"]`)
	deep := decoy("/api/v1", `["/api/v1/admin", "/debug"]`)
	off := mustAPI(t, `{"api_metadata": {"url": "/shop", "decoy_config": {"decoy_enabled": false, "decoy_subpaths": ["/shop/admin"]}}}`)
	tests := []struct {
		name string
		api  *apidef.API
		path string
		want bool
	}{
		{"vendor", vendor, "/shop/admin", true},
		{"vendor below", vendor, "/shop/root/x", true},
		{"vendor doubled", vendor, "/shop/shop/admin", false},
		{"vendor boundary", vendor, "/shop/administrator", false},
		{"vendor base", vendor, "/shop", false},
		{"relative", relative, "/shop/admin/x", true},
		{"relative doubled", relative, "/shop/shop/admin", false},
		{"relative not below the url", relative, "/shop/shopping", true},
		{"root", root, "/admin", true},
		{"root boundary", root, "/admins", false},
		{"deep full", deep, "/api/v1/admin", true},
		{"deep relative", deep, "/api/v1/debug/vars", true},
		{"deep other", deep, "/api/v1/users", false},
		{"disabled", off, "/shop/admin", false},
	}
	for _, tt := range tests {
		if got := isDecoy(tt.api, tt.path); got != tt.want {
			t.Errorf("%s: isDecoy(%s, %s) = %v, want %v", tt.name, tt.api.URL, tt.path, got, tt.want)
		}
	}
}
