package flow

// Cluster mode. Every limit of flow control holds for the whole cluster:
// a client's client_spike_threshold wherever its requests land, a backend
// server's server_spike_threshold and server_connection_quota for what all
// nodes together send it. No request waits for the network: each node
// decides alone, against its part of each limit, and the parts follow the
// load.
//
// Once per interval (Options.Interval, 1 s by default) each node publishes
// a Summary: per API with server limits, its demand (requests offered per
// second, smoothed) and per server its requests in flight, sent, and the
// quota slots it holds; per client that matters (demand here at least 2%
// of its threshold; at most MaxClients, those highest relative to their
// threshold), its demand and the requests admitted. From the others' last
// summaries each node takes:
//
//   - Its share of each rate, in proportion to its demand among all
//     nodes' demands, with a small floor so that an idle node still admits
//     a first request (and its demand then counts): share =
//     (d + e) / (d + others + N*e). Its GCRA runs at share x the threshold.
//     Demand is smoothed over 10 of the limit's intervals (2 s to an
//     hour): an N/hour threshold is split by its own history, not by a
//     second's noise. A client no other node reports has the whole
//     threshold here, as standalone.
//   - Its part of each connection quota, apportioned by the same weights
//     (largest remainder), usable only up to the quota minus the slots the
//     others hold: a slot moves in two steps, the loser publishing its
//     smaller part before the gainer uses it. A node with no part (idle
//     until now) may send one request while the others report room.
//   - Corrections for what no share can know in time. A client new on
//     several nodes at once is admitted whole by each until the summaries
//     cross: when the others first report it, a node charges its own
//     admissions since the client's first request again, at the share now
//     known. What the nodes together admitted also runs through a bucket
//     of the cluster-wide rate, and an excess is paid back. An API that
//     just got busy counts each node that has not published since as
//     busy as itself, so a backend never gets its whole limit from every
//     node at once.
//
// A node that leaves drops out of the shares as soon as its summary is
// gone (its etcd lease ended or was revoked) or stale (its Seq unchanged
// for StaleAfter, 3 intervals by default). A node that joins takes a part
// from its first summary, in proportion to the demand it sees.
//
// Standalone (no Node), Clients and Gate decide as they did, at the same
// cost per request.

import (
	"cmp"
	"container/heap"
	"math"
	"math/bits"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"weak"

	"github.com/ase-project/ase/internal/lists"
)

// Peers carries summaries between the nodes of a cluster. The wiring
// implements it over etcd: Publish writes the encoded summary
// (Summary.MarshalBinary) under the node's key, attached to its lease;
// Others returns the latest decoded summary of every other node whose key
// exists (a watch on the prefix keeps them). Both are called by Node.Tick,
// from one goroutine at a time.
type Peers interface {
	// Publish hands this node's summary to the others. It must not block
	// for long: give the bytes to a writer, and a newer summary may
	// replace one not written yet.
	Publish(Summary)
	// Others returns the latest summary of each other node (never this
	// node's own); a node gone from the membership must be gone from it.
	Others() []Summary
}

// Options configure a node.
type Options struct {
	ID         string        // this node's id in the cluster (its uuid); at most MaxNodeID bytes
	Interval   time.Duration // publish interval; default 1 s
	StaleAfter time.Duration // a summary whose Seq has not changed for this long is ignored; default 3 intervals
	MaxClients int           // client entries in a summary; default 1000
	// Seed keys the hashes that name clients, APIs and servers in the
	// summaries; every node of a cluster must have the same. A secret
	// one (random, kept in etcd) keeps an attacker from choosing
	// identities that collide with another client's.
	Seed uint64
	Now  func() int64 // Unix ns; time.Now when nil
}

// Default options.
const (
	DefaultInterval   = time.Second
	DefaultMaxClients = 1000
)

// Tuning of the shares.
const (
	shareFloor    = 0.01  // a node's floor demand for a client, as a fraction of its threshold
	gateFloor     = 0.001 // a node's floor demand for an API, as a fraction of the API's total demand
	idleDemand    = 1e-3  // an API offered fewer requests per second (or 0.5% of its slowest spike threshold) is idle
	publishFrac   = 0.02  // a client is reported when its demand here is at least this fraction of its threshold
	dropFrac      = 0.005 // a client idle here whose demand fell under this fraction is forgotten
	tauIntervals  = 10    // demand is smoothed over this many intervals of the limit
	tauMin        = 2 * time.Second
	tauMax        = time.Hour
	paybackMargin = 0.05 // admissions up to this much over the limit are noise, not paid back
	minShare      = 1e-6
	maxIval       = int64(1) << 60
)

