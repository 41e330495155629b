// Package lists holds ASE's deny and allow lists of IPs (addresses and
// CIDR ranges, IPv4 and IPv6), OAuth tokens, cookies, API keys and
// usernames: stored durably, mirrored in memory in pointer-free
// structures for lookups that never allocate, bounded by a memory budget,
// with entries that expire exactly when their TTL says.
package lists

import (
	"bytes"
	"container/heap"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ase-project/ase/internal/store"
	"github.com/ase-project/ase/internal/units"
)

// ExistsError refuses adding an entry that is already listed.
type ExistsError struct{ Entry Entry }

func (e *ExistsError) Error() string { return e.Entry.Describe() + " already exist" }

// AbsentError refuses deleting an entry that is not listed.
type AbsentError struct {
	Entry Entry
	List  List
}

func (e *AbsentError) Error() string {
	return e.Entry.Describe() + " does not exist in " + e.List.String()
}

// MemoryError refuses entries that would take the lists past
// attack_list_memory. Nothing already listed is dropped.
type MemoryError struct{ Configured, Used, Need int64 }

func (e *MemoryError) Error() string {
	return fmt.Sprintf("attack list memory is full: configured %s, used %s, free %s, and this change needs %s; delete entries or raise attack_list_memory",
		units.Size(e.Configured).MB(), units.Size(e.Used).MB(), units.Size(max(e.Configured-e.Used, 0)).MB(), units.Size(e.Need).MB())
}

// Lists is the deny list and the allow list.
type Lists struct {
	log   *slog.Logger
	now   func() time.Time
	h     hasher
	sets  [2]*Set
	limit int64
	st    store.Store

	expMu sync.Mutex
	exp   expHeap
	wake  chan struct{}
	// sweepMu makes sweeps one at a time, so that when ExpireDue returns,
	// every entry due when it was called is gone from the store, even if
	// the background sweep had already taken it off the heap.
	sweepMu sync.Mutex

	det    detections
	stop   func()
	cancel context.CancelFunc
	done   sync.WaitGroup

	// sweepHook, when set (by tests), runs in ExpireDue between the check
	// of an entry in memory and the read of its stored value.
	sweepHook func()

	// keySample is what the expiry heap's keys take (memory.go), under
	// expMu.
	keySample keySample

	// Bulk imports written as generations (gen.go).
	genMu   sync.Mutex
	gens    map[uint64]*generation
	open    atomic.Int64 // generations known that are not live
	genWake chan struct{}
	node    string
	genTTL  time.Duration
	// importHook, when set (by tests), runs before each batch of a
	// generation's entries; an error fails the import there.
	importHook func(batch int) error
}

// Options configure Open.
type Options struct {
	Limit int64            // attack_list_memory, in bytes
	Now   func() time.Time // the clock; time.Now if nil
	Log   *slog.Logger
	// Node names this node among those sharing the store, the same across
	// its restarts: a bulk import it left unfinished is cleaned up when it
	// starts again (others' only once their deadline passed). Empty when
	// the store has one node (the embedded store): every unfinished import
	// found at start is its own.
	Node string
}

