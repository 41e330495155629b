package e2e

import (
	"bytes"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// BenchmarkConsolePages measures, in a real headless Chromium, how long
// each page of the console takes to be usable (its data loaded and shown:
// no API call in flight, no "Loading" left) with 1,000,000 deny-list
// entries and 200 APIs loaded, and how many bytes it fetched: pages are
// paged and searched on the server, never shipped whole (issue 19, point
// 5). Run it with
//
//	go test ./e2e -run XXX -bench BenchmarkConsolePages -benchtime 3x
//
// It reports ms/<page> (median of the rounds) and KB/<page>; nothing is
// asserted on time (the machines are shared).
func BenchmarkConsolePages(b *testing.B) {
	i := startInstance(b, nil)
	back := newWireBackend(b)
	// 1,000,000 addresses in one plain-text feed.
	var feed bytes.Buffer
	for v := range 1_000_000 {
		fmt.Fprintf(&feed, "%d.%d.%d.%d\n", 11+v%180, (v>>16)&255, (v>>8)&255, v&255)
	}
	req, _ := http.NewRequest("POST", i.MgmtURL+"/v5/ase/firewall/blacklist", &feed)
	req.Header.Set("x-ase-access-key", "admin")
	req.Header.Set("x-ase-secret-key", i.Password)
	req.Header.Set("Content-Type", "text/plain")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		b.Fatalf("loading 1,000,000 entries: %v %v", err, resp)
	}
	resp.Body.Close()
	for n := range 200 {
		if r := i.Do("POST", fmt.Sprintf("/v5/ase/api?api_id=api-%03d", n), apiDoc(fmt.Sprintf("/api-%03d", n), back.servers()), nil); r.Code != 200 {
			b.Fatalf("API %d: %d %s", n, r.Code, r.Body)
		}
	}
	ctx := browser(b)
	run(b, ctx, "sign in",
		chromedp.Navigate(i.MgmtURL+"/ui/"),
		chromedp.WaitVisible(chromedp.CSS("#user")),
		chromedp.SendKeys(chromedp.CSS("#user"), "admin"),
		chromedp.SendKeys(chromedp.CSS("#password"), i.Password),
		chromedp.Click(chromedp.CSS("#signin")),
		chromedp.WaitVisible(chromedp.CSS("#allowed-total")),
	)
	pages, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('#nav a')].map(a => a.getAttribute('href'))`))
	if err != nil || len(pages) == 0 {
		b.Fatalf("the pages: %v %v", pages, err)
	}
	// One page view: main emptied, the hash set, then polled until the
	// page is usable; the time and the bytes fetched meanwhile.
	const view = `new Promise((resolve) => {
		const main = document.querySelector('main');
		main.replaceChildren();
		performance.clearResourceTimings();
		const t0 = performance.now();
		location.hash = %q;
		const check = () => {
			const text = main.textContent;
			if (text !== '' && window.ASE.busy() === 0 && !/Loading/.test(text)) {
				requestAnimationFrame(() => {
					const bytes = performance.getEntriesByType('resource').reduce((s, e) => s + (e.transferSize || e.encodedBodySize || 0), 0);
					resolve([performance.now() - t0, bytes]);
				});
			} else {
				setTimeout(check, 2);
			}
		};
		setTimeout(check, 0);
	})`
	times := map[string][]float64{}
	kb := map[string]float64{}
	b.ResetTimer()
	for range b.N {
		for _, p := range pages {
			if p == "#/overview" {
				// Leaving and coming back: the overview loads the whole hour.
				chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`location.hash = '#/apis'`))
			}
			got, err := chromedp.Run(ctx, chromedp.Evaluate[[]float64](fmt.Sprintf(view, p), chromedp.EvalAwaitPromise))
			if err != nil || len(got) != 2 {
				b.Fatalf("%s: %v %v", p, got, err)
			}
			name := strings.TrimPrefix(p, "#/")
			times[name] = append(times[name], got[0])
			kb[name] = got[1] / 1024
		}
	}
	b.StopTimer()
	for name, ts := range times {
		sort.Float64s(ts)
		b.ReportMetric(ts[len(ts)/2], "ms/"+name)
		b.ReportMetric(kb[name], "KB/"+name)
	}
}
