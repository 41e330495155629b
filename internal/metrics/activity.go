package metrics

import (
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Activity: requests by API, decision and reason, in steps of
// ActivityStep over the last ActivityWindow, for the console's charts and
// for scripts (GET /v5/ase/activity).
//
// Nothing is added to the data path: the per-API counters that the
// Prometheus series are made from are sampled at each step's end, and a
// step keeps only the counts that changed in it. The sampler runs only
// while requests come: after two steps without any it stops (no timer at
// all while idle), and the next request starts it again (one atomic load
// per request). Memory is bounded: at most maxActivitySeries series
// (further API, decision and reason triples are counted under the API id
// "(other)"), so at most ActivityWindow/ActivityStep x (maxActivitySeries +
// 112) counts of 8 bytes: 24 MiB in the worst case; a deployment with tens
// of APIs keeps some hundreds of KiB.
const (
	ActivityStep      = 5 * time.Second
	ActivityWindow    = time.Hour
	activitySlots     = int(ActivityWindow / ActivityStep)
	maxActivitySeries = 4096
	otherAPI          = "(other)"
)

type seriesKey struct {
	api              string
	decision, reason uint8
}

// activity is what Metrics keeps of it.
type activity struct {
	sleeping atomic.Bool // no timer armed: the next request arms one

	mu    sync.Mutex
	prev  map[*apiStats]*[7][16]uint64 // each API's counts at the last sample, over all protocols
	ids   map[seriesKey]uint32
	keys  []seriesKey
	slots [activitySlots]activitySlot // a ring, by step number
	last  int64                       // the newest step sampled (its number: its end / ActivityStep)
	quiet int                         // consecutive samples that found nothing
	due   int64                       // the step the armed timer samples at its end
	timer *time.Timer
	now   func() time.Time
}

type activitySlot struct {
	step   int64
	counts []activityCount
}

type activityCount struct{ id, n uint32 }

func (a *activity) init(now func() time.Time) {
	a.prev = map[*apiStats]*[7][16]uint64{}
	a.ids = map[seriesKey]uint32{}
	a.now = now
	a.sleeping.Store(true)
}

// touch is called for every request: it wakes the sampler if it sleeps.
func (a *activity) touch(m *Metrics) {
	if a.sleeping.Load() && a.sleeping.CompareAndSwap(true, false) {
		a.mu.Lock()
		a.arm(m)
		a.mu.Unlock()
	}
}

// arm sets the timer for the end of the current step (under mu).
func (a *activity) arm(m *Metrics) {
	now := a.now()
	next := now.Truncate(ActivityStep).Add(ActivityStep)
	a.due = next.Unix() / int64(ActivityStep/time.Second)
	if a.timer == nil {
		a.timer = time.AfterFunc(next.Sub(now), func() { a.tick(m) })
		return
	}
	a.timer.Reset(next.Sub(now))
}

func (a *activity) tick(m *Metrics) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.sample(m) {
		a.quiet = 0
	} else if a.quiet++; a.quiet >= 2 {
		a.sleeping.Store(true)
		// A request that came after the sample, while the sampler was
		// still awake, did not wake it: look once more.
		if !a.pending(m) {
			return
		}
		a.sleeping.Store(false)
		a.quiet = 0
	}
	a.arm(m)
}

// sample records the counts since the last sample in the step that just
// ended (under mu); it reports whether there were any.
func (a *activity) sample(m *Metrics) bool {
	step := a.now().Unix() / int64(ActivityStep/time.Second) // the step ending now
	slot := &a.slots[step%int64(activitySlots)]
	if slot.step != step {
		slot.step, slot.counts = step, slot.counts[:0]
	}
	if step > a.last {
		a.last = step
	}
	found := false
	m.apis.Range(func(k, v any) bool {
		s := v.(*apiStats)
		prev := a.prev[s]
		if prev == nil {
			prev = new([7][16]uint64)
			a.prev[s] = prev
		}
		for d := range decisions {
			for r := range reasons {
				var n uint64
				for p := range protocols {
					n += s.counts[p][d][r].Load()
				}
				if delta := n - prev[d][r]; delta > 0 {
					prev[d][r] = n
					slot.counts = append(slot.counts, activityCount{a.id(k.(string), d, r), uint32(min(delta, 1<<32-1))})
					found = true
				}
			}
		}
		return true
	})
	return found
}

// pending reports whether any counter moved since the last sample.
func (a *activity) pending(m *Metrics) bool {
	moved := false
	m.apis.Range(func(k, v any) bool {
		s := v.(*apiStats)
		prev := a.prev[s]
		for d := range decisions {
			for r := range reasons {
				var n uint64
				for p := range protocols {
					n += s.counts[p][d][r].Load()
				}
				if prev == nil && n > 0 || prev != nil && n != prev[d][r] {
					moved = true
					return false
				}
			}
		}
		return true
	})
	return moved
}

