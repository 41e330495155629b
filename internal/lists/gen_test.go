package lists

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ase-project/ase/internal/store"
)

// node opens one more Lists on st: another node sharing the store.
func node(t testing.TB, st store.Store, c *clock, name string, limit int64) *Lists {
	t.Helper()
	l, err := Open(context.Background(), st, Options{Limit: limit, Now: c.now, Log: slog.Default(), Node: name})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	return l
}

// limited opens a store bounded by lim and two nodes on it.
func limited(t testing.TB, lim store.Limits, limit int64) (*Lists, *Lists, *store.Bolt, *clock) {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "ase.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	st.SetLimits(lim)
	c := &clock{t: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)}
	return node(t, st, c, "a", limit), node(t, st, c, "b", limit), st, c
}

// bulk returns n distinct entries: addresses of 10.0.0.0/8 and tokens.
func bulk(n, seed int) []Entry {
	es := make([]Entry, n)
	for i := range es {
		v := seed*n + i
		if i%2 == 0 {
			a := netip.AddrFrom4([4]byte{10, byte(v >> 16), byte(v >> 8), byte(v)})
			es[i] = Entry{Kind: IP, Prefix: netip.PrefixFrom(a, 32), Value: a.String()}
		} else {
			es[i] = Entry{Kind: Token, Value: fmt.Sprintf("tok-%d-%d", seed, i)}
		}
	}
	return es
}

func entries(l *Lists, list List) int64 { return l.Count(list, IP) + l.Count(list, Token) }

