package lists

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/ase-project/ase/internal/prefetch"
)

// The flat tables below hold the two big kinds of entries — IPv4
// addresses and hashed identities — in open-addressed arrays of words:
// one cache line per lookup, no pointers for the garbage collector, and
// reads without locks. Writers are serialized by a mutex and publish each
// slot with atomic stores; a table that must grow is rebuilt aside and
// swapped in whole, so a reader always probes a consistent array.
//
// Slot words: 0 is empty, 1 a tombstone (a deleted entry; probing goes on
// past it), anything else a live entry with its meta in the low byte.

const (
	slotEmpty = 0
	slotTomb  = 1
	liveBit   = 1 << 63
	minSlots  = 1 << 10
)

// Tables are rebuilt half full and grow when three quarters full, so an
// entry costs between 4/3 and 2 slots, and a miss probes a few slots on
// average. Sizes are not powers of two: the index is the high half of
// hash * size, which keeps the load in that band at every size.
func rebuildSize(live int) int { return max(minSlots, live*2) }

// countTTL keeps n, a table's count of entries with an expiry, right when
// an entry that had one (had) now has one or not (has).
func countTTL(n *atomic.Int64, had, has bool) {
	switch {
	case has && !had:
		n.Add(1)
	case had && !has:
		n.Add(-1)
	}
}

func tooFull(used, size int) bool { return used*4 > size*3 }

// grownSize is the size a table of size slots, holding live entries and
// tomb tombstones, has grown to once n more entries were put one by one.
func grownSize(live, tomb, size, n int) int {
	for {
		fit := size*3/4 - live - tomb // puts before the one that rebuilds
		if fit >= n {
			return size
		}
		fit = max(fit, 0)
		live, n = live+fit+1, n-fit-1
		size, tomb = rebuildSize(live), 0
	}
}

func index(h uint64, n int) uint64 {
	hi, _ := bits.Mul64(h, uint64(n))
	return hi
}

// mix spreads a key over the table's index bits: sequential addresses must
// not land in sequential slots.
func mix(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	return x
}

// ttlMap keeps the expiry of the few entries that have one; lookups
// consult it only for an entry whose meta says it has a TTL.
type ttlMap[K comparable] struct {
	mu   sync.RWMutex
	m    map[K]int64
	peak int // the most entries m held: a Go map does not shrink
}

func (t *ttlMap[K]) get(k K) int64 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.m[k]
}

// adopt takes o's map (t's is empty).
func (t *ttlMap[K]) adopt(o *ttlMap[K]) {
	o.mu.Lock()
	m, peak := o.m, o.peak
	o.mu.Unlock()
	t.mu.Lock()
	t.m, t.peak = m, peak
	t.mu.Unlock()
}

func (t *ttlMap[K]) set(k K, exp int64) {
	t.mu.Lock()
	if exp == 0 {
		if delete(t.m, k); len(t.m) == 0 {
			t.m, t.peak = nil, 0 // emptied: its memory goes
		}
	} else {
		if t.m == nil {
			t.m = map[K]int64{}
		}
		t.m[k] = exp
		t.peak = max(t.peak, len(t.m))
	}
	t.mu.Unlock()
}

// --- negative filters ---

// A big table's array misses the cache on nearly every lookup, and a
// request that is listed nowhere (nearly all of them) probes every table
// of both lists. Each big array therefore comes with a blocked Bloom
// filter: one 64-bit word per key, four bits set in it, 6 bits per slot
// of the array (8 to 16 bits per entry, as tables are three eighths to
// three quarters full; 1 to 3.5% of absent keys pass), 3/32 of an
// IPv4 table's size and 3/64 of an identity table's. It fits in the cache
// where the array does not, and when it says a key is absent, the array
// is not read at all.
//
// The filter is exact in the one direction that matters: it may say
// "maybe" for a key the table does not hold, never "absent" for one it
// holds. It lives in the published array (slots4, slotsID), so that a
// reader always checks the filter of the array it probes; every key is
// set in it before its slot is stored (putLocked), or before the array is
// published (rebuild), and an adopted array brings its own. A deleted
// entry's bits stay set: the filter counts every key set in it (fill), and
// once it has taken more keys than the array has slots (entries deleted
// and others put in their place), the array is rebuilt at its size, which
// also makes a new filter from the live entries.

