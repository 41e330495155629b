package behave

import (
	"math"
	"testing"
)

// splitmix is a fixed, well-mixed hash of i: the tests count the same
// values every run (a random seed would make them flaky at the edges).
func splitmix(i uint64) uint64 {
	z := i + 0x9E3779B97F4A7C15
	z = (z ^ z>>30) * 0xBF58476D1CE4E5B9
	z = (z ^ z>>27) * 0x94D049BB133111EB
	return z ^ z>>31
}

// TestHLLCounts: within 3 standard errors (39%) of the truth from 5 to
// 1,000,000 distinct values (4-bit registers saturate beyond) (64 registers), within 1 below 5, and repeats do
// not count. The values of each size are several different sets, so the
// bound holds for sets in general, not one lucky set.
func TestHLLCounts(t *testing.T) {
	for _, n := range []int{1, 2, 4, 5, 9, 40, 200, 1000, 10_000, 100_000, 1_000_000} {
		for set := range 5 {
			var h HLL
			for i := range n {
				v := splitmix(uint64(set)<<40 | uint64(i))
				h.Add(v)
				h.Add(v) // a repeat
			}
			got := h.Count()
			if n < 5 && math.Abs(got-float64(n)) > 1 {
				t.Fatalf("%d distinct (set %d): counted %.1f", n, set, got)
			}
			if rel := math.Abs(got-float64(n)) / float64(n); n >= 5 && rel > 0.39 {
				t.Fatalf("%d distinct (set %d): counted %.1f (%.0f%% off)", n, set, got, rel*100)
			}
		}
	}
	var a, b HLL
	for i := range 50 {
		a.Add(splitmix(1<<50 | uint64(i)))
		b.Add(splitmix(2<<50 | uint64(i)))
	}
	a.Merge(&b)
	if got := a.Count(); got < 61 || got > 139 {
		t.Fatalf("merged 100: %.1f", got)
	}
	a.Reset()
	if a.Count() != 0 {
		t.Fatal("a reset sketch counts")
	}
	if n := testing.AllocsPerRun(100, func() { a.Add(12345); _ = a.Count() }); n != 0 {
		t.Fatalf("%v allocations", n)
	}
}