// keys counts the stored keys under prefix.
func keys(t testing.TB, st store.Store, prefix string) int {
	t.Helper()
	n := 0
	if err := st.Scan(context.Background(), prefix, func(string, []byte) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

func listedOn(l *Lists, e Entry) bool { return l.Contains(Deny, e) }

func heldCount(l *Lists) int {
	l.genMu.Lock()
	defer l.genMu.Unlock()
	n := 0
	for _, g := range l.gens {
		if g.held != nil {
			n += g.held.n
		}
	}
	return n
}

// A 100,000-entry import on a store with etcd's limits applies all or
// nothing: failed half-way, nothing is listed on either node and nothing
// is left in the store; done again, every entry turns live on both nodes
// at once, with the last batch, and not before.
func TestImportAllOrNothingWithEtcdLimits(t *testing.T) {
	ctx := context.Background()
	a, b, st, c := limited(t, store.EtcdLimits, 1<<30)
	es := bulk(100_000, 1)
	batches := 0
	a.importHook = func(n int) error {
		batches = n
		if n == 400 {
			if h, w := heldCount(b), keys(t, st, "list/deny/"); h != w || h < 400*100 {
				t.Errorf("node b holds %d entries aside half-way, want the %d written", h, w)
			}
			return errors.New("injected failure")
		}
		return nil
	}
	if _, err := a.Import(ctx, Deny, es); err == nil || err.Error() != "injected failure" {
		t.Fatalf("import with a failure half-way: %v", err)
	}
	if batches != 400 {
		t.Fatalf("failed at batch %d", batches)
	}
	for _, l := range []*Lists{a, b} {
		if n := entries(l, Deny); n != 0 || heldCount(l) != 0 || l.open.Load() != 0 {
			t.Fatalf("after the failed import: %d listed, %d held, %d open", n, heldCount(l), l.open.Load())
		}
	}
	if n := keys(t, st, Prefix); n != 0 {
		t.Fatalf("%d keys left in the store after the failed import", n)
	}

	// Again, watched from node b and from a node that starts half-way.
	var late *Lists
	a.importHook = func(n int) error {
		if n == 0 || n%200 != 0 {
			return nil
		}
		if late == nil {
			late = node(t, st, c, "c", 1<<30)
		}
		for _, l := range []*Lists{b, late} {
			if got := entries(l, Deny); got != 0 || listedOn(l, es[0]) {
				t.Errorf("batch %d: %d entries listed before the import is live", n, got)
			}
		}
		var seen int
		b.View(ctx, st, Deny, nil, func(Entry) error { seen++; return nil })
		if seen != 0 {
			t.Errorf("batch %d: the view shows %d entries of an import not live", n, seen)
		}
		return nil
	}
	start := time.Now()
	res, err := a.Import(ctx, Deny, es)
	if err != nil || res != (AddResult{Added: 100_000}) {
		t.Fatalf("import: %+v %v", res, err)
	}
	t.Logf("100,000 entries with etcd's limits: %v", time.Since(start))
	for _, l := range []*Lists{a, b, late} {
		if n := entries(l, Deny); n != 100_000 || heldCount(l) != 0 || !listedOn(l, es[99_999]) {
			t.Fatalf("after the import: %d listed, %d held", n, heldCount(l))
		}
	}
	var seen int
	b.View(ctx, st, Deny, nil, func(Entry) error { seen++; return nil })
	if seen != 100_000 {
		t.Fatalf("view after the import: %d entries", seen)
	}
	// A node starting now loads them; the marker stays while entries
	// refer to it.
	d := node(t, st, c, "d", 1<<30)
	if n := entries(d, Deny); n != 100_000 || keys(t, st, genPrefix) != 1 {
		t.Fatalf("a new node loads %d entries, %d markers", n, keys(t, st, genPrefix))
	}
	// Re-importing skips them all; clearing the list drops the marker at
	// the next start.
	if res, err := a.Import(ctx, Deny, es); err != nil || res != (AddResult{Skipped: 100_000}) {
		t.Fatalf("re-import: %+v %v", res, err)
	}
	bt, err := a.Clear(ctx, st, Deny, nil)
	if err != nil || !st.Limits().Fits(&bt) {
		t.Fatalf("clear all: %v, %d ops", err, len(bt.Ops))
	}
	if _, err := st.Commit(ctx, bt); err != nil {
		t.Fatal(err)
	}
	for _, l := range []*Lists{a, b, d} {
		if n := entries(l, Deny); n != 0 {
			t.Fatalf("after clearing: %d listed", n)
		}
	}
	node(t, st, c, "e", 1<<30)
	if n := keys(t, st, genPrefix); n != 0 {
		t.Fatalf("%d markers left after the start that follows a clear", n)
	}
}

// Without limits (the embedded store), an import of up to importBatch
// entries is one batch: no generation. A larger one is a generation of
// batches of importBatch, so that no commit holds more than that in
// memory; the other node holds its entries aside until the last batch.
func TestImportWithoutLimits(t *testing.T) {
	ctx := context.Background()
	a, b, st, _ := limited(t, store.Limits{}, 1<<30)
	a.importHook = func(int) error { t.Error("a generation for 5,000 entries"); return nil }
	rev := st.Rev()
	res, err := a.Import(ctx, Deny, bulk(5_000, 2))
	if err != nil || res.Added != 5_000 || st.Rev() != rev+1 || entries(b, Deny) != 5_000 || keys(t, st, metaPrefix) != 0 {
		t.Fatalf("import: %+v %v, %d commits", res, err, st.Rev()-rev)
	}
	per := importBatch.MaxOps - 2 // and the marker's condition, and room for the last's
	es := bulk(3*per, 3)
	batches := 0
	a.importHook = func(n int) error {
		if batches = n + 1; n == 2 {
			if listed, held := entries(b, Deny), heldCount(b); listed != 5_000 || held != 2*per {
				t.Errorf("before the last batch, node b lists %d, holds %d aside; want 5000 and %d", listed, held, 2*per)
			}
		}
		return nil
	}
	if res, err = a.Import(ctx, Deny, es); err != nil || res.Added != len(es) || batches != 3 {
		t.Fatalf("import of %d: %+v %v in %d batches", len(es), res, err, batches)
	}
	if n := entries(b, Deny); n != int64(5_000+len(es)) || heldCount(b) != 0 || !listedOn(b, es[len(es)-1]) {
		t.Fatalf("after the import, node b lists %d, holds %d", n, heldCount(b))
	}
}

// An import too large for one batch of which most is listed already is a
// generation of one batch: its marker, put live, comes before its entries,
// and the other node enforces them.
func TestImportGenerationOfOneBatch(t *testing.T) {
	ctx := context.Background()
	a, b, st, _ := limited(t, store.Limits{MaxOps: 16, MaxBytes: 1 << 20}, 1<<30)
	es := bulk(30, 17)
	if _, err := a.Import(ctx, Deny, es[:25]); err != nil {
		t.Fatal(err)
	}
	rev := st.Rev()
	res, err := a.Import(ctx, Deny, es)
	if err != nil || res != (AddResult{Added: 5, Skipped: 25}) {
		t.Fatalf("import: %+v %v", res, err)
	}
	if st.Rev() != rev+1 || entries(b, Deny) != 30 || !listedOn(b, es[29]) || heldCount(b) != 0 {
		t.Fatalf("import: %+v in %d commits; node b lists %d, holds %d", res, st.Rev()-rev, entries(b, Deny), heldCount(b))
	}
}

// An entry an operator adds during an import (on another node) is never
// overwritten: before the import reaches it (the import skips it), or after
// the import wrote it (the operator's replaces the pending one). An expired
// entry is replaced by the import.
func TestImportKeepsOperatorEntries(t *testing.T) {
	ctx := context.Background()
	a, b, st, c := limited(t, store.Limits{MaxOps: 8, MaxBytes: 1 << 20}, 1<<30)
	add(t, b, st, Deny, `{"type": "token", "value": "tok-3-99", "ttl": 1}`)
	c.add(2 * time.Second) // expired, still stored
	es := bulk(100, 3)
	sorted := append([]Entry(nil), es...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].StoreKey(Deny) < sorted[j].StoreKey(Deny) })
	operator := func(e Entry) {
		e.Expires = c.now().Add(time.Hour).Truncate(time.Millisecond)
		bt, _, err := b.Add(ctx, st, Deny, []Entry{e}, false)
		if err != nil {
			t.Fatalf("operator's add of %s: %v", e.Describe(), err)
		}
		if _, err := st.Commit(ctx, bt); err != nil {
			t.Fatal(err)
		}
	}
	// A window of entries (here all of them) is written in batches in key
	// order: sorted[0] in the first batch, sorted[97] in one of the last.
	early, late := sorted[0], sorted[97]
	a.importHook = func(n int) error {
		if n == 3 {
			operator(early)
			operator(late)
		}
		return nil
	}
	res, err := a.Import(ctx, Deny, es)
	if err != nil || res.Added+res.Skipped != 100 || res.Skipped != 1 {
		t.Fatalf("import: %+v %v", res, err)
	}
	want := c.now().Add(time.Hour).Truncate(time.Millisecond).UnixMilli()
	for _, e := range []Entry{early, late} {
		if _, exp, ok := stored(t, st, e.StoreKey(Deny)); !ok || exp != want {
			t.Fatalf("%s: stored expiry %d, want the operator's %d", e.Describe(), exp, want)
		}
		for _, l := range []*Lists{a, b} {
			if got, ok := l.sets[Deny].expiry(l.h, e); !ok || got != want {
				t.Fatalf("%s in memory: expiry %d, want the operator's", e.Describe(), got)
			}
		}
	}
	if _, exp, ok := stored(t, st, es[99].StoreKey(Deny)); !ok || exp != 0 {
		t.Fatalf("the expired entry was not replaced: %v %d", ok, exp)
	}
	if n := entries(b, Deny); n != 100 {
		t.Fatalf("%d listed", n)
	}
}