// filterMinSlots is the smallest array with a filter: a smaller one (512
// KiB of IPv4 slots) stays in the cache by itself.
const filterMinSlots = 1 << 16

// filterWords is the size of the filter of an array of size slots
// (tables with fewer than minSlots slots have none).
func filterWords(size, minSlots int) int {
	if size < minSlots {
		return 0
	}
	return (size*6 + 63) / 64
}

// newFilter makes the filter of an array of size slots; nil if it has
// none.
func newFilter(size, minSlots int) []atomic.Uint64 {
	n := filterWords(size, minSlots)
	if n == 0 {
		return nil
	}
	f := make([]atomic.Uint64, n)
	hugePagesFrom(unsafe.Pointer(&f[0]), uintptr(n)*8, hugePageSize)
	return f
}

// A key's place in a filter: the word (from b) and four of its bits (from
// the high 24 bits of g). b and g must be well mixed. One word is one
// load and one test, cheaper than bits spread over a cache line when the
// filter is in the cache.

func bloomMask(g uint64) uint64 {
	return 1<<(g>>58) | 1<<(g>>52&63) | 1<<(g>>46&63) | 1<<(g>>40&63)
}

func bloomSet(f []atomic.Uint64, b, g uint64) {
	f[index(b, len(f))].Or(bloomMask(g))
}

// bloomHas reports whether the key may be in the filter; false: it is
// certainly not.
func bloomHas(f []atomic.Uint64, b, g uint64) bool {
	m := bloomMask(g)
	return f[index(b, len(f))].Load()&m == m
}

// filterFull reports whether a filter that took fill keys must be made
// anew before it takes one more: past one key per slot, stale bits of
// deleted entries would make it say "maybe" too often.
func filterFull(fill, size int) bool { return fill >= size }

// bloom4 is an IPv4 key's place in a filter, from h, its mix.
func bloom4(h uint64) (uint64, uint64) { return h, h * 0x9E3779B97F4A7C15 }

// bloomID is a hashed identity's place in a filter, from the first word
// of its key alone (see hasher.half): a hash already, but for its top bit,
// which is always set.
func bloomID(k0 uint64) (uint64, uint64) { return k0 << 1, mix(k0 | liveBit) }

// --- IPv4 ---

// slots4 is a published IPv4 array and its filter (nil for a small
// array). fill (under the table's mu) counts the keys set in the filter.
type slots4 struct {
	s    []atomic.Uint64
	f    []atomic.Uint64
	fill int
}

// table4 maps IPv4 addresses to meta. Slot: liveBit | addr<<8 | meta.
type table4 struct {
	mu   sync.Mutex
	tab  atomic.Pointer[slots4]
	live int // under mu
	tomb int // under mu
	n    atomic.Int64
	nTTL atomic.Int64
	ttl  ttlMap[uint32]
	// fmin is the smallest array with a filter (filterMinSlots; tests
	// lower it)
	fmin int
}

// emptySlots4 is every empty table's array, never written: its one empty
// slot ends every probe, and the first put rebuilds the table (tooFull).
// An empty list takes nothing.
var emptySlots4 = &slots4{s: make([]atomic.Uint64, 1)}

func newTable4() *table4 {
	t := &table4{fmin: filterMinSlots}
	t.tab.Store(emptySlots4)
	return t
}

func word4(k uint32, m meta) uint64 { return liveBit | uint64(k)<<8 | uint64(m) }

