package e2e

import (
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

// Issue 16, point 5: every entry carries its origin (tag), a reason,
// when it was added and when it expires; views filter by type and value
// and page with limit and cursor, keeping the vendor's shape.

// viewEntry is a view's entry as the tests read it.
type viewEntry struct {
	Type      string `json:"type"`
	Name      string `json:"name"`
	Value     string `json:"value"`
	Tag       string `json:"tag"`
	Reason    string `json:"reason"`
	CreatedAt string `json:"created_at"`
	ExpiresAt string `json:"expires_at"`
}

func (e viewEntry) describe() string {
	if e.Name != "" {
		return e.Type + " " + e.Name + " " + e.Value
	}
	return e.Type + " " + e.Value
}

// viewPage reads one view reply: its sections and its next cursor.
func viewPage(t testing.TB, r Reply) (map[string][]viewEntry, string) {
	t.Helper()
	if r.Code != 200 {
		t.Fatalf("view: HTTP %d %s", r.Code, r.Body)
	}
	var raw map[string]json.RawMessage
	decode(t, r, &raw)
	sections := map[string][]viewEntry{}
	next := ""
	for k, v := range raw {
		if k == "next_cursor" {
			if err := json.Unmarshal(v, &next); err != nil {
				t.Fatalf("next_cursor: %v in %s", err, r.Body)
			}
			continue
		}
		var es []viewEntry
		if err := json.Unmarshal(v, &es); err != nil {
			t.Fatalf("section %s is not a list of entries: %v in %s", k, err, r.Body)
		}
		sections[k] = es
	}
	return sections, next
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	tm, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatalf("not an RFC 3339 time: %q", s)
	}
	return tm
}

var denySections = []string{"manual_blacklist", "abs_generated_blacklist", "invalid_content_type_blacklist", "invalid_method_blacklist", "invalid_protocol_blacklist", "decoy_blacklist"}

