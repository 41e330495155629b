package lists

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
)

// checkFilter4 fails unless every live slot of t's array passes its
// filter, and the filter has not taken more keys than it may.
func checkFilter4(t *testing.T, at string, tt *table4) {
	t.Helper()
	tab := tt.tab.Load()
	if tab.f == nil {
		return
	}
	if tab.fill > len(tab.s) {
		t.Fatalf("%s: the filter took %d keys for %d slots", at, tab.fill, len(tab.s))
	}
	for i := range tab.s {
		if w := tab.s[i].Load(); w != slotEmpty && w != slotTomb {
			if b, g := bloom4(mix(uint64(uint32(w >> 8)))); !bloomHas(tab.f, b, g) {
				t.Fatalf("%s: the filter hides v4 key %d", at, uint32(w>>8))
			}
		}
	}
}

func checkFilterID(t *testing.T, at string, tt *tableID) {
	t.Helper()
	tab := tt.tab.Load()
	if tab.f == nil {
		return
	}
	if tab.fill > len(tab.s) {
		t.Fatalf("%s: the filter took %d keys for %d slots", at, tab.fill, len(tab.s))
	}
	for i := range tab.s {
		if w0 := tab.s[i].w0.Load(); w0 != slotEmpty && w0 != slotTomb {
			if b, g := bloomID(w0); !bloomHas(tab.f, b, g) {
				t.Fatalf("%s: the filter hides id key %x", at, w0)
			}
		}
	}
}

func randomIDKey(rng *rand.Rand) idKey { return idKey{rng.Uint64() | liveBit, rng.Uint64() &^ 0xff} }