// Open loads both lists from st, drops entries that expired while ASE was
// down, and follows later changes until Close.
func Open(ctx context.Context, st store.Store, o Options) (*Lists, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	l := &Lists{
		log: o.Log, now: o.Now, h: newHasher(), limit: o.Limit, st: st,
		sets: [2]*Set{newSet(), newSet()},
		wake: make(chan struct{}, 1),
		gens: map[uint64]*generation{}, genWake: make(chan struct{}, 1), node: o.Node, genTTL: genTTL,
	}
	l.det.init()
	now := l.now().UnixMilli()
	var cidrs [2][]Entry
	var expired []string
	var orphans []store.Cond // entries of an import whose marker is gone
	refs := map[uint64]int{}
	// The import markers sort before the entries: each entry's generation
	// is known when it is loaded.
	stop, err := st.Subscribe(ctx, Prefix, func(key string, value []byte) error {
		if strings.HasPrefix(key, metaPrefix) {
			if g, ok := parseGenKey(key); ok {
				l.setGen(g, value)
			}
			return nil
		}
		g := valueGen(value)
		if g != 0 && l.gens[g] == nil {
			orphans = append(orphans, store.Unchanged(key, bytes.Clone(value)))
			return nil
		}
		list, e, err := parseStored(key, value)
		if err != nil {
			l.log.Error("ignoring a malformed list entry in the store", "key", key, "error", err)
			return nil
		}
		if g != 0 {
			if gen := l.gens[g]; gen.state != genLive {
				if list == gen.list {
					gen.held.put(l.h, e, key)
				}
				return nil
			}
			refs[g]++
		}
		if !e.Expires.IsZero() && e.Expires.UnixMilli() <= now {
			expired = append(expired, key)
			return nil
		}
		if e.Kind == IP && !e.Prefix.IsSingleIP() {
			cidrs[list] = append(cidrs[list], e)
		} else {
			l.sets[list].put(l.h, e)
		}
		if !e.Expires.IsZero() {
			l.exp = append(l.exp, expItem{at: e.Expires.UnixMilli(), key: key})
		}
		return nil
	}, l.apply)
	if err != nil {
		return nil, err
	}
	l.stop = stop
	for list, es := range cidrs {
		l.sets[list].putCIDRs(es)
	}
	heap.Init(&l.exp)
	if len(expired) > 0 {
		ops := make([]store.Op, len(expired))
		for i, k := range expired {
			ops[i] = store.Delete(k)
		}
		// In batches within the store's limits: each deletion stands alone.
		for _, b := range split(st.Limits(), nil, ops, room{}) {
			if _, err := st.Commit(ctx, b); err != nil {
				stop()
				return nil, err
			}
		}
	}
	if err := l.tidyGens(ctx, orphans, refs); err != nil {
		stop()
		return nil, err
	}
	bg, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	l.done.Add(3)
	go l.expireLoop(bg)
	go l.commitLoop(bg)
	go l.genLoop(bg)
	return l, nil
}

// tidyGens, at start, deletes orphaned import entries, drops the markers
// of live imports no entry refers to any more, and cleans up the imports
// this node left unfinished.
func (l *Lists) tidyGens(ctx context.Context, orphans []store.Cond, refs map[uint64]int) error {
	conds := orphans
	var mine []uint64
	for g, gen := range l.gens {
		switch {
		case gen.state == genLive && refs[g] == 0:
			conds = append(conds, store.Unchanged(genKey(g), gen.value))
		case gen.state != genLive && gen.owner == l.node:
			mine = append(mine, g)
		}
	}
	if len(conds) > 0 {
		ops := make([]store.Op, len(conds))
		for i, c := range conds {
			ops[i] = store.Delete(c.Key)
		}
		if _, err := l.commitEach(ctx, conds, ops); err != nil {
			return err
		}
	}
	for _, g := range mine {
		n := 0
		if gen := l.gens[g]; gen != nil && gen.held != nil {
			n = gen.held.n
		}
		if err := l.cleanupGen(ctx, g); err != nil {
			// Never enforced; the cleanup is retried in the background.
			l.log.Error("could not clean up a bulk import left unfinished; retrying", "import", genKey(g), "error", err)
			continue
		}
		l.log.Warn("cleaned up a bulk import left unfinished by the last run: none of its entries were listed", "import", genKey(g), "entries", n)
	}
	return nil
}

// Load puts entries into list in memory only, without storing them: for
// benchmarks that need lists of tens of millions of entries quickly.
func (l *Lists) Load(list List, entries []Entry) {
	var cidrs []Entry
	for _, e := range entries {
		if e.Kind == IP && !e.Prefix.IsSingleIP() {
			cidrs = append(cidrs, e)
		} else {
			l.sets[list].put(l.h, e)
		}
	}
	l.sets[list].putCIDRs(cidrs)
}

// Close stops the background work, writing the detected attackers not
// yet stored first, then stops following the store.
func (l *Lists) Close() {
	l.cancel()
	l.done.Wait()
	l.det.close()
	l.stop()
}

