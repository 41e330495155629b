package behave

// Tracker keeps a state S for at most a fixed number of identities (a
// client address, a token's hash...), in memory allocated once: an
// identity seen while the tracker is full takes the place of one not seen
// recently (CLOCK, second chance), so a flood of new identities cannot grow
// it and the identities that keep coming stay. Keys are 128-bit hashes
// made with a per-process seed. Not safe for concurrent use: the caller
// shards and locks.
type Tracker[S any] struct {
	keys  [][2]uint64 // per slot; {0, 0} = empty
	ref   []bool      // per slot: seen since the clock hand last passed
	state []S
	index []int32 // open addressing: key hash -> slot+1 (0 = free)
	mask  uint64
	used  int
	hand  int
}

// NewTracker returns a tracker of capacity identities.
func NewTracker[S any](capacity int) *Tracker[S] {
	capacity = max(capacity, 1)
	size := 1
	for size < 2*capacity {
		size <<= 1
	}
	return &Tracker[S]{
		keys: make([][2]uint64, capacity), ref: make([]bool, capacity), state: make([]S, capacity),
		index: make([]int32, size), mask: uint64(size - 1),
	}
}

// Len is the number of identities tracked.
func (t *Tracker[S]) Len() int { return t.used }

// Get returns the state of key, making it (zeroed) if the key is new; the
// second result reports whether it was new (and so whether another
// identity was evicted for it, when the tracker was full).
func (t *Tracker[S]) Get(key [2]uint64) (*S, bool) {
	if key == ([2]uint64{}) {
		key[1] = 1 // the empty key is reserved
	}
	i := key[0] & t.mask
	for {
		s := t.index[i]
		if s == 0 {
			break
		}
		if t.keys[s-1] == key {
			t.ref[s-1] = true
			return &t.state[s-1], false
		}
		i = (i + 1) & t.mask
	}
	var slot int
	if t.used < len(t.keys) {
		slot = t.used
		t.used++
	} else {
		slot = t.victim()
		t.unindex(t.keys[slot])
		i = key[0] & t.mask // the removal may have moved entries
		for t.index[i] != 0 {
			i = (i + 1) & t.mask
		}
	}
	t.keys[slot], t.ref[slot] = key, true
	var zero S
	t.state[slot] = zero
	t.index[i] = int32(slot + 1)
	return &t.state[slot], true
}

// Peek returns the state of key, or nil when the key is not tracked (it
// never makes one, nor marks the key as seen).
func (t *Tracker[S]) Peek(key [2]uint64) *S {
	if key == ([2]uint64{}) {
		key[1] = 1
	}
	i := key[0] & t.mask
	for {
		s := t.index[i]
		if s == 0 {
			return nil
		}
		if t.keys[s-1] == key {
			return &t.state[s-1]
		}
		i = (i + 1) & t.mask
	}
}

// victim picks a slot not seen since the hand last passed it.
func (t *Tracker[S]) victim() int {
	for {
		s := t.hand
		t.hand = (t.hand + 1) % len(t.keys)
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
	for t.keys[t.index[i]-1] != key {
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
			home := t.keys[t.index[j]-1][0] & t.mask
			// j's entry may move to i if its home is not within (i, j].
			if (j > i && (home <= i || home > j)) || (j < i && home <= i && home > j) {
				t.index[i] = t.index[j]
				i = j
				break
			}
		}
	}
}