// first returns the table and the slot where k's probe starts, and that
// slot's word: loading it early lets several lookups' cache misses
// overlap. When the filter tells k is absent, it returns a nil table and
// reads no slot.
func (t *table4) first(k uint32) (*slots4, uint64, uint64) {
	tab := t.tab.Load()
	h := mix(uint64(k))
	if tab.f != nil {
		if b, g := bloom4(h); !bloomHas(tab.f, b, g) {
			return nil, 0, 0
		}
	}
	i := index(h, len(tab.s))
	return tab, i, tab.s[i].Load()
}

// prefetch starts loading the filter word first will read for addr, an
// IPv4 address.
func (t *table4) prefetch(addr netip.Addr) {
	if tab := t.tab.Load(); tab.f != nil {
		a := addr.As4()
		b, _ := bloom4(mix(uint64(binary.BigEndian.Uint32(a[:]))))
		prefetch.Lines(unsafe.Pointer(&tab.f[index(b, len(tab.f))]), 1)
	}
}

// resolve finishes a lookup begun by first.
func (t *table4) resolve(k uint32, tab *slots4, i, w uint64) (meta, bool) {
	if tab == nil {
		return 0, false
	}
	n := uint64(len(tab.s))
	for {
		if w == slotEmpty {
			return 0, false
		}
		if w != slotTomb && uint32(w>>8) == k {
			return meta(w), true
		}
		if i++; i == n {
			i = 0
		}
		w = tab.s[i].Load()
	}
}

func (t *table4) lookup(k uint32) (meta, bool) {
	tab, i, w := t.first(k)
	return t.resolve(k, tab, i, w)
}

// find returns the slot of k, or -1, and the first free slot on its probe
// (under mu).
func (t *table4) find(tab *slots4, k uint32) (at, free int) {
	n := uint64(len(tab.s))
	free = -1
	for i := index(mix(uint64(k)), len(tab.s)); ; i = next(i, n) {
		w := tab.s[i].Load()
		switch {
		case w == slotEmpty:
			if free < 0 {
				free = int(i)
			}
			return -1, free
		case w == slotTomb:
			if free < 0 {
				free = int(i)
			}
		case uint32(w>>8) == k:
			return int(i), free
		}
	}
}

func (t *table4) put(k uint32, tag Tag, exp int64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.putLocked(k, tag, exp)
}

// add puts k without an expiry unless it is present and live at now
// (Unix ms), in one step under the writer lock: it reports whether it put
// k and whether k was new.
func (t *table4) add(k uint32, tag Tag, now int64) (put, isNew bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if m, ok := t.lookup(k); ok && (m&hasTTL == 0 || now < t.ttl.get(k)) {
		return false, false
	}
	return true, t.putLocked(k, tag, 0)
}

func (t *table4) putLocked(k uint32, tag Tag, exp int64) bool {
	m := meta(tag)
	if exp != 0 {
		m |= hasTTL
	}
	tab := t.tab.Load()
	at, _ := t.find(tab, k)
	if at >= 0 {
		old := meta(tab.s[at].Load())
		t.ttl.set(k, exp)
		tab.s[at].Store(word4(k, m))
		countTTL(&t.nTTL, old&hasTTL != 0, exp != 0)
		return false
	}
	if tooFull(t.live+t.tomb+1, len(tab.s)) {
		tab = t.rebuild(tab, rebuildSize(t.live+1))
	} else if tab.f != nil && filterFull(tab.fill, len(tab.s)) {
		tab = t.rebuild(tab, len(tab.s))
	}
	_, free := t.find(tab, k)
	if tab.s[free].Load() == slotTomb {
		t.tomb--
	}
	t.ttl.set(k, exp)
	if tab.f != nil { // before the slot: a reader that finds k passed its filter
		b, g := bloom4(mix(uint64(k)))
		bloomSet(tab.f, b, g)
		tab.fill++
	}
	tab.s[free].Store(word4(k, m))
	t.live++
	t.n.Add(1)
	countTTL(&t.nTTL, false, exp != 0)
	return true
}