// apply mirrors committed changes in memory; it runs on the store's
// commit path.
func (l *Lists) apply(ev store.Event) {
	var cidrs [2][]Entry
	for _, c := range ev.Changes {
		if strings.HasPrefix(c.Key, metaPrefix) {
			g, ok := parseGenKey(c.Key)
			if !ok {
				continue
			}
			l.genMu.Lock()
			list, promoted := l.setGen(g, c.Value)
			l.genMu.Unlock()
			// An import turned live: every entry it wrote is enforced now,
			// in this one event.
			if promoted != nil && promoted.n > 0 {
				for _, it := range l.sets[list].merge(promoted) {
					l.schedule(it.at, it.key)
				}
			}
			continue
		}
		if l.open.Load() > 0 || valueGen(c.Value) != 0 {
			l.genMu.Lock()
			now := l.admit(c.Key, c.Value)
			l.genMu.Unlock()
			if !now {
				l.det.put(c.Key, c.Value)
				continue // held aside until its import turns live
			}
		}
		if c.Deleted {
			list, e, err := parseKey(c.Key)
			if err == nil {
				l.deleteUnlessPending(c.Key, list, e)
			}
			continue
		}
		l.det.put(c.Key, c.Value)
		l.enforce(c.Key, c.Value, &cidrs)
	}
	for list, es := range cidrs {
		switch len(es) {
		case 0:
		case 1:
			l.sets[list].put(l.h, es[0])
		default:
			l.sets[list].putCIDRs(es)
		}
	}
}

// enforce mirrors a stored entry in memory (ranges gathered in cidrs).
func (l *Lists) enforce(key string, value []byte, cidrs *[2][]Entry) {
	list, e, err := parseStored(key, value)
	if err != nil {
		l.log.Error("ignoring a malformed list entry", "key", key, "error", err)
		return
	}
	if e.Kind == IP && !e.Prefix.IsSingleIP() {
		cidrs[list] = append(cidrs[list], e)
	} else {
		l.sets[list].put(l.h, e)
	}
	if !e.Expires.IsZero() {
		l.schedule(e.Expires.UnixMilli(), key)
	}
}

// Identity is who a request comes from, as far as the lists care. Empty
// strings are absent identities. APIKeyName must be lower case.
type Identity struct {
	IP         netip.Addr
	Token      string
	CookieName string
	Cookie     string
	APIKeyName string
	APIKey     string
	Username   string // asserted by a gateway (sideband user_info)
	// ClaimedUsername is the first username the request claims for
	// itself (a username header, an unverified JWT; see
	// Credential.Claimed): it may block, never allow.
	ClaimedUsername string
	// More are the further values a request carried for the identities
	// above (a repeated header, cookie or query parameter): the backend
	// may read any of them, so each is matched like the first. Nil for
	// almost every request.
	More []Credential
}

// Credential is one more value of an identity (never an IP).
type Credential struct {
	Kind  Kind
	Name  string // the cookie's name, or the API key's (lower case)
	Value string
	// Claimed: the request names itself so, unverified (a username
	// header, a JWT ASE does not validate). Anyone can claim any
	// username: a claimed one may block (the deny list) but never allows,
	// and a detected attacker is not listed under it (an attacker could
	// otherwise have a victim's username listed).
	Claimed bool
}

// identity returns the Identity that presents c alone.
func (c Credential) identity() Identity {
	var id Identity
	switch c.Kind {
	case Token:
		id.Token = c.Value
	case Cookie:
		id.CookieName, id.Cookie = c.Name, c.Value
	case APIKey:
		id.APIKeyName, id.APIKey = c.Name, c.Value
	case Username:
		id.Username = c.Value
	}
	return id
}

// Keys are an Identity's hashed identities, computed once per request and
// used against both lists. Each is hashed half (hasher.half) at first,
// which is all a table's filter needs; the lists make it whole when they
// must probe a table for it.
type Keys struct {
	k    [numIDs]idKey  // by idToken, ...
	v    [numIDs]string // the values, to finish their keys
	has  uint8          // 1<<idToken, ...: the identities present
	done uint8          // the keys made whole
}