// Node is this node's part in the cluster's flow control. NewNode, then
// Clients for the engine's limiter, GateOptions.Cluster for the proxy's
// gates, and Run (or Tick every interval).
type Node struct {
	peers        Peers
	o            Options
	now          func() int64
	seedA, seedB uint64

	tickMu sync.Mutex
	last   int64
	seq    uint64
	seen   map[string]*peerState

	view atomic.Pointer[view]

	regMu   sync.Mutex
	clients *Clients
	gates   []weak.Pointer[Gate]
}

type peerState struct {
	seq     uint64
	changed int64 // when this node saw seq change
	used    bool  // seq's counts were taken
}

// view is what the others last said, as the hot path and the ticks read
// it. Immutable once stored.
type view struct {
	nodes   int      // live nodes, this one included
	self    int      // this node's index in ids
	ids     []uint64 // the live nodes' ids, hashed, sorted
	changed []int64  // per node: the tick at which its summary was first seen (this node's: now)
	clients map[uint64]remoteClient
	apis    map[uint64]*remoteAPI
}

type remoteClient struct {
	demand float64 // the others' demand, summed
	fresh  float64 // what they admitted, in summaries not seen before
}

type remoteAPI struct {
	demand  []float64 // per node, indexed like view.ids; this node's slot stays 0
	servers map[uint64]remoteServer
}

type remoteServer struct {
	inflight int
	held     int // quota slots
	fresh    float64
}

// NewNode returns this node's part in the cluster's flow control, talking
// to the others through peers.
func NewNode(peers Peers, o Options) *Node {
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.StaleAfter <= 0 {
		o.StaleAfter = 3 * o.Interval
	}
	if o.MaxClients <= 0 {
		o.MaxClients = DefaultMaxClients
	}
	if len(o.ID) > MaxNodeID {
		o.ID = o.ID[:MaxNodeID]
	}
	if o.Now == nil {
		o.Now = func() int64 { return time.Now().UnixNano() }
	}
	n := &Node{peers: peers, o: o, now: o.Now, seen: map[string]*peerState{},
		seedA: mix(o.Seed^0x243f6a8885a308d3, k1), seedB: mix(o.Seed^0x13198a2e03707344, k2)}
	// Seq starts from the clock, so a restarted node's first summary
	// differs from the last one of its previous life.
	n.seq = uint64(n.now())
	return n
}

// Clients returns the node's client limiter (engine.Limiter), the same one
// at every call.
func (n *Node) Clients() *Clients {
	n.regMu.Lock()
	defer n.regMu.Unlock()
	if n.clients == nil {
		n.clients = NewClients(n.now)
		cl := &clientCluster{node: n}
		for i := range cl.shards {
			cl.shards[i].m = map[[2]uint64]centry{}
		}
		n.clients.cl = cl
	}
	return n.clients
}

// Key is the name of an API (its api_id) or of a server (host:port) in
// the summaries.
func (n *Node) Key(s string) uint64 { return hashString(n.seedA, s) }

// Run ticks every interval until stop is closed.
func (n *Node) Run(stop <-chan struct{}) {
	t := time.NewTicker(n.o.Interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			n.Tick()
		}
	}
}

// Tick is one exchange: read the others' summaries, update this node's
// shares, forget idle clients, publish this node's summary. Run calls it
// every interval; the wiring may also call it at once when the membership
// changes.
func (n *Node) Tick() {
	n.tickMu.Lock()
	defer n.tickMu.Unlock()
	now := n.now()
	dt := time.Duration(now - n.last)
	if n.last == 0 || dt <= 0 {
		dt = n.o.Interval
	}
	n.last = now
	v := n.build(now)
	n.view.Store(v)
	n.seq++
	sum := Summary{Node: n.o.ID, Seq: n.seq, Span: dt}

	n.regMu.Lock()
	c := n.clients
	gates := make([]*Gate, 0, len(n.gates))
	live := n.gates[:0]
	for _, w := range n.gates {
		if g := w.Value(); g != nil {
			gates = append(gates, g)
			live = append(live, w)
		}
	}
	clear(n.gates[len(live):])
	n.gates = live
	n.regMu.Unlock()

	if c != nil {
		top := &clientTop{max: n.o.MaxClients}
		c.tickCluster(v, now, dt, n.o.Interval, top)
		sum.Clients = top.sorted()
	}
	for _, g := range gates {
		if a, ok := g.tickCluster(v, now, dt, n.o.Interval); ok {
			sum.APIs = append(sum.APIs, a)
		}
	}
	n.peers.Publish(sum)
}

