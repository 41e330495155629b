package lists

import (
	"context"
	"fmt"
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

// BenchmarkMemory reports the bytes each kind of entry takes in memory
// (values are not kept at all: identities are hashed), and what status
// says they take.
func BenchmarkMemory(b *testing.B) {
	const n = 1_000_000
	for _, k := range memKinds(7) {
		b.Run(k.name, func(b *testing.B) {
			for it := 0; it < b.N; it++ {
				entries := make([]Entry, n)
				for i := range entries {
					entries[i] = k.make(i)
				}
				l := bareLists()
				before := heapInUse()
				fill(l, entries)
				after := heapInUse()
				runtime.KeepAlive(entries)
				b.ReportMetric(float64(after-before)/n, "B/entry")
				b.ReportMetric(float64(l.MemoryUsed())/n, "reported-B/entry")
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