// The identities that Keys holds, in the order a decision checks them.
const (
	idToken = iota
	idCookie
	idAPIKey
	idUsername
	numIDs
)

var idKinds = [numIDs]Kind{Token, Cookie, APIKey, Username}

// Keys hashes id's identities.
func (l *Lists) Keys(id *Identity) Keys {
	var k Keys
	l.KeysInto(&k, id)
	return k
}

// KeysInto is Keys into k, which must be zero: a decision's keys are
// made where they are used, not copied there. It first starts loading the
// deny list's filter word for an IPv4 address: the biggest filter, the
// likeliest cache miss, which then arrives while the identities are
// hashed. (The identities' own filter words are known only once hashed,
// just before Match loads them anyway: prefetching those too cost more
// than it saved.)
func (l *Lists) KeysInto(k *Keys, id *Identity) {
	if id.IP.Is4() {
		l.sets[Deny].v4.prefetch(id.IP)
	}
	if id.Token != "" {
		k0, k1 := l.h.half(Token, "", id.Token)
		k.k[idToken], k.v[idToken], k.has = idKey{k0, k1}, id.Token, k.has|1<<idToken
	}
	if id.Cookie != "" {
		k0, k1 := l.h.half(Cookie, id.CookieName, id.Cookie)
		k.k[idCookie], k.v[idCookie], k.has = idKey{k0, k1}, id.Cookie, k.has|1<<idCookie
	}
	if id.APIKey != "" {
		k0, k1 := l.h.half(APIKey, id.APIKeyName, id.APIKey)
		k.k[idAPIKey], k.v[idAPIKey], k.has = idKey{k0, k1}, id.APIKey, k.has|1<<idAPIKey
	}
	if id.Username != "" {
		k0, k1 := l.h.half(Username, "", id.Username)
		k.k[idUsername], k.v[idUsername], k.has = idKey{k0, k1}, id.Username, k.has|1<<idUsername
	}
}

// key returns the whole key of identity j (present in k).
func (k *Keys) key(h *hasher, j int) idKey {
	if k.done&(1<<j) == 0 {
		h.finish(&k.k[j], k.v[j])
		k.done |= 1 << j
	}
	return k.k[j]
}

// Match is a list entry a request matched.
type Match struct {
	Kind Kind
	Tag  Tag
}

// Match looks every identity of a request up in list, IP first, then
// the further values in id.More.
func (l *Lists) Match(list List, id *Identity, k *Keys) (Match, bool) {
	if m, ok := l.sets[list].match(&l.h, id, k, l.nowMs); ok || len(id.More) == 0 && (id.ClaimedUsername == "" || list == Allow) {
		return m, ok
	}
	if id.ClaimedUsername != "" && list == Deny {
		one := Identity{Username: id.ClaimedUsername}
		ok := l.Keys(&one)
		if m, found := l.sets[list].match(&l.h, &one, &ok, l.nowMs); found {
			return m, true
		}
	}
	for _, c := range id.More {
		if c.Claimed && list == Allow {
			continue
		}
		one := c.identity()
		ok := l.Keys(&one)
		if m, found := l.sets[list].match(&l.h, &one, &ok, l.nowMs); found {
			return m, true
		}
	}
	return Match{}, false
}

func (l *Lists) nowMs() int64 { return l.now().UnixMilli() }

// Contains reports whether e itself is listed (and not expired).
func (l *Lists) Contains(list List, e Entry) bool {
	exp, ok := l.sets[list].expiry(l.h, e)
	return ok && (exp == 0 || l.now().UnixMilli() < exp)
}

// Limit returns attack_list_memory.
func (l *Lists) Limit() int64 { return l.limit }

// Count returns the number of entries of a kind in list.
func (l *Lists) Count(list List, kind Kind) int64 {
	s := l.sets[list]
	if kind == IP {
		return s.v4.n.Load() + s.v6.n.Load() + s.nCIDR.Load()
	}
	return s.nKind[kind].Load()
}

