package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// listRows is what the lists page's table shows: "type [name] value" of
// each row, in order.
const listRows = `[...document.querySelectorAll('#lists-entries tbody tr')].map(r => (r.dataset.type + ' ' + (r.dataset.name ? r.dataset.name + ' ' : '') + r.dataset.value))`

// pageInfo is a JavaScript test that the lists page shows a page whose
// sentence starts with prefix.
func pageInfo(prefix string) chromedp.Action[chromedp.Void] {
	return waitJS(fmt.Sprintf(`document.querySelector('#lists-page-info')?.textContent.startsWith(%q)`, prefix))
}

// clearField empties a text field (chromedp.SetValue cannot set "").
func clearField(sel string) chromedp.Action[chromedp.Void] {
	return waitJS(fmt.Sprintf(`(e => { e.value = ''; return true; })(document.querySelector(%q))`, sel))
}

// restEntries is every entry of a list view (unpaged, with its own query),
// as "type [name] value".
func restEntries(t *testing.T, i *Instance, path string) map[string]viewEntry {
	t.Helper()
	sections, _ := viewPage(t, i.Do("GET", path, "", nil))
	out := map[string]viewEntry{}
	for _, es := range sections {
		for _, e := range es {
			out[e.describe()] = e
		}
	}
	return out
}

