package lists

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"testing"
)

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkMemory measures the bytes each kind of entry costs in memory
// (values are not kept in memory at all: identities are hashed), and
// checks the estimates the memory budget uses are upper bounds.
func BenchmarkMemory(b *testing.B) {
	const n = 1_000_000
	rng := rand.New(rand.NewPCG(7, 7))
	kinds := []struct {
		name     string
		estimate int64
		make     func(i int) Entry
	}{
		{"ipv4", costV4, func(i int) Entry {
			a := netip.AddrFrom4([4]byte{byte(rng.Uint32()), byte(i >> 16), byte(i >> 8), byte(i)})
			return Entry{Kind: IP, Prefix: netip.PrefixFrom(a, 32)}
		}},
		{"ipv6", costV6, func(i int) Entry {
			var b [16]byte
			for j := range b {
				b[j] = byte(rng.Uint32())
			}
			return Entry{Kind: IP, Prefix: netip.PrefixFrom(netip.AddrFrom16(b), 128)}
		}},
		{"cidr", costCIDR, func(i int) Entry {
			a := netip.AddrFrom4([4]byte{byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32()), 0})
			return Entry{Kind: IP, Prefix: netip.PrefixFrom(a, 24)}
		}},
		{"token", costID, func(i int) Entry { return Entry{Kind: Token, Value: fmt.Sprintf("tok-%d-%d", i, rng.Uint64())} }},
	}
	for _, k := range kinds {
		b.Run(k.name, func(b *testing.B) {
			for it := 0; it < b.N; it++ {
				entries := make([]Entry, n)
				for i := range entries {
					entries[i] = k.make(i)
				}
				l := &Lists{h: newHasher(), sets: [2]*Set{newSet(), newSet()}}
				before := heapInUse()
				l.Load(Deny, entries)
				after := heapInUse()
				runtime.KeepAlive(entries)
				per := float64(after-before) / n
				b.ReportMetric(per, "B/entry")
				if est := float64(l.MemoryUsed()) / n; est < per {
					b.Errorf("%s: the budget estimates %.1f B/entry but it uses %.1f", k.name, est, per)
				}
				runtime.KeepAlive(l)
			}
		})
	}
}
