package behave

import (
	"hash/maphash"
	"math"
	"strconv"
	"testing"
)

// TestHLLCounts: within 3 standard errors (39%) of the truth from 1 to
// 100,000 distinct values, exact-ish (±1) below 10, and repeats do not
// count.
func TestHLLCounts(t *testing.T) {
	seed := maphash.MakeSeed()
	for _, n := range []int{1, 2, 5, 9, 40, 200, 1000, 10_000, 100_000} {
		var h HLL
		for i := range n {
			v := maphash.String(seed, "value-"+strconv.Itoa(i))
			h.Add(v)
			h.Add(v) // a repeat
		}
		got := h.Count()
		if n < 10 && math.Abs(got-float64(n)) > 1 {
			t.Fatalf("%d distinct: counted %.1f", n, got)
		}
		if rel := math.Abs(got-float64(n)) / float64(n); rel > 0.39 {
			t.Fatalf("%d distinct: counted %.1f (%.0f%% off)", n, got, rel*100)
		}
	}
	var a, b HLL
	for i := range 50 {
		a.Add(maphash.String(seed, "a"+strconv.Itoa(i)))
		b.Add(maphash.String(seed, "b"+strconv.Itoa(i)))
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

// TestWindowHLL: distinct values of the last window or two are counted;
// older ones are forgotten.
func TestWindowHLL(t *testing.T) {
	const win = int64(600e9) // 10 minutes
	var w WindowHLL
	seed := maphash.MakeSeed()
	now := int64(1_800_000_000e9)
	for i := range 30 {
		w.Add(maphash.String(seed, "ip-"+strconv.Itoa(i)), now, win)
	}
	if got := w.Count(now, win); math.Abs(got-30) > 12 {
		t.Fatalf("30 now: %.1f", got)
	}
	now += win + 1 // the next window: the last one still counts
	w.Add(maphash.String(seed, "ip-late"), now, win)
	if got := w.Count(now, win); math.Abs(got-31) > 12 {
		t.Fatalf("one window later: %.1f", got)
	}
	now += 2 * win // both windows past
	if got := w.Count(now, win); got != 0 {
		t.Fatalf("forgotten after two windows: %.1f", got)
	}
}
