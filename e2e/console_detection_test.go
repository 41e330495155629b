package e2e

import (
	"slices"
	"strings"
	"testing"

	"github.com/ase-project/ase/internal/wire"
	"github.com/chromedp/chromedp"
)

// TestConsoleDetection drives the console's Detection page in a real
// headless Chromium against the real binary (issue 20): a client found by
// behavioural detection (a policy's tiny request threshold, crossed
// through the data port) is in the attack list with its attack type, and
// its row opens onto its evidence (observed against the threshold, the
// sample requests); cleared from the page, the API lists it active no
// more; a detector's mode and a threshold override set through the page's
// forms, each keeping the rest of the policy; the report-only switch; and
// a read user who sees the list, the evidence and the thresholds but is
// offered no change.
func TestConsoleDetection(t *testing.T) {
	backend := newBackend(t, "b", false)
	i := startInstance(t, map[string]string{"enable_abs": "true", "enable_xff": "true", "abs_training_period": "1h", "abs_window": "1m"})
	wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=shop", apiDoc("/shop", servers(backend)), nil), 200, ok)
	i.createUser("watcher", "watcher-password", "read")
	// Three requests a window at most (an override applies during
	// training too): a client sending more is found at once.
	wantJSON(t, i.Do("PUT", "/v5/ase/abs/shop/policy", `{"thresholds": {"requests": 3}}`, nil), 200,
		`{"status": "success", "status_message": "detection policy of api shop updated", "api_id": "shop", "policy": {"thresholds": {"requests": 3}}}`)
	c := dataClient(t, 2)
	active := func(ip string) bool {
		for _, a := range absAttackList(t, i, "/v4/abs/attacklist?status=active").IPs {
			if a.IP == ip {
				return true
			}
		}
		return false
	}
	detect := func(ip string) {
		t.Helper()
		eventually(t, ip+" on the attack list", func() bool {
			for range 5 {
				if _, _, err := inlineCall(c, i, "GET", "/shop/items", ip, nil); err != nil {
					t.Fatalf("request from %s: %v", ip, err)
				}
			}
			return active(ip)
		})
	}
	detect("127.0.0.9")

	ctx := browser(t)
	consoleSignIn(t, ctx, i, "#/detection", "admin", i.Password)
	row := `document.querySelector('#abs-attack-list tr[data-value="127.0.0.9"]')`
	run(t, ctx, "the attack list shows the client",
		waitJS(`document.querySelector('nav a[href="#/detection"]')?.getAttribute('aria-current') === 'page'`),
		waitJS(row+`?.dataset.status === 'active' && `+row+`.dataset.api === 'shop' && `+row+`.textContent.includes('Extreme Client Activity Attack')`),
		waitJS(`document.querySelector('#abs-enabled')?.dataset.on === 'true' && document.querySelector('#abs-enforcing')?.dataset.on === 'true'`),
		waitJS(`document.querySelector('#abs-training')?.dataset.training === 'true' && document.querySelector('#abs-api')?.dataset.api === 'shop'`),
		waitJS(`document.querySelector('#abs-thresholds tr[data-figure="requests"] td[data-identity="ip"]')?.dataset.threshold === '3'`),
	)
	// Its evidence, expanded.
	run(t, ctx, "the evidence",
		chromedp.Click(chromedp.CSS(`#abs-attack-list button[data-evidence="ip 127.0.0.9"]`)),
		waitJS(`(b => b.getAttribute('aria-expanded') === 'true' && !document.getElementById(b.getAttribute('aria-controls')).hidden)(document.querySelector('button[data-evidence="ip 127.0.0.9"]'))`),
	)
	ev := eval[map[string]string](t, ctx, `(() => {
		const box = document.getElementById(document.querySelector('button[data-evidence="ip 127.0.0.9"]').getAttribute('aria-controls'));
		const fact = (k) => box.querySelector('tr[data-fact="' + k + '"] td').textContent;
		return {detector: fact('detector'), figure: fact('figure'), observed: fact('observed'), threshold: fact('threshold'),
			window: fact('window'), samples: [...box.querySelectorAll('.abs-samples tbody tr')].map((r) => r.textContent).join(' | ')};
	})()`)
	if ev["detector"] != "extreme_client_activity (enforce)" || ev["figure"] != "requests" || ev["threshold"] != "3 (override)" ||
		ev["observed"] == "" || ev["observed"] == "3" || ev["window"] != "1m0s" ||
		!strings.Contains(ev["samples"], "GET") || !strings.Contains(ev["samples"], "/shop/items") || !strings.Contains(ev["samples"], "127.0.0.9") {
		t.Fatalf("the evidence shows %q", ev)
	}
	screenshot(t, ctx, "detection")

	// Cleared from the page (the confirmation accepted): listed as
	// expired, no longer active.
	run(t, ctx, "clear the client",
		chromedp.Click(chromedp.CSS(`#abs-attack-list button[data-clear="ip 127.0.0.9"]`)),
		waitJS(row+`?.dataset.status === 'expired' && !document.querySelector('button[data-clear="ip 127.0.0.9"]')`),
	)
	if active("127.0.0.9") {
		t.Fatalf("still active after the page cleared it: %+v", absAttackList(t, i, "/v4/abs/attacklist"))
	}
	if code, _, err := inlineCall(c, i, "GET", "/shop/items", "127.0.0.9", nil); err != nil || code != 200 {
		t.Fatalf("the cleared client got %d %v", code, err)
	}
	run(t, ctx, "the status filter",
		opsPick("#abs-status", "active"),
		waitJS(`document.querySelector('#abs-attacks-info').textContent === 'No active attacks.' && !document.querySelector('#abs-attack-list')`),
		opsPick("#abs-status", "expired"),
		waitJS(row+`?.dataset.status === 'expired'`),
	)

	// A detector's mode through the form: the threshold override stays.
	status := func() wire.ABSAPIStatus {
		t.Helper()
		var s wire.ABSAPIStatus
		decode(t, i.Do("GET", "/v5/ase/abs/shop", "", nil), &s)
		return s
	}
	override := func(s wire.ABSAPIStatus, figure string) float64 {
		for _, f := range s.Figures {
			if f.Figure == figure && f.Override {
				return f.Threshold
			}
		}
		return 0
	}
	run(t, ctx, "set api_probing to report",
		opsPick("#abs-mode-detector", "api_probing"),
		waitJS(`document.querySelector('#abs-mode-value').value === 'enforce'`),
		opsPick("#abs-mode-value", "report"),
		chromedp.Click(chromedp.CSS("#abs-mode-set")),
		waitJS(`document.querySelector('#abs-modes tr[data-detector="api_probing"]')?.dataset.mode === 'report'`),
		waitJS(`document.querySelector('#abs-policy-result')?.textContent === 'detection policy of api shop updated'`),
	)
	if s := status(); s.Modes["api_probing"] != "report" || s.Modes["extreme_client_activity"] != "enforce" || override(s, "requests") != 3 {
		t.Fatalf("after setting a mode: modes %v, requests override %v", s.Modes, override(s, "requests"))
	}
	// A threshold override through the form: the mode stays.
	run(t, ctx, "set the requests threshold to 4",
		opsPick("#abs-threshold-figure", "requests"),
		waitJS(`document.querySelector('#abs-threshold-value').value === '3'`),
		opsClear("#abs-threshold-value"),
		chromedp.SendKeys(chromedp.CSS("#abs-threshold-value"), "4"),
		chromedp.Click(chromedp.CSS("#abs-threshold-set")),
		waitJS(`document.querySelector('#abs-thresholds tr[data-figure="requests"] td[data-identity="token"]')?.dataset.threshold === '4'`),
	)
	if s := status(); s.Modes["api_probing"] != "report" || override(s, "requests") != 4 {
		t.Fatalf("after setting a threshold: modes %v, requests override %v", s.Modes, override(s, "requests"))
	}
	screenshot(t, ctx, "detection-policy")

	// The report-only switch, and back.
	run(t, ctx, "report only",
		chromedp.Click(chromedp.CSS("#abs-enforce-toggle")),
		waitJS(`document.querySelector('#abs-enforcing')?.dataset.on === 'false'`),
	)
	wantJSON(t, i.Do("GET", "/v5/ase/firewall/abs_attack", "", nil), 200, `{"status": "disabled", "status_message": "Ok"}`)
	run(t, ctx, "enforcing again",
		chromedp.Click(chromedp.CSS("#abs-enforce-toggle")),
		waitJS(`document.querySelector('#abs-enforcing')?.dataset.on === 'true'`),
	)
	wantJSON(t, i.Do("GET", "/v5/ase/firewall/abs_attack", "", nil), 200, `{"status": "enabled", "status_message": "Ok"}`)

	// Another client found, active: a read user sees it and its evidence,
	// and is offered no change.
	detect("127.0.0.10")
	consoleSignOut(t, ctx)
	consoleSignIn(t, ctx, i, "#/detection", "watcher", "watcher-password")
	row10 := `document.querySelector('#abs-attack-list tr[data-value="127.0.0.10"]')`
	run(t, ctx, "the read user's page",
		waitJS(row10+`?.dataset.status === 'active' && `+row10+`.textContent.includes('Extreme Client Activity Attack')`),
		waitJS(`document.querySelector('#abs-modes tr[data-detector="api_probing"]')?.dataset.mode === 'report'`),
		waitJS(`document.querySelector('#abs-enabled')?.dataset.on === 'true' && !!document.querySelector('#abs-read-only')`),
		chromedp.Click(chromedp.CSS(`#abs-attack-list button[data-evidence="ip 127.0.0.10"]`)),
		waitJS(`(b => b.getAttribute('aria-expanded') === 'true' && !document.getElementById(b.getAttribute('aria-controls')).hidden)(document.querySelector('button[data-evidence="ip 127.0.0.10"]'))`),
	)
	if n := eval[int](t, ctx, `document.querySelectorAll('#abs-toggle, #abs-enforce-toggle, [data-clear], #abs-policy, #abs-mode-form, #abs-threshold-form, #abs-policy-reset, #abs-retrain').length`); n != 0 {
		t.Fatalf("the read user is shown %d write controls", n)
	}
	// What the read user can use: the filter, the API chooser and the
	// evidence toggles only.
	for _, c := range opsEnabledControls(t, ctx) {
		if !slices.Contains([]string{"abs-status", "abs-refresh", "abs-api-select"}, c) && !strings.HasPrefix(c, "Evidence of ") {
			t.Fatalf("the read user can use %q (%q)", c, opsEnabledControls(t, ctx))
		}
	}
	screenshot(t, ctx, "detection-read-user")
	run(t, ctx, "phone width",
		chromedp.EmulateViewport(390, 844),
		waitJS(`document.documentElement.scrollWidth <= window.innerWidth`),
	)
	screenshot(t, ctx, "detection-phone")
	if !active("127.0.0.10") {
		t.Fatalf("127.0.0.10 is not active any more: %+v", absAttackList(t, i, "/v4/abs/attacklist"))
	}
}
