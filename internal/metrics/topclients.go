package metrics

import (
	"net/netip"
	"sort"
	"sync"
	"time"
)

// The console's "top blocked clients": the client addresses ASE refused
// most often over the last 10 minutes (two 5-minute windows, the current
// and the last), with the API and reason of their last refusal.
//
// Each window is a space-saving summary (Metwally et al.) of at most
// topCapacity addresses: a new address when the summary is full takes the
// place of the one counted least, inheriting its count as its possible
// overestimate. So an address refused more than 1/topCapacity of the
// window's refusals is always there, counts are never underestimated, and
// memory is fixed (256 entries of some 80 bytes per window) whatever an
// attacker rotating addresses sends. Only refusals are counted: allowed
// requests cost nothing here.
const (
	topCapacity = 256
	topWindow   = 5 * time.Minute
	// TopClients is how many clients GET /activity reports.
	TopClients = 20
)

type topEntry struct {
	count, over uint64 // over: how much of count may belong to the addresses it replaced
	api, reason string
	last        time.Time
}

type topWindowSummary struct {
	start   time.Time
	entries map[netip.Addr]*topEntry
}

type topBlocked struct {
	mu        sync.Mutex
	cur, prev topWindowSummary
}

func (w *topWindowSummary) add(a netip.Addr, api, reason string, now time.Time) {
	if e := w.entries[a]; e != nil {
		e.count++
		e.api, e.reason, e.last = api, reason, now
		return
	}
	if len(w.entries) < topCapacity {
		w.entries[a] = &topEntry{count: 1, api: api, reason: reason, last: now}
		return
	}
	var minA netip.Addr
	var minE *topEntry
	for k, e := range w.entries {
		if minE == nil || e.count < minE.count {
			minA, minE = k, e
		}
	}
	delete(w.entries, minA)
	w.entries[a] = &topEntry{count: minE.count + 1, over: minE.count, api: api, reason: reason, last: now}
}

// add counts one refusal of client.
func (t *topBlocked) add(client netip.Addr, api, reason string, now time.Time) {
	if !client.IsValid() {
		return
	}
	t.mu.Lock()
	t.roll(now)
	t.cur.add(client.Unmap(), api, reason, now)
	t.mu.Unlock()
}

// roll starts a new window when the current one is over (under mu).
func (t *topBlocked) roll(now time.Time) {
	if t.cur.entries == nil {
		t.cur = topWindowSummary{start: now.Truncate(topWindow), entries: map[netip.Addr]*topEntry{}}
		return
	}
	if now.Sub(t.cur.start) < topWindow {
		return
	}
	if now.Sub(t.cur.start) < 2*topWindow {
		t.prev = t.cur
	} else {
		t.prev = topWindowSummary{}
	}
	t.cur = topWindowSummary{start: now.Truncate(topWindow), entries: map[netip.Addr]*topEntry{}}
}

// BlockedClient is one of the clients refused most in the last 10
// minutes.
type BlockedClient struct {
	IP      string `json:"ip"`
	Blocked uint64 `json:"blocked"`
	// Overcount: Blocked may count up to this many refusals of others
	// (space-saving: the address took their place; 0 when it was counted
	// from its first refusal in each window).
	Overcount  uint64    `json:"overcount"`
	LastAPIID  string    `json:"last_api_id"`
	LastReason string    `json:"last_reason"`
	LastSeen   time.Time `json:"last_seen"`
}

// top returns the n clients refused most over the current and the last
// window.
func (t *topBlocked) top(n int, now time.Time) []BlockedClient {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.roll(now)
	merged := map[netip.Addr]*BlockedClient{}
	for _, w := range []*topWindowSummary{&t.prev, &t.cur} {
		for a, e := range w.entries {
			c := merged[a]
			if c == nil {
				c = &BlockedClient{IP: a.String()}
				merged[a] = c
			}
			c.Blocked += e.count
			c.Overcount += e.over
			if !e.last.Before(c.LastSeen) {
				c.LastAPIID, c.LastReason, c.LastSeen = e.api, e.reason, e.last.UTC()
			}
		}
	}
	out := make([]BlockedClient, 0, len(merged))
	for _, c := range merged {
		out = append(out, *c)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Blocked != out[j].Blocked {
			return out[i].Blocked > out[j].Blocked
		}
		return out[i].IP < out[j].IP
	})
	if len(out) > n {
		out = out[:n]
	}
	return out
}
