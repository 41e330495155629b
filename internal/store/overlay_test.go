package store

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"testing"
)

func TestOverlay(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	s.Commit(ctx, Batch{Ops: []Op{Put("a/1", []byte("1")), Put("a/3", []byte("3")), Put("b/1", []byte("x"))}})
	o := NewOverlay(s)
	if err := o.Apply(ctx, Batch{Conds: []Cond{Absent("a/2")}, Ops: []Op{Put("a/2", []byte("2")), Delete("a/3"), Put("a/4", []byte("4"))}}); err != nil {
		t.Fatal(err)
	}
	if got, want := keys(t, o, "a/"), []string{"a/1=1", "a/2=2", "a/4=4"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if _, err := o.Get(ctx, "a/3"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a staged delete is visible: %v", err)
	}
	var ce *ConflictError
	if err := o.Apply(ctx, Batch{Conds: []Cond{Absent("a/2")}, Ops: []Op{Put("a/2", []byte("again"))}}); !errors.As(err, &ce) {
		t.Fatalf("a condition on a staged key passed: %v", err)
	}
	o.Apply(ctx, Batch{Ops: []Op{DeletePrefix("a/"), Put("a/9", []byte("9"))}})
	if got, want := keys(t, o, ""), []string{"a/9=9", "b/1=x"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	// Nothing reached the store; committing the batch makes it so.
	if got := keys(t, s, "a/"); !reflect.DeepEqual(got, []string{"a/1=1", "a/3=3"}) {
		t.Fatalf("the store changed before commit: %v", got)
	}
	if _, err := s.Commit(ctx, o.Batch()); err != nil {
		t.Fatal(err)
	}
	if got, want := keys(t, s, ""), []string{"a/9=9", "b/1=x"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("after commit got %v, want %v", got, want)
	}
}

// A transaction's batch carries the conditions its staged changes relied
// on, as checked against the base; those on keys it had changed itself are
// implied by its own operations and not carried.
func TestOverlayCarriesConditions(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	s.Commit(ctx, Batch{Ops: []Op{Put("k", []byte("v0")), Put("other", []byte("x")), Put("d/1", []byte("1"))}})
	stage := func(o *Overlay) []Batch {
		t.Helper()
		var out []Batch
		for _, b := range []Batch{
			// A read-modify-write of k: relies on the base's k.
			{Conds: []Cond{Unchanged("k", []byte("v0"))}, Ops: []Op{Put("k", []byte("v1"))}},
			// Again on the staged k: implied by the put before it.
			{Conds: []Cond{Unchanged("k", []byte("v1")), Present("k")}, Ops: []Op{Put("k", []byte("v2"))}},
			// Relies on the base's other.
			{Conds: []Cond{Unchanged("other", []byte("x"))}, Ops: []Op{Put("n", []byte("new"))}},
			// The same condition again is carried once.
			{Conds: []Cond{Unchanged("other", []byte("x")), Present("n")}, Ops: []Op{Put("m", []byte("m"))}},
			// Under a deleted prefix, absence is the overlay's own doing.
			{Ops: []Op{DeletePrefix("d/")}},
			{Conds: []Cond{Absent("d/1")}, Ops: []Op{Put("d/2", []byte("2"))}},
			// A key of the base it has not touched: carried.
			{Conds: []Cond{Absent("fresh")}, Ops: []Op{Put("fresh", []byte("f"))}},
		} {
			staged, err := o.Stage(ctx, b)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, staged)
		}
		return out
	}
	o := NewOverlay(s)
	staged := stage(o)
	want := []Cond{Unchanged("k", []byte("v0")), Unchanged("other", []byte("x")), Absent("fresh")}
	if got := o.Batch().Conds; !reflect.DeepEqual(got, want) {
		t.Fatalf("carried %v, want %v", got, want)
	}
	if len(staged[1].Conds) != 0 || len(staged[3].Conds) != 0 || len(staged[5].Conds) != 0 {
		t.Fatalf("implied or repeated conditions were carried: %v", staged)
	}
	// Another node rebuilds the same overlay from what was staged.
	r := NewOverlay(s)
	for _, b := range staged {
		r.Restore(b)
	}
	if !reflect.DeepEqual(r.Batch(), o.Batch()) || !reflect.DeepEqual(keys(t, r, ""), keys(t, o, "")) {
		t.Fatalf("restored %v / %v, staged %v / %v", r.Batch(), keys(t, r, ""), o.Batch(), keys(t, o, ""))
	}

	// A writer outside the transaction changes a key it relied on: the
	// commit fails and changes nothing.
	before := keys(t, s, "")
	if _, err := s.Commit(ctx, Batch{Ops: []Op{Put("other", []byte("y"))}}); err != nil {
		t.Fatal(err)
	}
	var ce *ConflictError
	if _, err := s.Commit(ctx, o.Batch()); !errors.As(err, &ce) || ce.Cond.Key != "other" {
		t.Fatalf("commit after a concurrent change: %v", err)
	}
	before[slices.Index(before, "other=x")] = "other=y"
	if got := keys(t, s, ""); !reflect.DeepEqual(got, before) {
		t.Fatalf("a failed commit changed the store: %v, want %v", got, before)
	}
	// Staged again on the base as it is now, it commits: the implied
	// conditions on k do not test the base's v0.
	if _, err := s.Commit(ctx, Batch{Ops: []Op{Put("other", []byte("x"))}}); err != nil {
		t.Fatal(err)
	}
	o = NewOverlay(s)
	stage(o)
	if _, err := s.Commit(ctx, o.Batch()); err != nil {
		t.Fatal(err)
	}
	if got, want := keys(t, s, ""), []string{"d/2=2", "fresh=f", "k=v2", "m=m", "n=new", "other=x"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("after commit %v, want %v", got, want)
	}
}

// The view shows what the commit will make: a key the base gains under a
// prefix the overlay deleted stays deleted, as the commit deletes it.
func TestOverlayDeletedPrefixHidesLaterKeys(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	s.Commit(ctx, Batch{Ops: []Op{Put("p/1", []byte("1")), Put("q/1", []byte("q"))}})
	o := NewOverlay(s)
	o.Apply(ctx, Batch{Ops: []Op{Put("p/0", []byte("0")), DeletePrefix("p/"), Put("p/2", []byte("2"))}})
	s.Commit(ctx, Batch{Ops: []Op{Put("p/3", []byte("3"))}}) // another writer
	if got, want := keys(t, o, ""), []string{"p/2=2", "q/1=q"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("view %v, want %v", got, want)
	}
	if got := keys(t, o, "p/3"); len(got) != 0 {
		t.Fatalf("scan under the deleted prefix: %v", got)
	}
	if _, err := o.Get(ctx, "p/3"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get under the deleted prefix: %v", err)
	}
	// A clone is staged into without changing the original.
	c := o.Clone()
	c.Apply(ctx, Batch{Ops: []Op{Put("p/4", []byte("4")), DeletePrefix("q/")}})
	if got, want := keys(t, o, ""), []string{"p/2=2", "q/1=q"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("staging into a clone changed the original: %v", got)
	}
	if _, err := s.Commit(ctx, c.Batch()); err != nil {
		t.Fatal(err)
	}
	if got, want := keys(t, s, ""), keys(t, c, ""); !reflect.DeepEqual(got, want) || !reflect.DeepEqual(got, []string{"p/2=2", "p/4=4"}) {
		t.Fatalf("committed %v, the view showed %v", got, want)
	}
}

// Batch writes each key once, with what the view shows: etcd refuses a
// transaction that writes a key twice.
func TestOverlayBatchWritesEachKeyOnce(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	s.Commit(ctx, Batch{Ops: []Op{Put("api/x", []byte("0")), Put("l/1", []byte("1")), Put("l/2", []byte("2"))}})
	o := NewOverlay(s)
	for _, b := range []Batch{
		{Conds: []Cond{Unchanged("api/x", []byte("0"))}, Ops: []Op{Put("api/x", []byte("1"))}},
		{Conds: []Cond{Unchanged("api/x", []byte("1"))}, Ops: []Op{Put("api/x", []byte("2"))}},
		{Ops: []Op{Put("gone", []byte("g")), Delete("gone"), Delete("l/1")}},
		{Ops: []Op{DeletePrefix("l/"), Put("l/3", []byte("3")), Put("l/3", []byte("4"))}},
		{Ops: []Op{DeletePrefix("m/"), DeletePrefix("m/a/")}},
	} {
		if err := o.Apply(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	want := Batch{
		Conds: []Cond{Unchanged("api/x", []byte("0"))},
		Ops:   []Op{DeletePrefix("l/"), DeletePrefix("m/"), Put("api/x", []byte("2")), Delete("gone"), Put("l/3", []byte("4"))},
	}
	if got := o.Batch(); !reflect.DeepEqual(got, want) {
		t.Fatalf("batch %+v\nwant  %+v", got, want)
	}
	view := keys(t, o, "")
	if _, err := s.Commit(ctx, o.Batch()); err != nil {
		t.Fatal(err)
	}
	if got := keys(t, s, ""); !reflect.DeepEqual(got, view) {
		t.Fatalf("committed %v, the view showed %v", got, view)
	}
}