// An import abandoned half-way (its node died) never turns live: its own
// node cleans it up when it starts again, any other node once its deadline
// passed.
func TestAbandonedImportIsCleanedUp(t *testing.T) {
	ctx := context.Background()
	for _, who := range []string{"own node at start", "other node after the deadline"} {
		t.Run(who, func(t *testing.T) {
			st, _ := store.Open(filepath.Join(t.TempDir(), "ase.db"))
			t.Cleanup(func() { st.Close() })
			st.SetLimits(store.EtcdLimits)
			c := &clock{t: time.Unix(1_800_000_000, 0)}
			// What a node that died half-way leaves: a pending marker and
			// 300 entries of its generation.
			const g = 0x1234
			m := marker{state: genPending, list: Deny, deadline: c.now().Add(genTTL).UnixMilli(), owner: "a"}
			if _, err := st.Commit(ctx, store.Batch{Ops: []store.Op{store.Put(genKey(g), m.encode())}}); err != nil {
				t.Fatal(err)
			}
			var ops []store.Op
			for _, e := range bulk(300, 4) {
				v := e.storeValue()
				withGen(v, g)
				ops = append(ops, store.Put(e.StoreKey(Deny), v))
			}
			for _, b := range split(st.Limits(), nil, ops, room{}) {
				st.Commit(ctx, b)
			}
			other := node(t, st, c, "b", 1<<30)
			if n := entries(other, Deny); n != 0 || heldCount(other) != 300 {
				t.Fatalf("another node lists %d, holds %d", n, heldCount(other))
			}
			if who == "own node at start" {
				node(t, st, c, "a", 1<<30)
			} else {
				other.cleanupDue(ctx)
				if keys(t, st, Prefix) != 301 {
					t.Fatal("cleaned up before its deadline")
				}
				c.add(genTTL + time.Second)
				other.cleanupDue(ctx)
			}
			if n := keys(t, st, Prefix); n != 0 || heldCount(other) != 0 || entries(other, Deny) != 0 {
				t.Fatalf("after cleanup: %d keys, %d held, %d listed", n, heldCount(other), entries(other, Deny))
			}
		})
	}
}

