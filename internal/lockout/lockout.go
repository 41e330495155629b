// Package lockout slows down and then refuses clients that keep failing to
// authenticate: after each failure past a few, the failing reply is
// delayed a little more; after Limit failures within Window, the address
// is refused for LockFor, even with correct credentials. Successes do not
// reset the count: an attacker sharing an address (a NAT) with a
// legitimate operator must not be able to keep guessing.
//
// The count is taken before the check, not after it: Begin reserves one
// of the address's Limit slots, the credentials are checked, and the
// attempt then either releases its slot (Succeeded) or keeps it as a
// failure (Failed). Checks in progress count as failures until they end,
// and an attempt that finds every slot taken waits for one, so however
// many guesses arrive at once, at most Limit wrong ones are checked in a
// window.
package lockout

import (
	"context"
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
	pending  int       // attempts begun and not yet ended: checks in progress
	until    time.Time // locked until
	// wake is closed, and forgotten, when a pending attempt ends: the
	// attempts waiting for a slot look again.
	wake chan struct{}
}

// New returns a Guard with the default policy.
func New() *Guard {
	return &Guard{Limit: DefaultLimit, Window: DefaultWindow, LockFor: DefaultLockFor, Now: time.Now, clients: map[netip.Addr]*record{}}
}

// Locked returns how long addr is still refused, or 0.
func (g *Guard) Locked(addr netip.Addr) time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.lockedLocked(g.clients[addr.Unmap()])
}

func (g *Guard) lockedLocked(r *record) time.Duration {
	if r == nil {
		return 0
	}
	if left := r.until.Sub(g.Now()); left > 0 {
		return left
	}
	return 0
}

// Attempt is one authentication from an address, begun before its
// credentials are checked; it holds one of the address's slots until it
// ends with Succeeded, Failed or Cancel (the first of them counts).
type Attempt struct {
	g    *Guard
	r    *record
	done bool
}

// Begin reserves a slot for one authentication from addr, to be taken
// before the credentials are checked. While the window's failures and the
// checks in progress fill all Limit slots, it waits for one of those
// checks to end. It returns how long addr is locked out instead, if it is
// (now or once the checks it waited for have failed), or ctx's error if
// the caller gave up waiting.
func (g *Guard) Begin(ctx context.Context, addr netip.Addr) (*Attempt, time.Duration, error) {
	addr = addr.Unmap()
	g.mu.Lock()
	for {
		now := g.Now()
		r := g.clients[addr]
		if r == nil {
			if len(g.clients) >= maxTracked {
				g.sweep(now)
			}
			r = &record{first: now}
			g.clients[addr] = r
		}
		if left := r.until.Sub(now); left > 0 {
			g.mu.Unlock()
			return nil, left, nil
		}
		if now.Sub(r.first) > g.Window {
			r.first, r.failures = now, 0
		}
		if r.failures+r.pending < g.Limit {
			r.pending++
			g.mu.Unlock()
			return &Attempt{g: g, r: r}, 0, nil
		}
		// Every slot is taken, and at least one by a check in progress
		// (Limit failures alone would have locked the address): wait for
		// it to end.
		if r.wake == nil {
			r.wake = make(chan struct{})
		}
		wake := r.wake
		g.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		}
		g.mu.Lock()
	}
}

// end releases the attempt's slot; g.mu is held. It reports false if the
// attempt had already ended.
func (a *Attempt) end() bool {
	if a.done {
		return false
	}
	a.done = true
	a.r.pending--
	if a.r.wake != nil {
		close(a.r.wake)
		a.r.wake = nil
	}
	return true
}

// Succeeded ends the attempt with correct credentials: its slot is freed
// (the failures already counted stay). The address cannot have been
// locked meanwhile: failures and checks in progress never exceed Limit
// together, so Limit failures leave no check in progress.
func (a *Attempt) Succeeded() {
	a.g.mu.Lock()
	defer a.g.mu.Unlock()
	a.end()
}

// Cancel ends an attempt whose check did not happen; after Succeeded or
// Failed it does nothing (so it can be deferred).
func (a *Attempt) Cancel() {
	a.g.mu.Lock()
	defer a.g.mu.Unlock()
	a.end()
}

// Failed ends the attempt with wrong credentials: its slot becomes one of
// the window's failures. It returns how long to delay the reply, and
// whether the address is now locked out.
func (a *Attempt) Failed() (delay time.Duration, locked bool) {
	g, r := a.g, a.r
	g.mu.Lock()
	defer g.mu.Unlock()
	if !a.end() {
		return 0, g.lockedLocked(r) > 0
	}
	now := g.Now()
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
		if now.Sub(r.first) > g.Window && !r.until.After(now) && r.pending == 0 {
			delete(g.clients, a)
		}
	}
	// Still full: a spray of fresh failures. Forget an arbitrary half
	// rather than grow without bound; locks in force are kept.
	if len(g.clients) >= maxTracked {
		n := 0
		for a, r := range g.clients {
			if !r.until.After(now) && r.pending == 0 {
				delete(g.clients, a)
				if n++; n >= maxTracked/2 {
					break
				}
			}
		}
	}
}
