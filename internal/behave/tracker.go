package behave

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
	ref   []bool  // per slot: seen since the clock hand last passed (dense: apart from the slots)
	index []int32 // open addressing: key hash -> slot+1 (0 = free)
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
	return newTrackerOn(make([]slot[S], capacity), make([]bool, capacity))
}

// newTrackerOn returns a tracker of len(slots) identities on slots and
// ref, which the caller allocated (one array for several trackers, hinted
// to huge pages: see New).
func newTrackerOn[S any](slots []slot[S], ref []bool) *Tracker[S] {
	size := 1
	for size < 2*len(slots) {
		size <<= 1
	}
	return &Tracker[S]{slots: slots, ref: ref, index: make([]int32, size), mask: uint64(size - 1)}
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
		s := t.index[i]
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
		for t.index[i] != 0 {
			i = (i + 1) & t.mask
		}
	}
	var zero S
	t.slots[n] = slot[S]{key: key, s: zero}
	t.ref[n] = true
	t.index[i] = int32(n + 1)
	return &t.slots[n].s, int32(n), true
}

// Peek returns the state of key, or nil when the key is not tracked (it
// never makes one, nor marks the key as seen).
func (t *Tracker[S]) Peek(key [2]uint64) *S {
	key = fixKey(key)
	i := key[0] & t.mask
	for {
		s := t.index[i]
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
	for t.slots[t.index[i]-1].key != key {
		i = (i + 1) & t.mask
	}
	for {
		t.index[i] = 0
		j := i
		for {
			j = (j + 1) & t.mask
			if t.index[j] == 0 {
				return
			}
			home := t.slots[t.index[j]-1].key[0] & t.mask
			// j's entry may move to i if its home is not within (i, j].
			if (j > i && (home <= i || home > j)) || (j < i && home <= i && home > j) {
				t.index[i] = t.index[j]
				i = j
				break
			}
		}
	}
}