// build reads the others' summaries into a view.
func (n *Node) build(now int64) *view {
	others := n.peers.Others()
	type entry struct {
		s       *Summary
		id      uint64
		fresh   bool
		changed int64
	}
	taken := make([]entry, 0, len(others))
	present := make(map[string]bool, len(others))
	for i := range others {
		s := &others[i]
		if s.Node == n.o.ID || present[s.Node] {
			continue
		}
		present[s.Node] = true
		p := n.seen[s.Node]
		if p == nil {
			p = &peerState{seq: s.Seq, changed: now}
			n.seen[s.Node] = p
		} else if p.seq != s.Seq {
			p.seq, p.changed, p.used = s.Seq, now, false
		}
		if time.Duration(now-p.changed) > n.o.StaleAfter {
			continue // its node stopped publishing: gone, whatever the transport says
		}
		taken = append(taken, entry{s: s, id: hashString(n.seedA, s.Node), fresh: !p.used, changed: p.changed})
		p.used = true
	}
	for id := range n.seen {
		if !present[id] {
			delete(n.seen, id)
		}
	}
	self := hashString(n.seedA, n.o.ID)
	v := &view{nodes: 1 + len(taken), ids: make([]uint64, 0, 1+len(taken)),
		clients: map[uint64]remoteClient{}, apis: map[uint64]*remoteAPI{}}
	v.ids = append(v.ids, self)
	for _, e := range taken {
		v.ids = append(v.ids, e.id)
	}
	slices.Sort(v.ids)
	v.self, _ = slices.BinarySearch(v.ids, self)
	v.changed = make([]int64, v.nodes)
	v.changed[v.self] = now
	for _, e := range taken {
		idx, _ := slices.BinarySearch(v.ids, e.id)
		v.changed[idx] = e.changed
		for _, c := range e.s.Clients {
			r := v.clients[c.Key]
			r.demand += float64(c.Demand)
			if e.fresh {
				r.fresh += float64(c.Admitted)
			}
			v.clients[c.Key] = r
		}
		for _, a := range e.s.APIs {
			ra := v.apis[a.Key]
			if ra == nil {
				ra = &remoteAPI{demand: make([]float64, v.nodes), servers: map[uint64]remoteServer{}}
				v.apis[a.Key] = ra
			}
			ra.demand[idx] += float64(a.Demand)
			for _, sv := range a.Servers {
				rs := ra.servers[sv.Key]
				rs.inflight += int(sv.InFlight)
				rs.held += int(sv.Slots)
				if e.fresh {
					rs.fresh += float64(sv.Sent)
				}
				ra.servers[sv.Key] = rs
			}
		}
	}
	return v
}

func (n *Node) addGate(g *Gate) {
	n.regMu.Lock()
	n.gates = append(n.gates, weak.Make(g))
	n.regMu.Unlock()
}

// Nodes returns how many nodes share the limits now, this one included.
func (n *Node) Nodes() int {
	if v := n.view.Load(); v != nil {
		return v.nodes
	}
	return 1
}

// --- shares

// fold smooths a count of requests over dt into a demand per second.
func fold(d float64, count uint32, dt time.Duration, tau time.Duration) float64 {
	rate := float64(count) / dt.Seconds()
	return d + (rate-d)*(1-math.Exp(-dt.Seconds()/tau.Seconds()))
}

// tauFor is the smoothing time of demand for a limit of one request every
// base ns.
func tauFor(base int64, interval time.Duration) time.Duration {
	return min(max(time.Duration(base)*tauIntervals, tauMin, 2*interval), tauMax)
}

// ivalFor is the interval of share of a limit of one request every base.
func ivalFor(base int64, share float64) int64 {
	share = max(share, minShare)
	iv := float64(base) / share
	if iv >= float64(maxIval) {
		return maxIval
	}
	return max(int64(iv), 1)
}

