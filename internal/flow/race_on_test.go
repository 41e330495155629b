//go:build race

package flow

// raceEnabled shortens the slowest simulations (10 simulated hours) under
// the race detector, which is there to find races, not to measure.
const raceEnabled = true
