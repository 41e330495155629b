package behave

import (
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"
	"unsafe"

	"github.com/ase-project/ase/internal/lists"
)

// TestTrackerBounded: up to capacity every identity keeps its state; past
// it, a flood of one-off identities evicts one-offs, never an identity
// that keeps coming; memory is allocated once; every key is found again
// after evictions moved the index around (checked against a map).
func TestTrackerBounded(t *testing.T) {
	tr := NewTracker[int](1000)
	rng := rand.New(rand.NewPCG(1, 2))
	key := func() [2]uint64 { return [2]uint64{rng.Uint64(), rng.Uint64()} }
	regular := key()
	model := map[[2]uint64]int{}
	for n := range 200_000 {
		if n%3 == 0 {
			s, _, _ := tr.Get(regular)
			*s++
		}
		k := key()
		s, _, fresh := tr.Get(k)
		if !fresh {
			t.Fatal("a new key was found")
		}
		*s = n
		model[k] = n
		if tr.Len() > 1000 {
			t.Fatalf("%d tracked", tr.Len())
		}
	}
	if s, _, fresh := tr.Get(regular); fresh || *s < 60_000 {
		t.Fatalf("the regular identity was evicted (fresh %v, count %d)", fresh, *s)
	}
	// Every key still tracked is found with its own state.
	found := 0
	for i := 0; i < tr.used; i++ {
		k := tr.slots[i].key
		if k == regular {
			continue
		}
		s, n, fresh := tr.Get(k)
		if tr.At(n, k) != s {
			t.Fatalf("key %v: At(%d) is not its state", k, n)
		}
		if fresh || *s != model[k] {
			t.Fatalf("key %v: fresh %v, state %d, want %d", k, fresh, *s, model[k])
		}
		found++
	}
	if found != 999 {
		t.Fatalf("%d keys found", found)
	}
	if n := testing.AllocsPerRun(1000, func() { tr.Get(key()) }); n != 0 {
		t.Fatalf("%v allocations per new identity", n)
	}
}

// The fields every request touches share the slot's first cache line
// with its key; a sample is one line.
func TestHotFieldsShareALine(t *testing.T) {
	var sl slot[state]
	if end := unsafe.Offsetof(sl.s) + unsafe.Offsetof(sl.s.lastIP) + unsafe.Sizeof(sl.s.lastIP); end > 64 {
		t.Fatalf("the hot fields end at byte %d of the slot, past its first line", end)
	}
	if n := unsafe.Sizeof(sample{}); n != 64 {
		t.Fatalf("a sample takes %d bytes, want one line (64)", n)
	}
	if off := unsafe.Offsetof(sl.s) + unsafe.Offsetof(sl.s.samples); off%64 != 0 {
		t.Fatalf("the samples start at byte %d of the slot, not on a line", off)
	}
	// A credential's request and its answer touch a second line only.
	ips, ok := unsafe.Offsetof(sl.s)+unsafe.Offsetof(sl.s.ips), unsafe.Offsetof(sl.s)+unsafe.Offsetof(sl.s.okPaths)
	if ips/64 != 1 || (ips+unsafe.Sizeof(sl.s.ips)-1)/64 != 1 || ok/64 != 1 || (ok+unsafe.Sizeof(sl.s.okPaths)-1)/64 != 1 {
		t.Fatalf("the sketches of addresses (bytes %d-) and of 2xx paths (bytes %d-) are not both in the slot's second line", ips, ok)
	}
	if lineMask != 0b11 {
		t.Fatalf("a request prefetches lines %b, want the first two", lineMask)
	}
	if n := unsafe.Sizeof(sl) + 2*4 + 1; n > StateBytes {
		t.Fatalf("a slot takes %d bytes, more than the %d stated", n, StateBytes)
	}
}

// The identities of one shard are spread over its tracker's index: a
// lookup probes about one entry, whatever the number of identities (a
// shard chosen by the low bits of the hash, which the index places keys
// by, crowded each shard's keys into 1/64 of its index).
func TestShardsSpreadOverTheirIndex(t *testing.T) {
	s := newSim(t, time.Minute, time.Hour)
	for i := range 12_000 {
		s.do(lists.Identity{IP: netip.AddrFrom4([4]byte{127, byte(i >> 16), byte(i >> 8), byte(i)})}, "GET", "/shop/items/1", 200, 10)
	}
	probes, keys := 0, 0
	for i := range s.e.shards {
		tr := s.e.shards[i].t
		for n := range tr.used {
			k := tr.slots[n].key
			j := k[0] & tr.mask
			for p := 1; ; p++ {
				if tr.index[j].Load() == int32(n+1) {
					probes += p
					break
				}
				j = (j + 1) & tr.mask
			}
			keys++
		}
	}
	if keys != 12_000 {
		t.Fatalf("%d identities tracked", keys)
	}
	if avg := float64(probes) / float64(keys); avg > 2 {
		t.Fatalf("a lookup probes %.1f index entries on average, want about 1", avg)
	}
}
