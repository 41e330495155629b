package accounts

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"
)

// TestArgon2RunsCapped: at most two argon2 runs happen at once. Two wrong
// logins are held inside their runs; a third (for a user that does not
// exist, which costs a run all the same) must wait for a slot rather than
// start a third run, and starts as soon as one of the two ends.
func TestArgon2RunsCapped(t *testing.T) {
	ctx := context.Background()
	a, err := Open(ctx, openStore(t), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()

	entered := make(chan struct{}, 3)
	release := make(chan struct{})
	var running, most atomic.Int32
	checkPassword = func(hash, password string) (bool, error) {
		n := running.Add(1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		entered <- struct{}{}
		<-release
		running.Add(-1)
		return CheckPassword(hash, password)
	}
	t.Cleanup(func() { checkPassword = CheckPassword })

	deadline := time.After(60 * time.Second)
	await := func(what string) {
		t.Helper()
		select {
		case <-entered:
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
	results := make(chan bool, 3)
	login := func(user string) {
		_, ok := a.Authenticate(ctx, user, "wrong password")
		results <- ok
	}
	go login(Admin)
	go login(Admin)
	await("the first run")
	await("the second run")

	go login("nobody")
	// Polled until the third check is seen waiting for a slot; a third
	// run starting instead fails the test.
	for a.waited.Load() == 0 {
		select {
		case <-entered:
			t.Fatalf("a third argon2 run started while two were running")
		case <-deadline:
			t.Fatal("the third login neither waited nor ran")
		case <-time.After(time.Millisecond):
		}
	}
	if n := running.Load(); n != 2 {
		t.Fatalf("got %d runs while the third login waits, want 2", n)
	}

	release <- struct{}{} // one of the two runs ends
	await("the third run, once a slot is free")
	close(release)
	for range 3 {
		if <-results {
			t.Fatal("a wrong password was accepted")
		}
	}
	if m := most.Load(); m != 2 {
		t.Fatalf("got at most %d runs at once, want 2", m)
	}
}
