package lists

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"iter"
	"math/rand/v2"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ase-project/ase/internal/store"
)

// Bulk imports on a store with limits, as generations.
//
// A store may bound one batch (etcd: 128 operations, 128 conditions,
// about 1 MiB), and a bulk import of up to 100,000 entries must still
// apply all or nothing. When an import does not fit one batch, it is
// written as a generation:
//
//  1. A marker "list/_gen/<id>" is put, pending, with a deadline, the
//     memory its entries will take (every node's budget check counts it
//     while it is pending) and the importing node's name (conditional on
//     the marker being absent).
//  2. The entries are put at their own keys in batches, their values
//     carrying the generation's id (entry.go). Each batch is
//     conditional on the marker still being the pending one this import
//     wrote, and each entry on its key being absent or holding an entry
//     that is not enforced (expired, or of an abandoned import): an entry
//     put meanwhile by an operator or a detection is never overwritten.
//     Every few batches the marker's deadline is pushed back.
//  3. One last small batch makes the marker live, conditional on it being
//     unchanged, on the list not having been cleared since the import
//     began ("list/_cleared/<list>", changed by every clear-all), and on
//     the caller's conditions (no transaction open).
//
// Every subscriber (every node) holds an entry of a generation that is not
// live aside, unenforced and out of views, until its marker turns live; then
// it enforces all of them at once. An entry put over a held one (an
// operator's, a detection's) replaces it, and a deleted one is dropped.
// The markers sort before the entries, so a snapshot or a resynchronisation
// in key order meets a marker before its entries. An entry keeps its
// generation's id for good; its marker stays while any entry refers to it
// and is dropped at the next start when none does.
//
// An import that fails is cleaned up at once by its node: the marker is
// made aborted (so no batch of the import can land any more), every entry
// it wrote that is still its own is deleted, then the marker. An import
// abandoned half-way (the node died) is cleaned up the same way by its
// node's next start, or by any node once the marker's deadline passed.

const (
	metaPrefix    = "list/_"         // keys that are not entries sort first
	genPrefix     = "list/_gen/"     // + 16 hex digits: one import's marker
	clearedPrefix = "list/_cleared/" // + the list's name: set by every clear-all

	valueLen    = 9  // tag, expiry: the first layout (entry.go)
	genValueLen = 17 // tag, expiry, generation id: the second
)

// genTTL is how long a pending import may go without progress before any
// node may abandon it; the importer pushes its deadline back every
// genTTL/4.
const genTTL = 2 * time.Minute

// genState is a generation's marker state.
type genState byte

const (
	genPending genState = 'p'
	genLive    genState = 'l'
	genAborted genState = 'a'
)

// marker is a generation marker's value.
type marker struct {
	state    genState
	list     List
	deadline int64 // Unix ms: past it, any node may abandon the import
	need     int64 // the memory its entries take: reserved while pending
	owner    string
}

func (m marker) encode() []byte {
	v := make([]byte, 18, 18+len(m.owner))
	v[0], v[1] = byte(m.state), byte(m.list)
	binary.BigEndian.PutUint64(v[2:], uint64(m.deadline))
	binary.BigEndian.PutUint64(v[10:], uint64(m.need))
	return append(v, m.owner...)
}

func decodeMarker(v []byte) (marker, bool) {
	if len(v) < 18 {
		return marker{}, false
	}
	m := marker{state: genState(v[0]), list: List(v[1]), deadline: int64(binary.BigEndian.Uint64(v[2:])),
		need: int64(binary.BigEndian.Uint64(v[10:])), owner: string(v[18:])}
	switch m.state {
	case genPending, genLive, genAborted:
		return m, m.list == Deny || m.list == Allow
	}
	return marker{}, false
}

func genKey(g uint64) string { return fmt.Sprintf("%s%016x", genPrefix, g) }

func parseGenKey(key string) (uint64, bool) {
	var g uint64
	s := strings.TrimPrefix(key, genPrefix)
	if len(s) != 16 {
		return 0, false
	}
	if _, err := fmt.Sscanf(s, "%016x", &g); err != nil || g == 0 {
		return 0, false
	}
	return g, true
}

func clearedKey(list List) string { return clearedPrefix + list.String() }

// valueGen returns the generation of a stored value, 0 for none.
func valueGen(v []byte) uint64 {
	if len(v) >= metaValueLen && v[0]&metaFlag != 0 || len(v) == genValueLen && v[0]&metaFlag == 0 {
		return binary.BigEndian.Uint64(v[valueLen:])
	}
	return 0
}

