package flow

import (
	"testing"

	"github.com/ase-project/ase/internal/units"
)

// BenchmarkGateAcquire is one request through a gate with limits on two
// servers (standalone): acquire and release.
func BenchmarkGateAcquire(b *testing.B) {
	g := NewGate([]ServerLimits{{Addr: "10.0.0.1:80", Quota: 1 << 20, Spike: units.MustRate("1000000000/second")},
		{Addr: "10.0.0.2:80", Quota: 1 << 20, Spike: units.MustRate("1000000000/second")}}, GateOptions{})
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		s, err := g.Acquire(-1, 0)
		if err != nil {
			b.Fatal(err)
		}
		g.Release(s)
	}
}
