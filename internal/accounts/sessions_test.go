package accounts

import (
	"context"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ase-project/ase/internal/store"
)

// countingStore counts the batches committed to a store.
type countingStore struct {
	store.Store
	commits atomic.Int64
}

func (c *countingStore) Commit(ctx context.Context, b store.Batch) (int64, error) {
	c.commits.Add(1)
	return c.Store.Commit(ctx, b)
}

func openStore(t *testing.T) *store.Bolt {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "ase.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// user returns a user record with a password hash of its own.
func user(name string) *User { return &User{Name: name, Role: RoleWrite, Hash: "hash-of-" + name} }

func TestSessionIdleTimeout(t *testing.T) {
	ctx := context.Background()
	now := time.Unix(1000, 0)
	s := NewSessions(openStore(t), 20*time.Minute, func() time.Time { return now }, nil)
	a, _ := s.Create(ctx, user("alice"), "password")
	b, _ := s.Create(ctx, user("bob"), "password")
	if len(a.ID) != 64 || a.ID == b.ID {
		t.Fatalf("session IDs %q %q: want 256 random bits in hex", a.ID, b.ID)
	}
	// The timeout counts from the last request.
	now = now.Add(19 * time.Minute)
	if _, ok := s.Touch(ctx, a.ID); !ok {
		t.Fatal("a session ended before its idle timeout")
	}
	now = now.Add(19 * time.Minute)
	if _, ok := s.Touch(ctx, a.ID); !ok {
		t.Fatal("a request did not extend the session")
	}
	if _, ok := s.Touch(ctx, b.ID); ok {
		t.Fatal("an idle session outlived its timeout")
	}
	now = now.Add(20 * time.Minute)
	if n, err := s.Sweep(ctx); n != 1 || err != nil {
		t.Fatalf("swept %d, %v", n, err)
	}
	c, _ := s.Create(ctx, user("carol"), "x509")
	s.EndUser(ctx, "carol")
	if _, ok := s.Touch(ctx, c.ID); ok {
		t.Fatal("EndUser left a session")
	}
	d, _ := s.Create(ctx, user("dave"), "password")
	s.End(ctx, d.Handle)
	if _, ok := s.Touch(ctx, d.ID); ok {
		t.Fatal("a deleted session still works")
	}
}

// Two nodes share one store: a session made on one is good on the other,
// ended on one is ended on both; the last use is written at most every
// tenth of the timeout, and the idle timeout holds to that tenth.
func TestSessionsAcrossNodes(t *testing.T) {
	ctx := context.Background()
	st := &countingStore{Store: openStore(t)}
	now := time.Unix(1000, 0)
	clock := func() time.Time { return now }
	const timeout = 100 * time.Second
	a := NewSessions(st, timeout, clock, nil)
	b := NewSessions(st, timeout, clock, nil)

	s, err := a.Create(ctx, user("alice"), "password")
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := b.Touch(ctx, s.ID); !ok || got.User != "alice" || got.Handle != s.Handle {
		t.Fatalf("node B does not know node A's session: %+v %v", got, ok)
	}
	// The secret is nowhere in the store; its SHA-256 names it.
	st.Scan(ctx, "", func(k string, v []byte) error {
		if strings.Contains(k, s.ID) || strings.Contains(string(v), s.ID) {
			t.Fatalf("the session ID is stored in %s", k)
		}
		return nil
	})
	if _, err := st.Get(ctx, SessionPrefix+SessionHandle(s.ID)); err != nil {
		t.Fatal(err)
	}

	// A request every second for 1000 s, alternating nodes: the last use
	// is written every 10 s or so, not 1000 times.
	before := st.commits.Load()
	for i := 0; i < 1000; i++ {
		now = now.Add(time.Second)
		node := a
		if i%2 == 1 {
			node = b
		}
		if _, ok := node.Touch(ctx, s.ID); !ok {
			t.Fatalf("the session ended while in use, at request %d", i)
		}
	}
	if writes := st.commits.Load() - before; writes < 90 || writes > 100 {
		t.Fatalf("%d writes for 1000 requests over 1000 s, want one per tenth of the timeout (~91)", writes)
	}
	// Idle: it ends no later than the timeout after the last request, and
	// no earlier than 0.9 of it (the last request, at most 10 s after
	// the last recorded use, was not recorded).
	now = now.Add(timeout*9/10 - time.Second)
	if _, ok := a.Touch(ctx, s.ID); !ok {
		t.Fatal("the session ended before 0.9 of its idle timeout")
	}
	now = now.Add(timeout)
	if _, ok := b.Touch(ctx, s.ID); ok {
		t.Fatal("the session outlived its idle timeout")
	}
	if _, err := st.Get(ctx, SessionPrefix+s.Handle); err == nil {
		t.Fatal("the expired session is still stored")
	}

	// Logout on B ends it on A.
	s2, _ := a.Create(ctx, user("bob"), "x509")
	if err := b.End(ctx, s2.Handle); err != nil {
		t.Fatal(err)
	}
	if _, ok := a.Touch(ctx, s2.ID); ok {
		t.Fatal("a session ended on node B still works on node A")
	}
	// EndUser on A ends the user's sessions made on B, only theirs.
	c1, _ := b.Create(ctx, user("carol"), "password")
	c2, _ := b.Create(ctx, user("carol"), "password")
	d, _ := b.Create(ctx, user("dave"), "password")
	a.EndUser(ctx, "carol")
	for _, id := range []string{c1.ID, c2.ID} {
		if _, ok := b.Touch(ctx, id); ok {
			t.Fatal("EndUser on A left a session on B")
		}
	}
	if _, ok := b.Touch(ctx, d.ID); !ok {
		t.Fatal("EndUser ended another user's session")
	}
	// Both nodes sweep at once: each expired session is deleted once,
	// and one used meanwhile (its use recorded first) is kept.
	e, _ := a.Create(ctx, user("erin"), "password")
	now = now.Add(timeout - time.Second)
	b.Touch(ctx, e.ID)
	now = now.Add(2 * time.Second)
	na, _ := a.Sweep(ctx)
	nb, _ := b.Sweep(ctx)
	if na+nb != 1 {
		t.Fatalf("swept %d + %d, want dave's session once", na, nb)
	}
	if _, ok := a.Touch(ctx, e.ID); !ok {
		t.Fatal("a sweep ended a session in use")
	}

	// A session is its user's while the password is the one of the login.
	u := user("frank")
	f, _ := a.Create(ctx, u, "password")
	got, _ := b.Touch(ctx, f.ID)
	if !got.Of(u) {
		t.Fatal("a session is not its user's")
	}
	changed := *u
	changed.Role = RoleRead
	if !got.Of(&changed) {
		t.Fatal("a session does not outlive a role change")
	}
	changed.Hash = "new-hash"
	if got.Of(&changed) {
		t.Fatal("a session outlives a password change")
	}
	if got.Of(nil) || got.Of(user("grace")) {
		t.Fatal("a session is someone else's")
	}
}