// withGen sets the generation of a stored value of the third layout.
func withGen(v []byte, g uint64) { binary.BigEndian.PutUint64(v[valueLen:], g) }

// generation is a marker as this node knows it, with the entries it holds
// aside while the generation is not live.
type generation struct {
	marker
	value   []byte   // the marker as stored
	held    *heldSet // the entries the import wrote; nil once live
	retryAt int64    // Unix ms: a failed cleanup waits until then
}

// setGen records a marker (nil value: deleted) and returns the entries to
// enforce now: those held when it turns live, and their list. Under genMu.
func (l *Lists) setGen(g uint64, value []byte) (List, *heldSet) {
	gen := l.gens[g]
	if value == nil {
		if gen != nil && gen.state != genLive {
			l.open.Add(-1)
		}
		delete(l.gens, g)
		return 0, nil
	}
	m, ok := decodeMarker(value)
	if !ok {
		l.log.Error("ignoring a malformed list import marker", "key", genKey(g))
		return 0, nil
	}
	if gen == nil {
		gen = &generation{}
		l.gens[g] = gen
		if m.state != genLive {
			gen.held = newHeldSet()
			l.open.Add(1)
		}
	} else if gen.state != genLive && m.state == genLive {
		l.open.Add(-1)
	}
	was := gen.state
	gen.marker, gen.value, gen.retryAt = m, append([]byte(nil), value...), 0
	if m.state != genLive {
		select {
		case l.genWake <- struct{}{}:
		default:
		}
		return 0, nil
	}
	if was == genLive {
		return 0, nil
	}
	held := gen.held
	gen.held = nil
	return m.list, held
}

// admit routes a put of an entry (value nil: a deletion): it drops the
// entry from every generation holding it under another value, and holds it
// if its own generation is not live. It reports whether the entry is to be
// enforced now. Under genMu.
func (l *Lists) admit(key string, value []byte) bool {
	g := valueGen(value)
	if l.open.Load() > 0 {
		var e Entry
		list, parsed := List(0), false
		for id, gen := range l.gens {
			if id == g || gen.held == nil || gen.held.n == 0 {
				continue
			}
			if !parsed {
				var err error
				if list, e, err = parseKey(key); err != nil {
					break
				}
				parsed = true
			}
			if gen.list == list {
				gen.held.del(l.h, e)
			}
		}
	}
	if g == 0 {
		return true
	}
	gen := l.gens[g]
	switch {
	case gen == nil:
		return false // an orphan: its marker is gone; Open deletes it
	case gen.state == genLive:
		return true
	}
	list, e, err := parseStored(key, value)
	if err != nil || list != gen.list {
		l.log.Error("ignoring a malformed list entry of a bulk import", "key", key, "import", genKey(g))
		return false
	}
	gen.held.put(l.h, e, key)
	return false
}

// enforced reports whether a stored entry's value counts: it is not of a
// generation that is not live.
func (l *Lists) enforced(value []byte) bool {
	g := valueGen(value)
	if g == 0 {
		return true
	}
	l.genMu.Lock()
	defer l.genMu.Unlock()
	gen := l.gens[g]
	return gen != nil && gen.state == genLive
}

// heldCost is the memory the imports in progress will take when they turn
// live (as their markers say): an import's budget check counts it.
func (l *Lists) heldCost() int64 {
	if l.open.Load() == 0 {
		return 0
	}
	l.genMu.Lock()
	defer l.genMu.Unlock()
	n := int64(0)
	for _, gen := range l.gens {
		if gen.state == genPending {
			n += gen.need
		}
	}
	return n
}

// heldBy returns the generation (and its state) holding e of list aside,
// if any.
func (l *Lists) heldBy(list List, e Entry) (uint64, genState) {
	if l.open.Load() == 0 {
		return 0, 0
	}
	l.genMu.Lock()
	defer l.genMu.Unlock()
	for g, gen := range l.gens {
		if gen.held != nil && gen.list == list && gen.held.has(l.h, e) {
			return g, gen.state
		}
	}
	return 0, 0
}

// --- batches within the store's limits ---

// room is what a caller adds to a batch beside the changes counted.
type room struct{ ops, conds, bytes int }

// filler fills one batch within the store's limits.
type filler struct {
	lim                  store.Limits
	n, ops, conds, bytes int
}

func newFiller(lim store.Limits, r room) filler {
	return filler{lim: lim, ops: r.ops, conds: r.conds, bytes: r.bytes}
}

