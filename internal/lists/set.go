package lists

import (
	"encoding/binary"
	"hash/maphash"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gaissmai/bart"
)

// meta is what the maps keep per entry: the tag, and whether an expiry is
// recorded for it.
type meta uint8

const hasTTL meta = 0x80

func (m meta) tag() Tag { return Tag(m &^ hasTTL) }

// numShards spreads readers over many locks, so lookups from all cores do
// not contend on one reader count.
const numShards = 64

// shard is one lock's worth of a table. Keys are pointer-free, so the
// garbage collector never scans millions of entries.
type shard[K comparable] struct {
	mu  sync.RWMutex
	m   map[K]meta
	exp map[K]int64 // Unix ms, only for entries with a TTL
	// the most entries m and exp held: Go's maps do not shrink
	// (memory.go)
	peak, peakExp int32
	_             [32]byte // keep shards' locks on separate cache lines
}

type table[K comparable] struct {
	shards [numShards]shard[K]
	n      atomic.Int64
	nTTL   atomic.Int64
}

// grew records new highs of the shard's maps (under its lock).
func (s *shard[K]) grew() {
	s.peak, s.peakExp = max(s.peak, int32(len(s.m))), max(s.peakExp, int32(len(s.exp)))
}

func newTable[K comparable]() *table[K] {
	t := &table[K]{}
	for i := range t.shards {
		t.shards[i].m = map[K]meta{}
		t.shards[i].exp = map[K]int64{}
	}
	return t
}

// get returns the entry's tag if it is present and not expired at nowMs()
// (Unix ms; only called for an entry with a TTL).
func (t *table[K]) get(k K, sh uint64, nowMs func() int64) (Tag, bool) {
	s := &t.shards[sh]
	s.mu.RLock()
	m, ok := s.m[k]
	var exp int64
	if ok && m&hasTTL != 0 {
		exp = s.exp[k]
	}
	s.mu.RUnlock()
	if exp != 0 && nowMs() >= exp {
		ok = false
	}
	return m.tag(), ok
}

// put sets the entry and reports whether it was new.
func (t *table[K]) put(k K, sh uint64, tag Tag, exp int64) bool {
	s := &t.shards[sh]
	s.mu.Lock()
	old, existed := s.m[k]
	m := meta(tag)
	if exp != 0 {
		m |= hasTTL
		s.exp[k] = exp
	} else if old&hasTTL != 0 {
		delete(s.exp, k)
	}
	s.m[k] = m
	s.grew()
	s.mu.Unlock()
	if !existed {
		t.n.Add(1)
	}
	countTTL(&t.nTTL, existed && old&hasTTL != 0, exp != 0)
	return !existed
}

// add is table4.add for a sharded map.
func (t *table[K]) add(k K, sh uint64, tag Tag, now int64) (put, isNew bool) {
	s := &t.shards[sh]
	s.mu.Lock()
	old, existed := s.m[k]
	if existed && (old&hasTTL == 0 || now < s.exp[k]) {
		s.mu.Unlock()
		return false, false
	}
	if old&hasTTL != 0 {
		delete(s.exp, k)
	}
	s.m[k] = meta(tag)
	s.grew()
	s.mu.Unlock()
	if !existed {
		t.n.Add(1)
	}
	countTTL(&t.nTTL, existed && old&hasTTL != 0, false)
	return true, !existed
}

// expiry returns the entry's expiry (0 for none) and whether it exists.
func (t *table[K]) expiry(k K, sh uint64) (int64, bool) {
	s := &t.shards[sh]
	s.mu.RLock()
	defer s.mu.RUnlock()
	m, ok := s.m[k]
	if !ok || m&hasTTL == 0 {
		return 0, ok
	}
	return s.exp[k], true
}