// An import too slow for its deadline is abandoned by another node; the
// importer then fails and nothing is left. A clear-all during an import
// fails it too, instead of leaving the entries written after the clear.
func TestImportAbandonedOrClearedMeanwhile(t *testing.T) {
	ctx := context.Background()
	a, b, st, c := limited(t, store.Limits{MaxOps: 16, MaxBytes: 1 << 20}, 1<<30)
	a.importHook = func(n int) error {
		if n == 5 {
			c.add(genTTL + time.Second)
			b.cleanupDue(ctx)
		}
		return nil
	}
	if _, err := a.Import(ctx, Deny, bulk(200, 5)); !errors.Is(err, errImportAbandoned) {
		t.Fatalf("import past its deadline: %v", err)
	}
	if n := keys(t, st, Prefix); n != 0 || entries(a, Deny)+entries(b, Deny) != 0 {
		t.Fatalf("after the abandoned import: %d keys", n)
	}

	a.importHook = func(n int) error {
		if n == 5 {
			bt, _ := b.Clear(ctx, st, Deny, nil)
			if _, err := st.Commit(ctx, bt); err != nil {
				t.Error(err)
			}
		}
		return nil
	}
	_, err := a.Import(ctx, Deny, bulk(200, 6))
	if err == nil || !strings.Contains(err.Error(), "blacklist was cleared during the bulk import") || !errors.As(err, new(*store.ConflictError)) {
		t.Fatalf("import cleared meanwhile: %v", err)
	}
	if n := keys(t, st, "list/deny/") + keys(t, st, genPrefix); n != 0 || entries(a, Deny)+entries(b, Deny) != 0 {
		t.Fatalf("after the cleared import: %d keys", n)
	}
	// The allow list's clear does not touch a deny-list import.
	a.importHook = func(n int) error {
		if n == 5 {
			bt, _ := b.Clear(ctx, st, Allow, nil)
			st.Commit(ctx, bt)
		}
		return nil
	}
	if res, err := a.Import(ctx, Deny, bulk(200, 7)); err != nil || res.Added != 200 {
		t.Fatalf("import: %+v %v", res, err)
	}
}

