package flow

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/ase-project/ase/internal/lists"
	"github.com/ase-project/ase/internal/units"
)

// noPeers is a cluster of one.
type noPeers struct{}

func (noPeers) Publish(Summary)   {}
func (noPeers) Others() []Summary { return nil }

// BenchmarkClientAllowCluster is BenchmarkClientAllow in cluster mode:
// the same check at this node's share.
func BenchmarkClientAllowCluster(b *testing.B) {
	l := NewNode(noPeers{}, Options{ID: "a"}).Clients()
	a := api(b, "shop", "1000000000/second")
	ids := make([]lists.Identity, 1024)
	for i := range ids {
		ids[i] = lists.Identity{IP: netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), Token: fmt.Sprintf("token-%d", i)}
	}
	now := time.Now().UnixNano()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		l.Allow(a, &ids[i%len(ids)], now+int64(i))
	}
}

// BenchmarkGateAcquireCluster is BenchmarkGateAcquire in cluster mode.
func BenchmarkGateAcquireCluster(b *testing.B) {
	n := NewNode(noPeers{}, Options{ID: "a"})
	g := NewGate([]ServerLimits{{Addr: "10.0.0.1:80", Quota: 1 << 20, Spike: units.MustRate("1000000000/second")},
		{Addr: "10.0.0.2:80", Quota: 1 << 20, Spike: units.MustRate("1000000000/second")}}, GateOptions{Cluster: n, API: "shop"})
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		s, err := g.Acquire(-1, 0)
		if err != nil {
			b.Fatal(err)
		}
		g.Release(s)
	}
}

// BenchmarkTick is one exchange with 100,000 clients active since the
// last, and a full summary of 1,000.
func BenchmarkTick(b *testing.B) {
	c := &clock{}
	c.t.Store(time.Now().UnixNano())
	n := NewNode(noPeers{}, Options{ID: "a", Now: c.now})
	l := n.Clients()
	a := api(b, "shop", "1/second")
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		c.advance(time.Second)
		for j := 0; j < 100_000; j++ {
			l.Allow(a, &lists.Identity{IP: netip.AddrFrom4([4]byte{10, byte(j >> 16), byte(j >> 8), byte(j)})}, c.now())
		}
		b.StartTimer()
		n.Tick()
	}
	b.ReportMetric(float64(l.Clients()), "clients")
}