// Counts returns the entries of both lists by kind (IP counts addresses
// and ranges), for the metrics.
func (l *Lists) Counts() map[[2]string]int64 {
	out := map[[2]string]int64{}
	for _, list := range []List{Deny, Allow} {
		for _, k := range []Kind{IP, Token, Cookie, APIKey, Username} {
			out[[2]string{list.String(), k.String()}] = l.Count(list, k)
		}
	}
	return out
}

// live reports whether a stored entry exists and has not expired.
func (l *Lists) live(ctx context.Context, r store.Reader, key string) (bool, error) {
	v, err := r.Get(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	_, e, err := parseStored(key, v)
	if err != nil {
		return false, err
	}
	return (e.Expires.IsZero() || l.now().Before(e.Expires)) && l.enforced(v), nil
}

// listed reports whether e is live in list as r sees it. Reading the live
// store, the in-memory mirror answers: it is exact, because changes reach
// it before Commit returns, and it is ten times faster for bulk imports.
func (l *Lists) listed(ctx context.Context, r store.Reader, list List, e Entry, key string) (bool, error) {
	if st, ok := r.(store.Store); ok && st == l.st {
		return l.Contains(list, e), nil
	}
	return l.live(ctx, r, key)
}

// AddResult counts what an add would do.
type AddResult struct{ Added, Skipped int }

// Add returns the batch that adds entries to list. A single entry already
// listed is an *ExistsError; in a bulk import, entries already listed (or
// repeated) are skipped and counted. Entries past the memory budget make a
// *MemoryError, and then nothing is added.
func (l *Lists) Add(ctx context.Context, r store.Reader, list List, entries []Entry, bulk bool) (store.Batch, AddResult, error) {
	var res AddResult
	seen := make(map[string]bool, len(entries))
	ops := make([]store.Op, 0, len(entries))
	var c counts
	for _, e := range entries {
		if list == Allow {
			e.Tag = Manual
		}
		key := e.StoreKey(list)
		if seen[key] {
			res.Skipped++
			continue
		}
		seen[key] = true
		exists, err := l.listed(ctx, r, list, e, key)
		if err != nil {
			return store.Batch{}, res, err
		}
		if exists {
			if !bulk {
				return store.Batch{}, res, &ExistsError{Entry: e}
			}
			res.Skipped++
			continue
		}
		c.add(e)
		ops = append(ops, store.Put(key, e.storeValue()))
		res.Added++
	}
	if err := l.checkBudget(list, c); err != nil {
		return store.Batch{}, AddResult{}, err
	}
	// Sorted keys fill the store's pages sequentially: bulk imports of a
	// threat feed are several times faster.
	sort.Slice(ops, func(i, j int) bool { return ops[i].Key < ops[j].Key })
	return store.Batch{Ops: ops}, res, nil
}

// CheckBudget checks a batch that may hold many list changes (a committed
// transaction) against the memory budget as a whole: each change was
// checked alone when it was staged. It returns a *MemoryError, or nil.
func (l *Lists) CheckBudget(ctx context.Context, r store.Reader, b store.Batch) error {
	final := map[string][]byte{}
	for _, op := range b.Ops {
		switch {
		case !strings.HasPrefix(op.Key, Prefix) || strings.HasPrefix(op.Key, metaPrefix):
		case op.Kind == store.OpPut:
			final[op.Key] = op.Value
		case op.Kind == store.OpDelete:
			final[op.Key] = nil
		}
	}
	var c [2]counts
	for key, v := range final {
		if v == nil {
			continue
		}
		if exists, err := l.live(ctx, r, key); err != nil {
			return err
		} else if exists {
			continue
		}
		list, e, err := parseStored(key, v)
		if err != nil {
			return err
		}
		c[list].add(e)
	}
	if c == ([2]counts{}) {
		return nil
	}
	used := l.MemoryUsed()
	if after := l.memoryAfter(c); after > l.limit {
		return &MemoryError{Configured: l.limit, Used: used, Need: after - used}
	}
	return nil
}

// Remove returns the batch that deletes e from list, or an *AbsentError.
// Like Clear, RemoveDetected and View, it first waits for the detected
// attackers already enforced to be stored (Flush), so that it sees them.
func (l *Lists) Remove(ctx context.Context, r store.Reader, list List, e Entry) (store.Batch, error) {
	if err := l.Flush(ctx); err != nil {
		return store.Batch{}, err
	}
	key := e.StoreKey(list)
	exists, err := l.live(ctx, r, key)
	if err != nil {
		return store.Batch{}, err
	}
	if !exists {
		return store.Batch{}, &AbsentError{Entry: e, List: list}
	}
	return store.Batch{Ops: []store.Op{store.Delete(key)}}, nil
}

// Clear returns the batch that empties list, or only the entries with tag
// when tag is not nil.
//
// Clearing everything is one batch of two operations whatever the list
// holds: one prefix deletion, and a new value for "list/_cleared/<list>",
// which makes a bulk import in progress fail rather than become live with
// only the entries written after the clear. Clearing by tag deletes the
// entries one by one: when they do not fit one batch of the live store, the
// leading batches are committed here, in key order, and the last is
// returned (then an error part-way leaves the entries not reached yet,
// and clearing again finishes); each batch committed here carries the
// conditions guard (the management API's "no transaction is open").
// Entries of an import not live yet are not part of the list and are left
// alone.
func (l *Lists) Clear(ctx context.Context, r store.Reader, list List, tag *Tag, guard ...store.Cond) (store.Batch, error) {
	if err := l.Flush(ctx); err != nil {
		return store.Batch{}, err
	}
	if tag == nil {
		epoch := binary.BigEndian.AppendUint64(nil, rand.Uint64())
		return store.Batch{Ops: []store.Op{store.Put(clearedKey(list), epoch), store.DeletePrefix(ListPrefix(list))}}, nil
	}
	return l.deleteWhere(ctx, r, list, func(t Tag) bool { return t == *tag }, guard)
}

// RemoveDetected returns the batch that deletes every deny-list entry put
// there by ASE-detected attacks (disable_ase_detected_attack does this, as
// the vendor's does). Like clearing by tag, past one batch of the live
// store it commits the leading batches itself and returns the last, with
// room for the caller's switch: detections listed between the two stay.
func (l *Lists) RemoveDetected(ctx context.Context, r store.Reader, guard ...store.Cond) (store.Batch, error) {
	if err := l.Flush(ctx); err != nil {
		return store.Batch{}, err
	}
	return l.deleteWhere(ctx, r, Deny, Tag.Detected, guard)
}

func (l *Lists) deleteWhere(ctx context.Context, r store.Reader, list List, match func(Tag) bool, guard []store.Cond) (store.Batch, error) {
	var ops []store.Op
	err := r.Scan(ctx, ListPrefix(list), func(key string, value []byte) error {
		if t, ok := valueTag(value); ok && match(t) && l.enforced(value) {
			ops = append(ops, store.Delete(key))
		}
		return nil
	})
	if err != nil {
		return store.Batch{}, err
	}
	if st, ok := r.(store.Store); !ok || st != l.st {
		// Staged in a transaction: its commit writes them.
		return store.Batch{Ops: ops}, nil
	}
	// Room for the guard and for what the caller commits with the last
	// batch (a setting, its own guard).
	n := 0
	for _, c := range guard {
		n += len(c.Key) + len(c.Value)
	}
	bs := split(l.st.Limits(), nil, ops, room{ops: 1, conds: len(guard) + 1, bytes: 1<<10 + 2*n})
	if len(bs) <= 1 {
		return store.Batch{Ops: ops}, nil
	}
	for _, b := range bs[:len(bs)-1] {
		b.Conds = guard
		if _, err := l.st.Commit(ctx, b); err != nil {
			return store.Batch{}, err
		}
	}
	return bs[len(bs)-1], nil
}

// View calls fn for each live entry of list (with tag, when not nil), in
// store order.
func (l *Lists) View(ctx context.Context, r store.Reader, list List, tag *Tag, fn func(Entry) error) error {
	if err := l.Flush(ctx); err != nil {
		return err
	}
	now := l.now()
	return r.Scan(ctx, ListPrefix(list), func(key string, value []byte) error {
		if t, ok := valueTag(value); tag != nil && (!ok || t != *tag) {
			return nil
		}
		_, e, err := parseStored(key, value)
		if err != nil || !l.enforced(value) {
			return nil
		}
		if !e.Expires.IsZero() && !now.Before(e.Expires) {
			return nil
		}
		return fn(e)
	})
}

// parseKey decodes a stored key alone (for deletions).
func parseKey(key string) (List, Entry, error) {
	return parseStored(key, make([]byte, valueLen))
}

// --- expiry ---

type expItem struct {
	at  int64 // Unix ms
	key string
}

type expHeap []expItem

func (h expHeap) Len() int           { return len(h) }
func (h expHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h expHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expHeap) Push(x any)        { *h = append(*h, x.(expItem)) }
func (h *expHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}

func (l *Lists) schedule(at int64, key string) {
	l.expMu.Lock()
	first := len(l.exp) == 0 || at < l.exp[0].at
	heap.Push(&l.exp, expItem{at: at, key: key})
	l.expMu.Unlock()
	if first {
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
}

// expireLoop sleeps until the next expiry, and with no entry to expire
// until one is scheduled: no timer is armed for nothing. Lookups already
// refuse an expired entry on their own, to the millisecond; this removes
// it from memory and the store soon after, touching only the entries due.
func (l *Lists) expireLoop(ctx context.Context) {
	defer l.done.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		var due <-chan time.Time
		l.expMu.Lock()
		if len(l.exp) > 0 {
			timer.Reset(max(time.Duration(l.exp[0].at-l.now().UnixMilli())*time.Millisecond, 0))
			due = timer.C
		}
		l.expMu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-l.wake:
			timer.Stop()
		case <-due:
			l.ExpireDue(ctx)
		}
	}
}