func TestListEntryMetadata(t *testing.T) {
	a := newBackend(t, "a", false)
	i := startInstance(t, map[string]string{"enable_xff": "true", "enable_ase_detected_attack": "true"})
	detectionAPIs(t, i, servers(a))
	before := time.Now().Truncate(time.Second)

	wantStatus(t, i.Do("POST", "/v5/ase/firewall/blacklist", `{"type": "ip", "value": "203.0.113.7", "ttl": "4h", "reason": "port scan reported by the SOC"}`, nil), 200, "success", "ip 203.0.113.7 added to blacklist")
	wantStatus(t, i.Do("POST", "/v5/ase/firewall/blacklist", `{"type": "cookie", "name": "SID", "value": "stolen"}`, nil), 200, "success", "cookie SID stolen added to blacklist")
	wantStatus(t, i.Do("POST", "/v5/ase/firewall/whitelist", `{"type": "username", "value": "alice", "reason": "partner integration"}`, nil), 200, "success", "username alice added to whitelist")
	// A reason is text for people: no control characters, bounded.
	wantStatus(t, i.Do("POST", "/v5/ase/firewall/blacklist", `{"type": "ip", "value": "203.0.113.8", "reason": "a\nb"}`, nil), 403, "validation_error", "reason: must be printable text*")
	wantStatus(t, i.Do("POST", "/v5/ase/firewall/blacklist", `{"type": "ip", "value": "203.0.113.8", "reason": "`+strings.Repeat("x", 1025)+`"}`, nil), 403, "validation_error", "reason: must be at most 1024 bytes, got 1025")

	// A detection: the decoy lists the client's address and its token,
	// saying what was detected.
	if code, _, err := inlineCall(dataClient(t, 1), i, "GET", "/trap/wp-login.php", "198.51.100.9", map[string]string{"Authorization": "Bearer trap-token"}); err != nil || code != 200 {
		t.Fatalf("decoy: %d %v", code, err)
	}
	var view map[string][]viewEntry
	waitUntil(t, func() bool {
		view, _ = viewPage(t, i.Do("GET", "/v5/ase/firewall/blacklist", "", nil))
		return len(view["decoy_blacklist"]) == 2
	})
	after := time.Now().Add(time.Second)

	check := func(view map[string][]viewEntry) {
		t.Helper()
		if len(view) != len(denySections) {
			t.Fatalf("the view has %d sections, want the vendor's %d: %v", len(view), len(denySections), view)
		}
		for _, s := range denySections {
			if _, ok := view[s]; !ok {
				t.Fatalf("section %s missing: %v", s, view)
			}
		}
		manual := view["manual_blacklist"]
		if len(manual) != 2 {
			t.Fatalf("manual: %+v", manual)
		}
		// Key order: cookie before ip.
		ck, ip := manual[0], manual[1]
		if ck.describe() != "cookie SID stolen" || ck.Tag != "manual" || ck.Reason != "" || ck.ExpiresAt != "" {
			t.Fatalf("cookie entry: %+v", ck)
		}
		if ip.describe() != "ip 203.0.113.7" || ip.Tag != "manual" || ip.Reason != "port scan reported by the SOC" {
			t.Fatalf("ip entry: %+v", ip)
		}
		created := mustTime(t, ip.CreatedAt)
		if created.Before(before) || created.After(after) {
			t.Fatalf("created_at %s, want between %s and %s", created, before, after)
		}
		if exp := mustTime(t, ip.ExpiresAt); !exp.Equal(created.Add(4 * time.Hour)) {
			t.Fatalf("expires_at %s, want created_at + 4h = %s", exp, created.Add(4*time.Hour))
		}
		decoy := view["decoy_blacklist"]
		sort.Slice(decoy, func(a, b int) bool { return decoy[a].Type < decoy[b].Type })
		if decoy[0].describe() != "ip 198.51.100.9" || decoy[1].describe() != "token trap-token" {
			t.Fatalf("decoy entries: %+v", decoy)
		}
		for _, e := range decoy {
			if e.Tag != "decoy" || !strings.Contains(e.Reason, "decoy") || e.ExpiresAt != "" {
				t.Fatalf("decoy entry: %+v", e)
			}
			if c := mustTime(t, e.CreatedAt); c.Before(before) || c.After(after) {
				t.Fatalf("decoy entry created_at %s", c)
			}
		}
		// The token was presented by the address: its reason says so.
		if !strings.Contains(decoy[1].Reason, "198.51.100.9") {
			t.Fatalf("the token's reason does not name the client that presented it: %q", decoy[1].Reason)
		}
	}
	check(view)
	wl, _ := viewPage(t, i.Do("GET", "/v5/ase/firewall/whitelist", "", nil))
	if len(wl) != 1 || len(wl["whitelist"]) != 1 || wl["whitelist"][0].Tag != "manual" || wl["whitelist"][0].Reason != "partner integration" || wl["whitelist"][0].CreatedAt == "" {
		t.Fatalf("whitelist view: %+v", wl)
	}

	// The CLI shows the same, one line per entry.
	out, stderr, code := i.CLI("", "view_blacklist", "manual")
	if code != 0 {
		t.Fatalf("view_blacklist: %d %s", code, stderr)
	}
	if !regexp.MustCompile(`(?m)^manual blacklist : 2\n`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^  ip 203\.0\.113\.7 +tag manual +added \S+ +expires \S+ \(in 3h59m\d\ds\) +reason port scan reported by the SOC$`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^  cookie SID stolen +tag manual +added \S+ +expires never$`).MatchString(out) {
		t.Fatalf("view_blacklist manual:\n%s", out)
	}
	out, _, _ = i.CLI("", "view_blacklist", "manual", "-o", "json")
	var j map[string][]viewEntry
	if err := json.Unmarshal([]byte(out), &j); err != nil || len(j["manual_blacklist"]) != 2 || j["manual_blacklist"][1].Reason != "port scan reported by the SOC" {
		t.Fatalf("view_blacklist -o json: %v\n%s", err, out)
	}

	// Everything survives a restart.
	i.Restart()
	view, _ = viewPage(t, i.Do("GET", "/v5/ase/firewall/blacklist", "", nil))
	check(view)
}

// pageThrough follows next_cursor from path (which has its own query)
// and cursor (or the start) to the end, and returns every entry in order
// and the pages' sizes.
func pageThrough(t *testing.T, i *Instance, path, cursor string) ([]viewEntry, []int) {
	t.Helper()
	var all []viewEntry
	var sizes []int
	for n := 0; ; n++ {
		if n > 10_000 {
			t.Fatal("the cursor never ends")
		}
		p := path
		if cursor != "" {
			p += "&cursor=" + url.QueryEscape(cursor)
		}
		sections, next := viewPage(t, i.Do("GET", p, "", nil))
		size := 0
		for _, es := range sections {
			all = append(all, es...)
			size += len(es)
		}
		sizes = append(sizes, size)
		if next == "" {
			return all, sizes
		}
		cursor = next
	}
}

