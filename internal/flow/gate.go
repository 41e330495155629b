package flow

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ase-project/ase/internal/units"
)

// ErrNoServer means no server may take the request now: all are down, or
// over their limits and the API does not queue (or its queue is full, or
// the wait ran out). The proxy answers 503.
var ErrNoServer = errors.New("no server available")

// ServerLimits are one backend server's limits.
type ServerLimits struct {
	Addr  string     // host:port, which identifies the server across updates
	Quota int        // server_connection_quota: requests in flight; 0 = none
	Spike units.Rate // server_spike_threshold; zero = none
	Up    *atomic.Bool
}

// Gate hands one API's requests to its backend servers within each
// server's connection quota and spike threshold. When no server may take
// a request, it waits in a bounded FIFO queue (if the API queues) and is
// handed the first slot that frees, in arrival order.
type Gate struct {
	now      func() int64
	queueing bool
	maxQueue int
	maxWait  time.Duration

	mu      sync.Mutex
	queued  func()
	servers []gateServer
	next    int
	queue   []*waiter
	cl      *gateCluster // cluster mode; nil standalone
}

type gateServer struct {
	ServerLimits
	spike    gcra
	tat      int64
	inflight int
	sent     uint32 // requests since the last cluster tick
	// This node's part of Quota that it may use now (Quota itself
	// standalone) and the requests the other nodes last reported in
	// flight, plus a margin (0 standalone). Cluster mode: alloc is its
	// part once the others have let go of theirs.
	quota, others, alloc int
	// Cluster mode: the spike threshold's own interval, the cluster's
	// bucket for payback, the server's name in summaries.
	base, ctat int64
	key        uint64
}

type waiter struct {
	prefer   int    // -1: any server
	skip     uint64 // servers not to use
	deadline int64
	ch       chan int // the server index, or -1 for no server
}

// GateOptions configure a gate.
type GateOptions struct {
	Queueing bool          // server_connection_queueing
	MaxQueue int           // server_queue_size
	MaxWait  time.Duration // server_queue_timeout
	Now      func() int64  // Unix ns; time.Now when nil
	// Cluster makes the servers' limits hold for the whole cluster: this
	// gate takes its node's part of each (nil: standalone, the limits are
	// this gate's alone). API names the gate's API (its api_id) among
	// the nodes.
	Cluster *Node
	API     string
	// Queued, when set, is called (without the gate's lock) each time a
	// request is left waiting in the queue: a rate-limited server becomes
	// eligible with time, so someone must call Dispatch while requests
	// wait, and need not while none do.
	Queued func()
}

// NewGate returns a gate over servers.
func NewGate(servers []ServerLimits, o GateOptions) *Gate {
	if o.Now == nil {
		o.Now = func() int64 { return time.Now().UnixNano() }
	}
	g := &Gate{now: o.Now, queueing: o.Queueing, maxQueue: o.MaxQueue, maxWait: o.MaxWait, queued: o.Queued}
	g.servers = make([]gateServer, len(servers))
	for i, s := range servers {
		g.servers[i].ServerLimits = s
		g.servers[i].quota = s.Quota
		if !s.Spike.IsZero() {
			g.servers[i].spike = newGCRA(s.Spike)
		}
	}
	if o.Cluster != nil {
		g.cl = &gateCluster{node: o.Cluster}
		g.joinLocked(o)
		o.Cluster.addGate(g)
	}
	return g
}

// Update applies new limits (and servers) in place: the requests a server
// has in flight and its rate history carry over, so a limit changed live
// neither drops traffic nor forgets load. A server removed keeps counting
// its requests in flight in the old slot until they end.
func (g *Gate) Update(servers []ServerLimits, o GateOptions) {
	g.mu.Lock()
	defer g.mu.Unlock()
	old := map[string]gateServer{}
	for _, s := range g.servers {
		old[s.Addr] = s
	}
	next := make([]gateServer, len(servers))
	for i, s := range servers {
		next[i].ServerLimits = s
		next[i].quota = s.Quota
		if !s.Spike.IsZero() {
			next[i].spike = newGCRA(s.Spike)
		}
		if prev, ok := old[s.Addr]; ok {
			next[i].inflight, next[i].tat = prev.inflight, prev.tat
			next[i].sent, next[i].ctat = prev.sent, prev.ctat
			if g.cl != nil && !s.Spike.IsZero() && !prev.Spike.IsZero() {
				next[i].spike.interval = prev.spike.interval // rescaled from by joinLocked
			}
		}
	}
	g.servers = next
	g.queueing, g.maxQueue, g.maxWait, g.queued = o.Queueing, o.MaxQueue, o.MaxWait, o.Queued
	switch {
	case o.Cluster == nil:
		g.cl = nil
	case g.cl == nil:
		g.cl = &gateCluster{node: o.Cluster}
		g.joinLocked(o)
		o.Cluster.addGate(g)
	default:
		g.joinLocked(o)
	}
	if g.next >= len(next) {
		g.next = 0
	}
	g.dispatchLocked(g.now())
}