// tolerance is GCRA's burst for one request every ival: a quarter second's
// worth, at least one request.
func tolerance(ival int64) int64 {
	burst := int64(burstWindow) / ival
	if burst < 1 {
		return 0
	}
	return (burst - 1) * ival
}

// shareTolerance is the burst of a node's share: a quarter second's worth
// of it, as standalone, but at least one request early. A node's share is
// often a slow rate (a third of 10/second is one request every 300 ms);
// with no tolerance, requests arriving every 150 ms would be admitted one
// in three as soon as the share fell a hair under a third. Across the
// cluster the extra burst is at most one request per node, and the
// payback charges it.
func shareTolerance(ival int64) int64 {
	return max(tolerance(ival), ival)
}

// rescale keeps a backlog in requests when the interval changes: tat is
// when the bucket is empty again at interval from, and becomes the same
// number of requests at interval to.
func rescale(tat, now, from, to int64) int64 {
	if tat <= now || from <= 0 || from == to {
		return tat
	}
	b := float64(tat-now) * float64(to) / float64(from)
	if b >= float64(maxIval) {
		return now + maxIval
	}
	return now + int64(b)
}

// payback runs what the cluster admitted since since (in requests, at one
// every base ns) through its bucket ctat, and returns the new ctat and how far this
// node's own bucket must move on: the excess over the cluster's rate and
// burst.
func payback(ctat, now, since int64, admitted float64, base int64, nodes int) (int64, int64) {
	ctat = max(ctat, since)
	add := admitted * float64(base) / (1 + paybackMargin)
	if add >= float64(maxIval) {
		add = float64(maxIval)
	}
	ctat += int64(add)
	limit := now + int64(burstWindow) + int64(nodes)*base
	if ctat > limit {
		return limit, ctat - limit
	}
	return ctat, 0
}

// apportion is this node's part of q slots, by the nodes' weights
// (indexed like ids): largest remainder. Remainders are compared in
// sixteenths, so that nodes whose views of the weights differ a little
// still rank them alike; ties go by a hash of the node and salt, so that
// a lone slot moves from node to node over time.
func apportion(q int, w []float64, ids []uint64, self int, salt uint64) int {
	var total float64
	for _, x := range w {
		total += x
	}
	if total <= 0 || len(w) == 0 {
		return q / max(len(w), 1)
	}
	fl := func(j int) (int, float64) {
		x := float64(q) * w[j] / total
		f := math.Floor(x)
		return int(f), x - f
	}
	used := 0
	for j := range w {
		f, _ := fl(j)
		used += f
	}
	own, f := fl(self)
	frac := math.Floor(f * 16)
	tie := mix(ids[self]^salt, k3)
	rank := 0
	for j := range w {
		if j == self {
			continue
		}
		_, fj := fl(j)
		if fj = math.Floor(fj * 16); fj > frac || fj == frac && mix(ids[j]^salt, k3) < tie {
			rank++
		}
	}
	if rank < q-used {
		own++
	}
	return own
}

// --- clients

// clientCluster is a Clients' cluster part: its own shards, so the
// standalone ones keep their layout.
type clientCluster struct {
	node   *Node
	shards [numShards]cshard
}

type cshard struct {
	mu sync.Mutex
	m  map[[2]uint64]centry
	_  [48]byte
}

// centry is a client's state in cluster mode.
type centry struct {
	tat   int64   // this node's GCRA, at ival
	ctat  int64   // the cluster's bucket, for payback
	ival  int64   // this node's interval for the client: base / share
	base  int64   // the threshold's interval
	born  int64   // first request here, while the client is new
	d     float64 // demand here, requests per second, smoothed; -1 until first measured
	n, a  uint32  // offered, admitted since the last tick
	aborn uint32  // admitted since born
	idle  uint32  // ticks without a request
}

// fresh is the state of a client new on this node: its share is the
// floor's if other nodes report it, else the whole threshold.
func (cl *clientCluster) fresh(key uint64, base, now int64) centry {
	e := centry{base: base, born: now, d: -1}
	share := 1.0
	if v := cl.node.view.Load(); v != nil {
		if r, ok := v.clients[key]; ok {
			eps := shareFloor * 1e9 / float64(base)
			share = eps / (r.demand + float64(v.nodes)*eps)
		}
	}
	e.ival = ivalFor(base, share)
	return e
}

