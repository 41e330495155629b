package behave

import "testing"

// TestBaseline: no threshold while training or with too few samples;
// after training, Factor times the learned quantile, at least Floor;
// values after training do not move it; an override wins at once.
func TestBaseline(t *testing.T) {
	b := Baseline{Quantile: 0.99, Factor: 3, Floor: 10, MinSamples: 100}
	const hour = int64(3600e9)
	now := int64(1_800_000_000e9)
	if _, ok := b.Threshold(now); ok {
		t.Fatal("a threshold before training started")
	}
	b.Start(now, hour)
	for i := range 1000 {
		b.Learn(float64(1+i%20), now+int64(i)*1e9) // clients between 1 and 20
	}
	if _, ok := b.Threshold(now + hour/2); ok {
		t.Fatal("a threshold while training")
	}
	th, ok := b.Threshold(now + hour)
	if !ok || th < 3*20 || th > 3*20*1.1 {
		t.Fatalf("threshold %.1f %v, want about 60", th, ok)
	}
	b.Learn(1e9, now+2*hour) // after training: ignored
	if th2, _ := b.Threshold(now + 2*hour); th2 != th {
		t.Fatalf("moved to %.1f after training", th2)
	}
	if n, q := b.Learned(); n != 1000 || q < 20 || q > 22 {
		t.Fatalf("learned %d values, quantile %.1f", n, q)
	}
	quiet := Baseline{Quantile: 0.99, Factor: 3, Floor: 10, MinSamples: 100}
	quiet.Start(now, hour)
	for i := range 500 {
		quiet.Learn(1, now+int64(i))
	}
	if th, _ := quiet.Threshold(now + hour); th != 10 {
		t.Fatalf("floor: %.1f", th)
	}
	few := Baseline{Quantile: 0.99, Factor: 3, MinSamples: 100}
	few.Start(now, hour)
	few.Learn(5, now)
	if _, ok := few.Threshold(now + hour); ok {
		t.Fatal("a threshold from one sample")
	}
	few.Override = 42
	if th, ok := few.Threshold(now); !ok || th != 42 {
		t.Fatalf("override: %.1f %v", th, ok)
	}
}
