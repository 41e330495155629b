package e2e

// The console's sideband, users and cluster pages (issue 19, point 3),
// driven in a real headless Chromium as a person would (clicking and
// typing), each effect checked through the management API.

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/ase-project/ase/internal/wire"
)

// consoleSignIn opens the console at page (a #/ address) and signs in.
func consoleSignIn(t *testing.T, ctx context.Context, i *Instance, page, user, password string) {
	t.Helper()
	run(t, ctx, "sign in as "+user,
		chromedp.Navigate(i.MgmtURL+"/ui/"+page),
		chromedp.WaitVisible(chromedp.CSS("#user")),
		chromedp.SendKeys(chromedp.CSS("#user"), user),
		chromedp.SendKeys(chromedp.CSS("#password"), password),
		chromedp.Click(chromedp.CSS("#signin")),
		waitJS(`document.getElementById('who-name')?.textContent.startsWith(`+jsString(user)+`) && !document.getElementById('who').hidden`),
	)
}

// consoleSignOut signs out through the header's button.
func consoleSignOut(t *testing.T, ctx context.Context) {
	t.Helper()
	run(t, ctx, "sign out", chromedp.Click(chromedp.CSS("#signout")), chromedp.WaitVisible(chromedp.CSS("#user")))
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// phoneWidth checks that the current page reads at a phone's width without
// sideways scrolling, saves a screenshot, and goes back to a desktop's.
func phoneWidth(t *testing.T, ctx context.Context, ready, name string) {
	t.Helper()
	run(t, ctx, "phone width",
		chromedp.EmulateViewport(390, 844),
		chromedp.Reload(),
		chromedp.WaitVisible(chromedp.CSS(ready)),
		waitJS(`document.documentElement.scrollWidth <= window.innerWidth`),
	)
	screenshot(t, ctx, name)
	run(t, ctx, "back to a desktop's width", chromedp.EmulateViewport(1280, 800), chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS(ready)))
}

// onceGone checks that a value shown once is nowhere in the page, its
// storage or its address.
func onceGone(t *testing.T, ctx context.Context, value, when string) {
	t.Helper()
	v := jsString(value)
	if eval[bool](t, ctx, `document.getElementById('once-value') !== null || document.body.textContent.includes(`+v+`) ||
		JSON.stringify(sessionStorage).includes(`+v+`) || JSON.stringify(localStorage).includes(`+v+`) || location.href.includes(`+v+`)`) {
		t.Fatalf("%s: the value shown once is still in the page, its storage or its address", when)
	}
}

// onceShown waits for the box of a value shown once and returns the value.
func onceShown(t *testing.T, ctx context.Context) string {
	t.Helper()
	run(t, ctx, "the new value shown once",
		chromedp.WaitVisible(chromedp.CSS("#once-value")),
		waitJS(`document.getElementById('once-note').textContent.includes('will not be shown again')`),
	)
	v := eval[string](t, ctx, `document.getElementById('once-value').textContent`)
	// Nothing but the page's variable holds it.
	if eval[bool](t, ctx, `JSON.stringify(sessionStorage).includes(`+jsString(v)+`) || JSON.stringify(localStorage).includes(`+jsString(v)+`) || location.href.includes(`+jsString(v)+`)`) {
		t.Fatal("the value shown once was stored or put in the address")
	}
	return v
}

// enabledButtons lists the main part's buttons a user can press.
func enabledButtons(t *testing.T, ctx context.Context) []string {
	t.Helper()
	return eval[[]string](t, ctx, `[...document.querySelectorAll('main button')].filter((b) => !b.disabled).map((b) => b.id || b.getAttribute('aria-label') || b.textContent)`)
}

