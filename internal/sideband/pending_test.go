package sideband

import (
	"net/netip"
	"testing"
	"time"

	"github.com/ase-project/ase/internal/apidef"
	"github.com/ase-project/ase/internal/behave"
	"github.com/ase-project/ase/internal/lists"
)

// A request's ticket and the values of its identities wait for the
// response call of its correlation id, once, for pendingTTL; another
// correlation id, a second take or a stale slot finds nothing.
func TestPendingKeepsTicketAndValues(t *testing.T) {
	e := behave.New(behave.Config{}, nil)
	var p pendingTable
	// Prefetching before the table is made makes nothing.
	p.prefetch([]byte("corr-1"))
	if p.slots != nil {
		t.Fatal("a prefetch made the table")
	}
	id := lists.Identity{IP: netip.MustParseAddr("127.0.0.1"), Token: "tok-1", CookieName: "SID", Cookie: "c-1"}
	var tk behave.Ticket
	// A ticket no API observed is not kept.
	p.put([]byte("corr-0"), &tk, &id, 1)
	var out behave.Ticket
	var vals behave.Packed
	if p.take([]byte("corr-0"), 2, &out, &vals) {
		t.Fatal("an unobserved ticket was kept")
	}
	api := &apidef.API{ID: "shop", URL: "/shop"}
	e.Sync(map[string]*apidef.API{"shop": api})
	e.Begin(api, &id, "GET", "/shop/items", 1, &tk)
	now := time.Now().UnixNano()
	p.prefetch([]byte("corr-1"))
	p.put([]byte("corr-1"), &tk, &id, now)
	if p.take([]byte("corr-2"), now, &out, &vals) {
		t.Fatal("another correlation id took the ticket")
	}
	if !p.take([]byte("corr-1"), now+1, &out, &vals) || !out.Observed() {
		t.Fatal("the response call found no ticket")
	}
	for i, want := range []string{"", "tok-1", "c-1"} {
		if _, _, v, ok := vals.Identity(i); !ok || v != want {
			t.Fatalf("identity %d: %q %v, want %q", i, v, ok, want)
		}
	}
	if p.take([]byte("corr-1"), now+2, &out, &vals) {
		t.Fatal("a ticket was taken twice")
	}
	p.put([]byte("corr-3"), &tk, &id, now)
	if p.take([]byte("corr-3"), now+pendingTTL+1, &out, &vals) {
		t.Fatal("a stale ticket was taken")
	}
}
