package behave

import "math"

// Histogram is a distribution learned from a stream of values (a client's
// rate, its response bytes): counts in log-scale buckets, 8 per doubling
// (each 9% wide), from 1 to 2^48, in 1.5 KiB. Quantiles are read from it
// to derive thresholds.
type Histogram struct {
	n      uint64
	counts [histBuckets]uint32
}

const (
	histPerOctave = 8
	histOctaves   = 48
	histBuckets   = histPerOctave*histOctaves + 1 // the first is for values below 1
)

func bucketOf(v float64) int {
	if !(v >= 1) {
		return 0
	}
	b := 1 + int(math.Log2(v)*histPerOctave)
	return min(b, histBuckets-1)
}

// upper is the largest value bucket b holds.
func upper(b int) float64 {
	if b == 0 {
		return 1
	}
	return math.Exp2(float64(b) / histPerOctave)
}

// Observe adds one value.
func (h *Histogram) Observe(v float64) {
	b := bucketOf(v)
	if h.counts[b] < math.MaxUint32 {
		h.counts[b]++
		h.n++
	}
}

// Merge adds o's values to h.
func (h *Histogram) Merge(o *Histogram) {
	for b, c := range o.counts {
		if c > 0 {
			h.counts[b] = uint32(min(uint64(h.counts[b])+uint64(c), math.MaxUint32))
		}
	}
	h.n += o.n
}

// Count is the number of values observed.
func (h *Histogram) Count() uint64 { return h.n }

// Quantile returns (an upper bound within 9% of) the value below which a
// fraction q of the observed values lie; 0 with no values.
func (h *Histogram) Quantile(q float64) float64 {
	if h.n == 0 {
		return 0
	}
	want := uint64(math.Ceil(q * float64(h.n)))
	want = max(want, 1)
	var seen uint64
	for b, c := range h.counts {
		seen += uint64(c)
		if seen >= want {
			return upper(b)
		}
	}
	return upper(histBuckets - 1)
}