// TestFilterNeverHidesAnEntry drives both flat tables, with filters on
// every array from the smallest up, through random puts, adds, deletes,
// reserves and adoptions (growth, tombstone rebuilds, and rebuilds of a
// filter gone stale with deleted keys), and checks after each step that
// every entry the model holds is found and every filter passes every
// live key; it also checks that the filters do rule most absent keys out.
func TestFilterNeverHidesAnEntry(t *testing.T) {
	seeds, steps := uint64(3), 60_000
	if raceEnabled {
		seeds, steps = 2, 15_000
	}
	for seed := uint64(1); seed <= seeds; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 77))
			newT4 := func() *table4 { x := newTable4(); x.fmin = minSlots; return x }
			newTID := func() *tableID { x := newTableID(); x.fmin = minSlots; return x }
			t4, tid := newT4(), newTID()
			m4, mid := map[uint32]Tag{}, map[idKey]Tag{}
			pool := 3000 + rng.IntN(3000)
			keys4 := make([]uint32, pool)
			keysID := make([]idKey, pool)
			for i := range keys4 {
				keys4[i] = rng.Uint32()
				keysID[i] = randomIDKey(rng)
			}
			var filtered, staleRebuilds int
			lastLen4, lastTab4 := 0, t4.tab.Load()
			for step := 0; step < steps; step++ {
				i := rng.IntN(pool)
				tag := Tag(1 + rng.IntN(int(numTags)-1))
				switch op := rng.IntN(100); {
				case op < 45:
					exp := int64(0)
					if rng.IntN(4) == 0 {
						exp = 1 << 50
					}
					t4.put(keys4[i], tag, exp)
					m4[keys4[i]] = tag
					tid.put(keysID[i], tag, exp)
					mid[keysID[i]] = tag
				case op < 55:
					if put, _ := t4.add(keys4[i], tag, 0); put {
						m4[keys4[i]] = tag
					}
					if put, _ := tid.add(keysID[i], tag, 0); put {
						mid[keysID[i]] = tag
					}
				case op < 98:
					t4.del(keys4[i])
					delete(m4, keys4[i])
					tid.del(keysID[i])
					delete(mid, keysID[i])
				case op < 99:
					n := rng.IntN(2 * pool)
					t4.reserve(n)
					tid.reserve(n)
				default:
					// An import turning live: a table filled aside is
					// adopted by an empty one, or merged into a full one.
					o4, oid := newT4(), newTID()
					for range rng.IntN(pool) {
						j := rng.IntN(pool)
						o4.put(keys4[j], Manual, 0)
						oid.put(keysID[j], Manual, 0)
					}
					if len(m4) == 0 || rng.IntN(2) == 0 {
						n4, nid := newT4(), newTID()
						n4.adopt(t4)
						nid.adopt(tid)
						t4, tid = n4, nid
					}
					if !t4.adopt(o4) {
						o4.each(func(k uint32, m meta, exp int64) { t4.put(k, m.tag(), exp) })
					}
					if !tid.adopt(oid) {
						oid.each(func(k idKey, m meta, exp int64) { tid.put(k, m.tag(), exp) })
					}
					o4.each(func(k uint32, m meta, _ int64) { m4[k] = m.tag() })
					oid.each(func(k idKey, m meta, _ int64) { mid[k] = m.tag() })
				}
				if tab := t4.tab.Load(); tab != lastTab4 {
					if len(tab.s) == lastLen4 && tab.f != nil && lastTab4.fill >= lastLen4 {
						staleRebuilds++
					}
					lastLen4, lastTab4 = len(tab.s), tab
				}
				if step%500 != 0 {
					continue
				}
				at := fmt.Sprintf("step %d", step)
				checkFilter4(t, at, t4)
				checkFilterID(t, at, tid)
				for k, want := range m4 {
					if m, ok := t4.lookup(k); !ok || m.tag() != want {
						t.Fatalf("%s: v4 key %d: got %v %v, want %v", at, k, m.tag(), ok, want)
					}
				}
				for k, want := range mid {
					if m, ok := tid.lookup(k); !ok || m.tag() != want {
						t.Fatalf("%s: id key %x: got %v %v, want %v", at, k, m.tag(), ok, want)
					}
				}
				if int(t4.n.Load()) != len(m4) || int(tid.n.Load()) != len(mid) {
					t.Fatalf("%s: counts %d/%d, want %d/%d", at, t4.n.Load(), tid.n.Load(), len(m4), len(mid))
				}
				// Absent keys: never found, and mostly ruled out by the
				// filter without a probe.
				if tab := t4.tab.Load(); tab.f != nil && len(m4) > 100 {
					filtered++
					out := 0
					for range 1000 {
						k := rng.Uint32()
						if _, in := m4[k]; in {
							continue
						}
						if _, ok := t4.lookup(k); ok {
							t.Fatalf("%s: absent v4 key %d found", at, k)
						}
						if b, g := bloom4(mix(uint64(k))); !bloomHas(tab.f, b, g) {
							out++
						}
					}
					if out < 700 {
						t.Errorf("%s: the v4 filter ruled out only %d of 1000 absent keys (%d entries, %d slots, fill %d)", at, out, len(m4), len(tab.s), tab.fill)
					}
				}
				if tab := tid.tab.Load(); tab.f != nil && len(mid) > 100 {
					out := 0
					for range 1000 {
						k := randomIDKey(rng)
						if _, ok := tid.lookup(k); ok {
							t.Fatalf("%s: absent id key %x found", at, k)
						}
						if b, g := bloomID(k[0]); !bloomHas(tab.f, b, g) {
							out++
						}
					}
					if out < 700 {
						t.Errorf("%s: the id filter ruled out only %d of 1000 absent keys", at, out)
					}
				}
			}
			if filtered == 0 {
				t.Error("no table had a filter")
			}
			t.Logf("%d checks with a filter, %d rebuilds of a stale filter", filtered, staleRebuilds)
		})
	}
}