// The memory budget counts an import as a whole, with the imports in
// progress on other nodes: past it nothing is written.
func TestImportMemoryBudgetWithLimits(t *testing.T) {
	ctx := context.Background()
	a, b, st, _ := limited(t, store.EtcdLimits, 32<<10)
	var me *MemoryError
	if _, err := a.Import(ctx, Deny, bulk(100_000, 8)); !errors.As(err, &me) {
		t.Fatalf("import past the budget: %v", err)
	}
	if n := keys(t, st, Prefix); n != 0 {
		t.Fatalf("%d keys after a refused import", n)
	}
	// 500 entries (250 addresses, 250 tokens) take two tables of 1,024
	// slots, of 8 and 16 bytes: 24 KiB of 32. Node b's import of 800
	// takes as much: it fits alone, but not beside a's in progress, whose
	// marker, put by its first batch, reserves its 24 KiB.
	var errB error
	a.importHook = func(n int) error {
		if n == 1 {
			_, errB = b.Import(ctx, Deny, bulk(800, 9))
		}
		return nil
	}
	st.SetLimits(store.Limits{MaxOps: 64, MaxBytes: 1 << 20})
	if res, err := a.Import(ctx, Deny, bulk(500, 10)); err != nil || res.Added != 500 {
		t.Fatalf("import: %+v %v", res, err)
	}
	if !errors.As(errB, &me) {
		t.Fatalf("a second import past the budget with the first in progress: %v", errB)
	}
	if n := entries(b, Deny); n != 500 {
		t.Fatalf("%d listed", n)
	}
}

// Clearing by tag, removing detected entries, the detections' group
// commit, the expiry sweep and the deletion of entries expired while down
// all keep within the store's limits.
func TestBulkDeletesWithLimits(t *testing.T) {
	ctx := context.Background()
	lim := store.Limits{MaxOps: 8, MaxBytes: 1 << 20}
	a, b, st, c := limited(t, lim, 1<<30)
	if _, err := a.Import(ctx, Deny, bulk(100, 11)); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		a.Report(Decoy, &Identity{IP: floodIP(i), Token: fmt.Sprintf("det-%d", i)})
	}
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, pending := a.Detections(); pending != 0 || entries(b, Deny) != 200 {
		t.Fatalf("detections stored: %d pending, %d listed on b", pending, entries(b, Deny))
	}
	// Removing detected entries: the last batch leaves room for the
	// caller's switch.
	bt, err := a.RemoveDetected(ctx, st)
	if err != nil || len(bt.Ops) == 0 || len(bt.Ops) > lim.MaxOps-1 {
		t.Fatalf("remove detected: %v, last batch %d ops", err, len(bt.Ops))
	}
	bt.Ops = append(bt.Ops, store.Put("setting/x", []byte("off")))
	if _, err := st.Commit(ctx, bt); err != nil {
		t.Fatal(err)
	}
	if n := entries(b, Deny); n != 100 {
		t.Fatalf("after removing detected: %d listed", n)
	}
	tag := Manual
	if bt, err = a.Clear(ctx, st, Deny, &tag); err != nil || !lim.Fits(&bt) {
		t.Fatalf("clear by tag: %v", err)
	}
	st.Commit(ctx, bt)
	if n := entries(b, Deny); n != 0 || keys(t, st, "list/deny/") != 0 {
		t.Fatalf("after clearing manual: %d listed", n)
	}
	// In a transaction, the deletions are staged as one batch for its
	// commit.
	if _, err := a.Import(ctx, Allow, bulk(20, 12)); err != nil {
		t.Fatal(err)
	}
	ov := store.NewOverlay(st)
	if bt, err = a.Clear(ctx, ov, Allow, &tag); err != nil || len(bt.Ops) != 20 || keys(t, st, "list/allow/") != 20 {
		t.Fatalf("clear by tag in a transaction: %v, %d ops", err, len(bt.Ops))
	}

	// Expiry: 100 entries due at once.
	var body strings.Builder
	body.WriteString("[")
	for i := 0; i < 100; i++ {
		fmt.Fprintf(&body, `{"type": "ip", "value": "192.0.2.%d", "ttl": 5},`, i)
	}
	es := mustEntries(t, strings.TrimSuffix(body.String(), ",")+"]", c.now())
	if _, err := a.Import(ctx, Deny, es); err != nil {
		t.Fatal(err)
	}
	c.add(6 * time.Second)
	// Either node's sweep (or its background loop, woken meanwhile) may
	// take them; a batch past the limits would leave them stored.
	if n := a.ExpireDue(ctx) + b.ExpireDue(ctx); n > 100 || keys(t, st, "list/deny/") != 0 {
		t.Fatalf("expired %d, %d left", n, keys(t, st, "list/deny/"))
	}
	// Expired while down: deleted at start, in batches.
	if _, err := a.Import(ctx, Deny, mustEntries(t, strings.TrimSuffix(body.String(), ",")+"]", c.now())); err != nil {
		t.Fatal(err)
	}
	c.add(6 * time.Second)
	node(t, st, c, "z", 1<<30)
	if n := keys(t, st, "list/deny/"); n != 0 {
		t.Fatalf("%d expired entries left after a start", n)
	}
}