func describeAll(es []viewEntry) []string {
	out := make([]string, len(es))
	for k, e := range es {
		out[k] = e.describe()
	}
	sort.Strings(out)
	return out
}

func TestListViewFilterAndPages(t *testing.T) {
	i := startInstance(t, nil)
	var feed []string
	for n := 0; n < 300; n++ {
		feed = append(feed, fmt.Sprintf(`{"type": "ip", "value": "10.0.%d.%d", "reason": "feed A"}`, n/100, n%100))
	}
	for n := 0; n < 50; n++ {
		feed = append(feed, fmt.Sprintf(`{"type": "token", "value": "tok-%03d"}`, n))
	}
	feed = append(feed, `{"type": "cookie", "name": "SID", "value": "tok-in-a-cookie"}`)
	wantStatus(t, i.Do("POST", "/v5/ase/firewall/blacklist", "["+strings.Join(feed, ",")+"]", nil), 200, "success", "351 entries added to blacklist, 0 already listed")
	full, _ := viewPage(t, i.Do("GET", "/v5/ase/firewall/blacklist", "", nil))
	if len(full["manual_blacklist"]) != 351 {
		t.Fatalf("listed %d", len(full["manual_blacklist"]))
	}

	// Filters: by type, by value (a substring), both; the shape stays the
	// vendor's, every section present.
	for _, tt := range []struct {
		query string
		n     int
	}{
		{"type=token", 50},
		{"type=ip", 300},
		{"type=cookie", 1},
		{"type=username", 0},
		{"value=tok-", 51},
		{"type=token&value=tok-", 50},
		{"value=10.0.1.", 100},
		{"value=10.0.2.5", 11}, // 10.0.2.5 and 10.0.2.50 to .59
		{"tag=manual&type=ip&value=.99", 3},
		{"tag=decoy&type=ip", 0},
	} {
		sections, next := viewPage(t, i.Do("GET", "/v5/ase/firewall/blacklist?"+tt.query, "", nil))
		n := 0
		for _, es := range sections {
			n += len(es)
		}
		wantSections := len(denySections)
		if strings.Contains(tt.query, "tag=") {
			wantSections = 1
		}
		if n != tt.n || next != "" || len(sections) != wantSections {
			t.Fatalf("%s: %d entries in %d sections (next %q), want %d in %d", tt.query, n, len(sections), next, tt.n, wantSections)
		}
	}

	// Pages: every entry exactly once, in pages of at most limit, the same
	// with filters.
	for _, q := range []string{"limit=40", "limit=1", "limit=40&type=ip&value=10.0.2", "limit=7&tag=manual&type=token"} {
		got, sizes := pageThrough(t, i, "/v5/ase/firewall/blacklist?"+q, "")
		vals, _ := url.ParseQuery(q)
		var want []viewEntry
		for _, e := range full["manual_blacklist"] {
			if (vals.Get("type") == "" || e.Type == vals.Get("type")) && strings.Contains(e.Value, vals.Get("value")) {
				want = append(want, e)
			}
		}
		if fmt.Sprint(describeAll(got)) != fmt.Sprint(describeAll(want)) {
			t.Fatalf("%s: the pages hold %d entries, want %d", q, len(got), len(want))
		}
		var limit int
		fmt.Sscan(vals.Get("limit"), &limit)
		for k, s := range sizes {
			if s > limit || s == 0 && k != len(sizes)-1 {
				t.Fatalf("%s: page sizes %v", q, sizes)
			}
		}
		if len(sizes) < len(want)/limit {
			t.Fatalf("%s: %d pages for %d entries", q, len(sizes), len(want))
		}
	}

	// The cursor is a position in the list, not an offset: entries added
	// or deleted between pages neither repeat nor hide the others.
	first, next := viewPage(t, i.Do("GET", "/v5/ase/firewall/blacklist?limit=100&type=ip", "", nil))
	page1 := first["manual_blacklist"]
	if len(page1) != 100 || next == "" {
		t.Fatalf("first page: %d entries, next %q", len(page1), next)
	}
	last := page1[len(page1)-1].Value
	// Deleted: one already seen, one not yet; added: one before the
	// cursor (never seen), one after it (seen).
	wantStatus(t, i.Do("DELETE", "/v5/ase/firewall/blacklist", `{"type": "ip", "value": "`+page1[3].Value+`"}`, nil), 200, "success", "*")
	wantStatus(t, i.Do("DELETE", "/v5/ase/firewall/blacklist", `{"type": "ip", "value": "10.0.2.99"}`, nil), 200, "success", "*")
	wantStatus(t, i.Do("POST", "/v5/ase/firewall/blacklist", `{"type": "ip", "value": "10.0.0.0/31"}`, nil), 200, "success", "*")
	wantStatus(t, i.Do("POST", "/v5/ase/firewall/blacklist", `{"type": "ip", "value": "10.0.9.9"}`, nil), 200, "success", "*")
	rest, _ := pageThrough(t, i, "/v5/ase/firewall/blacklist?limit=100&type=ip", next)
	seen := map[string]int{}
	for _, e := range append(page1, rest...) {
		seen[e.Value]++
	}
	for v, n := range seen {
		if n > 1 {
			t.Fatalf("%s seen %d times", v, n)
		}
	}
	if seen["10.0.2.99"] != 0 || seen["10.0.0.0/31"] != 0 || seen["10.0.9.9"] != 1 {
		t.Fatalf("after changes between pages: 10.0.2.99 seen %d, 10.0.0.0/31 %d, 10.0.9.9 %d (last of page 1: %s)", seen["10.0.2.99"], seen["10.0.0.0/31"], seen["10.0.9.9"], last)
	}
	for _, e := range full["manual_blacklist"] {
		if e.Type == "ip" && e.Value != "10.0.2.99" && seen[e.Value] != 1 {
			t.Fatalf("%s, listed throughout, was seen %d times", e.Value, seen[e.Value])
		}
	}

	// The whitelist pages the same way, in its own shape.
	wantStatus(t, i.Do("POST", "/v5/ase/firewall/whitelist", `[{"type": "ip", "value": "192.0.2.1"}, {"type": "ip", "value": "192.0.2.2"}, {"type": "ip", "value": "192.0.2.3"}]`, nil), 200, "success", "*")
	wl, next := viewPage(t, i.Do("GET", "/v5/ase/firewall/whitelist?limit=2", "", nil))
	if len(wl) != 1 || len(wl["whitelist"]) != 2 || next == "" {
		t.Fatalf("whitelist page: %v next %q", wl, next)
	}
	wl, next = viewPage(t, i.Do("GET", "/v5/ase/firewall/whitelist?limit=2&cursor="+url.QueryEscape(next), "", nil))
	if len(wl["whitelist"]) != 1 || wl["whitelist"][0].Value != "192.0.2.3" || next != "" {
		t.Fatalf("whitelist second page: %v next %q", wl, next)
	}

	// Bad parameters are named.
	for _, tt := range []struct{ query, msg string }{
		{"limit=0", "query parameter limit contains invalid value"},
		{"limit=10001", "query parameter limit contains invalid value"},
		{"limit=ten", "query parameter limit contains invalid value"},
		{"cursor=%21%21", "query parameter cursor contains invalid value"},
		{"type=mac", "query parameter type contains invalid value"},
	} {
		wantStatus(t, i.Do("GET", "/v5/ase/firewall/blacklist?"+tt.query, "", nil), 403, "invalid_value", tt.msg)
	}
	// A cursor of the other list is refused too.
	_, wnext := viewPage(t, i.Do("GET", "/v5/ase/firewall/whitelist?limit=1", "", nil))
	wantStatus(t, i.Do("GET", "/v5/ase/firewall/blacklist?cursor="+url.QueryEscape(wnext), "", nil), 403, "invalid_value", "query parameter cursor contains invalid value")

	// The CLI: filters, pages and the command for the next page.
	out, stderr, code := i.CLI("", "view_blacklist", "--type", "token", "--value", "tok-04", "--limit", "6")
	if code != 0 || !regexp.MustCompile(`(?s)^manual blacklist : 6\n(  token tok-04\d .*\n){6}.*next page: ase view_blacklist --type token --value tok-04 --limit 6 --cursor (\S+)\n$`).MatchString(out) {
		t.Fatalf("view_blacklist page: exit %d\n%s%s", code, out, stderr)
	}
	cur := regexp.MustCompile(`--cursor (\S+)`).FindStringSubmatch(out)[1]
	out, _, code = i.CLI("", "view_blacklist", "--type", "token", "--value", "tok-04", "--limit", "6", "--cursor", cur)
	if code != 0 || !regexp.MustCompile(`(?s)^manual blacklist : 4\n(  token tok-04\d .*\n){4}abs generated blacklist : 0\n.*decoy blacklist : 0\n$`).MatchString(out) {
		t.Fatalf("view_blacklist second page: exit %d\n%s", code, out)
	}
	if _, stderr, code := i.CLI("", "view_blacklist", "--limit", "0"); code != 1 || !strings.Contains(stderr, "query parameter limit contains invalid value") {
		t.Fatalf("view_blacklist --limit 0: exit %d %s", code, stderr)
	}
}

