package lists

import (
	"math/bits"
	"net/netip"
	"reflect"
	"sync"
)

// What the lists take in memory, as status reports it and the budget
// (attack_list_memory) counts it: the bytes of the structures themselves,
// not estimates per entry. The flat tables' arrays are known exactly; Go's
// maps (IPv6 addresses, expiries) are modelled on their layout from their
// peak size (they never shrink); the CIDR trie is measured by walking it,
// again only once it changed by a sixteenth since; the expiry heap's keys
// from a sample. A change is checked against the budget by what the
// structures will take once it is made, a table's growth included (see
// memoryWith), so that "used" and what a change needs add up to what
// status will show after it.

// counts are entries by what they take in a Set.
type counts struct {
	v4, v6, cidr, id int64
	// the entries among them with an expiry, by structure
	ttl4, ttl6, ttlID, ttlCIDR int64
}

func (c *counts) add(e Entry) {
	ttl := !e.Expires.IsZero()
	switch p := e.Prefix; {
	case e.Kind != IP:
		c.id++
		if ttl {
			c.ttlID++
		}
	case !p.IsSingleIP():
		c.cidr++
		if ttl {
			c.ttlCIDR++
		}
	case p.Addr().Is4():
		c.v4++
		if ttl {
			c.ttl4++
		}
	default:
		c.v6++
		if ttl {
			c.ttl6++
		}
	}
}

func (c counts) ttl() int64 { return c.ttl4 + c.ttl6 + c.ttlID + c.ttlCIDR }

// MemoryUsed returns the bytes both lists take.
func (l *Lists) MemoryUsed() int64 { return l.memoryAfter([2]counts{}) }

// memoryAfter returns the bytes both lists will take once add[list] is put
// into each list.
func (l *Lists) memoryAfter(add [2]counts) int64 {
	return l.sets[Deny].memoryWith(add[Deny]) + l.sets[Allow].memoryWith(add[Allow]) + l.heapBytes(add[Deny].ttl()+add[Allow].ttl())
}

// needFor returns what putting c into list adds to what the lists take.
func (l *Lists) needFor(list List, c counts) (used, need int64) {
	var add [2]counts
	add[list] = c
	used = l.MemoryUsed()
	return used, max(l.memoryAfter(add)-used, 0)
}

// checkBudget refuses (*MemoryError) putting c into list when that would
// take the lists past attack_list_memory.
func (l *Lists) checkBudget(list List, c counts) error {
	if c == (counts{}) {
		return nil
	}
	if used, need := l.needFor(list, c); used+need > l.limit {
		return &MemoryError{Configured: l.limit, Used: used, Need: need}
	}
	return nil
}

// memoryWith returns the bytes s will take once add is put into it.
func (s *Set) memoryWith(add counts) int64 {
	b := s.v4.bytesWith(int(add.v4)) + s.v4.ttl.bytes(int(add.ttl4), 16)
	b += s.ids.bytesWith(int(add.id)) + s.ids.ttl.bytes(int(add.ttlID), 24)
	b += s.v6.bytes(add.v6, add.ttl6)
	return b + s.cidrBytes(add.cidr)
}

// bytesWith returns the bytes of the table's array and its filter once n
// more entries are put (none already there).
func (t *table4) bytesWith(n int) int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	size := slotsWith(t.live, t.tomb, len(t.tab.Load().s), n)
	return int64(size)*8 + int64(filterWords(size, t.fmin))*8
}

// bytesWith is table4.bytesWith for hashed identities.
func (t *tableID) bytesWith(n int) int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	size := slotsWith(t.live, t.tomb, len(t.tab.Load().s), n)
	return int64(size)*16 + int64(filterWords(size, t.fmin))*8
}

// slotsWith is how many slots a flat table of size slots holding live
// entries and tomb tombstones has once n more entries are put; the shared
// empty array counts for none.
func slotsWith(live, tomb, size, n int) int {
	if size = grownSize(live, tomb, size, n); size == 1 {
		return 0
	}
	return size
}

// bytes models the map once n more entries are put into it.
func (t *ttlMap[K]) bytes(n int, slot uintptr) int64 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return mapBytes(max(t.peak, len(t.m)+n), slot)
}

// bytes models the sharded maps once n more entries (ttl of them with an
// expiry) are put, spread over the shards evenly.
func (t *table[K]) bytes(n, ttl int64) int64 {
	if t.n.Load()+n == 0 {
		return 0
	}
	b := int64(0)
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.RLock()
		m := max(int(s.peak), len(s.m)+int(n/numShards))
		e := max(int(s.peakExp), len(s.exp)+int(ttl/numShards))
		s.mu.RUnlock()
		b += mapBytes(m, 17) + mapBytes(e, 24)
	}
	return b
}

// cidrBytes returns what the trie takes once n more ranges are put: as
// last measured, plus or minus the ranges since at what each took then.
func (s *Set) cidrBytes(n int64) int64 {
	t := s.cidr.Load()
	count := int64(t.Size())
	if count == 0 && n == 0 {
		return 0
	}
	s.cidrMem.Lock()
	defer s.cidrMem.Unlock()
	m := &s.cidrMem
	if m.at != t && (m.count == 0 || abs(count-m.count)*16 > m.count) {
		m.at, m.count, m.bytes = t, count, deepSize(reflect.ValueOf(t))
	}
	per := int64(costCIDR)
	if m.count > 0 {
		per = max(m.bytes/m.count, 1)
	}
	return max(m.bytes+(count+n-m.count)*per, 0)
}

