package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/ase-project/ase/internal/behave"
	"github.com/ase-project/ase/internal/lists"
)

// A short replay (virtual time): every detector finds its attacker, and
// no normal identity is reported.
func TestReplay(t *testing.T) {
	cfg := Config{Clients: 300, Training: 20 * time.Minute, Window: time.Minute, Detection: 20 * time.Minute, Seed: 1, Items: 5000}
	res := Run(cfg)
	if res.NormalIdentities < cfg.Clients/2 || res.NormalRequests == 0 {
		t.Fatalf("a thin normal mix: %d identities, %d requests", res.NormalIdentities, res.NormalRequests)
	}
	// Every figure learned enough windows for some kind of identity (the
	// mix has addresses, tokens, cookies and API keys; no asserted
	// usernames).
	most := map[string]uint64{}
	for _, f := range res.Thresholds {
		most[f.Figure] = max(most[f.Figure], f.Windows)
	}
	for fig, n := range most {
		if fig != behave.FigFailingClients.String() && n < behave.MinSamples {
			t.Errorf("figure %s learned %d windows only", fig, n)
		}
	}
	if len(res.Attacks) != 7 {
		t.Fatalf("%d attacks", len(res.Attacks))
	}
	seen := map[string]bool{}
	for _, a := range res.Attacks {
		seen[a.Detector] = true
		if !a.Detected {
			t.Errorf("%s: not found by %s after %d requests (found %d times by other detectors: %v)", a.Attack, a.Detector, a.Requests, a.Detections, a.OtherDetectors)
			continue
		}
		if a.DelayRequests < 1 || a.DelayRequests > a.Requests || a.DelayS < 0 || a.Observed <= a.Threshold {
			t.Errorf("%s: inconsistent: %+v", a.Attack, a)
		}
		// Each is found within a few windows of its start.
		if a.DelayS > 3*cfg.Window.Seconds() {
			t.Errorf("%s: found after %.1fs", a.Attack, a.DelayS)
		}
	}
	for d := behave.Detector(0); d < behave.NumDetectors; d++ {
		if !seen[d.String()] {
			t.Errorf("no attack for %s", d)
		}
	}
	if res.FalsePositives != 0 {
		t.Errorf("%d normal identities reported of %d: %+v", res.FalsePositives, res.NormalIdentities, res.FPs)
	}
	var b bytes.Buffer
	Markdown(&b, res)
	if n := strings.Count(b.String(), "| yes |"); n != 7 {
		t.Errorf("%d attacks found in the table:\n%s", n, b.String())
	}
}

// The replay tells attackers from normal identities: an attacker's
// address or credential from its start, every other identity (the stolen
// token before it was stolen too) a false positive, counted once.
func TestAccounting(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Clients = 20
	r := newReplay(cfg)
	r.makeClients()
	r.makeAttacks()
	stolen := r.attacks[0]
	victim := ""
	for k, a := range r.attackOf {
		if a == stolen {
			victim = strings.TrimPrefix(k, "token:")
		}
	}
	det := func(d behave.Detector, k lists.Kind, v string, at int64) {
		r.onDetect(&behave.Detection{Detector: d, Kind: k, Value: v, At: time.Unix(0, at)})
	}
	det(behave.StolenCredential, lists.Token, victim, stolen.start-1) // before the theft: normal
	det(behave.StolenCredential, lists.Token, victim, stolen.start+int64(time.Second))
	det(behave.Scraping, lists.IP, "127.10.0.3", stolen.start)
	det(behave.Probing, lists.IP, "127.10.0.3", stolen.start) // the same identity again
	det(behave.LoginAttack, lists.IP, "127.202.0.9", r.attacks[2].start)
	det(behave.Probing, lists.IP, "127.202.0.9", r.attacks[2].start)
	if len(r.fps) != 2 || r.fpByDet["stolen_credential"] != 1 || r.fpByDet["content_scraping"] != 1 {
		t.Errorf("false positives %v by detector %v", r.fps, r.fpByDet)
	}
	if !stolen.res.Detected || stolen.res.DelayS != 1 {
		t.Errorf("stolen token: %+v", stolen.res)
	}
	if a := r.attacks[2].res; !a.Detected || a.Detections != 2 || len(a.OtherDetectors) != 1 || a.OtherDetectors[0] != "api_probing" {
		t.Errorf("credential stuffing: %+v", a)
	}
}