func (t *table[K]) del(k K, sh uint64) bool {
	s := &t.shards[sh]
	s.mu.Lock()
	m, ok := s.m[k]
	if ok {
		delete(s.m, k)
		if m&hasTTL != 0 {
			delete(s.exp, k)
		}
		// An emptied map is made anew: a Go map does not shrink.
		if len(s.m) == 0 && s.peak > 0 {
			s.m, s.peak = map[K]meta{}, 0
		}
		if len(s.exp) == 0 && s.peakExp > 0 {
			s.exp, s.peakExp = map[K]int64{}, 0
		}
	}
	s.mu.Unlock()
	if ok {
		t.n.Add(-1)
		if m&hasTTL != 0 {
			t.nTTL.Add(-1)
		}
	}
	return ok
}

func shard6(k [16]byte) uint64 {
	return (binary.LittleEndian.Uint64(k[:8]) ^ binary.LittleEndian.Uint64(k[8:])) * 0x9E3779B97F4A7C15 >> 58
}

// idKey stands for a token, cookie, API key or username: 128 bits of two
// independently seeded hashes of (kind, name, value). The seeds are random
// per process and the hashes never leave it, so an attacker cannot search
// for a colliding value; the chance of an accidental collision among
// millions of entries is below 2^-80.
type idKey [2]uint64

// hasher makes idKeys.
type hasher struct {
	s1, s2 maphash.Seed
	names  *nameHashes
}

func newHasher() hasher {
	return hasher{maphash.MakeSeed(), maphash.MakeSeed(), new(nameHashes)}
}

// nameHashes remembers the hashes of the few names a deployment's
// requests carry (its APIs' cookie names and API key headers), so that a
// decision hashes each value once instead of value and name: the names
// are the same on every request. It holds at most maxNameHashes names, the
// first ones met; a name past those is hashed every time, as before (an
// attacker's made-up names cannot grow it, nor push the real ones out).
// Readers scan a published array without locks; adding one copies it.
type nameHashes struct {
	mu sync.Mutex
	p  atomic.Pointer[[]nameHash]
}

type nameHash struct {
	name   string
	h1, h2 uint64
}

const maxNameHashes = 16

// name returns the seeded hashes of a name.
func (h hasher) name(name string) (uint64, uint64) {
	var known []nameHash
	if h.names != nil {
		if p := h.names.p.Load(); p != nil {
			known = *p
		}
	}
	for i := range known {
		if known[i].name == name {
			return known[i].h1, known[i].h2
		}
	}
	h1, h2 := maphash.String(h.s1, name), maphash.String(h.s2, name)
	if h.names != nil && len(known) < maxNameHashes {
		h.names.remember(name, h1, h2)
	}
	return h1, h2
}

func (n *nameHashes) remember(name string, h1, h2 uint64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	var known []nameHash
	if p := n.p.Load(); p != nil {
		known = *p
	}
	if len(known) >= maxNameHashes {
		return
	}
	for i := range known {
		if known[i].name == name {
			return
		}
	}
	// The name may point into a request's buffer: the copy kept is the
	// array's own.
	next := append(append(make([]nameHash, 0, len(known)+1), known...), nameHash{strings.Clone(name), h1, h2})
	n.p.Store(&next)
}

// key hashes value under (kind, name). API key names are compared without
// case, as HTTP header names are; callers pass them lower-cased. A key
// keeps only the bits a flat table's slot holds (the top bit of the first
// word is set, the low byte of the second is clear), so that a key read
// back from a slot is the key itself (tableID.each).
func (h hasher) key(kind Kind, name, value string) idKey {
	k0, k1 := h.half(kind, name, value)
	k := idKey{k0, k1}
	h.finish(&k, value)
	return k
}