// TestFilterStaleRebuild: keys put and deleted over and over in a table
// that never grows fill its filter with stale bits; the array is rebuilt
// at its size, with a filter of its live keys, before it takes more keys
// than it has slots.
func TestFilterStaleRebuild(t *testing.T) {
	t4 := newTable4()
	t4.fmin = minSlots
	tid := newTableID()
	tid.fmin = minSlots
	rng := rand.New(rand.NewPCG(5, 5))
	for i := uint32(0); i < 600; i++ {
		t4.put(i, Manual, 0)
		tid.put(idKey{uint64(i) | liveBit, uint64(i) << 40}, Manual, 0)
	}
	size4, sizeID := len(t4.tab.Load().s), len(tid.tab.Load().s)
	rebuilt4, rebuiltID := false, false
	// A few keys listed and unlisted again and again (as a client
	// detected, expired and detected again) reuse their tombstones: the
	// table never fills, its filter does.
	churnID := make([]idKey, 8)
	for i := range churnID {
		churnID[i] = randomIDKey(rng)
	}
	for n := 0; n < 4*size4; n++ {
		k := 1<<20 + rng.Uint32N(8)
		before4, beforeID := t4.tab.Load(), tid.tab.Load()
		t4.put(k, Manual, 0)
		t4.del(k)
		kid := churnID[rng.IntN(len(churnID))]
		tid.put(kid, Manual, 0)
		tid.del(kid)
		if tab := t4.tab.Load(); tab != before4 && len(tab.s) == size4 && before4.fill >= size4 {
			rebuilt4 = true
		}
		if tab := tid.tab.Load(); tab != beforeID && len(tab.s) == sizeID && beforeID.fill >= sizeID {
			rebuiltID = true
		}
		checkFilter4(t, fmt.Sprint(n), t4)
		if n%64 == 0 {
			checkFilterID(t, fmt.Sprint(n), tid)
		}
	}
	if !rebuilt4 || !rebuiltID {
		t.Errorf("no same-size rebuild of a stale filter (v4 %v, id %v)", rebuilt4, rebuiltID)
	}
	for i := uint32(0); i < 600; i++ {
		if _, ok := t4.lookup(i); !ok {
			t.Fatalf("v4 key %d lost", i)
		}
		if _, ok := tid.lookup(idKey{uint64(i) | liveBit, uint64(i) << 40}); !ok {
			t.Fatalf("id key %d lost", i)
		}
	}
}

// TestFilterConcurrentReaders: while a writer puts keys (growing the
// tables and rebuilding their filters) and churns others, readers look up
// keys whose put was acknowledged: none is ever missed.
func TestFilterConcurrentReaders(t *testing.T) {
	t4, tid := newTable4(), newTableID()
	t4.fmin, tid.fmin = minSlots, minSlots
	key4 := func(i int) uint32 { return uint32(2*i) * 2654435761 } // a bijection of uint32
	keyID := func(i int) idKey { return idKey{mix(uint64(2*i)) | liveBit, mix(uint64(2*i)^0x5bd1e995) &^ 0xff} }
	const n = 60_000
	var acked atomic.Int64
	acked.Store(-1)
	var stop atomic.Bool
	var wg sync.WaitGroup
	for r := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(r), 9))
			for !stop.Load() {
				a := acked.Load()
				if a < 0 {
					continue
				}
				i := int(rng.Int64N(a + 1))
				if _, ok := t4.lookup(key4(i)); !ok {
					t.Errorf("acknowledged v4 key %d of %d missed", i, a)
					return
				}
				if _, ok := tid.lookup(keyID(i)); !ok {
					t.Errorf("acknowledged id key %d of %d missed", i, a)
					return
				}
			}
		}()
	}
	for i := range n {
		t4.put(key4(i), Manual, 0)
		tid.put(keyID(i), Manual, 0)
		acked.Store(int64(i))
		if i%2 == 0 { // churn: an odd key put and deleted
			t4.put(key4(i)+2654435761, Manual, 0)
			t4.del(key4(i) + 2654435761)
			k := keyID(i)
			k[0] ^= 1
			tid.put(k, Manual, 0)
			tid.del(k)
		}
	}
	stop.Store(true)
	wg.Wait()
}

