package lockout

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// fail is one wrong guess from addr, checked one at a time: a locked
// address is not checked (locked, no delay).
func (g *Guard) fail(addr netip.Addr) (time.Duration, bool) {
	a, left, err := g.Begin(context.Background(), addr)
	if err != nil {
		panic(err)
	}
	if left > 0 {
		return 0, true
	}
	return a.Failed()
}

func TestLockAfterLimit(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	g := New()
	g.Now = c.now
	ip := netip.MustParseAddr("192.0.2.1")
	other := netip.MustParseAddr("192.0.2.2")
	var delays []time.Duration
	for i := 1; i < DefaultLimit; i++ {
		d, locked := g.fail(ip)
		if locked {
			t.Fatalf("locked after %d failures, want %d", i, DefaultLimit)
		}
		delays = append(delays, d)
		c.add(time.Second)
	}
	if delays[0] != 0 || delays[freeFailures-1] != 0 || delays[freeFailures] != delayStep || delays[len(delays)-1] <= delays[freeFailures] {
		t.Fatalf("got delays %v, want none for %d failures then growing", delays, freeFailures)
	}
	if _, locked := g.fail(ip); !locked {
		t.Fatalf("not locked after %d failures", DefaultLimit)
	}
	if left := g.Locked(ip); left != DefaultLockFor {
		t.Fatalf("got lock %v, want %v", left, DefaultLockFor)
	}
	if g.Locked(other) != 0 {
		t.Fatal("another address is locked")
	}
	c.add(DefaultLockFor - time.Second)
	if g.Locked(ip) != time.Second {
		t.Fatalf("got %v, want 1s left", g.Locked(ip))
	}
	c.add(time.Second)
	if g.Locked(ip) != 0 {
		t.Fatal("still locked after LockFor")
	}
	if d, locked := g.fail(ip); d != 0 || locked {
		t.Fatalf("after the lock: got %v, %v, want a fresh count", d, locked)
	}
}

func TestWindowResets(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	g := New()
	g.Now = c.now
	ip := netip.MustParseAddr("2001:db8::1")
	for i := 0; i < 20; i++ {
		if _, locked := g.fail(ip); locked {
			t.Fatalf("locked at failure %d although they were spread over more than a window each 9", i)
		}
		if i%9 == 8 {
			c.add(DefaultWindow + time.Second)
		}
	}
}

func TestMappedAddressesAreOne(t *testing.T) {
	g := New()
	v4 := netip.MustParseAddr("192.0.2.7")
	mapped := netip.MustParseAddr("::ffff:192.0.2.7")
	for i := 0; i < DefaultLimit-1; i++ {
		g.fail(v4)
	}
	if _, locked := g.fail(mapped); !locked {
		t.Fatal("an IPv4-mapped address escaped the lock of its IPv4 form")
	}
}

func TestBoundedMemory(t *testing.T) {
	g := New()
	for i := 0; i < maxTracked+10; i++ {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		g.fail(a)
	}
	if len(g.clients) > maxTracked {
		t.Fatalf("tracking %d addresses, want at most %d", len(g.clients), maxTracked)
	}
}

// The count is taken before the check: with every slot held by a check in
// progress, the next guess waits instead of being checked; a success frees
// its slot, and the failures of the others lock out all that waited.
func TestSlotsAreTakenBeforeTheCheck(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	g := New()
	g.Now = c.now
	ip := netip.MustParseAddr("192.0.2.9")
	ctx := context.Background()
	var held []*Attempt
	for i := 0; i < DefaultLimit; i++ {
		a, left, err := g.Begin(ctx, ip)
		if a == nil || left != 0 || err != nil {
			t.Fatalf("attempt %d: got %v, %v, %v; want a slot", i, a, left, err)
		}
		held = append(held, a)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if a, left, err := g.Begin(canceled, ip); a != nil || left != 0 || !errors.Is(err, context.Canceled) {
		t.Fatalf("with %d checks in progress: got %v, %v, %v; want to wait (and give up)", DefaultLimit, a, left, err)
	}
	got := make(chan *Attempt)
	go func() {
		a, _, _ := g.Begin(ctx, ip)
		got <- a
	}()
	held[0].Succeeded()
	if held[0] = <-got; held[0] == nil {
		t.Fatal("a freed slot was not given to the waiting attempt")
	}

	type begun struct {
		a    *Attempt
		left time.Duration
	}
	waiting := make(chan begun)
	for i := 0; i < 50; i++ {
		go func() {
			a, left, _ := g.Begin(ctx, ip)
			waiting <- begun{a, left}
		}()
	}
	for i, a := range held {
		if _, locked := a.Failed(); locked != (i == DefaultLimit-1) {
			t.Fatalf("failure %d: locked %v", i+1, locked)
		}
		a.Cancel() // no effect once ended
	}
	for i := 0; i < 50; i++ {
		if b := <-waiting; b.a != nil || b.left != DefaultLockFor {
			t.Fatalf("after %d failures: got a slot %v, lock %v; want the lock", DefaultLimit, b.a != nil, b.left)
		}
	}
}

// However many guesses arrive at once, at most Limit wrong ones are
// checked; a right one among them does not widen that.
func TestBurstChecksAtMostLimit(t *testing.T) {
	g := New()
	ip := netip.MustParseAddr("2001:db8::9")
	var mu sync.Mutex
	failed, succeeded, refused := 0, 0, 0
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			a, left, err := g.Begin(context.Background(), ip)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				t.Error(err)
			case left > 0:
				refused++
			case i == 100:
				succeeded++
				a.Succeeded()
			default:
				failed++
				a.Failed()
			}
		}()
	}
	close(start)
	wg.Wait()
	if failed != DefaultLimit || refused != 200-failed-succeeded {
		t.Fatalf("200 concurrent guesses: %d checked and failed, %d succeeded, %d refused; want exactly %d failed", failed, succeeded, refused, DefaultLimit)
	}
	if g.Locked(ip) <= 0 {
		t.Fatal("not locked after the burst")
	}
}

// A cancelled attempt frees its slot without counting as a failure.
func TestCancelFreesTheSlot(t *testing.T) {
	g := New()
	ip := netip.MustParseAddr("192.0.2.10")
	for i := 0; i < 5*DefaultLimit; i++ {
		a, left, err := g.Begin(context.Background(), ip)
		if a == nil || left != 0 || err != nil {
			t.Fatalf("attempt %d refused (%v, %v)", i, left, err)
		}
		a.Cancel()
	}
	if g.Locked(ip) != 0 {
		t.Fatal("locked by cancelled attempts")
	}
}