func (t *table4) del(k uint32) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	tab := t.tab.Load()
	at, _ := t.find(tab, k)
	if at < 0 {
		return false
	}
	old := meta(tab.s[at].Load())
	tab.s[at].Store(slotTomb)
	t.live--
	t.tomb++
	t.n.Add(-1)
	if old&hasTTL != 0 {
		t.ttl.set(k, 0)
		t.nTTL.Add(-1)
	}
	if t.live == 0 { // emptied (cleared): its memory goes
		t.tab.Store(emptySlots4)
		t.tomb = 0
	}
	return true
}

// rebuild copies the live entries into a table of size slots (growing, or
// just dropping tombstones) and publishes it.
func (t *table4) rebuild(old *slots4, size int) *slots4 {
	nt := &slots4{s: make([]atomic.Uint64, size), f: newFilter(size, t.fmin)}
	hugePages(unsafe.Pointer(&nt.s[0]), uintptr(size)*unsafe.Sizeof(nt.s[0]))
	for i := range old.s {
		w := old.s[i].Load()
		if w == slotEmpty || w == slotTomb {
			continue
		}
		h := mix(uint64(uint32(w >> 8)))
		if nt.f != nil {
			b, g := bloom4(h)
			bloomSet(nt.f, b, g)
			nt.fill++
		}
		j := index(h, size)
		for nt.s[j].Load() != slotEmpty {
			j = next(j, uint64(size))
		}
		nt.s[j].Store(w)
	}
	t.tomb = 0
	t.tab.Store(nt)
	return nt
}

// reserve makes room for n more entries: a large merge rebuilds the table
// once, not at every doubling, to the size those puts would have grown it
// to (so that what it takes is what memory.go predicts either way).
func (t *table4) reserve(n int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if tab := t.tab.Load(); grownSize(t.live, t.tomb, len(tab.s), n) != len(tab.s) {
		t.rebuild(tab, grownSize(t.live, t.tomb, len(tab.s), n))
	}
}

// adopt makes o's entries t's, if t is empty, by taking o's array: a
// generation's entries turn live without a copy. o must not be used after.
func (t *table4) adopt(o *table4) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.live+t.tomb != 0 || t.ttl.m != nil {
		return false
	}
	t.ttl.adopt(&o.ttl)
	t.live, t.tomb = o.live, o.tomb
	t.n.Store(o.n.Load())
	t.nTTL.Store(o.nTTL.Load())
	t.tab.Store(o.tab.Load())
	return true
}

// each calls fn for every entry, with its expiry (0: none). The table must
// not change meanwhile.
func (t *table4) each(fn func(k uint32, m meta, exp int64)) {
	tab := t.tab.Load()
	for i := range tab.s {
		w := tab.s[i].Load()
		if w == slotEmpty || w == slotTomb {
			continue
		}
		k, m, exp := uint32(w>>8), meta(w), int64(0)
		if m&hasTTL != 0 {
			exp = t.ttl.get(k)
		}
		fn(k, m, exp)
	}
}

func (t *table4) expiry(k uint32) (int64, bool) {
	m, ok := t.lookup(k)
	if !ok || m&hasTTL == 0 {
		return 0, ok
	}
	return t.ttl.get(k), true
}

// --- hashed identities ---

type slotID struct{ w0, w1 atomic.Uint64 }

// slotsID is slots4 for hashed identities.
type slotsID struct {
	s    []slotID
	f    []atomic.Uint64
	fill int
}

// tableID maps idKeys to meta. Slot: w0 = liveBit | k[0]; w1 = k[1] with
// meta in its low byte (119 bits of key remain: collisions stay below
// 2^-70 among a billion entries). Writers store w1 before w0, readers load
// w0 before w1, so a reader never pairs a new w0 with a stale w1.
type tableID struct {
	mu   sync.Mutex
	tab  atomic.Pointer[slotsID]
	live int
	tomb int
	n    atomic.Int64
	nTTL atomic.Int64
	ttl  ttlMap[idKey]
	fmin int
}

