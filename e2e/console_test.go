package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// chromiumBinary finds the Debian chromium, installing it through the
// project's dependency script when it is missing: the test never skips.
func chromiumBinary(t testing.TB) string {
	t.Helper()
	for _, p := range []string{"chromium", "/usr/bin/chromium"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	cmd := exec.Command("../scripts/deps.sh")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium is missing and installing it failed: %v", err)
	}
	path, err := exec.LookPath("/usr/bin/chromium")
	if err != nil {
		t.Fatalf("chromium is still missing after installing it: %v", err)
	}
	return path
}

// browser starts a headless Chromium for the test and returns a tab.
func browser(t testing.TB, extra ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumBinary(t)),
		chromedp.NoSandbox, // the suite may run as root
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1280, 800),
		chromedp.UserDataDir(t.TempDir()),
	)
	opts = append(opts, extra...)
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancel2 := chromedp.NewContext(actx)
	t.Cleanup(cancel2)
	ctx, cancel3 := context.WithTimeout(ctx, 4*time.Minute)
	t.Cleanup(cancel3)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	// confirm() dialogs (deleting) are accepted, as an operator would.
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for _, err := range dialogs {
			if err != nil {
				return
			}
			chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
		}
	}()
	return ctx
}

// screenshots is where the console tests save their pictures of each page
// (ASE_SCREENSHOTS, or a temporary folder): for people, not compared.
func screenshot(t testing.TB, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("ASE_SCREENSHOTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "ase-console-screenshots")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(dir, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

// run runs browser actions, failing the test with what was being done.
func run(t testing.TB, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, actions...); err != nil {
		text, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("main")))
		t.Fatalf("%s: %v (the page shows: %q)", what, err, text)
	}
}

// eval evaluates a JavaScript expression (awaiting a promise).
func eval[T any](t testing.TB, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	return v
}

// waitJS waits until a JavaScript expression is true.
func waitJS(expr string) chromedp.Action[chromedp.Void] {
	return chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(90*time.Second), chromedp.WithPollingInterval(100*time.Millisecond))
}