// TestConsoleSideband: the sideband page switches authentication on;
// creates a shared secret (with the keyboard; generated in the page),
// shows it once, never
// lists it, forgets it on a reload; activates it (a gateway's call with it
// is then accepted); changes the secret header; deletes a sideband token and
// creates one (shown once); at a phone's width; a read user finds every
// change control disabled.
func TestConsoleSideband(t *testing.T) {
	i := startSideband(t, map[string]string{"enable_sideband_authentication": "false"})
	i.createUser("watcher", "watcher-password", "read")
	var created wire.TokenCreated
	decode(t, i.Do("POST", "/v5/ase/sideband/token", "", nil), &created)
	old := created.Token
	gateway := `{"source_ip": "198.51.100.1", "method": "GET", "url": "/shop", "body": ""}`

	ctx := browser(t)
	consoleSignIn(t, ctx, i, "#/sideband", "admin", i.Password)
	run(t, ctx, "the sideband page",
		chromedp.WaitVisible(chromedp.CSS(`#token-list tr[data-token="`+old[:6]+`"]`)),
		chromedp.WaitVisible(chromedp.CSS("#secret-none")),
		waitJS(`document.getElementById('sb-auth-status')?.textContent.includes('disabled')`),
		waitJS(`document.getElementById('secret-header').value === 'CLIENT-TOKEN'`),
	)
	if eval[bool](t, ctx, `document.getElementById('sb-tokens').textContent.includes(`+jsString(old)+`)`) {
		t.Fatal("the token list shows a whole token")
	}

	// The authentication switch.
	run(t, ctx, "enable sideband authentication",
		chromedp.Click(chromedp.CSS("#sb-auth-toggle")),
		waitJS(`document.getElementById('sb-auth-status')?.textContent.includes('enabled')`),
	)
	wantJSON(t, i.Do("GET", "/v5/ase/sideband/authentication", "", nil), 200, `{"status": "enabled", "status_message": "Sideband authentication is enabled"}`)
	if r := i.Data("POST", "/sideband/request", gateway, nil); r.Code != 401 {
		t.Fatalf("a gateway's call without credentials: %d %s", r.Code, r.Body)
	}

	// A shared secret, generated in the page, shown once.
	// With the keyboard: the name typed, Enter (the secret left empty: the
	// page generates it).
	run(t, ctx, "create a shared secret",
		chromedp.SendKeys(chromedp.CSS("#new-secret-name"), "gw-2026\r"),
		chromedp.WaitVisible(chromedp.CSS(`#secret-list tr[data-secret="gw-2026"]`)),
	)
	secret := onceShown(t, ctx)
	if len(secret) != 32 {
		t.Fatalf("generated secret %q: want 32 characters", secret)
	}
	screenshot(t, ctx, "sideband-secret-once")
	if eval[bool](t, ctx, `document.getElementById('sb-secrets').textContent.includes(`+jsString(secret)+`)`) {
		t.Fatal("the secrets' list shows the secret")
	}
	r := i.Do("GET", "/v5/ase/sideband/secret", "", nil)
	var secrets wire.SharedSecrets
	decode(t, r, &secrets)
	if len(secrets.Secrets) != 1 || secrets.Secrets[0].Name != "gw-2026" || secrets.Secrets[0].Active || strings.Contains(string(r.Body), secret) {
		t.Fatalf("shared secrets after creating one: %s", r.Body)
	}

	// Gone on a reload, and when the page is left.
	run(t, ctx, "reload", chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS(`#secret-list tr[data-secret="gw-2026"]`)))
	onceGone(t, ctx, secret, "after a reload")
	run(t, ctx, "create a token, leave the page and come back",
		chromedp.Click(chromedp.CSS("#new-token")),
		chromedp.WaitVisible(chromedp.CSS("#once-value")),
	)
	token := onceShown(t, ctx)
	if !regexp.MustCompile(`^[a-z0-9]{32}$`).MatchString(token) {
		t.Fatalf("new token %q", token)
	}
	run(t, ctx, "the new token listed by its first characters",
		chromedp.WaitVisible(chromedp.CSS(`#token-list tr[data-token="`+token[:6]+`"]`)),
		chromedp.Click(chromedp.CSS(`nav a[href="#/overview"]`)),
		chromedp.WaitVisible(chromedp.CSS("#allowed-total")),
		chromedp.Click(chromedp.CSS(`nav a[href="#/sideband"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#token-list tr[data-token="`+token[:6]+`"]`)),
	)
	onceGone(t, ctx, token, "after leaving the page")
	if !strings.Contains(string(i.Do("GET", "/v5/ase/sideband/token", "", nil).Body), token) {
		t.Fatal("the token created in the page is not listed by the API")
	}
	if r := i.Data("POST", "/sideband/request", gateway, map[string]string{"ASE-Token": token}); r.Code != 200 {
		t.Fatalf("a gateway's call with the new token: %d %s", r.Code, r.Body)
	}

	// Activating the secret: the value shown once is accepted.
	if r := i.Data("POST", "/sideband/request", gateway, map[string]string{"CLIENT-TOKEN": secret}); r.Code != 401 {
		t.Fatalf("an inactive secret: %d %s", r.Code, r.Body)
	}
	run(t, ctx, "activate the secret",
		chromedp.Click(chromedp.CSS(`button[data-toggle-secret="gw-2026"]`)),
		waitJS(`document.querySelector('#secret-list tr[data-secret="gw-2026"] .badge')?.textContent === 'active'`),
		waitJS(`document.querySelector('button[data-delete-secret="gw-2026"]').disabled`),
	)
	decode(t, i.Do("GET", "/v5/ase/sideband/secret", "", nil), &secrets)
	if len(secrets.Secrets) != 1 || !secrets.Secrets[0].Active {
		t.Fatalf("the secret was not activated: %+v", secrets)
	}
	if r := i.Data("POST", "/sideband/request", gateway, map[string]string{"CLIENT-TOKEN": secret}); r.Code != 200 {
		t.Fatalf("a gateway's call with the activated secret: %d %s", r.Code, r.Body)
	}

	// The secret's header.
	run(t, ctx, "change the secret header",
		chromedp.SetValue(chromedp.CSS("#secret-header"), "X-Gateway-Secret"),
		chromedp.Click(chromedp.CSS("#secret-header-save")),
		waitJS(`document.getElementById('secret-header-now')?.textContent.includes('X-Gateway-Secret')`),
	)
	wantJSON(t, i.Do("GET", "/v5/ase/sideband/secret/header", "", nil), 200, `{"header": "X-Gateway-Secret"}`)
	if r := i.Data("POST", "/sideband/request", gateway, map[string]string{"X-Gateway-Secret": secret}); r.Code != 200 {
		t.Fatalf("the secret in the new header: %d %s", r.Code, r.Body)
	}
	screenshot(t, ctx, "sideband")

	// Deleting a token.
	run(t, ctx, "delete the first token",
		chromedp.Click(chromedp.CSS(`#token-list tr[data-token="`+old[:6]+`"] button`)),
		waitJS(`!document.querySelector('#token-list tr[data-token="`+old[:6]+`"]')`),
		chromedp.WaitVisible(chromedp.CSS(`#token-list tr[data-token="`+token[:6]+`"]`)),
	)
	if body := string(i.Do("GET", "/v5/ase/sideband/token", "", nil).Body); strings.Contains(body, old) || !strings.Contains(body, token) {
		t.Fatalf("tokens after deleting one: %s", body)
	}
	if r := i.Data("POST", "/sideband/request", gateway, map[string]string{"ASE-Token": old}); r.Code != 401 {
		t.Fatalf("a deleted token: %d %s", r.Code, r.Body)
	}

	phoneWidth(t, ctx, `#secret-list tr[data-secret="gw-2026"]`, "sideband-phone")

	// A read user sees it all and can change nothing.
	consoleSignOut(t, ctx)
	consoleSignIn(t, ctx, i, "#/sideband", "watcher", "watcher-password")
	run(t, ctx, "the read user's sideband page",
		chromedp.WaitVisible(chromedp.CSS(`#secret-list tr[data-secret="gw-2026"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#token-list tr[data-token="`+token[:6]+`"]`)),
		chromedp.WaitVisible(chromedp.CSS("#sb-auth-toggle")),
	)
	if b := enabledButtons(t, ctx); len(b) != 0 {
		t.Fatalf("a read user can press %q", b)
	}
	screenshot(t, ctx, "sideband-read-user")
}

