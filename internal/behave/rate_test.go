package behave

import (
	"math"
	"testing"
	"time"
)

// TestDecayedRate: a steady 50/s reads as 50/s after a few half-lives, and
// decays to a quarter two half-lives after it stops.
func TestDecayedRate(t *testing.T) {
	const hl = int64(10 * time.Second)
	var d Decayed
	now := int64(1_800_000_000) * int64(time.Second)
	for range 60 * 50 { // 60 s at 50/s
		now += int64(20 * time.Millisecond)
		d.Add(1, now, hl)
	}
	if r := d.Rate(now, hl); math.Abs(r-50) > 5 {
		t.Fatalf("steady 50/s reads %.1f/s", r)
	}
	if r := d.Rate(now+2*hl, hl); math.Abs(r-12.5) > 1.5 {
		t.Fatalf("two half-lives later: %.1f/s, want about 12.5", r)
	}
}

// TestHistogramQuantiles: quantiles within a bucket's 9% of the truth for
// a uniform and a skewed stream; nothing observed reads 0.
func TestHistogramQuantiles(t *testing.T) {
	var h Histogram
	if h.Quantile(0.99) != 0 {
		t.Fatal("an empty histogram has a quantile")
	}
	for v := 1; v <= 10_000; v++ {
		h.Observe(float64(v))
	}
	for _, q := range []float64{0.5, 0.9, 0.99} {
		got, want := h.Quantile(q), q*10_000
		if got < want || got > want*1.1 {
			t.Fatalf("q%.2f: %.0f, want %.0f to %.0f", q, got, want, want*1.1)
		}
	}
	var s Histogram
	for range 990 {
		s.Observe(3)
	}
	for range 10 {
		s.Observe(5000)
	}
	if got := s.Quantile(0.98); got < 3 || got > 3.3 {
		t.Fatalf("skewed q0.98: %.2f", got)
	}
	if got := s.Quantile(0.999); got < 5000 || got > 5500 {
		t.Fatalf("skewed q0.999: %.0f", got)
	}
	if n := testing.AllocsPerRun(100, func() { s.Observe(42); _ = s.Quantile(0.99) }); n != 0 {
		t.Fatalf("%v allocations", n)
	}
}
