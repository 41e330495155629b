package lists

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"testing"
	"time"
)

// memKinds are lists of one kind of entry each, as feeds and detections
// fill them: addresses, ranges of several shapes, hashed identities, with
// and without an expiry.
func memKinds(seed uint64) []struct {
	name string
	make func(i int) Entry
} {
	rng := rand.New(rand.NewPCG(seed, seed))
	v4 := func(i int) netip.Prefix {
		return netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(rng.Uint32()), byte(i >> 16), byte(i >> 8), byte(i)}), 32)
	}
	v6 := func(int) netip.Prefix {
		var b [16]byte
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		return netip.PrefixFrom(netip.AddrFrom16(b), 128)
	}
	exp := time.UnixMilli(4_000_000_000_000)
	withTTL := func(e Entry) Entry {
		if e.Kind == IP {
			e.Value = formatPrefix(e.Prefix) // its key is the heap item's
		}
		e.Expires = exp
		return e
	}
	return []struct {
		name string
		make func(i int) Entry
	}{
		{"ipv4", func(i int) Entry { return Entry{Kind: IP, Prefix: v4(i)} }},
		{"ipv6", func(i int) Entry { return Entry{Kind: IP, Prefix: v6(i)} }},
		{"random /24", func(i int) Entry {
			return Entry{Kind: IP, Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32()), 0}), 24)}
		}},
		{"random /20", func(i int) Entry {
			return Entry{Kind: IP, Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32()), 0}), 20).Masked()}
		}},
		{"consecutive /24", func(i int) Entry {
			return Entry{Kind: IP, Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{10 + byte(i>>16), byte(i >> 8), byte(i), 0}), 24)}
		}},
		{"ipv6 /48", func(i int) Entry { return Entry{Kind: IP, Prefix: netip.PrefixFrom(v6(i).Addr(), 48).Masked()} }},
		{"token", func(i int) Entry { return Entry{Kind: Token, Value: fmt.Sprintf("tok-%d-%d", i, rng.Uint64())} }},
		{"cookie", func(i int) Entry { return Entry{Kind: Cookie, Name: "SID", Value: fmt.Sprintf("c-%d", i)} }},
		{"api_key", func(i int) Entry { return Entry{Kind: APIKey, Name: "X-Key", Value: fmt.Sprintf("k-%d", i)} }},
		{"username", func(i int) Entry { return Entry{Kind: Username, Value: fmt.Sprintf("user%d@example.com", i)} }},
		{"ipv4 with a TTL", func(i int) Entry { return withTTL(Entry{Kind: IP, Prefix: v4(i)}) }},
		{"ipv6 with a TTL", func(i int) Entry { return withTTL(Entry{Kind: IP, Prefix: v6(i)}) }},
		{"random /24 with a TTL", func(i int) Entry {
			return withTTL(Entry{Kind: IP, Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32()), 0}), 24)})
		}},
		{"token with a TTL", func(i int) Entry { return withTTL(Entry{Kind: Token, Value: fmt.Sprintf("tok-%d", i)}) }},
	}
}

// bareLists is the in-memory half of Lists: the sets and the expiry heap,
// without a store.
func bareLists() *Lists {
	return &Lists{h: newHasher(), sets: [2]*Set{newSet(), newSet()}, wake: make(chan struct{}, 1)}
}

// fill puts entries into the deny list as the store's commits do: into the
// sets, and those with an expiry into the heap under their store keys.
func fill(l *Lists, entries []Entry) {
	l.Load(Deny, entries)
	for i := range entries {
		if e := &entries[i]; !e.Expires.IsZero() {
			l.schedule(e.Expires.UnixMilli(), e.StoreKey(Deny))
		}
	}
}

// What status reports as the memory the lists use is what they hold:
// within 10% of the heap they add, for every kind of entry, at several
// sizes. (The estimates it replaced were 27% to 179% over.)
func TestMemoryUsedIsTheHeap(t *testing.T) {
	if testing.Short() {
		t.Skip("fills lists of 300,000 entries of each kind")
	}
	sizes := []int{30_000, 300_000}
	if raceEnabled {
		sizes = sizes[:1]
	}
	for _, n := range sizes {
		for _, k := range memKinds(uint64(n)) {
			t.Run(fmt.Sprintf("%s/%d", k.name, n), func(t *testing.T) {
				entries := make([]Entry, n)
				for i := range entries {
					entries[i] = k.make(i)
				}
				l := bareLists()
				before := heapInUse()
				fill(l, entries)
				after := heapInUse()
				runtime.KeepAlive(entries)
				held := float64(after) - float64(before)
				used := float64(l.MemoryUsed())
				d := (used - held) / held
				if d < -0.10 || d > 0.10 {
					t.Errorf("%d entries hold %.0f bytes (%.1f each); status says %.0f (%+.1f%%)", n, held, held/float64(n), used, 100*d)
				}
				t.Logf("%.1f bytes an entry; status says %.1f (%+.1f%%)", held/float64(n), used/float64(n), 100*d)
				runtime.KeepAlive(l)
			})
		}
	}
}