// take counts a change of ops operations, conds conditions and size bytes
// if it fits beside what the batch holds, and reports whether it did. The
// first change is always taken (alone past the limits, the store refuses
// it with a *store.TooLargeError).
func (f *filler) take(ops, conds, size int) bool {
	if f.n > 0 && (f.lim.MaxOps > 0 && (f.ops+ops > f.lim.MaxOps || f.conds+conds > f.lim.MaxOps) ||
		f.lim.MaxBytes > 0 && f.bytes+size > f.lim.MaxBytes) {
		return false
	}
	f.n++
	f.ops, f.conds, f.bytes = f.ops+ops, f.conds+conds, f.bytes+size
	return true
}

// split cuts ops (and their conditions, one per op, when conds is not nil)
// into batches within lim, each leaving r for the caller.
func split(lim store.Limits, conds []store.Cond, ops []store.Op, r room) []store.Batch {
	var out []store.Batch
	for i := 0; i < len(ops); {
		f := newFiller(lim, r)
		j := i
		for ; j < len(ops); j++ {
			size, nc := len(ops[j].Key)+len(ops[j].Value), 0
			if conds != nil {
				size, nc = size+len(conds[j].Key)+len(conds[j].Value), 1
			}
			if !f.take(1, nc, size) {
				break
			}
		}
		b := store.Batch{Ops: ops[i:j:j]}
		if conds != nil {
			b.Conds = conds[i:j:j]
		}
		out = append(out, b)
		i = j
	}
	return out
}

// commitEach commits conditional deletions (or puts) in batches within the
// store's limits; a batch whose condition fails is retried one change at a
// time, and changes whose condition still fails are left alone. It
// returns how many changes applied.
func (l *Lists) commitEach(ctx context.Context, conds []store.Cond, ops []store.Op) (int, error) {
	n := 0
	for _, b := range split(l.st.Limits(), conds, ops, room{}) {
		_, err := l.st.Commit(ctx, b)
		if err == nil {
			n += len(b.Ops)
			continue
		}
		if !errors.As(err, new(*store.ConflictError)) || b.Conds == nil {
			return n, err
		}
		for i := range b.Ops {
			_, err := l.st.Commit(ctx, store.Batch{Conds: b.Conds[i : i+1], Ops: b.Ops[i : i+1]})
			switch {
			case err == nil:
				n++
			case !errors.As(err, new(*store.ConflictError)):
				return n, err
			}
		}
	}
	return n, nil
}

// --- the import ---

// Source is a bulk import's entries, decoded as they are read: an import
// holds one batch of them at a time, never all of them.
type Source interface {
	All() iter.Seq[Entry]
	// Bounds returns upper bounds of what the entries take: how many
	// there are, by what they take in memory, and the bytes of their keys
	// and values (plannedSize), none of them listed yet.
	Bounds() (n int, c counts, size int)
}

// Entries is a Source of entries in memory.
type Entries []Entry

// All implements Source.
func (es Entries) All() iter.Seq[Entry] { return slices.Values(es) }

// Bounds implements Source.
func (es Entries) Bounds() (int, counts, int) {
	var c counts
	size := 0
	for i := range es {
		c.add(es[i])
		size += plannedSize(len(allowPrefix), &es[i])
	}
	return len(es), c, size
}

// importBatch bounds one batch of an import on a store whose own limits
// are larger (the embedded store has none): the store holds every page a
// batch changes in memory until it commits, so an import past this is
// written as a generation, in batches of this size, as on etcd.
var importBatch = store.Limits{MaxOps: 16_384, MaxBytes: 2 << 20}

// batchLimits are the limits of one batch of an import.
func (l *Lists) batchLimits() store.Limits {
	lim := l.st.Limits()
	if lim.MaxOps == 0 || lim.MaxOps > importBatch.MaxOps {
		lim.MaxOps = importBatch.MaxOps
	}
	if lim.MaxBytes == 0 || lim.MaxBytes > importBatch.MaxBytes {
		lim.MaxBytes = importBatch.MaxBytes
	}
	return lim
}

// importItem is one entry of a bulk import, in 48 bytes: a batch holds
// thousands.
type importItem struct {
	key string
	// prior is the value the key must still hold when the batch commits;
	// nil: the key must be absent.
	prior   []byte
	at, end int32 // its value in the batch's buffer
}

// cond is what the item's put is conditional on.
func (it *importItem) cond() store.Cond {
	if it.prior == nil {
		return store.Absent(it.key)
	}
	return store.Unchanged(it.key, it.prior)
}

// ErrImportAbandoned refuses an import whose marker was abandoned by
// cleanup (it made no progress within its deadline) while it ran.
var errImportAbandoned = errors.New("lists: the bulk import made no progress for too long and was abandoned; nothing was imported, retry")