// TestConsoleUsers: an admin (a local user) creates a user, changes their
// role and password, creates an API key for themself (token shown once,
// gone after a reload) and one for the new user, deletes it, deletes the
// user; at a phone's width; a read user is told that users need the admin
// role (and the API refuses them), sees only their own keys, and creates
// one (API keys are every role's own, and read-only).
func TestConsoleUsers(t *testing.T) {
	i := startInstance(t, nil)
	i.createUser("ops", "ops-password", "admin")
	i.createUser("watcher", "watcher-password", "read")
	const users = "/api/configuration/aaa/local_database/users"
	const keys = "/api/configuration/aaa/local_database/api_keys"
	type item struct {
		Key  string `json:"key"`
		Body struct {
			Name, Username, Role, Token string
		} `json:"body"`
	}
	var list struct{ Items []item }

	ctx := browser(t)
	consoleSignIn(t, ctx, i, "#/users", "ops", "ops-password")
	run(t, ctx, "the users page", chromedp.WaitVisible(chromedp.CSS(`#user-list tr[data-user="watcher"]`)), chromedp.WaitVisible(chromedp.CSS("#key-none")))

	run(t, ctx, "create a user",
		chromedp.SendKeys(chromedp.CSS("#new-user-name"), "carol"),
		chromedp.SendKeys(chromedp.CSS("#new-user-password"), "carol-password"),
		chromedp.SetValue(chromedp.CSS("#new-user-role"), "write"),
		chromedp.Click(chromedp.CSS("#new-user-create")),
		waitJS(`document.querySelector('#user-list tr[data-user="carol"] td.role')?.textContent === 'write'`),
	)
	var u item
	decode(t, i.Do("GET", users+"/carol", "", nil), &u)
	if u.Body.Role != "write" {
		t.Fatalf("carol: %+v", u)
	}
	i.login("carol", "carol-password")
	screenshot(t, ctx, "users")

	run(t, ctx, "change carol's role",
		chromedp.SetValue(chromedp.CSS("#edit-user"), "carol"),
		chromedp.SetValue(chromedp.CSS("#edit-user-role"), "read"),
		chromedp.Click(chromedp.CSS("#edit-user-save")),
		waitJS(`document.querySelector('#user-list tr[data-user="carol"] td.role')?.textContent === 'read'`),
	)
	decode(t, i.Do("GET", users+"/carol", "", nil), &u)
	if u.Body.Role != "read" {
		t.Fatalf("carol's role was not changed: %+v", u)
	}
	run(t, ctx, "change carol's password",
		chromedp.SetValue(chromedp.CSS("#edit-user"), "carol"),
		chromedp.SendKeys(chromedp.CSS("#edit-user-password"), "carol-new-password"),
		chromedp.Click(chromedp.CSS("#edit-user-save")),
		waitJS(`document.getElementById('toast').textContent.includes('User carol changed: their sessions have ended')`),
	)
	i.login("carol", "carol-new-password")

	// An API key of one's own: the token once.
	run(t, ctx, "create an API key",
		chromedp.SendKeys(chromedp.CSS("#new-key-name"), "ops laptop"),
		chromedp.Click(chromedp.CSS("#new-key-create")),
		chromedp.WaitVisible(chromedp.CSS(`#key-list tr[data-key-name="ops laptop"]`)),
	)
	tok := onceShown(t, ctx)
	screenshot(t, ctx, "users-key-once")
	if eval[bool](t, ctx, `document.getElementById('api-keys').textContent.includes(`+jsString(tok)+`)`) {
		t.Fatal("the API key list shows the token")
	}
	if r := i.as("GET", "/v5/ase/status", "", map[string]string{"Authorization": "apikey " + tok}); r.Code != 200 {
		t.Fatalf("the token shown once does not read: %d %s", r.Code, r.Body)
	}
	r := i.Do("GET", keys, "", nil)
	decode(t, r, &list)
	if len(list.Items) != 1 || list.Items[0].Body.Username != "ops" || list.Items[0].Body.Name != "ops laptop" || strings.Contains(string(r.Body), tok) {
		t.Fatalf("API keys: %s", r.Body)
	}
	run(t, ctx, "reload", chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS(`#key-list tr[data-key-name="ops laptop"]`)))
	onceGone(t, ctx, tok, "after a reload")

	// One for another user, deleted.
	run(t, ctx, "create an API key for carol",
		chromedp.SendKeys(chromedp.CSS("#new-key-name"), "carol scraper"),
		chromedp.SetValue(chromedp.CSS("#new-key-user"), "carol"),
		chromedp.Click(chromedp.CSS("#new-key-create")),
		chromedp.WaitVisible(chromedp.CSS(`#key-list tr[data-key-name="carol scraper"]`)),
	)
	carolTok := onceShown(t, ctx)
	decode(t, i.Do("GET", keys, "", nil), &list)
	var carolKey string
	for _, k := range list.Items {
		if k.Body.Name == "carol scraper" && k.Body.Username == "carol" {
			carolKey = k.Key
		}
	}
	if carolKey == "" {
		t.Fatalf("no key of carol's: %+v", list)
	}
	if r := i.as("GET", "/v5/ase/status", "", map[string]string{"Authorization": "apikey " + carolTok}); r.Code != 200 {
		t.Fatalf("carol's token: %d %s", r.Code, r.Body)
	}
	run(t, ctx, "delete carol's key",
		chromedp.Click(chromedp.CSS(`button[data-delete-key="`+carolKey+`"]`)),
		waitJS(`!document.querySelector('#key-list tr[data-key-name="carol scraper"]')`),
	)
	if r := i.Do("GET", keys+"/"+carolKey, "", nil); r.Code != 404 {
		t.Fatalf("carol's deleted key: %d %s", r.Code, r.Body)
	}

	run(t, ctx, "delete carol",
		chromedp.Click(chromedp.CSS(`button[data-delete-user="carol"]`)),
		waitJS(`!document.querySelector('#user-list tr[data-user="carol"]')`),
		chromedp.WaitVisible(chromedp.CSS(`#user-list tr[data-user="watcher"]`)),
	)
	if r := i.Do("GET", users+"/carol", "", nil); r.Code != 404 {
		t.Fatalf("carol after deleting her: %d %s", r.Code, r.Body)
	}
	if eval[bool](t, ctx, `document.querySelector('button[data-delete-user="admin"]').disabled`) != true {
		t.Fatal("the built-in admin's delete button is enabled")
	}

	phoneWidth(t, ctx, `#user-list tr[data-user="watcher"]`, "users-phone")

	// A read user: users need the admin role; their own keys only.
	consoleSignOut(t, ctx)
	consoleSignIn(t, ctx, i, "#/users", "watcher", "watcher-password")
	run(t, ctx, "the read user's page",
		chromedp.WaitVisible(chromedp.CSS("#users-need-admin")),
		chromedp.WaitVisible(chromedp.CSS("#key-none")),
	)
	if text := eval[string](t, ctx, `document.getElementById('users-need-admin').textContent`); !strings.Contains(text, "needs the admin role") {
		t.Fatalf("the read user is told %q", text)
	}
	wantAPIError(t, i.as("GET", users, "", i.login("watcher", "watcher-password")), 403, "PermissionDenied")
	if eval[bool](t, ctx, `document.getElementById('api-keys').textContent.includes('ops laptop')`) {
		t.Fatal("a read user sees another user's API key")
	}
	// Every other control of the page is a change of configuration; the
	// API lets every role make (and delete) its own read-only API keys.
	if b := enabledButtons(t, ctx); len(b) != 1 || b[0] != "new-key-create" {
		t.Fatalf("a read user can press %q", b)
	}
	run(t, ctx, "a read user's own API key",
		chromedp.SendKeys(chromedp.CSS("#new-key-name"), "watcher scraper"),
		chromedp.Click(chromedp.CSS("#new-key-create")),
		chromedp.WaitVisible(chromedp.CSS(`#key-list tr[data-key-name="watcher scraper"]`)),
	)
	wTok := onceShown(t, ctx)
	screenshot(t, ctx, "users-read-user")
	wk := map[string]string{"Authorization": "apikey " + wTok}
	if r := i.as("GET", "/v5/ase/status", "", wk); r.Code != 200 {
		t.Fatalf("the read user's key: %d %s", r.Code, r.Body)
	}
	if r := i.as("POST", "/v5/ase/firewall?status=disable", "", wk); r.Code != 403 {
		t.Fatalf("the read user's key changed the firewall: %d %s", r.Code, r.Body)
	}
}

