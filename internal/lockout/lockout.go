// Package lockout slows down and then refuses clients that keep failing to
// authenticate: after each failure past a few, the failing reply is
// delayed a little more; after Limit failures within Window, the address
// is refused for LockFor, even with correct credentials. Successes do not
// reset the count: an attacker sharing an address (a NAT) with a
// legitimate operator must not be able to keep guessing.
package lockout

import (
	"net/netip"
	"sync"
	"time"
)

// Defaults: the SPEC's brute-force rule.
const (
	DefaultLimit   = 10
	DefaultWindow  = time.Minute
	DefaultLockFor = 60 * time.Second
	// freeFailures fail without delay, for the operator who mistypes.
	freeFailures = 3
	delayStep    = 100 * time.Millisecond
	maxDelay     = time.Second
	// maxTracked bounds memory under a spray from many addresses; past it,
	// expired records are swept, then the oldest failures are dropped.
	maxTracked = 100_000
)

// Guard tracks failures per client address.
type Guard struct {
	Limit   int
	Window  time.Duration
	LockFor time.Duration
	Now     func() time.Time

	mu      sync.Mutex
	clients map[netip.Addr]*record
}

type record struct {
	first    time.Time // start of the current window
	failures int
	until    time.Time // locked until
}

// New returns a Guard with the default policy.
func New() *Guard {
	return &Guard{Limit: DefaultLimit, Window: DefaultWindow, LockFor: DefaultLockFor, Now: time.Now, clients: map[netip.Addr]*record{}}
}

// Locked returns how long addr is still refused, or 0.
func (g *Guard) Locked(addr netip.Addr) time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	r := g.clients[addr.Unmap()]
	if r == nil {
		return 0
	}
	if left := r.until.Sub(g.Now()); left > 0 {
		return left
	}
	return 0
}

// Fail records a failed authentication from addr and returns how long to
// delay the reply, and whether addr is now locked out.
func (g *Guard) Fail(addr netip.Addr) (delay time.Duration, locked bool) {
	addr = addr.Unmap()
	now := g.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	r := g.clients[addr]
	if r == nil {
		if len(g.clients) >= maxTracked {
			g.sweep(now)
		}
		r = &record{first: now}
		g.clients[addr] = r
	}
	if now.Sub(r.first) > g.Window {
		r.first, r.failures = now, 0
	}
	r.failures++
	if r.failures >= g.Limit {
		r.until = now.Add(g.LockFor)
		r.first, r.failures = now, 0
		return 0, true
	}
	if r.failures > freeFailures {
		delay = min(time.Duration(r.failures-freeFailures)*delayStep, maxDelay)
	}
	return delay, false
}

func (g *Guard) sweep(now time.Time) {
	for a, r := range g.clients {
		if now.Sub(r.first) > g.Window && !r.until.After(now) {
			delete(g.clients, a)
		}
	}
	// Still full: a spray of fresh failures. Forget an arbitrary half
	// rather than grow without bound; locks in force are kept.
	if len(g.clients) >= maxTracked {
		n := 0
		for a, r := range g.clients {
			if !r.until.After(now) {
				delete(g.clients, a)
				if n++; n >= maxTracked/2 {
					break
				}
			}
		}
	}
}