// busyError refuses an import holding an entry another import in progress
// is adding.
func busyError(key string) error {
	what := key
	if _, e, err := parseKey(key); err == nil {
		what = e.Describe()
	}
	return fmt.Errorf("lists: another bulk import in progress is adding %s; nothing was imported, retry when it ends: %w",
		what, &store.ConflictError{Cond: store.Absent(key)})
}

// Import adds entries to list as one bulk import: ImportFrom with the
// entries in memory.
func (l *Lists) Import(ctx context.Context, list List, entries []Entry, final ...store.Cond) (AddResult, error) {
	return l.ImportFrom(ctx, list, Entries(entries), final...)
}

// ImportFrom adds the entries of src to list as one bulk import, all or
// nothing, on the live store (in a transaction, Add stages them instead).
// Entries already listed, or repeated, are skipped and counted. The memory
// budget is checked for all of them together (with the imports in
// progress), and past it nothing is added (*MemoryError). An import that
// fits one batch of the store (and importBatch) is one batch; a larger one
// is a generation (see above), written a batch at a time as src is read.
// Every entry's put is conditional on its key being absent or holding an
// entry that is not enforced. The conditions final go with the batch that
// makes the import take effect (the management API's "no transaction is
// open"); when one fails, nothing is imported and the commit's
// *store.ConflictError is returned.
func (l *Lists) ImportFrom(ctx context.Context, list List, src Source, final ...store.Cond) (AddResult, error) {
	now := l.now().UnixMilli()
	n, c, size := src.Bounds()
	used, need := l.needFor(list, c)
	if held := l.heldCost(); used+held+need > l.limit {
		// The bound counts the entries listed already, and repeats: count
		// them out.
		if c = l.exactCounts(list, src, now); c != (counts{}) {
			if used, need = l.needFor(list, c); used+held+need > l.limit {
				return AddResult{}, &MemoryError{Configured: l.limit, Used: used + held, Need: need}
			}
		}
	}
	lim := l.batchLimits()
	fb := 0
	for _, c := range final {
		fb += len(c.Key) + len(c.Value)
	}
	if (lim.MaxOps == 0 || n+len(final) <= lim.MaxOps) && (lim.MaxBytes == 0 || size+fb <= lim.MaxBytes) {
		b := &batcher{l: l, list: list, now: now}
		for e := range src.All() {
			if err := b.add(ctx, e); err != nil {
				return AddResult{}, err
			}
		}
		b.make(0)
		if len(b.order) == 0 {
			return b.res, nil
		}
		added, err := l.importOne(ctx, b, final)
		res := b.res
		res.Added = added
		return res, err
	}
	return l.importGen(ctx, list, src, need, final)
}

// listedAt reports whether e is listed and live at now (Unix ms).
func (l *Lists) listedAt(list List, e Entry, now int64) bool {
	exp, ok := l.sets[list].expiry(l.h, e)
	return ok && (exp == 0 || now < exp)
}

// exactCounts counts the entries of an import, those listed already left
// out and each other counted once.
func (l *Lists) exactCounts(list List, src Source, now int64) counts {
	seen := newHeldSet()
	var c counts
	for e := range src.All() {
		if list == Allow {
			e.Tag = Manual
		}
		if l.listedAt(list, e, now) || seen.has(l.h, e) {
			continue
		}
		seen.put(l.h, e, "")
		c.add(e)
	}
	return c
}

// plannedSize is the itemSize e will have (with an Absent condition) in
// the list whose prefix is prefixLen bytes long.
func plannedSize(prefixLen int, e *Entry) int {
	n := prefixLen + len(e.Kind.String()) + 1 + len(e.Value)
	if e.Name != "" {
		n += len(e.Name) + 1
	}
	return 2*n + e.valueSize()
}

// batcher makes an import's batches: an entry at a time, the values in one
// buffer reused from batch to batch.
type batcher struct {
	l     *Lists
	list  List
	gen   uint64      // the generation, 0 for an import of one batch
	own   *generation // the generation as this node holds it
	now   int64
	items []importItem // in the order given
	vals  []byte
	order []int32 // the items to write, by key (make)
	res   AddResult
	// the store batch, reused from batch to batch
	conds []store.Cond
	ops   []store.Op
}

