package e2e

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// testClock moves a server's clock forward: the one its sessions,
// transactions and list entries' expiry read (ASE_TEST_CLOCK, see
// internal/server). Tests of timeouts advance it past the timeout instead
// of sleeping and racing it; the timeouts are long (an hour), so the real
// time the test takes does not count.
type testClock struct {
	t     *testing.T
	path  string
	shift time.Duration
}

// withTestClock makes i (not started yet) read a clock the test moves.
func withTestClock(t *testing.T, i *Instance) *testClock {
	t.Helper()
	c := &testClock{t: t, path: filepath.Join(t.TempDir(), "clock")}
	i.Env = append(i.Env, "ASE_TEST_CLOCK="+c.path)
	return c
}

// Advance moves the server's clock d forward.
func (c *testClock) Advance(d time.Duration) {
	c.t.Helper()
	c.shift += d
	// Written aside and renamed: the server never reads half a file.
	tmp := c.path + ".new"
	if err := os.WriteFile(tmp, []byte(c.shift.String()), 0o600); err != nil {
		c.t.Fatal(err)
	}
	if err := os.Rename(tmp, c.path); err != nil {
		c.t.Fatal(err)
	}
}