// half is the first word of value's key under (kind, name), and the
// name's share of the second: a table's filter needs only the first
// word, and a decision hashes a value the second time only when the
// filter does not rule it out (Keys, Set.match). finish completes it.
//
// It returns two words, not an idKey: an array is returned through memory,
// and the caller's wide load of two narrow stores stalls (it cannot be
// forwarded); two words come back in registers.
func (h hasher) half(kind Kind, name, value string) (uint64, uint64) {
	n1, n2 := uint64(kind), uint64(kind)<<1
	if name != "" {
		h1, h2 := h.name(name)
		n1 += h1
		n2 += h2
	}
	return (maphash.String(h.s1, value) ^ (n1 * 0x9E3779B97F4A7C15)) | liveBit, n2 * 0xC2B2AE3D27D4EB4F
}

// finish makes k, half's key of value, whole.
func (h hasher) finish(k *idKey, value string) {
	k[1] = (maphash.String(h.s2, value) ^ k[1]) &^ 0xff
}

// cidrVal is a CIDR entry's payload in the trie.
type cidrVal struct {
	exp int64 // Unix ms; 0 = never
	tag Tag
}

// Set is one list in memory: exact addresses, CIDR ranges and hashed
// identities. Lookups never allocate.
type Set struct {
	v4  *table4
	v6  *table[[16]byte] // rarer than IPv4: a sharded map is enough
	ids *tableID

	// The CIDR trie is read lock-free through an atomic pointer; writers
	// (serialized by cidrMu) build the next version persistently.
	cidrMu sync.Mutex
	cidr   atomic.Pointer[bart.Table[cidrVal]]
	nCIDR  atomic.Int64
	nCTTL  atomic.Int64
	// counts by kind of hashed identity, for the metrics and views
	nKind [Username + 1]atomic.Int64
	// cidrMem is the trie as last measured (memory.go)
	cidrMem struct {
		sync.Mutex
		at           *bart.Table[cidrVal]
		count, bytes int64
	}
}

func newSet() *Set {
	s := &Set{v4: newTable4(), v6: newTable[[16]byte](), ids: newTableID()}
	s.cidr.Store(new(bart.Table[cidrVal]))
	return s
}

// match looks every identity of a request up: the exact address, the
// CIDR ranges, then the token, cookie, API key and username. The first
// probe of each flat table (its filter, then its first slot unless the
// filter rules the key out) is loaded before any is examined, so their
// cache misses overlap instead of adding up. An identity's key is made
// whole (Keys) only if a table's slot must be probed for it. nowMs is
// only called when a matching entry has a TTL.
func (s *Set) match(h *hasher, id *Identity, k *Keys, nowMs func() int64) (Match, bool) {
	var (
		ip4    uint32
		t4     *slots4
		i4, w4 uint64
		tid    [numIDs]*slotsID
		iid    [numIDs]uint64
		wid    [numIDs]uint64
	)
	addr := id.IP
	if addr.Is4() && s.v4.n.Load() > 0 {
		b := addr.As4()
		ip4 = binary.BigEndian.Uint32(b[:])
		t4, i4, w4 = s.v4.first(ip4)
	}
	ids := k.has != 0 && s.ids.n.Load() > 0
	if ids {
		tab := s.ids.tab.Load()
		for j := range numIDs {
			if k.has&(1<<j) != 0 {
				tid[j], iid[j], wid[j] = s.ids.firstOf(h, tab, k, j)
			}
		}
	}
	if addr.Is4() {
		// t4 is nil when the table is empty or its filter rules ip4 out
		if m, ok := s.v4.resolve(ip4, t4, i4, w4); ok && (m&hasTTL == 0 || nowMs() < s.v4.ttl.get(ip4)) {
			return Match{IP, m.tag()}, true
		}
	} else if addr.Is6() && s.v6.n.Load() > 0 {
		k6 := addr.As16()
		if tag, ok := s.v6.get(k6, shard6(k6), nowMs); ok {
			return Match{IP, tag}, true
		}
	}
	if addr.IsValid() && s.nCIDR.Load() > 0 {
		if tag, ok := s.matchCIDR(addr, nowMs); ok {
			return Match{IP, tag}, true
		}
	}
	if !ids {
		return Match{}, false
	}
	for j := range numIDs {
		if tid[j] == nil { // absent, or ruled out by the filter
			continue
		}
		key := k.k[j]
		m, ok := s.ids.resolve(key, tid[j], iid[j], wid[j])
		if ok && (m&hasTTL == 0 || nowMs() < s.ids.ttl.get(key)) {
			return Match{idKinds[j], m.tag()}, true
		}
	}
	return Match{}, false
}

