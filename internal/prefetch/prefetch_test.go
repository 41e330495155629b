package prefetch

import (
	"testing"
	"unsafe"
)

// Prefetching is harmless on any address, mapped or not, and allocates
// nothing.
func TestLinesIsHarmless(t *testing.T) {
	buf := make([]byte, 64*32)
	for i := range buf {
		buf[i] = byte(i)
	}
	Lines(unsafe.Pointer(&buf[0]), 0xffffffff)
	Lines(unsafe.Pointer(&buf[0]), 0)
	Lines(nil, 1<<5|1)
	Lines(unsafe.Pointer(&buf[len(buf)-1]), 0xffffffff) // lines past the buffer's end
	for i := range buf {
		if buf[i] != byte(i) {
			t.Fatalf("byte %d changed", i)
		}
	}
	if n := testing.AllocsPerRun(100, func() { Lines(unsafe.Pointer(&buf[0]), 0b101) }); n != 0 {
		t.Fatalf("%v allocations", n)
	}
}

// BenchmarkOverlap reads 4 lines at random in a table far bigger than
// the caches, each read's address depending on the last one's value (as a
// lock between two identities' lookups orders them): one after the other,
// and all prefetched first.
func BenchmarkOverlap(b *testing.B) {
	table := make([]uint64, (256<<20)/8)
	var x uint64 = 88172645463325252
	next := func() uint64 { x ^= x << 13; x ^= x >> 7; x ^= x << 17; return x % uint64(len(table)) }
	for _, pre := range []bool{false, true} {
		name := map[bool]string{false: "serial", true: "prefetched"}[pre]
		b.Run(name, func(b *testing.B) {
			var sink uint64
			var ks [4]uint64
			for i := 0; i < b.N; i++ {
				for j := range ks {
					ks[j] = next()
					if pre {
						Lines(unsafe.Pointer(&table[ks[j]]), 1)
					}
				}
				for _, k := range ks {
					sink += table[k^(sink&1)]
				}
			}
			if sink == 1 {
				b.Log(sink)
			}
		})
	}
}