// Limited reports whether any server has a limit (if not, the proxy need
// not use the gate at all).
func Limited(servers []ServerLimits) bool {
	for _, s := range servers {
		if s.Quota > 0 || !s.Spike.IsZero() {
			return true
		}
	}
	return false
}

// eligible reports whether server i may take a request at now.
func (g *Gate) eligible(i int, now int64) bool {
	s := &g.servers[i]
	if s.Up != nil && !s.Up.Load() {
		return false
	}
	// At its part of the quota, a server is full for this node; a node
	// whose part is none may still send one request while the others
	// report room (standalone: quota is Quota, and this is the plain
	// check).
	if s.Quota > 0 && s.inflight >= s.quota && (s.inflight > 0 || s.others >= s.Quota) {
		return false
	}
	if !s.Spike.IsZero() {
		if _, ok, _ := s.spike.admit(s.tat, now); !ok {
			return false
		}
	}
	return true
}

// take counts a request on server i.
func (g *Gate) take(i int, now int64) {
	s := &g.servers[i]
	s.inflight++
	s.sent++
	if !s.Spike.IsZero() {
		s.tat, _, _ = s.spike.admit(s.tat, now)
	}
}

// pick returns an eligible server (prefer first if it is), round-robin
// otherwise, or -1.
func (g *Gate) pick(prefer int, skip uint64, now int64) int {
	if prefer >= 0 && skip&(1<<prefer) == 0 && g.eligible(prefer, now) {
		return prefer
	}
	n := len(g.servers)
	for k := 0; k < n; k++ {
		i := (g.next + k) % n
		if i < 64 && skip&(1<<i) != 0 {
			continue
		}
		if g.eligible(i, now) {
			g.next = (i + 1) % n
			return i
		}
	}
	return -1
}

// Acquire returns the index of a server for one request, waiting in the
// queue if the API queues. prefer (or -1) is the server the client sticks
// to; skip holds servers already tried. Release must follow.
func (g *Gate) Acquire(prefer int, skip uint64) (int, error) {
	now := g.now()
	g.mu.Lock()
	if g.cl != nil {
		if g.cl.offered == 0 {
			g.cl.first = now
		}
		g.cl.offered++
	}
	// Nobody overtakes the queue: while it holds waiters, new requests
	// join it.
	if len(g.queue) == 0 {
		if i := g.pick(prefer, skip, now); i >= 0 {
			g.take(i, now)
			g.mu.Unlock()
			return i, nil
		}
	}
	if !g.queueing || len(g.queue) >= g.maxQueue {
		g.mu.Unlock()
		return -1, ErrNoServer
	}
	w := &waiter{prefer: prefer, skip: skip, deadline: now + int64(g.maxWait), ch: make(chan int, 1)}
	g.queue = append(g.queue, w)
	g.dispatchLocked(now) // capacity may be free already: serve the head
	queued := g.queued
	waiting := len(g.queue) > 0
	g.mu.Unlock()
	if waiting && queued != nil {
		queued()
	}
	if i := <-w.ch; i >= 0 {
		return i, nil
	}
	return -1, ErrNoServer
}

// Release ends a request on server i and hands the freed capacity to the
// queue.
func (g *Gate) Release(i int) {
	g.mu.Lock()
	if i < len(g.servers) && g.servers[i].inflight > 0 {
		g.servers[i].inflight--
	}
	g.dispatchLocked(g.now())
	g.mu.Unlock()
}

// ReleaseAddr is Release by the server's address, which stays right when
// an update moved or removed servers while the request was in flight.
func (g *Gate) ReleaseAddr(addr string) {
	g.mu.Lock()
	for i := range g.servers {
		if g.servers[i].Addr == addr {
			if g.servers[i].inflight > 0 {
				g.servers[i].inflight--
			}
			break
		}
	}
	g.dispatchLocked(g.now())
	g.mu.Unlock()
}

// Dispatch hands capacity to waiting requests and refuses those that
// waited too long. A rate-limited server becomes eligible with time, not
// on a release, so the proxy calls it periodically while requests wait
// (see GateOptions.Queued); tests call it after moving their clock.
func (g *Gate) Dispatch() {
	g.mu.Lock()
	g.dispatchLocked(g.now())
	g.mu.Unlock()
}

func (g *Gate) dispatchLocked(now int64) {
	// Expired waiters leave first, wherever they are in the queue.
	kept := g.queue[:0]
	for _, w := range g.queue {
		if now >= w.deadline {
			w.ch <- -1
			continue
		}
		kept = append(kept, w)
	}
	for i := len(kept); i < len(g.queue); i++ {
		g.queue[i] = nil
	}
	g.queue = kept
	// Then the head is served while some server is eligible for it; the
	// queue is strictly first come, first served.
	for len(g.queue) > 0 {
		w := g.queue[0]
		i := g.pick(w.prefer, w.skip, now)
		if i < 0 {
			return
		}
		g.take(i, now)
		w.ch <- i
		g.queue[0] = nil
		g.queue = g.queue[1:]
	}
}

// Waiting returns the number of queued requests.
func (g *Gate) Waiting() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.queue)
}

// InFlight returns server i's requests in flight.
func (g *Gate) InFlight(i int) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.servers[i].inflight
}