func (s *Set) matchCIDR(addr netip.Addr, nowMs func() int64) (Tag, bool) {
	t := s.cidr.Load()
	v, ok := t.Lookup(addr)
	if !ok {
		return 0, false
	}
	if v.exp == 0 || nowMs() < v.exp {
		return v.tag, true
	}
	// The longest match has expired; a shorter one may still hold.
	now := nowMs()
	for _, sv := range t.Supernets(netip.PrefixFrom(addr, addr.BitLen())) {
		if sv.exp == 0 || now < sv.exp {
			return sv.tag, true
		}
	}
	return 0, false
}

// put adds or replaces e; it reports whether e was new.
func (s *Set) put(h hasher, e Entry) bool {
	var exp int64
	if !e.Expires.IsZero() {
		exp = e.Expires.UnixMilli()
	}
	if e.Kind != IP {
		k := entryKey(h, e)
		added := s.ids.put(k, e.Tag, exp)
		if added {
			s.nKind[e.Kind].Add(1)
		}
		return added
	}
	p := e.Prefix
	if p.IsSingleIP() {
		if p.Addr().Is4() {
			b := p.Addr().As4()
			return s.v4.put(binary.BigEndian.Uint32(b[:]), e.Tag, exp)
		}
		k := p.Addr().As16()
		return s.v6.put(k, shard6(k), e.Tag, exp)
	}
	s.cidrMu.Lock()
	defer s.cidrMu.Unlock()
	old := s.cidr.Load()
	prev, existed := old.Get(p)
	s.cidr.Store(old.InsertPersist(p, cidrVal{exp: exp, tag: e.Tag}))
	if !existed {
		s.nCIDR.Add(1)
	}
	countTTL(&s.nCTTL, existed && prev.exp != 0, exp != 0)
	return !existed
}

// add puts e (a single address or a hashed identity; its expiry is
// ignored: it gets none) unless e is present and live at now (Unix ms),
// in one step: an entry put meanwhile by the store's commit path is never
// replaced. It reports whether it put e.
func (s *Set) add(h hasher, e Entry, now int64) bool {
	var put, isNew bool
	switch {
	case e.Kind != IP:
		put, isNew = s.ids.add(entryKey(h, e), e.Tag, now)
		if isNew {
			s.nKind[e.Kind].Add(1)
		}
	case !e.Prefix.IsSingleIP():
		panic("lists: Set.add of a CIDR range")
	case e.Prefix.Addr().Is4():
		b := e.Prefix.Addr().As4()
		put, _ = s.v4.add(binary.BigEndian.Uint32(b[:]), e.Tag, now)
	default:
		k := e.Prefix.Addr().As16()
		put, _ = s.v6.add(k, shard6(k), e.Tag, now)
	}
	return put
}

// putCIDRs inserts many ranges into one new trie version: a bulk import
// copies the trie once instead of once per range.
func (s *Set) putCIDRs(entries []Entry) {
	s.cidrMu.Lock()
	defer s.cidrMu.Unlock()
	t := s.cidr.Load().Clone()
	for _, e := range entries {
		var exp int64
		if !e.Expires.IsZero() {
			exp = e.Expires.UnixMilli()
		}
		prev, existed := t.Get(e.Prefix)
		t.Insert(e.Prefix, cidrVal{exp: exp, tag: e.Tag})
		if !existed {
			s.nCIDR.Add(1)
		}
		countTTL(&s.nCTTL, existed && prev.exp != 0, exp != 0)
	}
	s.cidr.Store(t)
}

