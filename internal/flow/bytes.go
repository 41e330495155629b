package flow

import (
	"io"
	"time"

	"golang.org/x/time/rate"

	"github.com/ase-project/ase/internal/units"
)

// Clock is the time the byte throttle reads and waits on; tests inject a
// fake one.
type Clock interface {
	Now() time.Time
	Sleep(time.Duration)
}

type realClock struct{}

func (realClock) Now() time.Time        { return time.Now() }
func (realClock) Sleep(d time.Duration) { time.Sleep(d) }

// RealClock is the wall clock.
var RealClock Clock = realClock{}

// CopyThrottled copies src to dst like io.Copy, holding the byte rate to
// limit() (zero means no limit). The rate is read again for every chunk
// once it has come, not before the wait for it: a change made while the
// connection was idle, or waiting on the old rate, applies to the next
// chunk. A WebSocket connection over its bytes_in_threshold or
// bytes_out_threshold is slowed down, not closed: frames are delayed, none
// is lost.
func CopyThrottled(dst io.Writer, src io.Reader, limit func() units.Rate, clock Clock) (int64, error) {
	buf := make([]byte, 32<<10)
	var lim *rate.Limiter
	var cur units.Rate
	update := func() {
		if r := limit(); r != cur {
			cur = r
			lim = nil
			if !r.IsZero() {
				perSec := float64(r.Count) / r.Per.Duration().Seconds()
				// A second's worth may pass at once, at least 1 KB so a
				// frame header never waits alone.
				lim = rate.NewLimiter(rate.Limit(perSec), max(int(perSec), 1024))
			}
		}
	}
	var total int64
	for {
		update()
		chunk := buf
		if lim != nil && lim.Burst() < len(chunk) {
			chunk = chunk[:lim.Burst()]
		}
		n, err := src.Read(chunk)
		if n > 0 {
			update()
			// A chunk read at a higher rate than the current one's burst
			// waits in pieces of at most that burst.
			for left := n; lim != nil && left > 0; {
				k := min(left, lim.Burst())
				now := clock.Now()
				if d := lim.ReserveN(now, k).DelayFrom(now); d > 0 {
					clock.Sleep(d)
				}
				left -= k
			}
			if _, werr := dst.Write(chunk[:n]); werr != nil {
				return total, werr
			}
			total += int64(n)
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}