// TestConsole drives the operator's console in a real headless Chromium
// against the real binary, as a person would: the page's security headers;
// signing in with the keyboard; the overview's figures and charts showing
// the traffic the test sends; creating an API by pasting its definition
// (an error shown at its JSON path first), then deleting it; a read user
// who sees everything and whose changes are refused; another site's page
// unable to make a change with the operator's session (CSRF); inline script
// refused by the Content-Security-Policy; a phone-width layout without
// sideways scrolling. Screenshots of each page are saved (screenshot).
func TestConsole(t *testing.T) {
	i := startInstance(t, nil)
	b := newWireBackend(t)
	wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=shop", apiDoc("/shop", `"oauth2_access_token": true, "decoy_config": {"decoy_enabled": true, "decoy_subpaths": ["/shop/admin"]}, `+b.servers()), nil), 200, ok)
	if r := i.Do("POST", "/v5/ase/firewall/blacklist", `{"type": "token", "value": "stolen"}`, nil); r.Code != 200 {
		t.Fatalf("deny-listing a token: %d %s", r.Code, r.Body)
	}
	i.createUser("watcher", "watcher-password", "read")
	ui := i.MgmtURL + "/ui/"

	// The headers every console file carries.
	resp, err := http.Get(ui)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	csp := resp.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "frame-ancestors 'none'", "base-uri 'none'"} {
		if !strings.Contains(csp, want) {
			t.Fatalf("Content-Security-Policy %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") || resp.Header.Get("X-Frame-Options") != "DENY" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("headers: %v", resp.Header)
	}

	ctx := browser(t)
	// Signing in with the keyboard only.
	run(t, ctx, "sign in",
		chromedp.Navigate(ui),
		chromedp.WaitVisible(chromedp.CSS("#user")),
		chromedp.SendKeys(chromedp.CSS("#user"), "admin"),
		chromedp.KeyEvent("\t"),
		chromedp.KeyEvent(i.Password),
		chromedp.KeyEvent("\r"),
		chromedp.WaitVisible(chromedp.CSS("#allowed-total")),
	)
	cookieJS := eval[string](t, ctx, `document.cookie`)
	if strings.Contains(cookieJS, "session_id") {
		t.Fatalf("the page's script can read the session cookie: %q", cookieJS)
	}

	// Traffic shows up in the figures and charts.
	port := i.Conf["http_ws_port"]
	for n := range 6 {
		if code, _, _ := exchange(t, port, fmt.Sprintf("GET /shop/%d HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer fine\r\n\r\n", n)); code != 200 {
			t.Fatalf("allowed request: %d", code)
		}
	}
	for range 4 {
		if code, _, _ := exchange(t, port, "GET /shop/x HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer stolen\r\n\r\n"); code != 403 {
			t.Fatalf("deny-listed token: %d", code)
		}
	}
	if r := i.Do("POST", "/v5/ase/firewall/ase_detected_attack?status=enable", "", nil); r.Code != 200 {
		t.Fatalf("enabling ASE-detected attacks: %d %s", r.Code, r.Body)
	}
	// Last, a decoy: the test's own address (and nothing after it) is
	// refused and deny-listed, and shows up as a detected attacker.
	wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=orders", apiDoc("/orders", b.servers()), nil), 200, ok)
	if code, _, _ := exchange(t, port, "GET /orders/1 HTTP/1.1\r\nHost: a\r\n\r\n"); code != 200 {
		t.Fatalf("orders: %d", code)
	}
	exchange(t, port, "GET /shop/admin HTTP/1.1\r\nHost: a\r\n\r\n")
	run(t, ctx, "the overview counts the traffic",
		waitJS(`document.querySelector('#allowed-total b')?.textContent === '7' && document.querySelector('#blocked-total b')?.textContent === '5'`),
		waitJS(`document.querySelector('#top-blocked tr[data-ip="127.0.0.1"]')?.textContent.includes('decoy')`),
		waitJS(`document.querySelector('#detections')?.textContent.includes('ip 127.0.0.1')`),
		waitJS(`[...document.querySelectorAll('#chart-reasons polyline')].some(p => p.dataset.series === 'deny_list')`),
		waitJS(`document.querySelector('#api-activity tr[data-api="shop"]')?.textContent.includes('deny_list 4')`),
		waitJS(`document.querySelector('#backends')?.textContent.includes('shop')`),
	)
	screenshot(t, ctx, "overview")
	// The charts of one API: chosen with the keyboard, kept across refreshes.
	run(t, ctx, "the charts of one API",
		chromedp.SetValue(chromedp.CSS("#overview-api"), "shop"),
		chromedp.Evaluate[chromedp.Void](`document.querySelector('#overview-api').dispatchEvent(new Event('change'))`),
		waitJS(`document.querySelector('#chart-requests h2').textContent === 'Requests per second — shop' && document.querySelector('#allowed-total b').textContent === '6' && document.querySelector('#blocked-total b').textContent === '5'`),
		chromedp.SetValue(chromedp.CSS("#overview-api"), "orders"),
		chromedp.Evaluate[chromedp.Void](`document.querySelector('#overview-api').dispatchEvent(new Event('change'))`),
		waitJS(`document.querySelector('#allowed-total b').textContent === '1' && document.querySelector('#blocked-total b').textContent === '0'`),
	)

	// Inline script is refused by the policy.
	if eval[bool](t, ctx, `(() => { const s = document.createElement('script'); s.textContent = 'window.__inline = true'; document.body.append(s); return window.__inline === true; })()`) {
		t.Fatal("an inline script ran despite the Content-Security-Policy")
	}

	// Creating an API from a pasted definition: an error at its JSON path
	// first, then the right one; then deleting it.
	run(t, ctx, "open the APIs page",
		chromedp.Click(chromedp.CSS(`nav a[href="#/apis"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#api-list tr[data-api="shop"]`)),
		chromedp.SendKeys(chromedp.CSS("#new-api-id"), "pets"),
		chromedp.SetValue(chromedp.CSS("#new-api-json"), `{"api_metadata": {"url": "/pets", "protocol": "http", "servers": [{"host": "127.0.0.1", "port": "eighty"}]}}`),
		chromedp.Click(chromedp.CSS("#new-api-create")),
		waitJS(`document.querySelector('#new-api-result')?.textContent.includes('servers[0].port')`),
	)
	screenshot(t, ctx, "api-error")
	if r := i.Do("GET", "/v5/ase/api?api_id=pets", "", nil); r.Code != 404 {
		t.Fatalf("a refused definition was stored: %d %s", r.Code, r.Body)
	}
	// The right definition, uploaded as a file.
	file := filepath.Join(t.TempDir(), "pets.json")
	if err := os.WriteFile(file, []byte(apiDoc("/pets", b.servers())), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, ctx, "create the API from an uploaded file",
		chromedp.SetUploadFiles(chromedp.CSS("#new-api-file"), []string{file}),
		waitJS(`document.querySelector('#new-api-json').value.includes('"/pets"')`),
		chromedp.Click(chromedp.CSS("#new-api-create")),
		chromedp.WaitVisible(chromedp.CSS("#edit-api-json")),
		waitJS(`document.querySelector('#edit-api-json').value.includes('/pets')`),
	)
	screenshot(t, ctx, "api")
	if r := i.Do("GET", "/v5/ase/api?api_id=pets", "", nil); r.Code != 200 || !strings.Contains(string(r.Body), "/pets") {
		t.Fatalf("the API was not created: %d %s", r.Code, r.Body)
	}
	// Edited and saved whole.
	run(t, ctx, "edit the API",
		chromedp.SetValue(chromedp.CSS("#edit-api-json"), apiDoc("/pets/v2", b.servers())),
		chromedp.Click(chromedp.CSS("#edit-api-save")),
		waitJS(`document.querySelector('#edit-api-result').textContent === 'Saved.'`),
	)
	if r := i.Do("GET", "/v5/ase/api?api_id=pets", "", nil); r.Code != 200 || !strings.Contains(string(r.Body), `"/pets/v2"`) {
		t.Fatalf("the API was not changed: %d %s", r.Code, r.Body)
	}
	run(t, ctx, "delete the API",
		chromedp.Click(chromedp.CSS("#delete-api")),
		chromedp.WaitVisible(chromedp.CSS(`#api-list tr[data-api="shop"]`)),
		waitJS(`!document.querySelector('#api-list tr[data-api="pets"]')`),
	)
	screenshot(t, ctx, "apis")
	if r := i.Do("GET", "/v5/ase/api?api_id=pets", "", nil); r.Code != 404 {
		t.Fatalf("the API was not deleted: %d %s", r.Code, r.Body)
	}

	// Another site's page cannot change anything with the operator's
	// session: a form on another origin posts to the management API
	// (another port of 127.0.0.1 is the same site, so the SameSite=Strict
	// cookie goes with it; the origin check refuses it).
	evil := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, `<form id="f" method="POST" action="%s/v5/ase/firewall?status=disable"></form><script>document.getElementById('f').submit()</script>`, i.MgmtURL)
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go evil.Serve(ln)
	defer evil.Close()
	run(t, ctx, "another site's form", chromedp.Navigate("http://"+ln.Addr().String()+"/"), waitJS(`location.port === '`+i.Conf["management_port"]+`'`))
	body := eval[string](t, ctx, `document.body.innerText`)
	if !strings.Contains(body, "cross-site request forgery") {
		t.Fatalf("the forged change was answered %q", body)
	}
	wantJSON(t, i.Do("GET", "/v5/ase/firewall", "", nil), 200, `{"status": "enabled", "status_message": "Ok"}`)

	// A phone's width: usable without sideways scrolling.
	run(t, ctx, "phone width",
		chromedp.EmulateViewport(390, 844),
		chromedp.Navigate(ui+"#/overview"),
		chromedp.WaitVisible(chromedp.CSS("#allowed-total")),
		waitJS(`document.documentElement.scrollWidth <= window.innerWidth`),
	)
	screenshot(t, ctx, "overview-phone")
	run(t, ctx, "back to a desktop's width", chromedp.EmulateViewport(1280, 800))

	// A read user sees everything and changes nothing.
	run(t, ctx, "sign out, sign in as a read user",
		chromedp.Click(chromedp.CSS("#signout")),
		chromedp.WaitVisible(chromedp.CSS("#user")),
		chromedp.SendKeys(chromedp.CSS("#user"), "watcher"),
		chromedp.SendKeys(chromedp.CSS("#password"), "watcher-password"),
		chromedp.Click(chromedp.CSS("#signin")),
		chromedp.WaitVisible(chromedp.CSS("#allowed-total")),
		chromedp.Navigate(ui+"#/apis"),
		chromedp.WaitVisible(chromedp.CSS(`#api-list tr[data-api="shop"]`)),
	)
	disabled := eval[bool](t, ctx, `document.querySelector('#new-api-create').disabled && document.querySelector('#api-list button[data-delete="shop"]').disabled`)
	// The API itself refuses it, whatever the page shows.
	refused := eval[string](t, ctx, `fetch('/v5/ase/api?api_id=shop', {method: 'DELETE', credentials: 'same-origin'}).then(r => r.status + ' ' + r.statusText)`)
	if !disabled || !strings.HasPrefix(refused, "403") {
		t.Fatalf("read user: buttons disabled %v, a DELETE answered %q", disabled, refused)
	}
	screenshot(t, ctx, "apis-read-user")
	wantJSON(t, i.Do("GET", "/v5/ase/api", "", nil), 200, `{"api_count": "2", "api": [{"api_id": "orders", "status": "loaded"}, {"api_id": "shop", "status": "loaded"}]}`)
}