// prepare returns the item e makes, or false when e is skipped (listed, a
// repeat of an entry an earlier batch wrote, or stored and enforced).
func (b *batcher) prepare(ctx context.Context, e Entry) (importItem, bool, error) {
	l := b.l
	if b.list == Allow {
		e.Tag = Manual
	}
	exp, listed := l.sets[b.list].expiry(l.h, e)
	if listed && (exp == 0 || b.now < exp) {
		b.res.Skipped++
		return importItem{}, false, nil
	}
	if b.gen != 0 && b.own == nil {
		l.genMu.Lock()
		b.own = l.gens[b.gen] // there once the first batch committed
		l.genMu.Unlock()
	}
	if b.own != nil {
		l.genMu.Lock()
		repeat := b.own.held != nil && b.own.held.has(l.h, e)
		l.genMu.Unlock()
		if repeat {
			// An earlier batch wrote it: this node holds it aside.
			b.res.Skipped++
			return importItem{}, false, nil
		}
	}
	other, mine := uint64(0), int64(0)
	if b.own != nil {
		mine = 1
	}
	if l.open.Load() > mine { // another import is in progress
		other, _ = l.heldBy(b.list, e)
	}
	key := e.StoreKey(b.list)
	at := len(b.vals)
	b.vals = e.appendValue(b.vals)
	it := importItem{key: key, at: int32(at), end: int32(len(b.vals))}
	if other != 0 || listed {
		// Another import's (pending: refused; abandoned: replaced), or an
		// expired entry still stored (replaced).
		skip, err := l.resolveImport(ctx, &it, b.gen)
		if err != nil {
			return importItem{}, false, err
		}
		if skip {
			b.vals = b.vals[:at]
			b.res.Skipped++
			return importItem{}, false, nil
		}
	}
	return it, true, nil
}

// add adds e to the batch.
func (b *batcher) add(ctx context.Context, e Entry) error {
	it, ok, err := b.prepare(ctx, e)
	if ok {
		b.items = append(b.items, it)
	}
	return err
}

// make orders the batch's items by key, each key once (the first entry
// given wins, the others are skipped), and makes their values generation
// g's. Sorted keys fill the store's pages sequentially.
func (b *batcher) make(g uint64) {
	b.order = b.order[:0]
	for i := range b.items {
		b.order = append(b.order, int32(i))
	}
	slices.SortFunc(b.order, func(x, y int32) int {
		if c := strings.Compare(b.items[x].key, b.items[y].key); c != 0 {
			return c
		}
		return int(x - y) // the entry given first
	})
	out := b.order[:0]
	last := ""
	for k, i := range b.order {
		if k > 0 && b.items[i].key == last {
			b.res.Skipped++
			continue
		}
		last = b.items[i].key
		if g != 0 {
			withGen(b.value(i), g)
		}
		out = append(out, i)
	}
	b.order = out
}

// value is item i's value.
func (b *batcher) value(i int32) []byte {
	it := &b.items[i]
	return b.vals[it.at:it.end:it.end]
}

// batch returns the store batch that puts the items of order, with the
// conditions given, between the operations pre and post.
func (b *batcher) batch(order []int32, conds []store.Cond, pre, post []store.Op) store.Batch {
	b.conds = append(b.conds[:0], conds...)
	b.ops = append(b.ops[:0], pre...)
	for _, i := range order {
		b.conds = append(b.conds, b.items[i].cond())
		b.ops = append(b.ops, store.Put(b.items[i].key, b.value(i)))
	}
	b.ops = append(b.ops, post...)
	return store.Batch{Conds: b.conds, Ops: b.ops}
}

// resolve reads the key of every item of order again (a commit found one
// changed) and returns those still to write.
func (b *batcher) resolve(ctx context.Context, order []int32) ([]int32, error) {
	out := order[:0]
	for _, i := range order {
		skip, err := b.l.resolveImport(ctx, &b.items[i], b.gen)
		if err != nil {
			return nil, err
		}
		if skip {
			b.res.Skipped++
			continue
		}
		out = append(out, i)
	}
	return out, nil
}

// reset starts the next batch, reusing the buffers: the store keeps
// neither a batch's slices nor its values once it committed.
func (b *batcher) reset() {
	clear(b.items)
	clear(b.conds)
	clear(b.ops)
	b.items, b.order, b.vals = b.items[:0], b.order[:0], b.vals[:0]
}

