package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
)

func openTemp(t *testing.T) (*Bolt, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ase.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func keys(t *testing.T, s Reader, prefix string) []string {
	t.Helper()
	var out []string
	err := s.Scan(context.Background(), prefix, func(k string, v []byte) error {
		out = append(out, k+"="+string(v))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestCommitAndRead(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	rev, err := s.Commit(ctx, Batch{Ops: []Op{Put("apis/a", []byte("1")), Put("apis/b", []byte("2")), Put("lists/x", []byte("3"))}})
	if err != nil || rev != 1 {
		t.Fatalf("got rev %d, %v, want 1", rev, err)
	}
	if v, err := s.Get(ctx, "apis/a"); err != nil || string(v) != "1" {
		t.Fatalf("got %q, %v, want 1", v, err)
	}
	if _, err := s.Get(ctx, "apis/zz"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("got %v, want ErrNotFound", err)
	}
	if got, want := keys(t, s, "apis/"), []string{"apis/a=1", "apis/b=2"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if _, err := s.Commit(ctx, Batch{Ops: []Op{DeletePrefix("apis/"), Put("apis/c", []byte("4"))}}); err != nil {
		t.Fatal(err)
	}
	if got, want := keys(t, s, ""), []string{"apis/c=4", "lists/x=3"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if s.Rev() != 2 {
		t.Fatalf("got rev %d, want 2", s.Rev())
	}
}

func TestConditions(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	if _, err := s.Commit(ctx, Batch{Conds: []Cond{{Key: "a", Exists: false}}, Ops: []Op{Put("a", []byte("1"))}}); err != nil {
		t.Fatal(err)
	}
	_, err := s.Commit(ctx, Batch{Conds: []Cond{{Key: "a", Exists: false}}, Ops: []Op{Put("a", []byte("2")), Put("b", []byte("2"))}})
	var ce *ConflictError
	if !errors.As(err, &ce) || ce.Cond.Key != "a" {
		t.Fatalf("got %v, want a conflict on a", err)
	}
	if got, want := keys(t, s, ""), []string{"a=1"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("a failed batch changed the store: got %v, want %v", got, want)
	}
	if _, err := s.Commit(ctx, Batch{Conds: []Cond{{Key: "zz", Exists: true}}, Ops: []Op{Delete("a")}}); !errors.As(err, &ce) {
		t.Fatalf("got %v, want a conflict on zz", err)
	}
	if s.Rev() != 1 {
		t.Fatalf("failed batches moved the revision to %d", s.Rev())
	}
}

func TestSubscribe(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	s.Commit(ctx, Batch{Ops: []Op{Put("apis/a", []byte("1")), Put("other", []byte("x"))}})

	var loaded []string
	var events []Event
	stop, err := s.Subscribe(ctx, "apis/", func(k string, v []byte) error {
		loaded = append(loaded, k)
		return nil
	}, func(e Event) { events = append(events, e) })
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(loaded, []string{"apis/a"}) {
		t.Fatalf("loaded %v", loaded)
	}
	s.Commit(ctx, Batch{Ops: []Op{Put("other", []byte("y"))}})
	s.Commit(ctx, Batch{Ops: []Op{Put("apis/b", []byte("2")), DeletePrefix("apis/a"), Put("other", []byte("z"))}})
	want := []Event{{Rev: 3, Changes: []Change{{Key: "apis/b", Value: []byte("2")}, {Key: "apis/a", Deleted: true}}}}
	if !reflect.DeepEqual(events, want) {
		t.Fatalf("got events %+v, want %+v", events, want)
	}
	stop()
	s.Commit(ctx, Batch{Ops: []Op{Put("apis/c", []byte("3"))}})
	if len(events) != 1 {
		t.Fatalf("got %d events after stop, want 1", len(events))
	}
}

// TestSubscribeNoGap races commits against a new subscription: whatever the
// interleaving, snapshot plus events must account for every key exactly once.
func TestSubscribeNoGap(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	const n = 200
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < n; i++ {
			s.Commit(ctx, Batch{Ops: []Op{Put(fmt.Sprintf("k/%04d", i), nil)}})
		}
	}()
	var mu sync.Mutex
	seen := map[string]int{}
	_, err := s.Subscribe(ctx, "k/", func(k string, _ []byte) error {
		seen[k]++
		return nil
	}, func(e Event) {
		mu.Lock()
		for _, c := range e.Changes {
			seen[c.Key]++
		}
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != n {
		t.Fatalf("saw %d keys, want %d", len(seen), n)
	}
	for k, c := range seen {
		if c != 1 {
			t.Fatalf("key %s seen %d times", k, c)
		}
	}
}

func TestReopen(t *testing.T) {
	ctx := context.Background()
	s, path := openTemp(t)
	s.Commit(ctx, Batch{Ops: []Op{Put("a", []byte("1"))}})
	s.Commit(ctx, Batch{Ops: []Op{Put("b", []byte("2"))}})
	if _, err := Open(path); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second open: got %v, want an 'in use' error", err)
	}
	s.Close()
	if _, err := s.Get(ctx, "a"); !errors.Is(err, ErrClosed) {
		t.Fatalf("got %v after close, want ErrClosed", err)
	}
	s2, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if s2.Rev() != 2 {
		t.Fatalf("got rev %d after reopen, want 2", s2.Rev())
	}
	if got, want := keys(t, s2, ""), []string{"a=1", "b=2"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestUnchanged(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	s.Commit(ctx, Batch{Ops: []Op{Put("a", []byte("1"))}})
	if _, err := s.Commit(ctx, Batch{Conds: []Cond{Unchanged("a", []byte("1"))}, Ops: []Op{Put("a", []byte("2"))}}); err != nil {
		t.Fatal(err)
	}
	var ce *ConflictError
	if _, err := s.Commit(ctx, Batch{Conds: []Cond{Unchanged("a", []byte("1"))}, Ops: []Op{Put("a", []byte("3"))}}); !errors.As(err, &ce) {
		t.Fatalf("got %v, want a conflict", err)
	}
	if v, _ := s.Get(ctx, "a"); string(v) != "2" {
		t.Fatalf("got %q, want 2", v)
	}
}

func TestLimits(t *testing.T) {
	s, _ := openTemp(t)
	s.SetLimits(Limits{MaxOps: 3, MaxBytes: 20})
	ops := []Op{Put("a", []byte("1")), Put("b", []byte("2")), Put("c", []byte("3")), Put("d", []byte("4"))}
	var tl *TooLargeError
	if _, err := s.Commit(context.Background(), Batch{Ops: ops}); !errors.As(err, &tl) || tl.Ops != 4 {
		t.Fatalf("a batch past the limits: %v", err)
	}
	if _, err := s.Get(context.Background(), "a"); !errors.Is(err, ErrNotFound) {
		t.Fatal("a refused batch changed something")
	}
	if _, err := s.Commit(context.Background(), Batch{Ops: []Op{Put("big", make([]byte, 30))}}); !errors.As(err, &tl) {
		t.Fatalf("a batch past the byte limit: %v", err)
	}
	batches := s.Limits().Split(append(ops, Put("e", make([]byte, 19))))
	if len(batches) != 3 || len(batches[0].Ops) != 3 || len(batches[1].Ops) != 1 || len(batches[2].Ops) != 1 {
		t.Fatalf("split into %v", batches)
	}
	for _, b := range batches {
		if _, err := s.Commit(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
}
