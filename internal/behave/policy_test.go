package behave

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/ase-project/ase/internal/lists"
)

func TestDecodePolicy(t *testing.T) {
	p, err := DecodePolicy([]byte(`{"modes": {"content_scraping": "report", "api_probing": "off"}, "thresholds": {"requests": 500}}`))
	if err != nil {
		t.Fatal(err)
	}
	if p.Modes[Scraping] != Report || p.Modes[Probing] != Off || p.Modes[StolenCredential] != Enforce || p.Thresholds[FigRequests] != 500 {
		t.Fatalf("got %+v", p)
	}
	back, err := DecodePolicy(p.Encode())
	if err != nil || back != p {
		t.Fatalf("round trip: %+v %v", back, err)
	}
	for body, want := range map[string]string{
		`{"modes": {"scraping": "report"}}`:         `unknown detector "scraping"`,
		`{"modes": {"api_probing": "block"}}`:       `"block" is not a mode`,
		`{"thresholds": {"requests": -1}}`:          "thresholds.requests: must be a number from 0",
		`{"thresholds": {"rps": 5}}`:                `unknown figure "rps"`,
		`{"mode": {}}`:                              "unknown field",
		`[]`:                                        "not a detection policy",
		`{"thresholds": {"requests": "5"}}`:         "not a detection policy",
		`{"thresholds": {"requests": 1e300}}`:       "thresholds.requests: must be a number",
		`{"modes": {"api_probing": "report"}} junk`: "",
	} {
		_, err := DecodePolicy([]byte(body))
		if want == "" {
			continue // trailing data after the object: json.Decoder reads the first value
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want %q", body, err, want)
		}
	}
}

// FuzzDecodePolicy: a policy from the management API is either refused
// with a message, or means what its encoding means again.
func FuzzDecodePolicy(f *testing.F) {
	f.Add([]byte(`{"modes": {"content_scraping": "report"}, "thresholds": {"requests": 500}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := DecodePolicy(b)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		back, err := DecodePolicy(p.Encode())
		if err != nil || back != p {
			t.Fatalf("%q: round trip %+v -> %+v (%v)", b, p, back, err)
		}
	})
}

// FuzzDecodeLearned: what an API learned, read from the store, is refused
// or restores without panicking.
func FuzzDecodeLearned(f *testing.F) {
	f.Add([]byte(`{"trained_at":"2026-12-01T00:00:00Z","window":"1m0s","figures":{"token/requests":{"40":12,"41":3}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := DecodeLearned(b)
		if err != nil {
			return
		}
		s := newSim(t, time.Minute, time.Hour)
		s.e.Restore("shop", l)
		s.e.Status("")
	})
}

func TestReportModeAndOverride(t *testing.T) {
	s := newSim(t, time.Minute, time.Hour)
	p := Policy{}
	p.Modes[ExtremeActivity] = Report
	p.Thresholds[FigRequests] = 5
	s.e.SetPolicy("shop", &p)
	// An override applies during training too.
	for k := 0; k < 10; k++ {
		s.do(lists.Identity{IP: ip(7)}, "GET", "/shop/a", 200, 10)
	}
	if len(s.found) != 1 || s.found[0].Mode != Report || !s.found[0].Override || s.found[0].Threshold != 5 || s.found[0].Observed != 6 {
		t.Fatalf("got %+v", s.found)
	}
	ev := s.found[0].Evidence()
	back, ok := ParseEvidence(ev.Encode())
	if !ok || back.Detector != "extreme_client_activity" || back.Mode != "report" || len(back.Samples) != 3 {
		t.Fatalf("evidence %+v", back)
	}
	if c := s.e.Counts(); c[ExtremeActivity][Report] != 1 {
		t.Fatalf("counts %v", c)
	}
}

func TestRestoreEnforcesAtOnce(t *testing.T) {
	a := newSim(t, time.Minute, 10*time.Minute)
	var learned Learned
	a.e.OnTrained(func(id string, l Learned) { learned = l })
	a.run(t, 11*60, nil)
	deadline := time.Now().Add(10 * time.Second)
	for learned.Figures == nil && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond) // OnTrained runs in its own goroutine
	}
	b, _ := json.Marshal(learned)
	l, err := DecodeLearned(b)
	if err != nil {
		t.Fatal(err)
	}
	// A new engine (a restart, another node) enforces at once.
	c := newSim(t, time.Minute, 24*time.Hour)
	if !c.e.Restore("shop", l) {
		t.Fatal("not restored")
	}
	st, _ := c.e.Status("shop")
	wantSt, _ := a.e.Status("shop")
	if st[0].Training || st[0].Figures[FigRequests].Threshold != wantSt[0].Figures[FigRequests].Threshold {
		t.Fatalf("restored %+v, trained %+v", st[0].Figures[FigRequests], wantSt[0].Figures[FigRequests])
	}
	// Learned over another window length: not restored.
	d := newSim(t, 2*time.Minute, time.Hour)
	if d.e.Restore("shop", l) {
		t.Fatal("restored across window lengths")
	}
	// Retrain starts over.
	c.e.Retrain("shop")
	if st, _ := c.e.Status("shop"); !st[0].Training {
		t.Fatal("not training after Retrain")
	}
}

func TestMemoryIsBounded(t *testing.T) {
	s := newSim(t, time.Minute, time.Hour)
	for k := 0; k < 100_000; k++ {
		s.do(lists.Identity{IP: ip(k), Token: "t" + string(rune('a'+k%26))}, "GET", "/shop/a", 200, 10)
	}
	if n := s.e.Tracked(); n > 1<<14 {
		t.Fatalf("%d identities tracked, cap %d", n, 1<<14)
	}
}
