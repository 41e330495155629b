package server

import (
	"log/slog"
	"os"
	"strings"
	"time"
)

// testClockEnv names a file whose content moves the clock that sessions,
// management transactions and list entries' expiry read: a duration such
// as "90m" or "-1h", added to the wall clock, read afresh at every
// reading (no shift while the file is missing, empty or not a duration).
// It exists for the end-to-end tests, which move a running server's time
// forward instead of sleeping through a timeout and racing it; unset, as
// in every real deployment, those read time.Now itself.
const testClockEnv = "ASE_TEST_CLOCK"

// clock returns time.Now, or the shifted clock testClockEnv asks for (said
// in the log: nothing outside the tests should set it).
func clock(log *slog.Logger) func() time.Time {
	path := os.Getenv(testClockEnv)
	if path == "" {
		return time.Now
	}
	log.Warn(testClockEnv+" is set: sessions, transactions and list expiry read a clock shifted by the duration in this file (tests only)", "file", path)
	return func() time.Time {
		now := time.Now()
		b, err := os.ReadFile(path)
		if err != nil {
			return now
		}
		d, err := time.ParseDuration(strings.TrimSpace(string(b)))
		if err != nil {
			return now
		}
		return now.Add(d)
	}
}
