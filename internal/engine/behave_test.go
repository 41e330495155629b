package engine

import (
	"net/netip"
	"testing"
	"time"

	"github.com/ase-project/ase/internal/apidef"
	"github.com/ase-project/ase/internal/behave"
	"github.com/ase-project/ase/internal/catalog"
	"github.com/ase-project/ase/internal/lists"
)

// behaveFixture is an engine counting for behavioural detection, whose
// findings go on its deny list.
func behaveFixture(t *testing.T) (*fixture, *behave.Engine, *apidef.API) {
	f := newFixture(t, nil)
	api := mustAPI(t, `{"api_metadata": {"url": "/shop", "oauth2_access_token": true}}`)
	b := behave.New(behave.Config{Window: time.Minute, Training: time.Hour, Now: f.clock.now}, func(d *behave.Detection) bool {
		a := d.IP
		return f.lists.ReportEntries([]lists.Entry{{Kind: lists.IP, Value: a.String(), Prefix: netip.PrefixFrom(a, 32), Tag: lists.ABSGenerated}})
	})
	f.eng.SetBehave(b)
	b.Sync(map[string]*apidef.API{"shop": api})
	f.set(catalog.ABS, true)
	return f, b, api
}

// Counting a request and its answer allocates nothing.
func TestDecideWithDetectionDoesNotAllocate(t *testing.T) {
	f, b, api := behaveFixture(t)
	r := Request{Now: f.clock.now().UnixNano(), API: api, Path: "/shop/items/1", Method: "GET", Scheme: "http",
		ID: lists.Identity{IP: netip.MustParseAddr("127.0.0.9"), Token: "tok"}}
	n := testing.AllocsPerRun(1000, func() {
		r.Now += int64(time.Microsecond)
		if d := f.eng.Decide(&r); d.Action != Allow {
			t.Fatalf("got %+v", d)
		}
		f.eng.Answered(&r, 200, 100)
	})
	if n != 0 {
		t.Fatalf("%v allocations per request", n)
	}
	if b.Tracked() != 2 {
		t.Fatalf("tracked %d identities, want the address and the token", b.Tracked())
	}
}

// The request that crosses a request-side threshold is itself refused:
// the engine decides again once its client is listed.
func TestDetectionRefusesTheRequestThatShowsIt(t *testing.T) {
	f, b, api := behaveFixture(t)
	p := behave.Policy{}
	p.Thresholds[behave.FigRequests] = 3
	b.SetPolicy("shop", &p)
	r := Request{Now: f.clock.now().UnixNano(), API: api, Path: "/shop/items/1", Method: "GET", Scheme: "http",
		ID: lists.Identity{IP: netip.MustParseAddr("127.0.0.9")}}
	for k := 1; k <= 4; k++ {
		r.Now += int64(time.Millisecond)
		d := f.eng.Decide(&r)
		if k <= 3 && d.Action != Allow || k == 4 && (d.Action != Block || d.Reason != ReasonDenyList) {
			t.Fatalf("request %d: %+v", k, d)
		}
	}
	// An allow-listed client is never counted, so never found.
	f.list(t, lists.Allow, `{"type": "ip", "value": "127.0.0.11"}`)
	r.ID.IP = netip.MustParseAddr("127.0.0.11")
	before := b.Tracked()
	for k := 0; k < 10; k++ {
		if d := f.eng.Decide(&r); d.Action != Allow || d.Reason != ReasonAllowList {
			t.Fatalf("allow-listed: %+v", d)
		}
	}
	if b.Tracked() != before {
		t.Fatal("an allow-listed client was counted")
	}
	// With detection switched off nothing is counted.
	f.set(catalog.ABS, false)
	r.ID.IP = netip.MustParseAddr("127.0.0.10")
	for k := 0; k < 10; k++ {
		if d := f.eng.Decide(&r); d.Action != Allow {
			t.Fatalf("detection off: %+v", d)
		}
	}
}