// TestFilteredSetMatchesExactly loads a set big enough for its tables to
// have filters (as Lists.Load does), deletes some entries, and checks
// that every listed identity matches and none of the others does.
func TestFilteredSetMatchesExactly(t *testing.T) {
	n := 100_000
	if raceEnabled {
		n = 50_000 // the smallest that still has filters
	}
	l := bareLists()
	var entries []Entry
	ids := make([]Identity, n)
	for i := range n {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], uint32(i)*2654435761) // distinct addresses
		a := netip.AddrFrom4(b)
		ids[i] = Identity{IP: a, Token: fmt.Sprintf("t-%d", i), CookieName: "sid", Cookie: fmt.Sprintf("c-%d", i), APIKeyName: "x-key", APIKey: fmt.Sprintf("k-%d", i)}
		entries = append(entries,
			Entry{Kind: IP, Prefix: netip.PrefixFrom(a, 32)},
			Entry{Kind: Token, Value: ids[i].Token},
			Entry{Kind: Cookie, Name: "sid", Value: ids[i].Cookie},
			Entry{Kind: APIKey, Name: "x-key", Value: ids[i].APIKey})
	}
	l.Load(Deny, entries)
	s := l.sets[Deny]
	if s.v4.tab.Load().f == nil || s.ids.tab.Load().f == nil {
		t.Fatal("the tables have no filter")
	}
	deleted := map[int]bool{}
	for i := 0; i < n; i += 7 {
		for _, e := range entries[4*i : 4*i+4] {
			if !s.del(l.h, e) {
				t.Fatalf("entry %v not deleted", e)
			}
		}
		deleted[i] = true
	}
	one := func(id Identity) bool {
		k := l.Keys(&id)
		_, ok := l.Match(Deny, &id, &k)
		return ok
	}
	for i := range n {
		id := ids[i]
		if got := one(id); got == deleted[i] {
			t.Fatalf("identity %d (deleted %v): matched %v", i, deleted[i], got)
		}
		for _, single := range []Identity{{IP: id.IP}, {Token: id.Token}, {CookieName: "sid", Cookie: id.Cookie}, {APIKeyName: "x-key", APIKey: id.APIKey}} {
			if got := one(single); got == deleted[i] {
				t.Fatalf("identity %d (deleted %v), %+v alone: matched %v", i, deleted[i], single, got)
			}
		}
		if one(Identity{Token: fmt.Sprintf("other-%d", i), CookieName: "sid", Cookie: id.Token}) {
			t.Fatalf("an unlisted identity %d matched", i)
		}
	}
}

// TestKeysFinishAsKey: a request's keys, hashed half at first and made
// whole when a table must be probed, are the keys its entries are stored
// under.
func TestKeysFinishAsKey(t *testing.T) {
	l := bareLists()
	rng := rand.New(rand.NewPCG(6, 6))
	for i := range 1000 {
		id := Identity{Token: fmt.Sprint("t", rng.Uint64()), CookieName: fmt.Sprint("c", i%20), Cookie: fmt.Sprint("v", rng.Uint64()),
			APIKeyName: fmt.Sprint("x-k", i%20), APIKey: fmt.Sprint("k", rng.Uint64()), Username: fmt.Sprint("u", rng.Uint64())}
		if i%5 == 0 {
			id.Cookie = ""
		}
		k := l.Keys(&id)
		want := []Entry{{Kind: Token, Value: id.Token}, {Kind: Cookie, Name: id.CookieName, Value: id.Cookie},
			{Kind: APIKey, Name: id.APIKeyName, Value: id.APIKey}, {Kind: Username, Value: id.Username}}
		for j, e := range want {
			if e.Value == "" {
				if k.has&(1<<j) != 0 {
					t.Fatalf("identity %d: no %v, yet a key", i, e.Kind)
				}
				continue
			}
			if got := k.key(&l.h, j); got != entryKey(l.h, e) {
				t.Fatalf("identity %d, %v: key %x, stored under %x", i, e.Kind, got, entryKey(l.h, e))
			}
			if got := k.key(&l.h, j); got != entryKey(l.h, e) { // made whole once
				t.Fatalf("identity %d, %v: key %x the second time", i, e.Kind, got)
			}
		}
	}
}