// key names a client of an API across the cluster, with the node's seeded
// hash (the standalone key's maphash seeds differ from process to
// process).
func (cl *clientCluster) key(apiID string, id *lists.Identity) [2]uint64 {
	n := cl.node
	var kind, a, b uint64
	switch {
	case id.APIKey != "":
		kind = 1
		a, b = hashString(n.seedA, id.APIKey), hashString(n.seedB, id.APIKey)
	case id.Token != "":
		kind = 2
		a, b = hashString(n.seedA, id.Token), hashString(n.seedB, id.Token)
	case id.Cookie != "":
		kind = 3
		a, b = hashString(n.seedA, id.Cookie), hashString(n.seedB, id.Cookie)
	default:
		kind = 4
		ip := id.IP.As16()
		hi, lo := le64(ip[:8]), le64(ip[8:])
		a, b = mix(hi^n.seedA, lo^k1), mix(lo^n.seedB, hi^k2)
	}
	api := hashString(n.seedA, apiID)
	return [2]uint64{mix(a^api, kind^k3), mix(b^api, kind^k4)}
}

// allowCluster is Allow in cluster mode: the same GCRA, at this node's
// share of the threshold.
func (c *Clients) allowCluster(apiID string, id *lists.Identity, base, now int64) (bool, time.Duration) {
	k := c.cl.key(apiID, id)
	s := &c.cl.shards[k[0]%numShards]
	s.mu.Lock()
	e, known := s.m[k]
	if !known {
		e = c.cl.fresh(k[0], base, now)
	}
	if e.base != base { // the threshold changed: the same share of it
		e.ival = ivalFor(base, float64(e.base)/float64(e.ival))
		e.base = base
	}
	g := gcra{interval: e.ival, tolerance: shareTolerance(e.ival)}
	var ok bool
	var wait time.Duration
	e.tat, ok, wait = g.admit(e.tat, now)
	e.n++
	if ok {
		e.a++
		e.aborn++
	}
	s.m[k] = e
	s.mu.Unlock()
	if !known {
		c.count.Add(1)
	}
	return ok, wait
}

// tickCluster updates every client's demand and share, charges paybacks,
// offers the clients that matter to top and forgets idle ones.
func (c *Clients) tickCluster(v *view, now int64, dt, interval time.Duration, top *clientTop) {
	dropped := 0
	for i := range c.cl.shards {
		s := &c.cl.shards[i]
		s.mu.Lock()
		for k, e := range s.m {
			rate := 1e9 / float64(e.base) // the threshold, per second
			count, adm := e.n, e.a
			e.n, e.a = 0, 0
			since := now - int64(dt)
			if e.d < 0 {
				// A new client's demand starts at its rate so far, not
				// at 0: smoothing from 0 would have each node, at its own
				// phase, a different way up the ramp.
				since = e.born
				e.d = float64(count) / time.Duration(max(now-e.born, e.base)).Seconds()
			} else {
				e.d = fold(e.d, count, dt, tauFor(e.base, interval))
			}
			share := 1.0
			r, reported := v.clients[k[0]]
			if reported {
				eps := shareFloor * rate
				share = (e.d + eps) / (e.d + r.demand + float64(v.nodes)*eps)
			}
			iv := ivalFor(e.base, share)
			e.tat = rescale(e.tat, now, e.ival, iv)
			e.ival = iv
			if e.born != 0 {
				if reported {
					// A client new here and on other nodes at once: each
					// admitted it at the whole threshold until the
					// summaries came. Its admissions here are charged again
					// at the share now known, as if known from the start.
					e.tat = max(e.tat, e.born+min(int64(float64(e.aborn)*float64(iv)), maxIval))
					e.born = 0
				} else if now-e.born > 2*int64(interval)+int64(dt) {
					e.born = 0 // every node has published since: it is this node's alone
				}
			}
			if reported {
				var over int64
				e.ctat, over = payback(e.ctat, now, since, float64(adm)+r.fresh, e.base, v.nodes)
				if over > 0 {
					e.tat = max(e.tat, now) + over
				}
			} else {
				e.ctat = 0
			}
			if e.d >= publishFrac*rate {
				top.offer(ClientLoad{Key: k[0], Demand: float32(e.d), Admitted: adm}, e.d/rate)
			}
			// Forgotten when its bucket is full again and it is idle
			// here, and its demand is negligible or no other node
			// reports it (then after two of its intervals, at least two
			// ticks): a flood of distinct clients costs memory for
			// seconds, as standalone, while a client spread thin over
			// the nodes keeps its demand between its requests. The
			// others report at most MaxClients clients each.
			if count == 0 {
				e.idle++
			} else {
				e.idle = 0
			}
			if e.tat <= now && count == 0 && (e.d < dropFrac*rate || !reported && e.idle >= 2 && int64(e.idle)*int64(dt) >= 2*e.base) {
				delete(s.m, k)
				dropped++
				continue
			}
			s.m[k] = e
		}
		s.mu.Unlock()
	}
	c.count.Add(int64(-dropped))
}

