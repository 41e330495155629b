package accounts

import (
	"testing"
	"time"
)

func TestSessionIdleTimeout(t *testing.T) {
	now := time.Unix(1000, 0)
	s := NewSessions(20*time.Minute, func() time.Time { return now })
	a := s.Create("alice", "password")
	b := s.Create("bob", "password")
	if len(a.ID) != 64 || a.ID == b.ID {
		t.Fatalf("session IDs %q %q: want 256 random bits in hex", a.ID, b.ID)
	}
	// The timeout counts from the last request.
	now = now.Add(19 * time.Minute)
	if _, ok := s.Touch(a.ID); !ok {
		t.Fatal("a session ended before its idle timeout")
	}
	now = now.Add(19 * time.Minute)
	if _, ok := s.Touch(a.ID); !ok {
		t.Fatal("a request did not extend the session")
	}
	if _, ok := s.Touch(b.ID); ok {
		t.Fatal("an idle session outlived its timeout")
	}
	if got := s.Remaining(a.ID); got != 20*time.Minute {
		t.Fatalf("remaining %v", got)
	}
	now = now.Add(20 * time.Minute)
	if n := s.Sweep(); n != 1 {
		t.Fatalf("swept %d", n)
	}
	c := s.Create("carol", "x509")
	s.EndUser("carol")
	if _, ok := s.Touch(c.ID); ok {
		t.Fatal("EndUser left a session")
	}
	d := s.Create("dave", "password")
	s.Delete(d.ID)
	if _, ok := s.Touch(d.ID); ok {
		t.Fatal("a deleted session still works")
	}
}
