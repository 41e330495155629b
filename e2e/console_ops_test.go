package e2e

// The console's audit, servers and flow-control pages (issue 19), driven
// in a real headless Chromium as a person would (clicking and typing),
// each effect checked through the management API.

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// opsClear empties an input (before typing into it).
func opsClear(sel string) chromedp.Action[chromedp.Void] {
	return waitJS(fmt.Sprintf(`(e => { e.value = ''; return true; })(document.querySelector(%q))`, sel))
}

// opsPick chooses an option of a select as a person would with the
// keyboard's result: the value changes and the page hears "change".
func opsPick(sel, value string) chromedp.Action[chromedp.Void] {
	return waitJS(fmt.Sprintf(`(s => { s.focus(); s.value = %q; s.dispatchEvent(new Event('change', {bubbles: true})); return s.value === %q; })(document.querySelector(%q))`, value, value, sel))
}

// opsEnabledControls lists the main part's controls a user can use to
// change something: buttons, inputs and selects not disabled (by
// themselves or by a disabled fieldset), by id or label.
func opsEnabledControls(t *testing.T, ctx context.Context) []string {
	t.Helper()
	return eval[[]string](t, ctx, `[...document.querySelectorAll('main button, main input, main select, main textarea')]
		.filter((e) => !e.matches(':disabled')).map((e) => e.id || e.getAttribute('aria-label') || e.textContent)`)
}

// opsSignIn opens the console at page and signs in with the keyboard.
func opsSignIn(t *testing.T, ctx context.Context, i *Instance, page, user, password, ready string) {
	t.Helper()
	run(t, ctx, "sign in as "+user,
		chromedp.Navigate(i.MgmtURL+"/ui/"+page),
		chromedp.WaitVisible(chromedp.CSS("#user")),
		chromedp.SendKeys(chromedp.CSS("#user"), user),
		chromedp.KeyEvent("\t"),
		chromedp.KeyEvent(password),
		chromedp.KeyEvent("\r"),
		chromedp.WaitVisible(chromedp.CSS(ready)),
	)
}