// resolveImport reads it's key and sets what its put is conditional on;
// it reports whether the key holds an enforced entry (skip it). own is the
// import's generation.
func (l *Lists) resolveImport(ctx context.Context, it *importItem, own uint64) (bool, error) {
	v, err := l.st.Get(ctx, it.key)
	if errors.Is(err, store.ErrNotFound) {
		it.prior = nil
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if g := valueGen(v); g != 0 && g != own {
		l.genMu.Lock()
		gen := l.gens[g]
		state := genState(0)
		if gen != nil {
			state = gen.state
		}
		l.genMu.Unlock()
		switch state {
		case genPending:
			return false, busyError(it.key)
		case genLive:
		default: // abandoned, or an orphan: not enforced
			it.prior = v
			return false, nil
		}
	}
	if _, e, err := parseStored(it.key, v); err == nil && (e.Expires.IsZero() || l.now().Before(e.Expires)) {
		return true, nil
	}
	it.prior = v
	return false, nil
}

// importOne writes an import that fits one batch, and returns how many
// entries it added.
func (l *Lists) importOne(ctx context.Context, b *batcher, final []store.Cond) (int, error) {
	for attempt := 0; ; attempt++ {
		bt := b.batch(b.order, nil, nil, nil)
		bt.Conds = append(bt.Conds, final...)
		_, err := l.st.Commit(ctx, bt)
		var conflict *store.ConflictError
		if err == nil || !errors.As(err, &conflict) || attempt == 3 || isFinal(conflict, final) {
			return len(b.order), err
		}
		// A key changed since it was read (a detection, a sweep, another
		// node): read them again.
		if b.order, err = b.resolve(ctx, b.order); err != nil {
			return 0, err
		}
		if len(b.order) == 0 {
			return 0, nil
		}
	}
}

func isFinal(c *store.ConflictError, final []store.Cond) bool {
	for _, f := range final {
		if f.Key == c.Cond.Key {
			return true
		}
	}
	return false
}

// importGen writes an import as a generation and returns what it did. On
// any failure nothing becomes live and what it wrote is deleted.
func (l *Lists) importGen(ctx context.Context, list List, src Source, need int64, final []store.Cond) (AddResult, error) {
	g := rand.Uint64()
	for g == 0 {
		g = rand.Uint64()
	}
	mk := genKey(g)
	cleared := store.Absent(clearedKey(list))
	if v, err := l.st.Get(ctx, clearedKey(list)); err == nil {
		cleared = store.Unchanged(clearedKey(list), v)
	} else if !errors.Is(err, store.ErrNotFound) {
		return AddResult{}, err
	}
	w := &genWriter{l: l, g: g, mk: mk, final: append([]store.Cond{cleared}, final...),
		m: marker{state: genPending, list: list, deadline: l.now().Add(l.genTTL).UnixMilli(), need: need, owner: l.node}}
	res, err := l.writeGen(ctx, list, w, src)
	if err == nil {
		return res, nil
	}
	// Whatever failed (the request's context included), clean up now; what
	// cannot be cleaned now is cleaned by the deadline or the next start.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if cerr := l.cleanupGen(cctx, g); cerr != nil {
		l.log.Error("a failed bulk import could not be cleaned up yet; it never becomes live and is cleaned up later", "import", mk, "error", cerr)
	}
	l.genMu.Lock()
	live := l.gens[g] != nil && l.gens[g].state == genLive
	l.genMu.Unlock()
	if live { // the last commit reported an error but did apply
		return res, nil
	}
	return AddResult{}, err
}

// writeGen writes the entries of src as w's generation, a window of
// importBatch entries at a time, each sorted by key and committed in as
// many batches as the store's limits need (in key order, so that each
// batch changes few pages of the store), the first putting the marker and
// the last making it live. A window is made (entries decoded, checked,
// sorted) while the one before is committed, on another core.
func (l *Lists) writeGen(ctx context.Context, list List, w *genWriter, src Source) (AddResult, error) {
	now := l.now().UnixMilli()
	// Room in every batch for the marker's condition and its put (first,
	// new deadline, live), and for the conditions of the last.
	w.lim = l.batchLimits()
	w.room = room{ops: 1, conds: 1 + len(w.final), bytes: 2*len(w.mk) + 2*len(w.m.encode()) + 8}
	for _, c := range w.final {
		w.room.bytes += len(c.Key) + len(c.Value)
	}
	// Two batchers: one filled while the other's window is committed.
	type job struct {
		b    *batcher
		last bool
	}
	bs := [2]*batcher{}
	free := make(chan *batcher, len(bs))
	n, _, size := src.Bounds()
	n, size = min(n, importBatch.MaxOps), min(size, importBatch.MaxBytes)
	for i := range bs {
		bs[i] = &batcher{l: l, list: list, gen: w.g, now: now,
			items: make([]importItem, 0, n), order: make([]int32, 0, n), vals: make([]byte, 0, size)}
		free <- bs[i]
	}
	full := make(chan job)
	done := make(chan error, 1)
	var failed atomic.Bool
	added := 0
	go func() {
		var err error
		for j := range full {
			if err == nil {
				var ok int
				ok, err = w.commit(ctx, j.b, j.last)
				added += ok
				failed.Store(err != nil)
			}
			free <- j.b
		}
		done <- err
	}()
	b, f := <-free, newFiller(importBatch, w.room)
	send := func(last bool) error {
		b.make(w.g)
		full <- job{b, last}
		b, f = <-free, newFiller(importBatch, w.room)
		b.reset()
		if failed.Load() {
			return errImportStopped
		}
		return nil
	}
	err := func() error {
		for e := range src.All() {
			it, ok, err := b.prepare(ctx, e)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			if !f.take(1, 1, plannedItemSize(&it)) {
				// The item's value is the last in the buffer: carried over.
				v := bytes.Clone(b.vals[it.at:it.end])
				b.vals = b.vals[:it.at]
				if err := send(false); err != nil {
					return err
				}
				it.at = int32(len(b.vals))
				b.vals = append(b.vals, v...)
				it.end = int32(len(b.vals))
				f.take(1, 1, plannedItemSize(&it))
			}
			b.items = append(b.items, it)
		}
		return send(true)
	}()
	close(full)
	if cerr := <-done; cerr != nil || err != nil {
		if cerr != nil && (err == nil || err == errImportStopped) {
			err = cerr
		}
		return AddResult{}, err
	}
	res := AddResult{Added: added}
	for _, b := range bs {
		res.Skipped += b.res.Skipped
	}
	return res, nil
}