// BenchmarkListViewPage times pages of 100 entries through the binary's
// REST view, from a deny list of 1,000,000 entries (addresses, tokens and
// cookies): the first page, pages from cursors spread over the list, and
// a page filtered by type. Run with -benchtime 1x; the figures are in the
// README.
func BenchmarkListViewPage(b *testing.B) {
	for n := 0; n < b.N; n++ {
		i := startInstance(b, map[string]string{"attack_list_memory": "1GB"})
		for c := 0; c < 10; c++ {
			var sb strings.Builder
			sb.WriteString("[")
			for k := 0; k < 100_000; k++ {
				if k > 0 {
					sb.WriteString(",")
				}
				v := c*100_000 + k
				switch v % 4 {
				case 0, 1:
					fmt.Fprintf(&sb, `{"type":"ip","value":"%d.%d.%d.%d"}`, 11+v%200, (v>>16)&255, (v>>8)&255, v&255)
				case 2:
					fmt.Fprintf(&sb, `{"type":"token","value":"token-%08d-abcdefghijklmnop"}`, v)
				case 3:
					fmt.Fprintf(&sb, `{"type":"cookie","name":"JSESSIONID","value":"cookie-%08d-abcdefghijk"}`, v)
				}
			}
			sb.WriteString("]")
			if r := i.Do("POST", "/v5/ase/firewall/blacklist?reason=bench", sb.String(), nil); r.Code != 200 {
				b.Fatalf("bulk import: HTTP %d %s", r.Code, r.Body)
			}
		}
		// Cursors spread over the list: the ends of pages of 10,000.
		var cursors []string
		cursor := ""
		for {
			p := "/v5/ase/firewall/blacklist?limit=10000"
			if cursor != "" {
				p += "&cursor=" + url.QueryEscape(cursor)
			}
			var v map[string]json.RawMessage
			decode(b, i.Do("GET", p, "", nil), &v)
			var next string
			json.Unmarshal(v["next_cursor"], &next)
			if next == "" {
				break
			}
			cursors = append(cursors, next)
			cursor = next
		}
		if len(cursors) != 99 {
			b.Fatalf("%d pages of 10,000", len(cursors)+1)
		}
		page := func(query string) time.Duration {
			start := time.Now()
			r := i.Do("GET", "/v5/ase/firewall/blacklist?limit=100"+query, "", nil)
			took := time.Since(start)
			sections, next := viewPage(b, r)
			got := 0
			for _, es := range sections {
				got += len(es)
			}
			if got != 100 || next == "" {
				b.Fatalf("a page of %d entries, next %q", got, next)
			}
			return took
		}
		stats := func(name string, ds []time.Duration) {
			sort.Slice(ds, func(a, c int) bool { return ds[a] < ds[c] })
			b.Logf("%s: %d pages of 100 from 1,000,000 entries: median %v, p90 %v, max %v", name, len(ds), ds[len(ds)/2], ds[len(ds)*9/10], ds[len(ds)-1])
			b.ReportMetric(float64(ds[len(ds)/2].Microseconds())/1000, name+"_median_ms")
		}
		var first, spread, tokens []time.Duration
		for k := 0; k < 20; k++ {
			first = append(first, page(""))
		}
		for k := 0; k < 3; k++ {
			for _, c := range cursors {
				spread = append(spread, page("&cursor="+url.QueryEscape(c)))
			}
		}
		for _, c := range cursors {
			tokens = append(tokens, page("&type=token&cursor="+url.QueryEscape(c)))
		}
		stats("first", first)
		stats("spread", spread)
		stats("type_token", tokens)
		i.Stop()
	}
}