// TestConsoleAudit: a read user reads the audit log on its page, newest
// first, pages through it with the server's cursor (older, newer), and
// filters it by user and by action with the keyboard; what the page shows
// is what GET /v5/ase/audit answers; readable at a phone's width.
func TestConsoleAudit(t *testing.T) {
	i := startInstance(t, nil)
	i.createUser("alice", "alice-password", "write")
	i.createUser("watcher", "watcher-password", "read")
	alice := i.login("alice", "alice-password")
	for n := range 20 {
		if r := i.as("POST", fmt.Sprintf("/v5/ase/api?api_id=a%02d", n), apiDoc(fmt.Sprintf("/a%02d", n), ""), alice); r.Code != 200 {
			t.Fatalf("alice's change: %d %s", r.Code, r.Body)
		}
	}
	for n := range 8 {
		wantJSON(t, i.Do("POST", fmt.Sprintf("/v5/ase/api?api_id=z%d", n), apiDoc(fmt.Sprintf("/z%d", n), ""), nil), 200, ok)
	}
	// 30 entries: 2 create_user (admin), 20 create_api (alice), 8 (admin).
	rest := func(q string) []string {
		t.Helper()
		var p auditPage
		r := i.Do("GET", "/v5/ase/audit?limit=1000"+q, "", nil)
		if r.Code != 200 {
			t.Fatalf("GET /v5/ase/audit: %d %s", r.Code, r.Body)
		}
		decode(t, r, &p)
		var out []string
		for _, e := range p.Entries {
			key := "name=" + fmt.Sprint(e.Params["name"])
			if id, ok := e.Params["api_id"].(string); ok {
				key = "api_id=" + id
			}
			out = append(out, e.User+" "+e.Action+" "+key)
		}
		return out
	}
	all := rest("")
	if len(all) != 30 {
		t.Fatalf("the log holds %d entries, want 30: %q", len(all), all)
	}
	rows := `[...document.querySelectorAll('#audit-list tbody tr')].map((r) => r.dataset.user + ' ' + r.dataset.action + ' ' + r.querySelector('details summary')?.textContent)`

	c := browser(t)
	opsSignIn(t, c, i, "#/audit", "watcher", "watcher-password", "#audit-list")
	run(t, c, "the newest entries, first",
		waitJS(`document.querySelectorAll('#audit-list tbody tr').length === 30`),
		waitJS(`document.querySelector('#audit-list tbody tr').dataset.user === 'admin' && document.querySelector('#audit-list tbody tr summary').textContent.includes('api_id=z7')`),
		waitJS(`document.querySelector('#audit-older').disabled && document.querySelector('#audit-page-info').textContent.includes('30 entries')`),
	)
	summaries := eval[[]string](t, c, rows)
	for n, s := range summaries {
		// The page's row is the REST entry: same user, action and API (or
		// user created).
		want := strings.Fields(all[n])
		if !strings.HasPrefix(s, want[0]+" "+want[1]+" ") || !strings.Contains(s, want[2]) {
			t.Fatalf("row %d shows %q; GET /v5/ase/audit has %q", n, s, want)
		}
	}
	screenshot(t, c, "audit")

	// 25 a page: the first page, then the older five, then back.
	run(t, c, "25 a page",
		opsPick("#audit-size", "25"),
		chromedp.Click(chromedp.CSS("#audit-search")),
		waitJS(`document.querySelectorAll('#audit-list tbody tr').length === 25 && !document.querySelector('#audit-older').disabled`),
		chromedp.Click(chromedp.CSS("#audit-older")),
		waitJS(`document.querySelectorAll('#audit-list tbody tr').length === 5 && document.querySelector('#audit-older').disabled`),
	)
	older := eval[[]string](t, c, `[...document.querySelectorAll('#audit-list tbody tr')].map((r) => r.dataset.user + ' ' + r.dataset.action)`)
	if !slices.Equal(older, []string{"alice create_api", "alice create_api", "alice create_api", "admin create_user", "admin create_user"}) {
		t.Fatalf("the older page shows %q", older)
	}
	run(t, c, "back to the newer page",
		chromedp.Click(chromedp.CSS("#audit-newer")),
		waitJS(`document.querySelectorAll('#audit-list tbody tr').length === 25 && document.querySelector('#audit-newer').disabled`),
	)

	// Filters, typed and submitted with Enter.
	run(t, c, "alice's entries",
		chromedp.SendKeys(chromedp.CSS("#audit-user"), "alice"),
		chromedp.KeyEvent(kb.Enter),
		waitJS(`(() => { const r = [...document.querySelectorAll('#audit-list tbody tr')]; return r.length === 20 && r.every((x) => x.dataset.user === 'alice'); })()`),
	)
	if got := len(rest("&user=alice")); got != 20 {
		t.Fatalf("GET /v5/ase/audit?user=alice has %d entries, the page 20", got)
	}
	screenshot(t, c, "audit-user")
	run(t, c, "the create_user entries",
		opsClear("#audit-user"),
		chromedp.SendKeys(chromedp.CSS("#audit-action"), "create_user"),
		chromedp.KeyEvent(kb.Enter),
		waitJS(`(() => { const r = [...document.querySelectorAll('#audit-list tbody tr')]; return r.length === 2 && r.every((x) => x.dataset.action === 'create_user' && x.dataset.user === 'admin'); })()`),
		waitJS(`document.querySelector('#audit-page-info').textContent.includes('action create_user')`),
	)
	if got := rest("&action=create_user"); len(got) != 2 {
		t.Fatalf("GET /v5/ase/audit?action=create_user: %q", got)
	}
	run(t, c, "a user with no entries",
		chromedp.SendKeys(chromedp.CSS("#audit-user"), "nobody"),
		chromedp.Click(chromedp.CSS("#audit-search")),
		waitJS(`document.querySelector('#audit-page-info').textContent.startsWith('No entries') && !document.querySelector('#audit-list')`),
		chromedp.Click(chromedp.CSS("#audit-reset")),
		waitJS(`document.querySelectorAll('#audit-list tbody tr').length === 25`),
	)
	phoneWidth(t, c, "#audit-list", "audit-phone")
}