// genWriter commits a generation's batches: the first puts its marker,
// pending (or live, when it is also the last), every other is conditional
// on the marker being unchanged, pushes its deadline back now and then,
// and the last makes it live, with the final conditions.
type genWriter struct {
	l         *Lists
	g         uint64
	mk        string
	m         marker
	cur       []byte // the marker as stored; nil before the first batch
	final     []store.Cond
	lim       store.Limits // of one batch
	room      room         // in every batch, for the marker and the last's conditions
	refreshed time.Time
	chunk     int
}

// commit commits the window b (the last one when last), in batches within
// the store's limits. It returns how many entries it wrote.
func (w *genWriter) commit(ctx context.Context, b *batcher, last bool) (int, error) {
	order, added := b.order, 0
	for {
		f := newFiller(w.lim, w.room)
		n := 0
		for n < len(order) && f.take(1, 1, plannedItemSize(&b.items[order[n]])) {
			n++
		}
		batch := order[:n]
		order = order[n:]
		k, err := w.commitBatch(ctx, b, batch, last && len(order) == 0)
		if added += k; err != nil || len(order) == 0 {
			return added, err
		}
	}
}

// commitBatch commits the items batch of b (the import's last batch when
// last); an entry put meanwhile by someone else is read again, and left
// when it is enforced. It returns how many entries it wrote.
func (w *genWriter) commitBatch(ctx context.Context, b *batcher, batch []int32, last bool) (int, error) {
	l := w.l
	if len(batch) == 0 && (!last || w.cur == nil) {
		return 0, nil // nothing to write; or nothing was: no generation
	}
	for attempt := 0; ; attempt++ {
		var conds []store.Cond
		var pre, post []store.Op
		next := w.m
		switch {
		case w.cur == nil: // the first batch puts the marker
			if last {
				next.state = genLive
			}
			conds, pre = []store.Cond{store.Absent(w.mk)}, []store.Op{store.Put(w.mk, next.encode())}
		default:
			conds = []store.Cond{store.Unchanged(w.mk, w.cur)}
			if last {
				next.state = genLive
				post = []store.Op{store.Put(w.mk, next.encode())}
			} else if now := l.now(); now.Sub(w.refreshed) >= l.genTTL/4 {
				next.deadline = now.Add(l.genTTL).UnixMilli()
				post = []store.Op{store.Put(w.mk, next.encode())}
			}
		}
		if last {
			conds = append(conds, w.final...)
		}
		bt := b.batch(batch, conds, pre, post)
		if l.importHook != nil {
			if err := l.importHook(w.chunk); err != nil {
				return 0, err
			}
		}
		_, err := l.st.Commit(ctx, bt)
		var conflict *store.ConflictError
		switch {
		case err == nil:
			if w.cur == nil || len(post) > 0 {
				w.m, w.cur, w.refreshed = next, next.encode(), l.now()
			}
			w.chunk++
			return len(batch), nil
		case !errors.As(err, &conflict):
			return 0, err
		case conflict.Cond.Key == w.mk:
			return 0, errImportAbandoned
		case conflict.Cond.Key == w.final[0].Key:
			return 0, fmt.Errorf("lists: the %s was cleared during the bulk import; nothing was imported: %w", w.m.list, err)
		case isFinal(conflict, w.final), attempt == 3:
			return 0, err
		}
		// An entry was put meanwhile (an operator's, a detection, or one
		// the batch before wrote and this node had not yet seen when this
		// batch was made): read the batch's keys again, leave the enforced
		// ones and retry.
		if batch, err = b.resolve(ctx, batch); err != nil {
			return 0, err
		}
		if len(batch) == 0 && !last {
			return 0, nil
		}
	}
}

