package store

import (
	"context"
	"errors"
	"reflect"
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