// TestConsoleLists drives the console's lists page in a real headless
// Chromium against the real binary, as an operator would (issue 19, point
// 3): 1,002 deny-list entries (1,000 loaded through the REST API, 2 from a
// detection) paged through 50 at a time with "Next page", each entry on
// exactly one page; a search by value and filters by tag and type, which
// show what the REST API answers to the same query; adding an entry with a
// TTL (a bad TTL refused first with the server's sentence), seeing its
// expiry, then deleting it, each checked through the REST API; importing a
// plain-text feed of 3,000 addresses with the upload's progress bar
// reaching its end; a feed with a bad line and a JSON array with bad
// entries refused, naming them, nothing added; the allow list; a phone's
// width without sideways scrolling; a read user who sees the entries and
// pages but finds every change control disabled.
func TestConsoleLists(t *testing.T) {
	began := time.Now()
	a := newBackend(t, "a", false)
	i := startInstance(t, map[string]string{"enable_xff": "true", "enable_ase_detected_attack": "true"})
	detectionAPIs(t, i, servers(a))
	i.createUser("watcher", "watcher-password", "read")

	// 1,000 entries through the REST API, in one bulk import.
	var seed strings.Builder
	seed.WriteString("[")
	for n := range 1000 {
		if n > 0 {
			seed.WriteString(",")
		}
		fmt.Fprintf(&seed, `{"type": "ip", "value": "10.0.%d.%d", "reason": "seed %d"}`, n/250, n%250+1, n)
	}
	seed.WriteString("]")
	wantStatus(t, i.Do("POST", "/v5/ase/firewall/blacklist", seed.String(), nil), 200, "success", "1000 entries added to blacklist, 0 already listed")
	// A detection lists the decoy's client and its token, tagged decoy.
	if code, _, err := inlineCall(dataClient(t, 1), i, "GET", "/trap/wp-login.php", "198.51.100.9", map[string]string{"Authorization": "Bearer trap-token"}); err != nil || code != 200 {
		t.Fatalf("decoy: %d %v", code, err)
	}
	waitUntil(t, func() bool { return len(restEntries(t, i, "/v5/ase/firewall/blacklist?tag=decoy")) == 2 })
	all := restEntries(t, i, "/v5/ase/firewall/blacklist")
	if len(all) != 1002 {
		t.Fatalf("the deny list holds %d entries, want 1002", len(all))
	}

	ui := i.MgmtURL + "/ui/"
	ctx := browser(t)
	run(t, ctx, "sign in and open the lists",
		chromedp.Navigate(ui),
		chromedp.WaitVisible(chromedp.CSS("#user")),
		chromedp.SendKeys(chromedp.CSS("#user"), "admin"),
		chromedp.SendKeys(chromedp.CSS("#password"), i.Password),
		chromedp.KeyEvent("\r"),
		chromedp.WaitVisible(chromedp.CSS("#allowed-total")),
		chromedp.Click(chromedp.CSS(`nav a[href="#/lists"]`)),
		pageInfo("Page 1: entries 1–50, more follow."),
	)
	if got := eval[string](t, ctx, `document.querySelector('nav a[aria-current="page"]').textContent`); got != "Lists" {
		t.Fatalf("the current page's link is %q", got)
	}
	screenshot(t, ctx, "lists")

	// Paging through every entry, 50 at a time: each on exactly one page.
	seen := map[string]int{}
	pages := 0
	for {
		pages++
		rows := eval[[]string](t, ctx, listRows)
		if len(rows) != 50 && pages != 21 {
			t.Fatalf("page %d shows %d entries", pages, len(rows))
		}
		for _, r := range rows {
			seen[r]++
		}
		if eval[bool](t, ctx, `document.querySelector('#lists-next').disabled`) {
			break
		}
		if pages > 30 {
			t.Fatal("the pages do not end")
		}
		run(t, ctx, fmt.Sprintf("next page after page %d", pages),
			chromedp.Click(chromedp.CSS("#lists-next")),
			pageInfo(fmt.Sprintf("Page %d:", pages+1)),
		)
	}
	if pages != 21 || len(seen) != len(all) {
		t.Fatalf("%d pages showed %d different entries, want 21 pages and %d", pages, len(seen), len(all))
	}
	for r, n := range seen {
		if _, ok := all[r]; !ok || n != 1 {
			t.Fatalf("%s was shown %d times (listed: %v)", r, n, ok)
		}
	}
	if got := eval[string](t, ctx, `document.querySelector('#lists-page-info').textContent`); got != "Page 21: entries 1,001–1,002, the end of the list." {
		t.Fatalf("the last page says %q", got)
	}
	run(t, ctx, "previous page, then the first",
		chromedp.Click(chromedp.CSS("#lists-prev")),
		pageInfo("Page 20: entries 951–1,000, more follow."),
		chromedp.Click(chromedp.CSS("#lists-first")),
		pageInfo("Page 1: entries 1–50, more follow."),
		waitJS(`document.querySelector('#lists-first').disabled && document.querySelector('#lists-prev').disabled`),
	)

	// Paging with the keyboard: the focus stays on "Next page".
	run(t, ctx, "next page with the keyboard",
		chromedp.Focus(chromedp.CSS("#lists-next")),
		chromedp.KeyEvent("\r"),
		pageInfo("Page 2: entries 51–100, more follow."),
		waitJS(`document.activeElement.id === 'lists-next'`),
		chromedp.KeyEvent(" "),
		pageInfo("Page 3: entries 101–150, more follow."),
		waitJS(`document.activeElement.id === 'lists-next'`),
		chromedp.Click(chromedp.CSS("#lists-first")),
		pageInfo("Page 1: entries 1–50, more follow."),
	)

	// A search by value shows what the REST API finds.
	run(t, ctx, "search by value",
		chromedp.SendKeys(chromedp.CSS("#lists-value"), "10.0.2.22"),
		chromedp.KeyEvent("\r"),
		pageInfo("Page 1: matching entries 1–11, the end of the list."),
	)
	screenshot(t, ctx, "lists-search")
	wantRows := func(what, query string) {
		t.Helper()
		rest := restEntries(t, i, "/v5/ase/firewall/blacklist?"+query)
		rows := eval[[]string](t, ctx, listRows)
		got := slices.Sorted(slices.Values(rows))
		var want []string
		for k := range rest {
			want = append(want, k)
		}
		slices.Sort(want)
		if !slices.Equal(got, want) || len(want) == 0 {
			t.Fatalf("%s: the page shows %v, the REST API %v", what, got, want)
		}
	}
	wantRows("value 10.0.2.22", "value=10.0.2.22")

	// Filters by tag, then by tag and type.
	run(t, ctx, "filter by tag",
		clearField("#lists-value"),
		chromedp.SetValue(chromedp.CSS("#lists-tag"), "decoy"),
		chromedp.Click(chromedp.CSS("#lists-search")),
		pageInfo("Page 1: matching entries 1–2, the end of the list."),
	)
	wantRows("tag decoy", "tag=decoy")
	if got := eval[string](t, ctx, `[...document.querySelectorAll('#lists-entries tbody tr')].map(r => r.dataset.tag).join(',')`); got != "decoy,decoy" {
		t.Fatalf("tags shown: %q", got)
	}
	run(t, ctx, "filter by tag and type",
		chromedp.SetValue(chromedp.CSS("#lists-type"), "token"),
		chromedp.Click(chromedp.CSS("#lists-search")),
		pageInfo("Page 1: matching entry 1, the end of the list."),
		waitJS(`document.querySelector('#lists-entries tbody tr').dataset.value === 'trap-token'`),
	)
	screenshot(t, ctx, "lists-filter")

	// Adding an entry: a bad TTL is refused with the server's sentence,
	// then the entry is added with a TTL of 4 hours and listed with its
	// expiry.
	run(t, ctx, "add with a bad TTL",
		chromedp.Click(chromedp.CSS("#lists-reset")),
		pageInfo("Page 1: entries 1–50"),
		chromedp.SendKeys(chromedp.CSS("#add-value"), "203.0.113.7"),
		chromedp.SendKeys(chromedp.CSS("#add-ttl"), "1.5h"),
		chromedp.SendKeys(chromedp.CSS("#add-reason"), "port scan reported by the SOC"),
		chromedp.Click(chromedp.CSS("#add-submit")),
		waitJS(`document.querySelector('#add-result.error')?.textContent.includes('ttl: must be seconds or a duration such as "4h", "90m" or "7d", got "1.5h"')`),
	)
	if r := restEntries(t, i, "/v5/ase/firewall/blacklist?value=203.0.113.7"); len(r) != 0 {
		t.Fatalf("an entry with a bad TTL was added: %v", r)
	}
	run(t, ctx, "add with a TTL",
		clearField("#add-ttl"),
		chromedp.SendKeys(chromedp.CSS("#add-ttl"), "4h"),
		chromedp.Click(chromedp.CSS("#add-submit")),
		waitJS(`document.querySelector('#add-result.ok')?.textContent === 'ip 203.0.113.7 added to blacklist'`),
		chromedp.SendKeys(chromedp.CSS("#lists-value"), "203.0.113.7"),
		chromedp.Click(chromedp.CSS("#lists-search")),
		pageInfo("Page 1: matching entry 1, the end of the list."),
	)
	added := restEntries(t, i, "/v5/ase/firewall/blacklist?value=203.0.113.7")["ip 203.0.113.7"]
	if added.ExpiresAt == "" || !mustTime(t, added.ExpiresAt).Equal(mustTime(t, added.CreatedAt).Add(4*time.Hour)) || added.Reason != "port scan reported by the SOC" || added.Tag != "manual" {
		t.Fatalf("the REST API lists the entry added as %+v", added)
	}
	row := eval[[]string](t, ctx, `[...document.querySelectorAll('#lists-entries tbody tr td')].map(td => td.textContent)`)
	if len(row) != 8 || row[0] != "ip" || row[1] != "" || row[2] != "203.0.113.7" || row[3] != "manual" || row[4] != "port scan reported by the SOC" ||
		row[5] != added.CreatedAt || !regexp.MustCompile(`^`+regexp.QuoteMeta(added.ExpiresAt)+`in (3h 59m|4h)$`).MatchString(row[6]) {
		t.Fatalf("the entry added is shown as %q (the REST API: %+v)", row, added)
	}
	screenshot(t, ctx, "lists-added")

	// A cookie needs its name: the field appears for it.
	run(t, ctx, "add a cookie",
		waitJS(`['#add-value', '#add-ttl', '#add-reason'].every(s => document.querySelector(s).value === '')`),
		waitJS(`document.querySelector('#add-name').closest('div').hidden`),
		chromedp.SendKeys(chromedp.CSS("#add-type"), "c"),
		waitJS(`document.querySelector('#add-type').value === 'cookie' && !document.querySelector('#add-name').closest('div').hidden`),
		chromedp.SendKeys(chromedp.CSS("#add-name"), "SID"),
		chromedp.SendKeys(chromedp.CSS("#add-value"), "stolen-session"),
		chromedp.Click(chromedp.CSS("#add-submit")),
		waitJS(`document.querySelector('#add-result.ok')?.textContent === 'cookie SID stolen-session added to blacklist'`),
	)
	if e, ok := restEntries(t, i, "/v5/ase/firewall/blacklist?type=cookie")["cookie SID stolen-session"]; !ok || e.ExpiresAt != "" {
		t.Fatalf("the cookie added: %+v %v", e, ok)
	}

	// Deleting the entry added (confirm() is accepted).
	run(t, ctx, "delete an entry",
		chromedp.Click(chromedp.CSS(`#lists-entries button[data-delete="ip 203.0.113.7"]`)),
		pageInfo("No matching entries."),
		waitJS(`document.activeElement.id === 'lists-page-info'`),
	)
	if r := restEntries(t, i, "/v5/ase/firewall/blacklist?value=203.0.113.7"); len(r) != 0 {
		t.Fatalf("the entry deleted is still listed: %v", r)
	}
	if n := len(restEntries(t, i, "/v5/ase/firewall/blacklist")); n != 1003 {
		t.Fatalf("the deny list holds %d entries after the delete, want 1003", n)
	}

	// Importing a plain-text feed of 3,000 addresses: the upload's
	// progress reaches its end, then the server's sentence.
	dir := t.TempDir()
	var feed strings.Builder
	feed.WriteString("# a test feed\r\n")
	for n := range 3000 {
		fmt.Fprintf(&feed, "172.16.%d.%d ; entry %d\n", n/200, n%200+1, n)
	}
	feedPath := filepath.Join(dir, "feed.netset")
	if err := os.WriteFile(feedPath, []byte(feed.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, ctx, "import a feed",
		chromedp.Click(chromedp.CSS("#lists-reset")),
		pageInfo("Page 1: entries 1–50"),
		chromedp.SetUploadFiles(chromedp.CSS("#import-file"), []string{feedPath}),
		chromedp.SendKeys(chromedp.CSS("#import-reason"), "test feed"),
		chromedp.Click(chromedp.CSS("#import-submit")),
		waitJS(`document.querySelector('#import-result.ok')?.textContent === '3000 entries added to blacklist, 0 already listed'`),
	)
	prog := eval[[]float64](t, ctx, `(p => [p.value, p.max])(document.querySelector('#import-progress'))`)
	if len(prog) != 2 || prog[0] != prog[1] || prog[1] != float64(feed.Len()) {
		t.Fatalf("the progress bar is at %v, want its end, the feed's %d bytes", prog, feed.Len())
	}
	screenshot(t, ctx, "lists-import")
	feedEntries := restEntries(t, i, "/v5/ase/firewall/blacklist?value=172.16.")
	if e := feedEntries["ip 172.16.14.200"]; len(feedEntries) != 3000 || e.Reason != "test feed" || e.Tag != "manual" {
		t.Fatalf("the REST API lists %d entries of the feed; its last: %+v", len(feedEntries), e)
	}

	// A feed with a bad line, and a JSON array with bad entries: refused
	// whole, the bad ones named, nothing added.
	var bad strings.Builder
	for n := range 2000 {
		if n == 1000 {
			bad.WriteString("not-an-address\n")
		}
		fmt.Fprintf(&bad, "192.168.%d.%d\n", n/200, n%200+1)
	}
	badPath := filepath.Join(dir, "bad.txt")
	if err := os.WriteFile(badPath, []byte(bad.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, ctx, "import a feed with a bad line",
		chromedp.SetUploadFiles(chromedp.CSS("#import-file"), []string{badPath}),
		chromedp.Click(chromedp.CSS("#import-submit")),
		waitJS(`document.querySelector('#import-result.error')?.textContent === 'line 1001: "not-an-address" is not an IP address or CIDR range'`),
	)
	screenshot(t, ctx, "lists-import-error")
	if r := restEntries(t, i, "/v5/ase/firewall/blacklist?value=192.168."); len(r) != 0 {
		t.Fatalf("a refused feed added %d entries", len(r))
	}
	badJSON := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(badJSON, []byte(`[{"type": "ip", "value": "192.0.2.1"}, {"type": "ip", "value": "nope"}, {"type": "token"}, {"type": "username", "value": "mallory"}]`), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, ctx, "import a JSON array with bad entries",
		chromedp.SetUploadFiles(chromedp.CSS("#import-file"), []string{badJSON}),
		chromedp.Click(chromedp.CSS("#import-submit")),
		waitJS(`document.querySelectorAll('#import-result.error li').length === 2`),
	)
	if got := eval[[]string](t, ctx, `[...document.querySelectorAll('#import-result li')].map(li => li.textContent)`); !slices.Equal(got, []string{`[1].value: "nope" is not an IP address or CIDR range`, `[2].value: is required`}) {
		t.Fatalf("the problems shown: %q", got)
	}
	screenshot(t, ctx, "lists-import-errors")
	if r := restEntries(t, i, "/v5/ase/firewall/blacklist?value=192.0.2.1"); len(r) != 0 {
		t.Fatalf("a refused import added %v", r)
	}
	if _, ok := restEntries(t, i, "/v5/ase/firewall/blacklist?type=username")["username mallory"]; ok {
		t.Fatal("a refused import added username mallory")
	}

	truncated := filepath.Join(dir, "truncated.json")
	if err := os.WriteFile(truncated, []byte(`[{"type": "ip", "value": "192.0.2.1"}, {"type": "ip", "val`), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, ctx, "import a JSON file cut short",
		chromedp.SetUploadFiles(chromedp.CSS("#import-file"), []string{truncated}),
		chromedp.Click(chromedp.CSS("#import-submit")),
		waitJS(`document.querySelector('#import-result.error:not(:has(li))')?.textContent.startsWith('json parsing error: ')`),
	)
	t.Logf("a JSON file cut short: %s", eval[string](t, ctx, `document.querySelector('#import-result').textContent`))

	// The allow list: its own entries, no tags but manual.
	run(t, ctx, "the allow list",
		chromedp.Click(chromedp.CSS("#list-whitelist")),
		pageInfo("No entries."),
		waitJS(`document.querySelector('#lists-tag').disabled && document.querySelector('#list-whitelist').getAttribute('aria-pressed') === 'true'`),
		chromedp.SendKeys(chromedp.CSS("#add-type"), "u"),
		chromedp.SendKeys(chromedp.CSS("#add-value"), "alice"),
		chromedp.SendKeys(chromedp.CSS("#add-reason"), "partner integration"),
		chromedp.Click(chromedp.CSS("#add-submit")),
		waitJS(`document.querySelector('#add-result.ok')?.textContent === 'username alice added to whitelist'`),
		pageInfo("Page 1: entry 1, the end of the list."),
	)
	if e, ok := restEntries(t, i, "/v5/ase/firewall/whitelist")["username alice"]; !ok || e.Reason != "partner integration" {
		t.Fatalf("the allow list: %+v %v", e, ok)
	}
	screenshot(t, ctx, "lists-allow")

	// A phone's width: the page does not scroll sideways (the table does).
	run(t, ctx, "phone width",
		chromedp.EmulateViewport(390, 844),
		chromedp.Click(chromedp.CSS("#list-blacklist")),
		pageInfo("Page 1: entries 1–50, more follow."),
		waitJS(`document.documentElement.scrollWidth <= window.innerWidth`),
	)
	screenshot(t, ctx, "lists-phone")
	run(t, ctx, "back to a desktop's width", chromedp.EmulateViewport(1280, 800), waitJS(`document.documentElement.scrollWidth <= window.innerWidth`))

	// A read user sees the entries and pages, and every change control is
	// disabled. (Signing out from the overview, which signing in shows
	// again: the lists page is then rendered once, when its link is
	// clicked, not a second time over a page the test already waited for.)
	run(t, ctx, "sign out, sign in as a read user",
		chromedp.Click(chromedp.CSS(`nav a[href="#/overview"]`)),
		chromedp.WaitVisible(chromedp.CSS("#allowed-total")),
		chromedp.Click(chromedp.CSS("#signout")),
		chromedp.WaitVisible(chromedp.CSS("#user")),
		chromedp.SendKeys(chromedp.CSS("#user"), "watcher"),
		chromedp.SendKeys(chromedp.CSS("#password"), "watcher-password"),
		chromedp.KeyEvent("\r"),
		waitJS(`document.querySelector('#who-name').textContent === 'watcher (read)'`),
		chromedp.WaitVisible(chromedp.CSS("#allowed-total")),
		chromedp.Click(chromedp.CSS(`nav a[href="#/lists"]`)),
		pageInfo("Page 1: entries 1–50, more follow."),
		chromedp.Click(chromedp.CSS("#lists-next")),
		pageInfo("Page 2: entries 51–100, more follow."),
	)
	controls := eval[[]string](t, ctx, `[...document.querySelectorAll('#lists-add input, #lists-add select, #lists-add button, #lists-import input, #lists-import button, #lists-entries button')].filter(e => !e.matches(':disabled')).map(e => e.id || e.textContent)`)
	deletes := eval[int](t, ctx, `document.querySelectorAll('#lists-entries button[data-delete]:disabled').length`)
	if len(controls) != 0 || deletes != 50 {
		t.Fatalf("read user: controls enabled %q, %d delete buttons disabled (want 50)", controls, deletes)
	}
	if !eval[bool](t, ctx, `!document.querySelector('#lists-search').disabled && !document.querySelector('#lists-value').disabled`) {
		t.Fatal("read user: the search is disabled")
	}
	screenshot(t, ctx, "lists-read-user")
	refused := eval[string](t, ctx, `fetch('/v5/ase/firewall/blacklist', {method: 'DELETE', credentials: 'same-origin', headers: {'Content-Type': 'application/json'}, body: '{"type": "ip", "value": "10.0.0.1"}'}).then(r => String(r.status))`)
	if refused != "403" {
		t.Fatalf("read user: a DELETE answered %s", refused)
	}
	if n := len(restEntries(t, i, "/v5/ase/firewall/blacklist")); n != 4003 {
		t.Fatalf("the deny list holds %d entries at the end, want 4003", n)
	}
	t.Logf("the lists page's test took %v", time.Since(began).Round(time.Millisecond))
}
