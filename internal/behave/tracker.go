package behave

import (
	"sync/atomic"
	"unsafe"

	"github.com/ase-project/ase/internal/prefetch"
)

// Tracker keeps a state S for at most a fixed number of identities (a
// client address, a token's hash...), in memory allocated once: an
// identity seen while the tracker is full takes the place of one not seen
// recently (CLOCK, second chance), so a flood of new identities cannot grow
// it and the identities that keep coming stay. Keys are 128-bit hashes
// made with a per-process seed. Each slot holds its key and its state
// together, so finding an identity touches the index and the slot's first
// cache line (the CLOCK bits are a dense array of their own). Not safe for concurrent use: the caller shards
// and locks.
type Tracker[S any] struct {
	slots []slot[S]
	ref   []bool // per slot: seen since the clock hand last passed (dense: apart from the slots)
	// index is open addressing: key hash -> slot+1 (0 = free). Its
	// entries are atomic so that Prefetch may read them without the
	// caller's lock (a load on amd64 is a plain MOV; stores happen only
	// when an identity comes or goes).
	index []atomic.Int32
	mask  uint64
	used  int
	hand  int
}

type slot[S any] struct {
	key [2]uint64 // {0, 0} = empty
	s   S
}

// NewTracker returns a tracker of capacity identities.
func NewTracker[S any](capacity int) *Tracker[S] {
	capacity = max(capacity, 1)
	return newTrackerOn(make([]slot[S], capacity), make([]bool, capacity), make([]atomic.Int32, indexSize(capacity)))
}

// indexSize is the size of the index of a tracker of capacity identities:
// the power of two at least twice it.
func indexSize(capacity int) int {
	size := 1
	for size < 2*capacity {
		size <<= 1
	}
	return size
}

// newTrackerOn returns a tracker of len(slots) identities on slots, ref
// and index (of indexSize(len(slots))), which the caller allocated (one
// array of each for several trackers, hinted to huge pages: see New).
func newTrackerOn[S any](slots []slot[S], ref []bool, index []atomic.Int32) *Tracker[S] {
	return &Tracker[S]{slots: slots, ref: ref, index: index, mask: uint64(len(index) - 1)}
}

// Prefetch starts loading the lines of key's slot that mask selects
// (bit i: bytes 64*i to 64*i+63 of the slot), if the index's first entry
// for key is a slot, without the caller's lock: a caller that will visit
// several identities prefetches them all first, so that their cache misses
// overlap. It reads only the index (atomically) and changes nothing; a
// wrong guess (another key's slot, an entry moved meanwhile) costs only
// the prefetch.
func (t *Tracker[S]) Prefetch(key [2]uint64, mask uint32) {
	if s := t.index[fixKey(key)[0]&t.mask].Load(); s > 0 && int(s) <= len(t.slots) {
		prefetch.Lines(unsafe.Pointer(&t.slots[s-1]), mask)
	}
}

// PrefetchSlot is Prefetch for an identity whose slot is known (Get
// returned it): it reads nothing.
func (t *Tracker[S]) PrefetchSlot(n int32, mask uint32) {
	if n >= 0 && int(n) < len(t.slots) {
		prefetch.Lines(unsafe.Pointer(&t.slots[n]), mask)
	}
}

// Len is the number of identities tracked.
func (t *Tracker[S]) Len() int { return t.used }

func fixKey(key [2]uint64) [2]uint64 {
	if key == ([2]uint64{}) {
		key[1] = 1 // the empty key is reserved
	}
	return key
}

// Get returns the state of key, making it (zeroed) if the key is new, and
// its slot (for At); the last result reports whether it was new (and so
// whether another identity was evicted for it, when the tracker was full).
func (t *Tracker[S]) Get(key [2]uint64) (*S, int32, bool) {
	key = fixKey(key)
	i := key[0] & t.mask
	for {
		s := t.index[i].Load()
		if s == 0 {
			break
		}
		if sl := &t.slots[s-1]; sl.key == key {
			t.ref[s-1] = true
			return &sl.s, s - 1, false
		}
		i = (i + 1) & t.mask
	}
	var n int
	if t.used < len(t.slots) {
		n = t.used
		t.used++
	} else {
		n = t.victim()
		t.unindex(t.slots[n].key)
		i = key[0] & t.mask // the removal may have moved entries
		for t.index[i].Load() != 0 {
			i = (i + 1) & t.mask
		}
	}
	var zero S
	t.slots[n] = slot[S]{key: key, s: zero}
	t.ref[n] = true
	t.index[i].Store(int32(n + 1))
	return &t.slots[n].s, int32(n), true
}

// Peek returns the state of key, or nil when the key is not tracked (it
// never makes one, nor marks the key as seen).
func (t *Tracker[S]) Peek(key [2]uint64) *S {
	key = fixKey(key)
	i := key[0] & t.mask
	for {
		s := t.index[i].Load()
		if s == 0 {
			return nil
		}
		if sl := &t.slots[s-1]; sl.key == key {
			return &sl.s
		}
		i = (i + 1) & t.mask
	}
}

// At returns the state in slot n if it still holds key (nothing evicted
// it since Get returned n), else nil: the index is not read.
func (t *Tracker[S]) At(n int32, key [2]uint64) *S {
	key = fixKey(key)
	if n < 0 || int(n) >= t.used || t.slots[n].key != key {
		return nil
	}
	return &t.slots[n].s
}

// victim picks a slot not seen since the hand last passed it.
func (t *Tracker[S]) victim() int {
	for {
		s := t.hand
		t.hand = (t.hand + 1) % len(t.slots)
		if !t.ref[s] {
			return s
		}
		t.ref[s] = false
	}
}

// unindex removes key from the index, shifting back the entries after it
// so that every probe still finds its key (no tombstones).
func (t *Tracker[S]) unindex(key [2]uint64) {
	i := key[0] & t.mask
	for t.slots[t.index[i].Load()-1].key != key {
		i = (i + 1) & t.mask
	}
	for {
		t.index[i].Store(0)
		j := i
		for {
			j = (j + 1) & t.mask
			sj := t.index[j].Load()
			if sj == 0 {
				return
			}
			home := t.slots[sj-1].key[0] & t.mask
			// j's entry may move to i if its home is not within (i, j].
			if (j > i && (home <= i || home > j)) || (j < i && home <= i && home > j) {
				t.index[i].Store(sj)
				i = j
				break
			}
		}
	}
}