// clientTop keeps the max clients of highest demand relative to their
// threshold: a min-heap, so a flood of distinct clients costs a bounded
// list.
type clientTop struct {
	max  int
	load []ClientLoad
	rank []float64
}

func (t *clientTop) Len() int           { return len(t.load) }
func (t *clientTop) Less(i, j int) bool { return t.rank[i] < t.rank[j] }
func (t *clientTop) Swap(i, j int) {
	t.load[i], t.load[j] = t.load[j], t.load[i]
	t.rank[i], t.rank[j] = t.rank[j], t.rank[i]
}
func (t *clientTop) Push(any) {}
func (t *clientTop) Pop() any {
	t.load, t.rank = t.load[:len(t.load)-1], t.rank[:len(t.rank)-1]
	return nil
}

func (t *clientTop) offer(l ClientLoad, rank float64) {
	if len(t.load) < t.max {
		t.load, t.rank = append(t.load, l), append(t.rank, rank)
		heap.Fix(t, len(t.load)-1)
		return
	}
	if t.max == 0 || rank <= t.rank[0] {
		return
	}
	t.load[0], t.rank[0] = l, rank
	heap.Fix(t, 0)
}

// sorted returns the clients by key, which makes summaries compare and
// compress well.
func (t *clientTop) sorted() []ClientLoad {
	slices.SortFunc(t.load, func(a, b ClientLoad) int { return cmp.Compare(a.Key, b.Key) })
	return t.load
}

// --- gates

// gateCluster is a Gate's cluster part.
type gateCluster struct {
	node    *Node
	key     uint64 // the API's name in summaries
	offered uint32 // requests offered since the last tick
	first   int64  // when the first of them was
	busy    int64  // the tick at which the gate was found busy after idling; 0 idle
	d       float64
	share   float64
}

// applyLocked sets the gate's servers' limits to this node's part of
// them, from view v (nil: none yet). g.mu is held.
func (g *Gate) applyLocked(v *view, now int64) {
	cl := g.cl
	nodes, self := 1, 0
	var ra *remoteAPI
	if v != nil {
		nodes, self = v.nodes, v.self
		ra = v.apis[cl.key]
	}
	// The nodes' demands. A gate that just got busy does not know yet
	// whether the others did too (the API's traffic often starts on all
	// nodes at once): a node that has not published since counts as
	// busy as this one, so a backend never gets the whole limit from
	// every node at once.
	w := make([]float64, nodes)
	total := 0.0
	for j := range w {
		switch {
		case j == self:
			w[j] = cl.d
		case ra != nil:
			w[j] = ra.demand[j]
		}
		if j != self && cl.busy != 0 && v.changed[j] <= cl.busy {
			w[j] = max(w[j], cl.d)
		}
		total += w[j]
	}
	eps := gateFloor*total + 1e-9 // all idle: equal parts
	for j := range w {
		w[j] += eps
	}
	cl.share = w[self] / (total + float64(nodes)*eps)
	for i := range g.servers {
		s := &g.servers[i]
		if !s.Spike.IsZero() {
			base := max(int64(s.Spike.Per.Duration())/int64(s.Spike.Count), 1)
			iv := ivalFor(base, cl.share)
			s.tat = rescale(s.tat, now, s.spike.interval, iv)
			s.base = base
			s.spike = gcra{interval: iv, tolerance: shareTolerance(iv)}
		}
		s.quota, s.others, s.alloc = s.Quota, 0, s.Quota
		if s.Quota > 0 && nodes > 1 {
			salt := uint64(now / int64(10*cl.node.o.Interval))
			s.alloc = apportion(s.Quota, w, v.ids, self, salt)
			var rs remoteServer
			if ra != nil {
				rs = ra.servers[s.key]
			}
			// A slot changes hands in two steps: the node losing it
			// publishes its smaller part (once its requests over it
			// ended), then the node gaining it may use it. Two nodes
			// that briefly both count a slot as theirs leave it unused;
			// they never both fill it.
			s.quota = max(0, min(s.alloc, s.Quota-rs.held))
			// A node whose part is none (idle until now) may send one
			// request while the others report a free slot per node: the
			// reports are up to an interval old.
			s.others = rs.inflight + nodes - 1
		}
	}
}