// del removes e; it reports whether it was there.
func (s *Set) del(h hasher, e Entry) bool {
	if e.Kind != IP {
		ok := s.ids.del(entryKey(h, e))
		if ok {
			s.nKind[e.Kind].Add(-1)
		}
		return ok
	}
	p := e.Prefix
	if p.IsSingleIP() {
		if p.Addr().Is4() {
			b := p.Addr().As4()
			return s.v4.del(binary.BigEndian.Uint32(b[:]))
		}
		k := p.Addr().As16()
		return s.v6.del(k, shard6(k))
	}
	s.cidrMu.Lock()
	defer s.cidrMu.Unlock()
	old := s.cidr.Load()
	prev, existed := old.Get(p)
	if !existed {
		return false
	}
	s.cidr.Store(old.DeletePersist(p))
	s.nCIDR.Add(-1)
	if prev.exp != 0 {
		s.nCTTL.Add(-1)
	}
	return true
}

// expiry returns the stored expiry (Unix ms, 0 = none) of e and whether e
// is present.
func (s *Set) expiry(h hasher, e Entry) (int64, bool) {
	if e.Kind != IP {
		return s.ids.expiry(entryKey(h, e))
	}
	p := e.Prefix
	if p.IsSingleIP() {
		if p.Addr().Is4() {
			b := p.Addr().As4()
			return s.v4.expiry(binary.BigEndian.Uint32(b[:]))
		}
		k := p.Addr().As16()
		return s.v6.expiry(k, shard6(k))
	}
	v, ok := s.cidr.Load().Get(p)
	return v.exp, ok
}

// lookup returns e's tag and stored expiry (Unix ms, 0 = none), and
// whether e is present, expired or not.
func (s *Set) lookup(h hasher, e Entry) (Tag, int64, bool) {
	var m meta
	var exp int64
	var ok bool
	switch p := e.Prefix; {
	case e.Kind != IP:
		k := entryKey(h, e)
		if m, ok = s.ids.lookup(k); ok && m&hasTTL != 0 {
			exp = s.ids.ttl.get(k)
		}
	case !p.IsSingleIP():
		v, found := s.cidr.Load().Get(p)
		return v.tag, v.exp, found
	case p.Addr().Is4():
		b := p.Addr().As4()
		k := binary.BigEndian.Uint32(b[:])
		if m, ok = s.v4.lookup(k); ok && m&hasTTL != 0 {
			exp = s.v4.ttl.get(k)
		}
	default:
		k := p.Addr().As16()
		var t Tag
		t, ok = s.v6.get(k, shard6(k), func() int64 { return 0 })
		m = meta(t)
		exp, _ = s.v6.expiry(k, shard6(k))
	}
	return m.tag(), exp, ok
}

// covering returns the CIDR ranges holding addr, most specific first,
// with their tags and expiries.
func (s *Set) covering(addr netip.Addr) []Entry {
	if s.nCIDR.Load() == 0 {
		return nil
	}
	var out []Entry
	for p, v := range s.cidr.Load().Supernets(netip.PrefixFrom(addr, addr.BitLen())) {
		e := Entry{Kind: IP, Prefix: p, Value: formatPrefix(p), Tag: v.tag}
		if v.exp != 0 {
			e.Expires = time.UnixMilli(v.exp)
		}
		out = append(out, e)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Prefix.Bits() > out[j].Prefix.Bits() })
	return out
}

// entryKey is the idKey of a token, cookie, API key or username entry.
func entryKey(h hasher, e Entry) idKey {
	name := e.Name
	if e.Kind == APIKey {
		name = lowerASCII(name)
	}
	return h.key(e.Kind, name, e.Value)
}

// lowerASCII lower-cases s, allocating only if it has upper-case letters.
func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// costCIDR is what a range is taken to cost in the trie until the trie is
// first measured (memory.go): 46 bytes were measured for random /24s,
// other shapes cost from 3 to 77.
const costCIDR = 128