// TestChangesFromOtherSitesRefused: the management API refuses a change a
// browser sends for another origin's page, whatever the credential (a
// browser attaches remembered Basic credentials and same-site cookies by
// itself); the same change from the same origin, or from a client that is
// not a browser (no Origin, no Sec-Fetch-Site), is made.
func TestChangesFromOtherSitesRefused(t *testing.T) {
	i := startInstance(t, nil)
	self := i.MgmtURL
	for _, h := range []map[string]string{
		{"Origin": "http://127.0.0.1:1"},
		{"Origin": "null"},
		{"Sec-Fetch-Site": "same-site"},
		{"Sec-Fetch-Site": "cross-site", "Origin": self},
	} {
		r := i.Do("POST", "/v5/ase/firewall?status=disable", "", h)
		if r.Code != 403 || !strings.Contains(string(r.Body), "cross-site request forgery") {
			t.Fatalf("%v: %d %s", h, r.Code, r.Body)
		}
	}
	wantJSON(t, i.Do("GET", "/v5/ase/firewall", "", map[string]string{"Origin": "http://127.0.0.1:1"}), 200, `{"status": "enabled", "status_message": "Ok"}`)
	for _, h := range []map[string]string{nil, {"Origin": self, "Sec-Fetch-Site": "same-origin"}} {
		if r := i.Do("POST", "/v5/ase/firewall?status=disable", "", h); r.Code != 200 {
			t.Fatalf("%v: %d %s", h, r.Code, r.Body)
		}
		i.Do("POST", "/v5/ase/firewall?status=enable", "", nil)
	}
	// The management root sends a browser to the console.
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(self + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 302 || resp.Header.Get("Location") != "/ui/" {
		t.Fatalf("GET /: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
}

// TestConsoleX509: with client_ca_file and the management port on TLS, the
// console offers "Sign in with my certificate", and the certificate the
// browser holds (in its NSS database, as a person's would be) signs its
// user in with that user's role.
func TestConsoleX509(t *testing.T) {
	chromiumBinary(t)
	const policy = "/etc/chromium/policies/managed/ase-e2e-client-cert.json"
	if _, err := os.Stat(policy); err != nil || !haveCommands("pk12util", "certutil", "openssl") {
		cmd := exec.Command("../scripts/deps.sh")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("installing the NSS tools and the browser's certificate policy failed: %v", err)
		}
	}
	dir := t.TempDir()
	caFile, certFile, keyFile, alice := testPKI(t, dir, "alice")
	// Alice's certificate and key, into a PKCS#12 file, into a fresh NSS
	// database under the browser's HOME.
	kb, err := x509.MarshalECPrivateKey(alice.PrivateKey.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "alice.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: alice.Certificate[0]}), 0o600)
	os.WriteFile(filepath.Join(dir, "alice.key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	home := filepath.Join(dir, "home")
	nssdb := filepath.Join(home, ".pki", "nssdb")
	if err := os.MkdirAll(nssdb, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, c := range [][]string{
		{"openssl", "pkcs12", "-export", "-in", filepath.Join(dir, "alice.pem"), "-inkey", filepath.Join(dir, "alice.key"), "-out", filepath.Join(dir, "alice.p12"), "-passout", "pass:"},
		{"certutil", "-d", "sql:" + nssdb, "-N", "--empty-password"},
		{"pk12util", "-d", "sql:" + nssdb, "-i", filepath.Join(dir, "alice.p12"), "-W", ""},
	} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", c, err, out)
		}
	}
	i := newInstance(t, map[string]string{"client_ca_file": caFile, "management_tls_cert_file": certFile, "management_tls_key_file": keyFile})
	i.MgmtURL = "https://127.0.0.1:" + i.Conf["management_port"]
	pool := x509.NewCertPool()
	caPEM, _ := os.ReadFile(caFile)
	pool.AppendCertsFromPEM(caPEM)
	old := http.DefaultClient
	http.DefaultClient = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer func() { http.DefaultClient = old }()
	i.Start()
	i.createUser("alice", "alice-password", "write")

	ctx := browser(t,
		chromedp.Env("HOME="+home),
		chromedp.Flag("ignore-certificate-errors", true),
	)
	run(t, ctx, "sign in with a certificate",
		chromedp.Navigate(i.MgmtURL+"/ui/"),
		chromedp.WaitVisible(chromedp.CSS("#signin-x509")),
		chromedp.Click(chromedp.CSS("#signin-x509")),
		chromedp.WaitVisible(chromedp.CSS("#allowed-total")),
		waitJS(`document.querySelector('#who-name').textContent === 'alice (write)'`),
	)
	screenshot(t, ctx, "overview-x509")
}

func haveCommands(names ...string) bool {
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			return false
		}
	}
	return true
}