func (a *activity) id(api string, d, r int) uint32 {
	k := seriesKey{api, uint8(d), uint8(r)}
	if id, ok := a.ids[k]; ok {
		return id
	}
	if len(a.keys) >= maxActivitySeries {
		k.api = otherAPI
		if id, ok := a.ids[k]; ok {
			return id
		}
	}
	id := uint32(len(a.keys))
	a.ids[k] = id
	a.keys = append(a.keys, k)
	return id
}

// ActivitySeries is one API's requests with one decision and reason, per
// step, oldest first.
type ActivitySeries struct {
	APIID    string   `json:"api_id"`
	Decision string   `json:"decision"`
	Reason   string   `json:"reason"`
	Requests []uint32 `json:"requests"`
	Total    uint64   `json:"total"`
}

// ActivityReport is GET /activity's answer.
type ActivityReport struct {
	StepSeconds int               `json:"step_seconds"`
	From        time.Time         `json:"from"` // the first step's start
	To          time.Time         `json:"to"`   // the last step's end: the latest step boundary
	Series      []ActivitySeries  `json:"series"`
	Backends    []ActivityBackend `json:"backends"` // now
	// TopBlocked: the clients refused most in the last 10 minutes.
	TopBlocked []BlockedClient `json:"top_blocked_clients"`
	// Detections: the last attackers this node deny-listed for a
	// detection, newest first.
	Detections []Detection `json:"recent_detections"`
}

// Detection is an attacker deny-listed for a detection.
type Detection struct {
	Time    time.Time  `json:"time"`
	Type    string     `json:"type"`
	Name    string     `json:"name,omitempty"`
	Value   string     `json:"value"`
	Tag     string     `json:"tag"`
	Reason  string     `json:"reason"`
	Expires *time.Time `json:"expires_at,omitempty"`
}

// ActivityBackend is a backend server's state now.
type ActivityBackend struct {
	APIID    string `json:"api_id"`
	Server   string `json:"server"`
	Health   string `json:"health"` // Up, Down, or Unknown (not probed yet)
	InFlight int64  `json:"in_flight"`
}

// Activity returns the requests of the steps that ended after since (all
// of the last hour when since is zero), of one API when apiID is not
// empty. Series without a request in those steps are left out. The step in
// progress is not reported: it is the next call's.
func (m *Metrics) Activity(apiID string, since time.Time) ActivityReport {
	a := &m.act
	a.mu.Lock()
	defer a.mu.Unlock()
	secs := int64(ActivityStep / time.Second)
	end := a.now().Unix() / secs // the latest step that has ended
	if !a.sleeping.Load() && a.due <= end && a.last < end {
		a.sample(m) // the timer is late: the reader sees the step whole
	}
	first := end - int64(activitySlots) + 1
	if !since.IsZero() {
		// The first step that ends after since.
		first = max(first, since.Unix()/secs+1)
	}
	n := int(end - first + 1)
	rep := ActivityReport{StepSeconds: int(secs), Series: []ActivitySeries{}, Backends: []ActivityBackend{}, Detections: []Detection{}}
	if apiID == "" {
		rep.TopBlocked = m.top.top(TopClients, a.now())
		if m.src.RecentDetections != nil {
			rep.Detections = m.src.RecentDetections()
		}
	} else {
		rep.TopBlocked = []BlockedClient{}
		for _, c := range m.top.top(topCapacity*2, a.now()) {
			if c.LastAPIID == apiID && len(rep.TopBlocked) < TopClients {
				rep.TopBlocked = append(rep.TopBlocked, c)
			}
		}
	}
	if m.src.Backends != nil {
		for _, b := range m.src.Backends() {
			if apiID == "" || b.APIID == apiID {
				rep.Backends = append(rep.Backends, ActivityBackend(b))
			}
		}
		sort.Slice(rep.Backends, func(i, j int) bool {
			x, y := rep.Backends[i], rep.Backends[j]
			return x.APIID < y.APIID || x.APIID == y.APIID && x.Server < y.Server
		})
	}
	rep.To = time.Unix(end*secs, 0).UTC()
	if n <= 0 {
		rep.From = rep.To
		return rep
	}
	rep.From = time.Unix((first-1)*secs, 0).UTC()
	byID := map[uint32]*ActivitySeries{}
	for step := first; step <= end; step++ {
		slot := &a.slots[step%int64(activitySlots)]
		if slot.step != step {
			continue // no request in it (the sampler slept), or overwritten
		}
		for _, c := range slot.counts {
			k := a.keys[c.id]
			if apiID != "" && k.api != apiID {
				continue
			}
			s := byID[c.id]
			if s == nil {
				s = &ActivitySeries{APIID: k.api, Decision: decisions[k.decision], Reason: reasons[k.reason], Requests: make([]uint32, n)}
				byID[c.id] = s
			}
			s.Requests[step-first] += c.n
			s.Total += uint64(c.n)
		}
	}
	for _, s := range byID {
		rep.Series = append(rep.Series, *s)
	}
	sort.Slice(rep.Series, func(i, j int) bool {
		x, y := rep.Series[i], rep.Series[j]
		if x.APIID != y.APIID {
			return x.APIID < y.APIID
		}
		if x.Decision != y.Decision {
			return x.Decision < y.Decision
		}
		return x.Reason < y.Reason
	})
	return rep
}