// errImportStopped stops making batches once their commit failed.
var errImportStopped = errors.New("lists: the import's commit failed")

// plannedItemSize is what a prepared item takes of a batch's bytes: its key
// twice (the put and its condition) and its values.
func plannedItemSize(it *importItem) int {
	return 2*len(it.key) + int(it.end-it.at) + len(it.prior)
}

// cleanupChunk is how many entries of an abandoned import a cleanup
// deletes from one scan of the store.
const cleanupChunk = 16_384

// cleanupGen abandons generation g unless it is live: its marker is made
// aborted (no batch of the import can land after), the entries it wrote
// are deleted where they are still its own, then the marker.
func (l *Lists) cleanupGen(ctx context.Context, g uint64) error {
	mk := genKey(g)
	l.genMu.Lock()
	gen := l.gens[g]
	if gen == nil || gen.state == genLive {
		l.genMu.Unlock()
		return nil
	}
	m, val := gen.marker, gen.value
	l.genMu.Unlock()
	if m.state == genPending {
		m.state, m.deadline = genAborted, l.now().Add(l.genTTL).UnixMilli()
		next := m.encode()
		_, err := l.st.Commit(ctx, store.Batch{Conds: []store.Cond{store.Unchanged(mk, val)}, Ops: []store.Op{store.Put(mk, next)}})
		if errors.As(err, new(*store.ConflictError)) {
			return nil // it changed (progress, live, or someone else aborted it): looked at again later
		}
		if err != nil {
			return err
		}
		val = next
	}
	// Committed before the abort, every entry the import wrote is in the
	// store with its id: they are deleted a chunk at a time, each only if
	// it is still the import's.
	for after := ""; ; {
		var conds []store.Cond
		var ops []store.Op
		err := l.scanKinds(ctx, l.st, m.list, 0, after, func(k string, v []byte) error {
			after = k
			if valueGen(v) == g {
				conds = append(conds, store.Unchanged(k, bytes.Clone(v)))
				ops = append(ops, store.Delete(k))
				if len(ops) == cleanupChunk {
					return errStop
				}
			}
			return nil
		})
		if err != nil && !errors.Is(err, errStop) {
			return err
		}
		if _, cerr := l.commitEach(ctx, conds, ops); cerr != nil {
			return cerr
		}
		if err == nil {
			break
		}
	}
	_, err := l.st.Commit(ctx, store.Batch{Conds: []store.Cond{store.Unchanged(mk, val)}, Ops: []store.Op{store.Delete(mk)}})
	if errors.As(err, new(*store.ConflictError)) {
		return nil
	}
	return err
}

// cleanupDue abandons the imports whose deadline passed (and finishes the
// cleanups abandoned half-way), and returns when the next one is due
// (Unix ms, 0 for none).
func (l *Lists) cleanupDue(ctx context.Context) int64 {
	now := l.now().UnixMilli()
	var due []uint64
	next := int64(0)
	l.genMu.Lock()
	for g, gen := range l.gens {
		if gen.state == genLive {
			continue
		}
		at := max(gen.deadline, gen.retryAt)
		if at <= now {
			due = append(due, g)
		} else if next == 0 || at < next {
			next = at
		}
	}
	l.genMu.Unlock()
	for _, g := range due {
		if err := l.cleanupGen(ctx, g); err != nil {
			if ctx.Err() != nil {
				return 0
			}
			l.log.Error("could not clean up an abandoned bulk import yet; it never becomes live, retrying", "import", genKey(g), "error", err)
			at := l.now().Add(retryEvery).UnixMilli()
			l.genMu.Lock()
			if gen := l.gens[g]; gen != nil {
				gen.retryAt = at
			}
			l.genMu.Unlock()
			if next == 0 || at < next {
				next = at
			}
		}
	}
	return next
}

// genLoop cleans up abandoned imports as their deadlines pass.
func (l *Lists) genLoop(ctx context.Context) {
	defer l.done.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		wait := time.Hour
		if next := l.cleanupDue(ctx); next != 0 {
			wait = max(time.Duration(next-l.now().UnixMilli())*time.Millisecond, 0)
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-l.genWake:
		case <-timer.C:
		}
	}
}
