package lists

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
)

// TestFlatTablesAgainstModel drives both flat tables with random puts and
// deletes (through growth and tombstone rebuilds) and compares every
// answer with a Go map.
func TestFlatTablesAgainstModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	t4, tid := newTable4(), newTableID()
	m4 := map[uint32]Tag{}
	mid := map[idKey]Tag{}
	keys4 := make([]uint32, 5000)
	keysID := make([]idKey, 5000)
	for i := range keys4 {
		keys4[i] = rng.Uint32()
		keysID[i] = idKey{rng.Uint64(), rng.Uint64()}
	}
	for step := 0; step < 200_000; step++ {
		i := rng.IntN(len(keys4))
		tag := Tag(rng.IntN(int(numTags)))
		switch rng.IntN(3) {
		case 0, 1:
			_, had := m4[keys4[i]]
			if added := t4.put(keys4[i], tag, 0); added == had {
				t.Fatalf("step %d: put reported added=%v for a key present=%v", step, added, had)
			}
			m4[keys4[i]] = tag
			tid.put(keysID[i], tag, int64(step%2))
			mid[keysID[i]] = tag
		case 2:
			_, had := m4[keys4[i]]
			if t4.del(keys4[i]) != had {
				t.Fatalf("step %d: del disagrees with the model", step)
			}
			delete(m4, keys4[i])
			tid.del(keysID[i])
			delete(mid, keysID[i])
		}
		if step%1000 == 0 {
			for j := range keys4 {
				m, ok := t4.lookup(keys4[j])
				want, wok := m4[keys4[j]]
				if ok != wok || (ok && m.tag() != want) {
					t.Fatalf("step %d: v4 key %d: got %v %v, want %v %v", step, j, m.tag(), ok, want, wok)
				}
				mi, ok := tid.lookup(keysID[j])
				want, wok = mid[keysID[j]]
				if ok != wok || (ok && mi.tag() != want) {
					t.Fatalf("step %d: id key %d: got %v %v, want %v %v", step, j, mi.tag(), ok, want, wok)
				}
			}
			if int(t4.n.Load()) != len(m4) || int(tid.n.Load()) != len(mid) {
				t.Fatalf("step %d: counts %d/%d, want %d/%d", step, t4.n.Load(), tid.n.Load(), len(m4), len(mid))
			}
		}
	}
}

// TestFlatTablesConcurrentReaders checks, under -race, that readers never
// see a key that was never inserted nor miss one that is permanently
// present while writers churn other keys and grow the tables.
func TestFlatTablesConcurrentReaders(t *testing.T) {
	t4, tid := newTable4(), newTableID()
	const stable = 1000
	for i := uint32(0); i < stable; i++ {
		t4.put(i, Decoy, 0)
		tid.put(idKey{uint64(i), uint64(i) << 8}, Decoy, 0)
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	for r := 0; r < 2; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; !stop.Load(); n++ {
				k := uint32(n % stable)
				if m, ok := t4.lookup(k); !ok || m.tag() != Decoy {
					t.Errorf("stable v4 key %d lost", k)
					return
				}
				if m, ok := tid.lookup(idKey{uint64(k), uint64(k) << 8}); !ok || m.tag() != Decoy {
					t.Errorf("stable id key %d lost", k)
					return
				}
				if _, ok := t4.lookup(1<<31 + k); ok {
					t.Errorf("never-inserted key %d found", 1<<31+k)
					return
				}
			}
		}()
	}
	for i := uint32(0); i < 50_000; i++ {
		k := 1<<20 + i
		t4.put(k, Manual, 0)
		tid.put(idKey{uint64(k), uint64(k) << 8}, Manual, 0)
		if i%3 == 0 {
			t4.del(k)
			tid.del(idKey{uint64(k), uint64(k) << 8})
		}
	}
	stop.Store(true)
	wg.Wait()
}
