//go:build race

package e2e

// raceEnabled builds the binary under test with the race detector too, so
// that a race inside the server fails the suite.
const raceEnabled = true
