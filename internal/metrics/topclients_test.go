package metrics

import (
	"net/netip"
	"testing"
	"time"
)

// TestTopBlockedBounded: a heavy client stays on top with its exact count
// while a flood of one-off addresses passes (memory fixed at topCapacity),
// counts are never under the truth, and windows older than 10 minutes are
// forgotten.
func TestTopBlockedBounded(t *testing.T) {
	var tb topBlocked
	t0 := time.Unix(1_800_000_000, 0)
	heavy := netip.MustParseAddr("203.0.113.7")
	for i := range 100_000 {
		now := t0.Add(time.Duration(i) * time.Millisecond)
		if i%10 == 0 {
			tb.add(heavy, "shop", "deny_list", now)
		}
		tb.add(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), "shop", "decoy", now)
		if n := len(tb.cur.entries); n > topCapacity {
			t.Fatalf("%d entries kept", n)
		}
	}
	now := t0.Add(100 * time.Second)
	top := tb.top(TopClients, now)
	if len(top) != TopClients || top[0].IP != heavy.String() || top[0].Blocked < 10_000 || top[0].Blocked-top[0].Overcount > 10_000 {
		t.Fatalf("top: %+v", top[0])
	}
	if top[0].LastReason != "deny_list" || top[0].LastAPIID != "shop" {
		t.Fatalf("last: %+v", top[0])
	}
	if got := tb.top(TopClients, now.Add(11*time.Minute)); len(got) != 0 {
		t.Fatalf("after 11 minutes: %+v", got)
	}
	// An IPv4-mapped address counts as its IPv4 form.
	tb.add(netip.MustParseAddr("::ffff:198.51.100.1"), "a", "decoy", now)
	tb.add(netip.MustParseAddr("198.51.100.1"), "a", "decoy", now)
	if got := tb.top(1, now); got[0].IP != "198.51.100.1" || got[0].Blocked != 2 {
		t.Fatalf("mapped: %+v", got)
	}
}