// TestConsoleCluster: a standalone node's cluster page says it is not in
// cluster mode; a node of a real two-node cluster (with etcd) lists both
// nodes active, then the other as inactive once it is stopped.
func TestConsoleCluster(t *testing.T) {
	alone := startInstance(t, nil)
	e := startEtcd(t)
	nodes := startCluster(t, e, 2, nil)
	a, b := nodes[0], nodes[1]
	ua, ub := nodeUUID(t, a), nodeUUID(t, b)

	ctx := browser(t)
	consoleSignIn(t, ctx, alone, "#/cluster", "admin", alone.Password)
	run(t, ctx, "the standalone node's cluster page", chromedp.WaitVisible(chromedp.CSS("#cluster-none")))
	if text := eval[string](t, ctx, `document.getElementById('cluster-none').textContent`); !strings.Contains(text, "not in cluster mode") {
		t.Fatalf("a standalone node says %q", text)
	}
	if r := alone.Do("GET", "/v5/ase/cluster", "", nil); r.Code != 404 || !strings.Contains(string(r.Body), "no_cluster_mode") {
		t.Fatalf("GET /cluster standalone: %d %s", r.Code, r.Body)
	}
	screenshot(t, ctx, "cluster-standalone")

	consoleSignIn(t, ctx, a, "#/cluster", "admin", a.Password)
	run(t, ctx, "both nodes active",
		waitJS(`document.querySelector('#node-list tr[data-uuid="`+ua+`"]')?.dataset.status === 'active' && document.querySelector('#node-list tr[data-uuid="`+ub+`"]')?.dataset.status === 'active'`),
		waitJS(`document.getElementById('cluster-id').textContent === 'c1' && document.getElementById('cluster-active').textContent === '2 of 2'`),
	)
	if !eval[bool](t, ctx, `document.querySelector('#node-list tr[data-uuid="`+ua+`"]').textContent.includes('this console')`) {
		t.Fatal("the node serving the console is not marked")
	}
	screenshot(t, ctx, "cluster")

	b.Stop()
	run(t, ctx, "the stopped node inactive",
		waitJS(`document.querySelector('#node-list tr[data-uuid="`+ub+`"]')?.dataset.status === 'inactive' && document.getElementById('cluster-active').textContent === '1 of 2'`),
	)
	if v := clusterView(t, a); nodeStatus(v, ub) != "inactive" || nodeStatus(v, ua) != "active" {
		t.Fatalf("GET /cluster after stopping a node: %+v", v)
	}
	screenshot(t, ctx, "cluster-node-down")
	phoneWidth(t, ctx, `#node-list tr[data-uuid="`+ua+`"]`, "cluster-phone")
}
