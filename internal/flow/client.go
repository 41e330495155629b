// Package flow is ASE's flow control: each client's fair share of an API
// (client_spike_threshold), each backend server's capacity
// (server_spike_threshold, server_connection_quota, with an optional
// bounded queue) and each WebSocket connection's byte rates.
//
// Rates are enforced with GCRA (the generic cell rate algorithm, a leaky
// bucket kept as one timestamp): a client at threshold N/unit may send one
// request every unit/N, plus a burst of a quarter second's worth of its
// rate (at least one request). Over any long stretch it is admitted at N
// per unit; over 10 seconds at twice its rate, at most 2.5% more.
package flow

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ase-project/ase/internal/apidef"
	"github.com/ase-project/ase/internal/lists"
	"github.com/ase-project/ase/internal/units"
)

// burstWindow is how much of its rate a client may send at once.
const burstWindow = 250 * time.Millisecond

// gcra holds the parameters of one rate.
type gcra struct {
	interval  int64 // ns between two requests at the rate
	tolerance int64 // ns a request may come early: the burst
}

func newGCRA(r units.Rate) gcra {
	interval := int64(r.Per.Duration()) / int64(r.Count)
	if interval < 1 {
		interval = 1
	}
	burst := int64(burstWindow) / interval // requests in a burst window
	if burst < 1 {
		burst = 1
	}
	return gcra{interval: interval, tolerance: (burst - 1) * interval}
}

// admit applies one request at now to the theoretical arrival time tat
// and returns the new tat, whether the request conforms and, if not, how
// long until it would.
func (g gcra) admit(tat, now int64) (int64, bool, time.Duration) {
	if tat < now {
		tat = now
	}
	if wait := tat - g.tolerance - now; wait > 0 {
		return tat, false, time.Duration(wait)
	}
	return tat + g.interval, true, 0
}

// Clients limits each client of each API to the API's
// client_spike_threshold. It implements the engine's Limiter hook.
type Clients struct {
	now    func() int64 // Unix ns
	seed   maphash.Seed
	seed2  maphash.Seed
	cl     *clientCluster // cluster mode (Node.Clients); nil standalone
	shards [numShards]clientShard
	count  atomic.Int64
	// tracked tells Run that a client is tracked again after none were:
	// with none, there is nothing to sweep and Run arms no timer.
	tracked chan struct{}
}

const numShards = 128

type clientShard struct {
	mu sync.Mutex
	// Keys are 128-bit hashes of (api, identity kind, identity), values
	// theoretical arrival times: no pointers for the collector to scan,
	// whatever the number of clients.
	m map[[2]uint64]int64
	_ [40]byte
}

// NewClients returns a client limiter; now (Unix ns; time.Now when nil)
// is the clock its sweeper reads.
func NewClients(now func() int64) *Clients {
	if now == nil {
		now = func() int64 { return time.Now().UnixNano() }
	}
	c := &Clients{now: now, seed: maphash.MakeSeed(), seed2: maphash.MakeSeed(), tracked: make(chan struct{}, 1)}
	for i := range c.shards {
		c.shards[i].m = map[[2]uint64]int64{}
	}
	return c
}

// key identifies a client of an API by its strongest identity: its API
// key, else its OAuth token, else its cookie, else its IP address. Two
// one-shot hashes under independent seeds make 128 bits.
func (c *Clients) key(apiID string, id *lists.Identity) [2]uint64 {
	var kind uint64
	var a, b uint64
	switch {
	case id.APIKey != "":
		kind = 1
		a, b = maphash.String(c.seed, id.APIKey), maphash.String(c.seed2, id.APIKey)
	case id.Token != "":
		kind = 2
		a, b = maphash.String(c.seed, id.Token), maphash.String(c.seed2, id.Token)
	case id.Cookie != "":
		kind = 3
		a, b = maphash.String(c.seed, id.Cookie), maphash.String(c.seed2, id.Cookie)
	default:
		kind = 4
		ip := id.IP.As16()
		a, b = maphash.Bytes(c.seed, ip[:]), maphash.Bytes(c.seed2, ip[:])
	}
	api := maphash.String(c.seed, apiID)
	return [2]uint64{a ^ (api+kind)*0x9E3779B97F4A7C15, b ^ (api^kind)*0xC2B2AE3D27D4EB4F}
}

// Allow implements engine.Limiter: whether the client may make one more
// request to api at now (Unix ns: the front door read the clock already),
// and if not, when it may.
func (c *Clients) Allow(api *apidef.API, id *lists.Identity, now int64) (bool, time.Duration) {
	r := api.FlowControl.ClientSpikeThreshold
	if r.IsZero() {
		return true, 0
	}
	if c.cl != nil {
		return c.allowCluster(api.ID, id, max(int64(r.Per.Duration())/int64(r.Count), 1), now)
	}
	k := c.key(api.ID, id)
	g := newGCRA(r)
	s := &c.shards[k[0]%numShards]
	s.mu.Lock()
	tat, known := s.m[k]
	tat, ok, wait := g.admit(tat, now)
	s.m[k] = tat
	s.mu.Unlock()
	if !known && c.count.Add(1) == 1 {
		select {
		case c.tracked <- struct{}{}:
		default:
		}
	}
	return ok, wait
}

// Clients returns how many clients are tracked.
func (c *Clients) Clients() int64 { return c.count.Load() }

// Sweep forgets clients whose allowance is full again (their state says
// nothing a fresh one would not): idle clients cost no memory. It locks
// one shard at a time.
func (c *Clients) Sweep() int {
	now := c.now()
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for k, tat := range s.m {
			if tat <= now {
				delete(s.m, k)
				n++
			}
		}
		s.mu.Unlock()
	}
	c.count.Add(int64(-n))
	return n
}

// Run sweeps every interval while clients are tracked, until stop is
// closed; with none tracked it sleeps until one is.
func (c *Clients) Run(interval time.Duration, stop <-chan struct{}) {
	t := time.NewTimer(interval)
	t.Stop()
	for {
		if c.count.Load() == 0 {
			select {
			case <-stop:
				return
			case <-c.tracked:
			}
		}
		t.Reset(interval)
		select {
		case <-stop:
			t.Stop()
			return
		case <-t.C:
			c.Sweep()
		}
	}
}
