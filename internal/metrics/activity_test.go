package metrics

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

// clock is a settable time for the activity's sampler.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newTestMetrics(start time.Time) (*Metrics, *clock) {
	m := New(Sources{})
	c := &clock{start}
	m.act.now = c.now
	return m, c
}

// TestActivitySteps: counts land in the step they were made in, summed
// over protocols; since leaves out the steps that ended before; the api_id
// filter keeps one API; steps nothing happened in read as zeros.
func TestActivitySteps(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0) // a step boundary
	m, c := newTestMetrics(t0)
	sample := func() {
		m.act.mu.Lock()
		m.act.sample(m)
		m.act.mu.Unlock()
	}
	c.t = t0.Add(1 * time.Second)
	for range 3 {
		m.Request("shop", "inline", "allow", "none", time.Millisecond, netip.Addr{})
	}
	m.Request("shop", "ase", "allow", "none", time.Millisecond, netip.Addr{})
	m.Request("shop", "inline", "block", "deny_list", time.Millisecond, netip.Addr{})
	m.act.timer.Stop()         // the test samples itself
	c.t = t0.Add(ActivityStep) // the first step ends
	sample()
	c.t = t0.Add(2*ActivityStep + time.Second)
	m.Request("pets", "inline", "decoy", "decoy", time.Millisecond, netip.Addr{})
	c.t = t0.Add(3 * ActivityStep) // the third ends; nothing was sampled at the second's end
	sample()
	c.t = t0.Add(3*ActivityStep + 2*time.Second)

	rep := m.Activity("", time.Time{})
	if rep.StepSeconds != 5 || !rep.To.Equal(t0.Add(3*ActivityStep)) || !rep.From.Equal(rep.To.Add(-ActivityWindow)) {
		t.Fatalf("from %v to %v, step %d", rep.From, rep.To, rep.StepSeconds)
	}
	got := map[string][]uint32{}
	for _, s := range rep.Series {
		n := len(s.Requests)
		got[s.APIID+" "+s.Decision+" "+s.Reason] = s.Requests[n-3:]
		var sum uint64
		for _, v := range s.Requests {
			sum += uint64(v)
		}
		if sum != s.Total || n != activitySlots {
			t.Fatalf("%+v: total %d, %d steps", s, sum, n)
		}
	}
	want := map[string][]uint32{
		"pets decoy decoy":     {0, 0, 1},
		"shop allow none":      {4, 0, 0},
		"shop block deny_list": {1, 0, 0},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	rep = m.Activity("pets", t0.Add(ActivityStep))
	if len(rep.Series) != 1 || fmt.Sprint(rep.Series[0].Requests) != "[0 1]" || !rep.From.Equal(t0.Add(ActivityStep)) {
		t.Fatalf("pets since the first step's end: %+v", rep)
	}
	if rep := m.Activity("", t0.Add(3*ActivityStep)); len(rep.Series) != 0 || !rep.From.Equal(rep.To) {
		t.Fatalf("nothing ended since the last step: %+v", rep)
	}
}

// TestActivitySleepsWhenIdle: the sampler stops after two steps without a
// request (no timer while idle) and the next request starts it again.
func TestActivitySleepsWhenIdle(t *testing.T) {
	m, c := newTestMetrics(time.Unix(1_800_000_000, 0))
	if !m.act.sleeping.Load() {
		t.Fatal("a new server's sampler is awake")
	}
	m.Request("a", "inline", "allow", "none", 0, netip.Addr{})
	if m.act.sleeping.Load() || m.act.timer == nil {
		t.Fatal("a request did not start the sampler")
	}
	m.act.timer.Stop() // the test drives it
	for n := 1; n <= 3; n++ {
		c.t = c.t.Add(ActivityStep)
		m.act.timer.Stop()
		m.act.tick(m)
		m.act.timer.Stop()
		if asleep := m.act.sleeping.Load(); asleep != (n == 3) {
			t.Fatalf("after %d samples: asleep %v", n, asleep)
		}
	}
	m.Request("a", "inline", "allow", "none", 0, netip.Addr{})
	if m.act.sleeping.Load() {
		t.Fatal("a request after idle did not wake the sampler")
	}
	m.act.timer.Stop()
}

// TestActivitySeriesBounded: past maxActivitySeries, further series are
// counted under "(other)".
func TestActivitySeriesBounded(t *testing.T) {
	m, c := newTestMetrics(time.Unix(1_800_000_000, 0))
	for i := range maxActivitySeries + 10 {
		m.Request(fmt.Sprintf("api-%d", i), "inline", "allow", "none", 0, netip.Addr{})
	}
	m.act.timer.Stop()
	c.t = c.t.Add(ActivityStep)
	m.act.mu.Lock()
	m.act.sample(m)
	m.act.mu.Unlock()
	if n := len(m.act.keys); n != maxActivitySeries+1 {
		t.Fatalf("%d series kept", n)
	}
	rep := m.Activity(otherAPI, time.Time{})
	if len(rep.Series) != 1 || rep.Series[0].Total != 10 {
		t.Fatalf("(other): %+v", rep.Series)
	}
}