// tickCluster updates the gate's demand and shares, charges paybacks and
// returns its load for the summary (none when it has none to tell).
func (g *Gate) tickCluster(v *view, now int64, dt, interval time.Duration) (APILoad, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	cl := g.cl
	if cl == nil {
		return APILoad{}, false
	}
	var slowest int64
	for i := range g.servers {
		if s := &g.servers[i]; !s.Spike.IsZero() {
			slowest = max(slowest, int64(s.Spike.Per.Duration())/int64(s.Spike.Count))
		}
	}
	// Idle is relative to the slowest spike threshold: an API under a
	// few requests an hour is not idle between two of them.
	idle := idleDemand
	if slowest > 0 {
		idle = min(idle, dropFrac*1e9/float64(slowest))
	}
	since := now - int64(dt)
	switch {
	case cl.d < idle && cl.offered > 0:
		// Idle until now: the demand starts at its rate since the first
		// request (over at least one interval of the limit), not at 0
		// (see Clients.tickCluster).
		since = max(since, cl.first)
		cl.d = float64(cl.offered) / time.Duration(max(now-since, slowest, int64(time.Millisecond))).Seconds()
		cl.busy = now
	default:
		cl.d = fold(cl.d, cl.offered, dt, tauFor(slowest, interval))
		if cl.d < idle {
			cl.busy = 0
		}
	}
	cl.offered = 0
	g.applyLocked(v, now)
	ra := v.apis[cl.key]
	out := APILoad{Key: cl.key, Demand: float32(cl.d)}
	busy := cl.d >= idle
	for i := range g.servers {
		s := &g.servers[i]
		if ra != nil && !s.Spike.IsZero() {
			var over int64
			s.ctat, over = payback(s.ctat, now, since, float64(s.sent)+ra.servers[s.key].fresh, s.base, v.nodes)
			if over > 0 {
				s.tat = max(s.tat, now) + over
			}
		}
		busy = busy || s.inflight > 0 || s.sent > 0 || s.Quota > 0
		out.Servers = append(out.Servers, ServerLoad{Key: s.key, InFlight: uint32(s.inflight), Sent: s.sent,
			Slots: uint32(max(s.alloc, s.inflight))})
		s.sent = 0
	}
	g.dispatchLocked(now)
	return out, busy
}

// --- hashing: a seeded 64-bit hash that every node computes alike (the
// standalone keys use maphash, whose seeds are per process).

const (
	k1 = 0xa0761d6478bd642f
	k2 = 0xe7037ed1a0b428db
	k3 = 0x8ebc6af09c88c6e3
	k4 = 0x589965cc75374cc3
)

func mix(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

func le64[T string | []byte](s T) uint64 {
	_ = s[7]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

func le32(s string) uint64 {
	_ = s[3]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24
}

// hashString is wyhash's construction: 16 bytes per multiply.
func hashString(seed uint64, s string) uint64 {
	h := seed ^ k1
	n := uint64(len(s))
	for len(s) > 16 {
		h = mix(le64(s)^k2, le64(s[8:])^h)
		s = s[16:]
	}
	var a, b uint64
	switch {
	case len(s) >= 8:
		a, b = le64(s), le64(s[len(s)-8:])
	case len(s) >= 4:
		a, b = le32(s), le32(s[len(s)-4:])
	case len(s) > 0:
		a = uint64(s[0])<<16 | uint64(s[len(s)>>1])<<8 | uint64(s[len(s)-1])
	}
	return mix(k2^n, mix(a^k2, b^h))
}

// joinLocked names the gate and its servers among the nodes and applies
// the node's current shares. g.mu is held (or g is not shared yet).
func (g *Gate) joinLocked(o GateOptions) {
	n := g.cl.node
	g.cl.key = n.Key(o.API)
	for i := range g.servers {
		g.servers[i].key = n.Key(g.servers[i].Addr)
	}
	g.applyLocked(n.view.Load(), g.now())
}