// Two imports on two nodes adding the same entry: the second refuses
// (409) rather than take over an entry the first may still abandon, and
// leaves nothing; the first is not disturbed.
func TestConcurrentImportsOfTheSameEntries(t *testing.T) {
	ctx := context.Background()
	a, b, st, _ := limited(t, store.Limits{MaxOps: 16, MaxBytes: 1 << 20}, 1<<30)
	es := bulk(200, 13)
	var errB error
	a.importHook = func(n int) error {
		if n == 3 {
			_, errB = b.Import(ctx, Deny, append(bulk(100, 14), es...))
		}
		return nil
	}
	if res, err := a.Import(ctx, Deny, es); err != nil || res.Added != 200 {
		t.Fatalf("first import: %+v %v", res, err)
	}
	if errB == nil || !strings.Contains(errB.Error(), "another bulk import in progress is adding") || !errors.As(errB, new(*store.ConflictError)) {
		t.Fatalf("second import: %v", errB)
	}
	if n := keys(t, st, "list/deny/"); n != 200 || entries(b, Deny) != 200 || keys(t, st, genPrefix) != 1 {
		t.Fatalf("%d stored, %d listed", n, entries(b, Deny))
	}
}

// The caller's conditions go with the batch that makes an import take
// effect: one failing (a transaction opened meanwhile on another node)
// fails the import, which leaves nothing, in one batch or as a generation.
func TestImportFinalConditions(t *testing.T) {
	ctx := context.Background()
	a, b, st, _ := limited(t, store.Limits{MaxOps: 16, MaxBytes: 1 << 20}, 1<<30)
	noTxn := store.Absent("txn/open")
	a.importHook = func(n int) error {
		if n == 3 {
			st.Commit(ctx, store.Batch{Ops: []store.Op{store.Put("txn/open", []byte("x"))}})
		}
		return nil
	}
	var ce *store.ConflictError
	if _, err := a.Import(ctx, Deny, bulk(200, 15), noTxn); !errors.As(err, &ce) || ce.Cond.Key != "txn/open" {
		t.Fatalf("import with a transaction opened meanwhile: %v", err)
	}
	if _, err := a.Import(ctx, Deny, bulk(10, 16), noTxn); !errors.As(err, &ce) || ce.Cond.Key != "txn/open" {
		t.Fatalf("one-batch import with a transaction open: %v", err)
	}
	if n := keys(t, st, Prefix); n != 0 || entries(b, Deny) != 0 {
		t.Fatalf("%d keys left", n)
	}
	st.Commit(ctx, store.Batch{Ops: []store.Op{store.Delete("txn/open")}})
	a.importHook = nil
	if res, err := a.Import(ctx, Deny, bulk(200, 15), noTxn); err != nil || res.Added != 200 {
		t.Fatalf("import: %+v %v", res, err)
	}
	// Clearing by tag in several batches: each carries the guard.
	st.Commit(ctx, store.Batch{Ops: []store.Op{store.Put("txn/open", []byte("x"))}})
	tag := Manual
	if _, err := a.Clear(ctx, st, Deny, &tag, noTxn); !errors.As(err, &ce) || ce.Cond.Key != "txn/open" || entries(b, Deny) != 200 {
		t.Fatalf("clear by tag with a transaction open: %v, %d listed", err, entries(b, Deny))
	}
}
