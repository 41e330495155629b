//go:build race

package lists

// raceEnabled keeps TestMemoryUsedIsTheHeap to its smaller lists under the
// race detector, which is there to find races, not to measure.
const raceEnabled = true