// emptySlotsID is emptySlots4 for hashed identities.
var emptySlotsID = &slotsID{s: make([]slotID, 1)}

func newTableID() *tableID {
	t := &tableID{fmin: filterMinSlots}
	t.tab.Store(emptySlotsID)
	return t
}

// idIndex places a key by the bits of k[1] that its slot keeps.
func idIndex(k1 uint64, n int) uint64 { return index(mix(k1&^0xff), n) }

func next(i, n uint64) uint64 {
	if i++; i == n {
		return 0
	}
	return i
}

func idWords(k idKey, m meta) (uint64, uint64) { return liveBit | k[0], k[1]&^0xff | uint64(m) }

// first is table4.first for hashed identities.
func (t *tableID) first(k idKey) (*slotsID, uint64, uint64) {
	tab := t.tab.Load()
	if tab.f != nil {
		if b, g := bloomID(k[0]); !bloomHas(tab.f, b, g) {
			return nil, 0, 0
		}
	}
	i := idIndex(k[1], len(tab.s))
	return tab, i, tab.s[i].w0.Load()
}

// firstOf is first for identity j of k, in tab, the table's array: it
// makes j's key whole only if the filter does not rule it out.
func (t *tableID) firstOf(h *hasher, tab *slotsID, k *Keys, j int) (*slotsID, uint64, uint64) {
	if tab.f != nil {
		if b, g := bloomID(k.k[j][0]); !bloomHas(tab.f, b, g) {
			return nil, 0, 0
		}
	}
	i := idIndex(k.key(h, j)[1], len(tab.s))
	return tab, i, tab.s[i].w0.Load()
}

func (t *tableID) resolve(k idKey, tab *slotsID, i, w0 uint64) (meta, bool) {
	if tab == nil {
		return 0, false
	}
	n := uint64(len(tab.s))
	want0 := liveBit | k[0]
	for {
		if w0 == slotEmpty {
			return 0, false
		}
		if w0 == want0 {
			if w1 := tab.s[i].w1.Load(); w1&^0xff == k[1]&^0xff {
				return meta(w1), true
			}
		}
		if i++; i == n {
			i = 0
		}
		w0 = tab.s[i].w0.Load()
	}
}

func (t *tableID) lookup(k idKey) (meta, bool) {
	tab, i, w := t.first(k)
	return t.resolve(k, tab, i, w)
}

func (t *tableID) find(tab *slotsID, k idKey) (at, free int) {
	n := uint64(len(tab.s))
	want0 := liveBit | k[0]
	free = -1
	for i := idIndex(k[1], len(tab.s)); ; i = next(i, n) {
		w0 := tab.s[i].w0.Load()
		switch {
		case w0 == slotEmpty:
			if free < 0 {
				free = int(i)
			}
			return -1, free
		case w0 == slotTomb:
			if free < 0 {
				free = int(i)
			}
		case w0 == want0 && tab.s[i].w1.Load()&^0xff == k[1]&^0xff:
			return int(i), free
		}
	}
}

func (t *tableID) put(k idKey, tag Tag, exp int64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.putLocked(k, tag, exp)
}

// add is table4.add for hashed identities.
func (t *tableID) add(k idKey, tag Tag, now int64) (put, isNew bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if m, ok := t.lookup(k); ok && (m&hasTTL == 0 || now < t.ttl.get(k)) {
		return false, false
	}
	return true, t.putLocked(k, tag, 0)
}