// TestConsoleServers: an API's servers with their health on the servers
// page; a server added with the keyboard (its limits too), refused when it
// exists already, shown Down by its failing health check, then removed
// (after a confirmation); another API chosen from the list; a read user
// finds every change control disabled; a phone's width.
func TestConsoleServers(t *testing.T) {
	i := startInstance(t, nil)
	b := newWireBackend(t)
	dead := freePort(t) // nothing listens there: its health check fails
	health := `"health_check": true, "health_check_interval": 1, "health_retry_count": 1, "health_url": "/health", `
	wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=shop", apiDoc("/shop", health+b.servers()), nil), 200, ok)
	wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=pets", apiDoc("/pets", `"servers": [{"host": "127.0.0.1", "port": 9}]`), nil), 200, ok)
	i.createUser("watcher", "watcher-password", "read")
	up := fmt.Sprintf("127.0.0.1:%d", b.port())
	down := fmt.Sprintf("127.0.0.1:%d", dead)
	row := func(addr string) string { return `#server-list tr[data-server="` + addr + `"]` }

	c := browser(t)
	opsSignIn(t, c, i, "#/servers/shop", "admin", i.Password, "#server-list")
	run(t, c, "the backend is Up",
		waitJS(`document.querySelector('`+row(up)+`')?.dataset.health === 'Up'`),
	)
	run(t, c, "add a server with the keyboard",
		chromedp.SendKeys(chromedp.CSS("#server-host"), "127.0.0.1"),
		chromedp.KeyEvent("\t"),
		chromedp.KeyEvent(fmt.Sprint(dead)),
		chromedp.KeyEvent("\t"),
		chromedp.KeyEvent("50/second"),
		chromedp.KeyEvent("\t"),
		chromedp.KeyEvent("3"),
		chromedp.KeyEvent(kb.Enter),
		waitJS(`document.querySelector('#server-add-result').className === 'ok'`),
		waitJS(`!!document.querySelector('`+row(down)+`')`),
	)
	var list struct {
		Server []struct {
			Host   string  `json:"host"`
			Port   int     `json:"port"`
			Spike  *string `json:"server_spike_threshold"`
			Quota  int     `json:"server_connection_quota"`
			Health string  `json:"health_status"`
		} `json:"server"`
	}
	decode(t, i.Do("GET", "/v5/ase/server?api_id=shop", "", nil), &list)
	if len(list.Server) != 2 || list.Server[1].Port != dead || list.Server[1].Spike == nil || *list.Server[1].Spike != "50/second" || list.Server[1].Quota != 3 {
		t.Fatalf("after adding it in the page, GET /server: %+v", list.Server)
	}
	run(t, c, "its failing health check shows",
		waitJS(`document.querySelector('`+row(down)+`')?.dataset.health === 'Down' && document.querySelector('`+row(down)+` .badge.down')`),
	)
	screenshot(t, c, "servers")

	run(t, c, "adding it again is refused, with the server's reason",
		chromedp.SendKeys(chromedp.CSS("#server-host"), "127.0.0.1"),
		chromedp.SendKeys(chromedp.CSS("#server-port"), fmt.Sprint(dead)),
		chromedp.Click(chromedp.CSS("#server-add")),
		waitJS(`document.querySelector('#server-add-result').className === 'error' && document.querySelector('#server-add-result').textContent.includes('already exists')`),
	)
	screenshot(t, c, "servers-error")

	run(t, c, "remove it",
		chromedp.Click(chromedp.CSS(`button[data-remove="`+down+`"]`)),
		waitJS(`!document.querySelector('`+row(down)+`') && !!document.querySelector('`+row(up)+`')`),
	)
	decode(t, i.Do("GET", "/v5/ase/server?api_id=shop", "", nil), &list)
	if len(list.Server) != 1 || list.Server[0].Port != b.port() {
		t.Fatalf("after removing it in the page, GET /server: %+v", list.Server)
	}

	run(t, c, "another API from the list",
		opsPick("#servers-api", "pets"),
		waitJS(`location.hash === '#/servers/pets' && !!document.querySelector('#server-list tr[data-server="127.0.0.1:9"]')`),
	)
	phoneWidth(t, c, "#server-list", "servers-phone")

	// A read user sees the servers and can change none.
	run(t, c, "sign out", chromedp.Click(chromedp.CSS("#signout")), chromedp.WaitVisible(chromedp.CSS("#user")))
	opsSignIn(t, c, i, "#/servers/shop", "watcher", "watcher-password", "#server-list")
	run(t, c, "the read user's page", waitJS(`!!document.querySelector('`+row(up)+`')`))
	if got := opsEnabledControls(t, c); !slices.Equal(got, []string{"servers-api"}) {
		t.Fatalf("a read user can use %q; want only the API list", got)
	}
	screenshot(t, c, "servers-read-user")
}

