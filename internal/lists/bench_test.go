package lists

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"testing"
	"time"
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

// bulkBody is the body of a JSON import of n entries from v0: addresses,
// tokens and cookies, as bench/loadlists makes them.
func bulkBody(v0, n int) []byte {
	var b []byte
	b = append(b, '[')
	for v := v0; v < v0+n; v++ {
		if v > v0 {
			b = append(b, ',')
		}
		switch v % 4 {
		case 0, 1:
			b = fmt.Appendf(b, `{"type":"ip","value":"%d.%d.%d.%d"}`, 11+v%180, (v>>16)&255, (v>>8)&255, v&255)
		case 2:
			b = fmt.Appendf(b, `{"type":"token","value":"bench-token-%08d"}`, v)
		case 3:
			b = fmt.Appendf(b, `{"type":"cookie","name":"SID","value":"bench-cookie-%08d"}`, v)
		}
	}
	return append(b, ']')
}

// BenchmarkBulkImport imports 1,000,000 entries into the embedded store,
// 100,000 per import, as the management API does (ParseBulk, then
// ImportFrom): the CPU and allocations of the import path without HTTP.
// The end-to-end figures are bench/memory.sh's.
func BenchmarkBulkImport(b *testing.B) {
	bodies := make([][]byte, 10)
	for i := range bodies {
		bodies[i] = bulkBody(i*100_000, 100_000)
	}
	for it := 0; it < b.N; it++ {
		l, _, _ := open(b, 1<<30)
		start := time.Now()
		for _, body := range bodies {
			blk, err := ParseBulk(body, false, l.now(), Defaults{})
			if err != nil {
				b.Fatal(err)
			}
			if res, err := l.ImportFrom(context.Background(), Deny, blk); err != nil || res.Added != 100_000 {
				b.Fatalf("import: %+v %v", res, err)
			}
		}
		b.ReportMetric(time.Since(start).Seconds(), "s/1M")
	}
}