func (t *tableID) putLocked(k idKey, tag Tag, exp int64) bool {
	m := meta(tag)
	if exp != 0 {
		m |= hasTTL
	}
	w0, w1 := idWords(k, m)
	tab := t.tab.Load()
	at, _ := t.find(tab, k)
	if at >= 0 {
		old := meta(tab.s[at].w1.Load())
		t.ttl.set(k, exp)
		tab.s[at].w1.Store(w1)
		countTTL(&t.nTTL, old&hasTTL != 0, exp != 0)
		return false
	}
	if tooFull(t.live+t.tomb+1, len(tab.s)) {
		tab = t.rebuild(tab, rebuildSize(t.live+1))
	} else if tab.f != nil && filterFull(tab.fill, len(tab.s)) {
		tab = t.rebuild(tab, len(tab.s))
	}
	_, free := t.find(tab, k)
	if tab.s[free].w0.Load() == slotTomb {
		t.tomb--
	}
	t.ttl.set(k, exp)
	if tab.f != nil { // before the slot, as in table4.putLocked
		b, g := bloomID(w0)
		bloomSet(tab.f, b, g)
		tab.fill++
	}
	tab.s[free].w1.Store(w1)
	tab.s[free].w0.Store(w0)
	t.live++
	t.n.Add(1)
	countTTL(&t.nTTL, false, exp != 0)
	return true
}

func (t *tableID) del(k idKey) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	tab := t.tab.Load()
	at, _ := t.find(tab, k)
	if at < 0 {
		return false
	}
	old := meta(tab.s[at].w1.Load())
	tab.s[at].w0.Store(slotTomb)
	t.live--
	t.tomb++
	t.n.Add(-1)
	if old&hasTTL != 0 {
		t.ttl.set(k, 0)
		t.nTTL.Add(-1)
	}
	if t.live == 0 {
		t.tab.Store(emptySlotsID)
		t.tomb = 0
	}
	return true
}

func (t *tableID) rebuild(old *slotsID, size int) *slotsID {
	nt := &slotsID{s: make([]slotID, size), f: newFilter(size, t.fmin)}
	hugePages(unsafe.Pointer(&nt.s[0]), uintptr(size)*unsafe.Sizeof(nt.s[0]))
	for i := range old.s {
		w0 := old.s[i].w0.Load()
		if w0 == slotEmpty || w0 == slotTomb {
			continue
		}
		w1 := old.s[i].w1.Load()
		if nt.f != nil {
			b, g := bloomID(w0)
			bloomSet(nt.f, b, g)
			nt.fill++
		}
		j := idIndex(w1, size)
		for nt.s[j].w0.Load() != slotEmpty {
			j = next(j, uint64(size))
		}
		nt.s[j].w1.Store(w1)
		nt.s[j].w0.Store(w0)
	}
	t.tomb = 0
	t.tab.Store(nt)
	return nt
}

// reserve is table4.reserve for hashed identities.
func (t *tableID) reserve(n int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if tab := t.tab.Load(); grownSize(t.live, t.tomb, len(tab.s), n) != len(tab.s) {
		t.rebuild(tab, grownSize(t.live, t.tomb, len(tab.s), n))
	}
}

// adopt is table4.adopt for hashed identities.
func (t *tableID) adopt(o *tableID) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.live+t.tomb != 0 || t.ttl.m != nil {
		return false
	}
	t.ttl.adopt(&o.ttl)
	t.live, t.tomb = o.live, o.tomb
	t.n.Store(o.n.Load())
	t.nTTL.Store(o.nTTL.Load())
	t.tab.Store(o.tab.Load())
	return true
}

// each is table4.each for hashed identities: a key is whole in its slot,
// since hasher.key keeps only the bits a slot holds.
func (t *tableID) each(fn func(k idKey, m meta, exp int64)) {
	tab := t.tab.Load()
	for i := range tab.s {
		w0 := tab.s[i].w0.Load()
		if w0 == slotEmpty || w0 == slotTomb {
			continue
		}
		w1 := tab.s[i].w1.Load()
		k, m, exp := idKey{w0, w1 &^ 0xff}, meta(w1), int64(0)
		if m&hasTTL != 0 {
			exp = t.ttl.get(k)
		}
		fn(k, m, exp)
	}
}

func (t *tableID) expiry(k idKey) (int64, bool) {
	m, ok := t.lookup(k)
	if !ok || m&hasTTL == 0 {
		return 0, ok
	}
	return t.ttl.get(k), true
}
