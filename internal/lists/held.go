package lists

import (
	"encoding/binary"
	"time"

	"github.com/gaissmai/bart"
)

// heldSet is what a node holds aside of a bulk import that is not live yet
// (gen.go): its entries as the in-memory sets keep them, so that holding
// an import of 1,000,000 entries costs what listing them does rather than
// their keys and values. Hashed identities are kept by kind, so that the
// list's counts by kind stay right when they are merged. Guarded by the
// lists' genMu.
type heldSet struct {
	v4   *table4
	v6   *table[[16]byte]
	ids  [Username + 1]*tableID // made when an entry of the kind comes
	cidr *bart.Table[cidrVal]
	exp  []expItem // the entries with an expiry: scheduled when merged
	n    int
}

func newHeldSet() *heldSet {
	return &heldSet{v4: newTable4(), v6: newTable[[16]byte](), cidr: new(bart.Table[cidrVal])}
}

func v4Key(a [4]byte) uint32 { return binary.BigEndian.Uint32(a[:]) }

// put holds e, stored at key ("": its expiry is not to be scheduled).
func (hs *heldSet) put(h hasher, e Entry, key string) {
	var exp int64
	if !e.Expires.IsZero() {
		exp = e.Expires.UnixMilli()
	}
	var isNew bool
	switch p := e.Prefix; {
	case e.Kind != IP:
		t := hs.ids[e.Kind]
		if t == nil {
			t = newTableID()
			hs.ids[e.Kind] = t
		}
		isNew = t.put(entryKey(h, e), e.Tag, exp)
	case !p.IsSingleIP():
		_, existed := hs.cidr.Get(p)
		hs.cidr.Insert(p, cidrVal{exp: exp, tag: e.Tag})
		isNew = !existed
	case p.Addr().Is4():
		isNew = hs.v4.put(v4Key(p.Addr().As4()), e.Tag, exp)
	default:
		k := p.Addr().As16()
		isNew = hs.v6.put(k, shard6(k), e.Tag, exp)
	}
	if isNew {
		hs.n++
	}
	if exp != 0 && key != "" {
		// An entry dropped from the set later leaves its item: the sweep
		// skips an item whose entry is gone or expires at another time.
		hs.exp = append(hs.exp, expItem{at: exp, key: key})
	}
}

// del drops e, if held.
func (hs *heldSet) del(h hasher, e Entry) {
	var existed bool
	switch p := e.Prefix; {
	case e.Kind != IP:
		if t := hs.ids[e.Kind]; t != nil {
			existed = t.del(entryKey(h, e))
		}
	case !p.IsSingleIP():
		if _, existed = hs.cidr.Get(p); existed {
			hs.cidr.Delete(p)
		}
	case p.Addr().Is4():
		existed = hs.v4.del(v4Key(p.Addr().As4()))
	default:
		k := p.Addr().As16()
		existed = hs.v6.del(k, shard6(k))
	}
	if existed {
		hs.n--
	}
}

// has reports whether e is held.
func (hs *heldSet) has(h hasher, e Entry) bool {
	switch p := e.Prefix; {
	case e.Kind != IP:
		if t := hs.ids[e.Kind]; t != nil {
			_, ok := t.lookup(entryKey(h, e))
			return ok
		}
		return false
	case !p.IsSingleIP():
		_, ok := hs.cidr.Get(p)
		return ok
	case p.Addr().Is4():
		_, ok := hs.v4.lookup(v4Key(p.Addr().As4()))
		return ok
	default:
		k := p.Addr().As16()
		_, ok := hs.v6.expiry(k, shard6(k))
		return ok
	}
}

// merge puts every entry of hs into s (replacing what s has under the same
// identity) and returns the expiries to schedule. Into an empty table, the
// held one is taken as it is; into another, each table is grown once
// beforehand rather than at every doubling. hs must not be used after.
func (s *Set) merge(hs *heldSet) []expItem {
	if n := int(hs.v4.n.Load()); n > 0 && !s.v4.adopt(hs.v4) {
		s.v4.reserve(n)
		hs.v4.each(func(k uint32, m meta, exp int64) { s.v4.put(k, m.tag(), exp) })
	}
	n, kinds, only := 0, 0, Kind(0)
	for kind, t := range hs.ids {
		if t != nil && t.n.Load() > 0 {
			n, kinds, only = n+int(t.n.Load()), kinds+1, Kind(kind)
		}
	}
	if kinds == 1 && s.ids.adopt(hs.ids[only]) {
		s.nKind[only].Add(int64(n))
		n = 0
	}
	if n > 0 {
		s.ids.reserve(n)
		for kind, t := range hs.ids {
			if t == nil {
				continue
			}
			t.each(func(k idKey, m meta, exp int64) {
				if s.ids.put(k, m.tag(), exp) {
					s.nKind[kind].Add(1)
				}
			})
		}
	}
	for i := range hs.v6.shards {
		sh := &hs.v6.shards[i]
		for k, m := range sh.m {
			exp := int64(0)
			if m&hasTTL != 0 {
				exp = sh.exp[k]
			}
			s.v6.put(k, uint64(i), m.tag(), exp)
		}
	}
	if hs.cidr.Size() > 0 {
		var es []Entry
		for p, v := range hs.cidr.All() {
			e := Entry{Kind: IP, Prefix: p, Tag: v.tag}
			if v.exp != 0 {
				e.Expires = time.UnixMilli(v.exp)
			}
			es = append(es, e)
		}
		s.putCIDRs(es)
	}
	return hs.exp
}