// TestConsoleFlow: an API's flow control read and changed on the flow page
// (client spike threshold with the keyboard, queueing), a bad value
// refused with the server's message and nothing changed, a server's spike
// threshold and quota changed in its form (a quota over the server's
// limit refused with its message); a read
// user finds every change control disabled; a phone's width.
func TestConsoleFlow(t *testing.T) {
	i := startInstance(t, nil)
	b := newWireBackend(t)
	wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=shop", apiDoc("/shop", `"flow_control": {"client_spike_threshold": "100/minute"}, `+b.servers()), nil), 200, ok)
	i.createUser("watcher", "watcher-password", "read")
	srv := fmt.Sprintf("127.0.0.1:%d", b.port())
	flow := func() (fc struct {
		Client   string `json:"client_spike_threshold"`
		Queueing bool   `json:"server_connection_queueing"`
	}) {
		t.Helper()
		var rep struct {
			FC *struct {
				Client   string `json:"client_spike_threshold"`
				Queueing bool   `json:"server_connection_queueing"`
			} `json:"flow_control"`
		}
		decode(t, i.Do("GET", "/v5/ase/firewall/flowcontrol?api_id=shop", "", nil), &rep)
		fc.Client, fc.Queueing = rep.FC.Client, rep.FC.Queueing
		return fc
	}

	c := browser(t)
	opsSignIn(t, c, i, "#/flow/shop", "admin", i.Password, "#flow-form")
	run(t, c, "the API's limits shown", waitJS(`document.querySelector('#flow-client').value === '100/minute' && !document.querySelector('#flow-queueing').checked`))

	run(t, c, "a new client spike threshold, with the keyboard",
		chromedp.Click(chromedp.CSS("#flow-client")),
		opsClear("#flow-client"),
		chromedp.SendKeys(chromedp.CSS("#flow-client"), "5/second"),
		chromedp.KeyEvent(kb.Enter),
		waitJS(`document.querySelector('#flow-result').className === 'ok'`),
	)
	if fc := flow(); fc.Client != "5/second" || fc.Queueing {
		t.Fatalf("after saving in the page, GET /firewall/flowcontrol: %+v", fc)
	}
	run(t, c, "queueing on",
		chromedp.Click(chromedp.CSS("#flow-queueing")),
		chromedp.Click(chromedp.CSS("#flow-save")),
		waitJS(`document.querySelector('#flow-result').className === 'ok' && document.querySelector('#flow-result').textContent.includes('server_connection_queueing')`),
	)
	if fc := flow(); fc.Client != "5/second" || !fc.Queueing {
		t.Fatalf("after turning queueing on in the page, GET /firewall/flowcontrol: %+v", fc)
	}
	run(t, c, "a bad threshold is refused with the server's message",
		opsClear("#flow-client"),
		chromedp.SendKeys(chromedp.CSS("#flow-client"), "fast"),
		chromedp.Click(chromedp.CSS("#flow-save")),
		waitJS(`document.querySelector('#flow-result').className === 'error' && document.querySelector('#flow-result').textContent.includes('client_spike_threshold')`),
	)
	screenshot(t, c, "flow-error")
	if fc := flow(); fc.Client != "5/second" {
		t.Fatalf("a refused value changed the flow control: %+v", fc)
	}

	// The server's limits, in its row.
	spike, quota := `input[data-spike="`+srv+`"]`, `input[data-quota="`+srv+`"]`
	run(t, c, "the server's limits, with Enter in its cell",
		opsClear(spike),
		chromedp.SendKeys(chromedp.CSS(spike), "20/second"),
		opsClear(quota),
		chromedp.SendKeys(chromedp.CSS(quota), "7"),
		chromedp.KeyEvent(kb.Enter),
		waitJS(`document.querySelector('[data-result="`+srv+`"]').className === 'ok'`),
	)
	var list struct {
		Server []struct {
			Spike *string `json:"server_spike_threshold"`
			Quota int     `json:"server_connection_quota"`
		} `json:"server"`
	}
	decode(t, i.Do("GET", "/v5/ase/server?api_id=shop", "", nil), &list)
	if len(list.Server) != 1 || list.Server[0].Spike == nil || *list.Server[0].Spike != "20/second" || list.Server[0].Quota != 7 {
		t.Fatalf("after saving the server's limits in the page, GET /server: %+v", list.Server)
	}
	run(t, c, "a bad quota is refused, saved with the row's button",
		opsClear(quota),
		chromedp.SendKeys(chromedp.CSS(quota), "2000000"),
		chromedp.Focus(chromedp.CSS(`button[data-save="`+srv+`"]`)),
		chromedp.KeyEvent(" "),
		waitJS(`document.querySelector('[data-result="`+srv+`"]').className === 'error' && document.querySelector('[data-result="`+srv+`"]').textContent.includes('server_connection_quota')`),
	)
	screenshot(t, c, "flow")
	decode(t, i.Do("GET", "/v5/ase/server?api_id=shop", "", nil), &list)
	if list.Server[0].Quota != 7 {
		t.Fatalf("a refused quota changed the server: %+v", list.Server)
	}
	phoneWidth(t, c, "#flow-form", "flow-phone")

	run(t, c, "sign out", chromedp.Click(chromedp.CSS("#signout")), chromedp.WaitVisible(chromedp.CSS("#user")))
	opsSignIn(t, c, i, "#/flow/shop", "watcher", "watcher-password", "#flow-form")
	run(t, c, "the read user's page", waitJS(`document.querySelector('#flow-client').value === '5/second'`))
	if got := opsEnabledControls(t, c); !slices.Equal(got, []string{"flow-api"}) {
		t.Fatalf("a read user can use %q; want only the API list", got)
	}
	screenshot(t, c, "flow-read-user")
}