// ExpireDue deletes the entries whose expiry has passed and returns how
// many it deleted. An entry re-added or deleted meanwhile is left alone.
func (l *Lists) ExpireDue(ctx context.Context) int {
	l.sweepMu.Lock()
	defer l.sweepMu.Unlock()
	now := l.now().UnixMilli()
	var due []expItem
	l.expMu.Lock()
	for len(l.exp) > 0 && l.exp[0].at <= now {
		due = append(due, heap.Pop(&l.exp).(expItem))
	}
	l.expMu.Unlock()
	var batch store.Batch
	for _, it := range due {
		list, e, err := parseKey(it.key)
		if err != nil {
			continue
		}
		if exp, ok := l.sets[list].expiry(l.h, e); !ok || exp != it.at {
			continue // re-added with another TTL, or already gone
		}
		if l.sweepHook != nil {
			l.sweepHook()
		}
		// The entry may have been re-added since: what is deleted is the
		// stored value, and only if its own expiry is due. The commit's
		// condition checks that value is still the one stored.
		stored, err := l.st.Get(ctx, it.key)
		if err != nil {
			continue
		}
		if _, se, err := parseStored(it.key, stored); err != nil || se.Expires.IsZero() || se.Expires.UnixMilli() > now || !l.enforced(stored) {
			continue
		}
		batch.Conds = append(batch.Conds, store.Unchanged(it.key, stored))
		batch.Ops = append(batch.Ops, store.Delete(it.key))
	}
	if len(batch.Ops) == 0 {
		return 0
	}
	// In batches within the store's limits; a batch whose condition fails
	// (an entry changed between the check and the commit) is retried one
	// entry at a time. An entry not deleted (the store failing) is still
	// refused by lookups, and deleted at the next start.
	n, err := l.commitEach(ctx, batch.Conds, batch.Ops)
	if err != nil && ctx.Err() == nil {
		l.log.Error("could not delete expired list entries; they no longer match", "deleted", n, "due", len(batch.Ops), "error", err)
	}
	return n
}
