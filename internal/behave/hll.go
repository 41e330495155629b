// Package behave is behavioural detection (issue 20; detect.go): the
// vendor's ABS engine in process, with the bounded, allocation-free
// summaries it keeps per client identity and per API: distinct counts
// (HyperLogLog), learned distributions (log-scale histograms with
// quantiles), a bounded identity tracker. Each has a fixed size whatever
// the traffic, so an attacker cannot make ASE hold more per identity.
package behave

import (
	"math"
	"math/bits"
)

// hllP is the HyperLogLog precision: 2^hllP registers of 4 bits. 64
// registers give a standard error of 1.04/sqrt(64) = 13%, enough to tell
// "one credential from 3 addresses" from "from 40", in 32 bytes: two
// sketches share a cache line, so a request that counts its address for
// its credential and its answer's path touches one line for both.
const (
	hllP = 6
	hllM = 1 << hllP
	// hllMaxRank is the largest rank a 4-bit register holds: a register
	// reaches it after about 64 x 2^14 (a million) distinct values, past
	// what one identity meets in a window, and stays there.
	hllMaxRank = 15
)

// HLL counts distinct 64-bit hashes approximately in 32 bytes. The zero
// value is an empty sketch. Small counts are exact in practice (linear
// counting below 2.5 m).
type HLL struct{ reg [hllM / 2]uint8 } // register i: the low nibble of byte i/2 when i is even

// Add records a hash (of an address, a path...); the caller hashes with a
// per-process seed, so a client cannot choose collisions.
func (h *HLL) Add(x uint64) { h.AddChanged(x) }

// AddChanged records a hash like Add and reports whether the sketch
// changed: when it did not, Count is what it was, and need not be read
// again.
func (h *HLL) AddChanged(x uint64) bool {
	i := x >> (64 - hllP)
	rank := min(uint8(bits.LeadingZeros64(x<<hllP|1<<(hllP-1)))+1, hllMaxRank)
	b, sh := &h.reg[i>>1], (i&1)*4
	if rank > *b>>sh&0xf {
		*b = *b&^(0xf<<sh) | rank<<sh
		return true
	}
	return false
}

// Count estimates the number of distinct hashes added.
func (h *HLL) Count() float64 {
	sum, zeros := 0.0, 0
	for _, b := range h.reg {
		for _, r := range [2]uint8{b & 0xf, b >> 4} {
			sum += pow2neg[r]
			if r == 0 {
				zeros++
			}
		}
	}
	const alpha = 0.709 // for m = 64
	e := alpha * hllM * hllM / sum
	if e <= 2.5*hllM && zeros > 0 {
		return hllM * math.Log(float64(hllM)/float64(zeros)) // linear counting
	}
	return e
}

// pow2neg[r] is 2^-r: a register's weight in Count.
var pow2neg = func() (t [16]float64) {
	for r := range t {
		t[r] = math.Ldexp(1, -r)
	}
	return t
}()

// Merge adds o's hashes into h.
func (h *HLL) Merge(o *HLL) {
	for i, b := range o.reg {
		lo, hi := max(b&0xf, h.reg[i]&0xf), max(b>>4, h.reg[i]>>4)
		h.reg[i] = lo | hi<<4
	}
}

// Reset empties the sketch.
func (h *HLL) Reset() { h.reg = [hllM / 2]uint8{} }