func abs(x int64) int64 { return max(x, -x) }

// heapBytes returns what the expiry heap takes once n more items are put:
// 24 bytes an item, and its key, as a sample of the keys says.
func (l *Lists) heapBytes(n int64) int64 {
	l.expMu.Lock()
	defer l.expMu.Unlock()
	items := len(l.exp)
	if items == 0 && n == 0 {
		return 0
	}
	if s := &l.keySample; s.n == 0 || abs(int64(items-s.n))*16 > int64(s.n) {
		total := 0
		step := max(items/16, 1)
		k := 0
		for i := 0; i < items; i += step {
			total += int(allocSize(uintptr(len(l.exp[i].key))))
			k++
		}
		s.n, s.per = items, 48
		if k > 0 {
			s.per = int64(total / k)
		}
	}
	grown := max(int64(cap(l.exp)), int64(items)+n)
	return grown*24 + (int64(items)+n)*l.keySample.per
}

// keySample is what a heap item's key takes, as last sampled, and the
// heap's size then.
type keySample struct {
	n   int
	per int64
}

// mapBytes models what a Go map of n entries of slot bytes (key and value,
// aligned) takes: Go 1.24's swiss tables, groups of 8 slots and a control
// word; one table of a power of two slots (at most 7/8 full) up to 1,024,
// then tables of 1,024 split as each fills, so that their number doubles
// about every time the map does.
func mapBytes(n int, slot uintptr) int64 {
	if n <= 0 {
		return 0
	}
	group := 8 + 8*slot
	if n <= 8 {
		return allocSize(group)
	}
	if n <= 896 {
		slots := nextPow2(uint64((n*8 + 6) / 7))
		return allocSize(uintptr(slots/8)*group) + 64
	}
	tables := nextPow2(uint64((n + 895) / 896))
	return int64(tables) * (allocSize(128*group) + 64 + 8)
}

func nextPow2(x uint64) uint64 {
	if x <= 1 {
		return 1
	}
	return 1 << bits.Len64(x-1)
}

// sizeClasses are the Go allocator's size classes up to 32 KiB.
var sizeClasses = [...]uintptr{8, 16, 24, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240, 256,
	288, 320, 352, 384, 416, 448, 480, 512, 576, 640, 704, 768, 896, 1024, 1152, 1280, 1408, 1536, 1792, 2048,
	2304, 2688, 3072, 3200, 3456, 4096, 4864, 5376, 6144, 6528, 6784, 6912, 8192, 9472, 9728, 10240, 10880,
	12288, 13568, 14336, 16384, 18432, 19072, 20480, 21760, 24576, 27264, 28672, 32768}

// allocSize is what an allocation of size bytes takes: its size class, or
// whole 8 KiB pages.
func allocSize(size uintptr) int64 {
	if size == 0 {
		return 0
	}
	if size > sizeClasses[len(sizeClasses)-1] {
		return int64((size + 8191) &^ 8191)
	}
	lo, hi := 0, len(sizeClasses)-1
	for lo < hi {
		if mid := (lo + hi) / 2; sizeClasses[mid] >= size {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return int64(sizeClasses[lo])
}

// deepSize returns the bytes of the allocations v refers to (not v's own):
// for the CIDR trie, whose nodes are plain Go values of bart's. An address
// refers to an interned zone shared by all, which is not counted.
func deepSize(v reflect.Value) int64 {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return 0
		}
		e := v.Elem()
		return allocSize(e.Type().Size()) + deepSize(e)
	case reflect.Interface:
		if v.IsNil() {
			return 0
		}
		e := v.Elem()
		if e.Kind() == reflect.Pointer {
			return deepSize(e)
		}
		return allocSize(e.Type().Size()) + deepSize(e)
	case reflect.Slice:
		if v.IsNil() {
			return 0
		}
		et := v.Type().Elem()
		n := allocSize(uintptr(v.Cap()) * et.Size())
		if hasPointers(et) {
			for i := 0; i < v.Len(); i++ {
				n += deepSize(v.Index(i))
			}
		}
		return n
	case reflect.Struct:
		if !hasPointers(v.Type()) {
			return 0
		}
		n := int64(0)
		for i := 0; i < v.NumField(); i++ {
			n += deepSize(v.Field(i))
		}
		return n
	case reflect.Array:
		n := int64(0)
		if hasPointers(v.Type().Elem()) {
			for i := 0; i < v.Len(); i++ {
				n += deepSize(v.Index(i))
			}
		}
		return n
	}
	return 0
}

var (
	pointersMu sync.Mutex
	pointers   = map[reflect.Type]bool{}
	addrType   = reflect.TypeFor[netip.Addr]()
)

// hasPointers reports whether values of t refer to allocations deepSize
// counts.
func hasPointers(t reflect.Type) bool {
	if t == addrType {
		return false // its zone is interned, shared by every address
	}
	pointersMu.Lock()
	has, ok := pointers[t]
	pointersMu.Unlock()
	if ok {
		return has
	}
	switch t.Kind() {
	case reflect.Pointer, reflect.Interface, reflect.Slice, reflect.Map, reflect.String, reflect.Chan, reflect.Func:
		has = true
	case reflect.Array:
		has = t.Len() > 0 && hasPointers(t.Elem())
	case reflect.Struct:
		for i := 0; i < t.NumField(); i++ {
			if hasPointers(t.Field(i).Type) {
				has = true
				break
			}
		}
	}
	pointersMu.Lock()
	pointers[t] = has
	pointersMu.Unlock()
	return has
}
