package lockout

import (
	"net/netip"
	"testing"
	"time"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestLockAfterLimit(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	g := New()
	g.Now = c.now
	ip := netip.MustParseAddr("192.0.2.1")
	other := netip.MustParseAddr("192.0.2.2")
	var delays []time.Duration
	for i := 1; i < DefaultLimit; i++ {
		d, locked := g.Fail(ip)
		if locked {
			t.Fatalf("locked after %d failures, want %d", i, DefaultLimit)
		}
		delays = append(delays, d)
		c.t = c.t.Add(time.Second)
	}
	if delays[0] != 0 || delays[freeFailures-1] != 0 || delays[freeFailures] != delayStep || delays[len(delays)-1] <= delays[freeFailures] {
		t.Fatalf("got delays %v, want none for %d failures then growing", delays, freeFailures)
	}
	if _, locked := g.Fail(ip); !locked {
		t.Fatalf("not locked after %d failures", DefaultLimit)
	}
	if left := g.Locked(ip); left != DefaultLockFor {
		t.Fatalf("got lock %v, want %v", left, DefaultLockFor)
	}
	if g.Locked(other) != 0 {
		t.Fatal("another address is locked")
	}
	c.t = c.t.Add(DefaultLockFor - time.Second)
	if g.Locked(ip) != time.Second {
		t.Fatalf("got %v, want 1s left", g.Locked(ip))
	}
	c.t = c.t.Add(time.Second)
	if g.Locked(ip) != 0 {
		t.Fatal("still locked after LockFor")
	}
	if d, locked := g.Fail(ip); d != 0 || locked {
		t.Fatalf("after the lock: got %v, %v, want a fresh count", d, locked)
	}
}

func TestWindowResets(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	g := New()
	g.Now = c.now
	ip := netip.MustParseAddr("2001:db8::1")
	for i := 0; i < 20; i++ {
		if _, locked := g.Fail(ip); locked {
			t.Fatalf("locked at failure %d although they were spread over more than a window each 9", i)
		}
		if i%9 == 8 {
			c.t = c.t.Add(DefaultWindow + time.Second)
		}
	}
}

func TestMappedAddressesAreOne(t *testing.T) {
	g := New()
	v4 := netip.MustParseAddr("192.0.2.7")
	mapped := netip.MustParseAddr("::ffff:192.0.2.7")
	for i := 0; i < DefaultLimit-1; i++ {
		g.Fail(v4)
	}
	if _, locked := g.Fail(mapped); !locked {
		t.Fatal("an IPv4-mapped address escaped the lock of its IPv4 form")
	}
}

func TestBoundedMemory(t *testing.T) {
	g := New()
	for i := 0; i < maxTracked+10; i++ {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		g.Fail(a)
	}
	if len(g.clients) > maxTracked {
		t.Fatalf("tracking %d addresses, want at most %d", len(g.clients), maxTracked)
	}
}
