package behave

import (
	"testing"
)

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
