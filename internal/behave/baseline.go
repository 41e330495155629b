package behave

// Baseline learns, during an API's training period, how a per-client
// figure (requests a minute, response bytes, distinct paths answered 4xx)
// is distributed, and then derives the threshold past which a client is
// far outside it: Factor times the Quantile of what was learned, never
// below Floor, unless the operator set Override. Until training is over
// (and MinSamples values were seen) it has no threshold: a detector
// learns, then enforces, as the vendor's engine trains before it predicts.
type Baseline struct {
	Quantile   float64 // e.g. 0.999
	Factor     float64 // e.g. 3
	Floor      float64 // the least threshold, whatever was learned
	Override   float64 // > 0: the operator's threshold, used as it is
	MinSamples uint64  // values needed before a learned threshold counts

	hist       Histogram
	trainUntil int64 // Unix ns; 0 = training not started
}

// Start begins training at now for duration (ns); calling it again
// restarts it (a changed API definition).
func (b *Baseline) Start(now, duration int64) {
	b.hist = Histogram{}
	b.trainUntil = now + duration
}

// Training reports whether the baseline is still learning at now.
func (b *Baseline) Training(now int64) bool { return b.trainUntil == 0 || now < b.trainUntil }

// Learn records a client's figure; it counts only while training.
func (b *Baseline) Learn(v float64, now int64) {
	if b.trainUntil != 0 && now < b.trainUntil {
		b.hist.Observe(v)
	}
}

// Threshold returns the figure past which a client is an outlier, and
// whether there is one yet (the override always is).
func (b *Baseline) Threshold(now int64) (float64, bool) {
	if b.Override > 0 {
		return b.Override, true
	}
	if b.Training(now) || b.hist.Count() < max(b.MinSamples, 1) {
		return 0, false
	}
	return max(b.Factor*b.hist.Quantile(b.Quantile), b.Floor), true
}

// Learned returns how many values training saw and the learned quantile,
// for the evidence of a detection ("40 against a learned 3").
func (b *Baseline) Learned() (uint64, float64) { return b.hist.Count(), b.hist.Quantile(b.Quantile) }
