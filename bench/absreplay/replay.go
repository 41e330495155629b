package main

import (
	"container/heap"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"sort"
	"time"

	"github.com/ase-project/ase/internal/apidef"
	"github.com/ase-project/ase/internal/behave"
	"github.com/ase-project/ase/internal/lists"
)

// Config is one replay's setup.
type Config struct {
	Clients   int           // normal clients (humans and a few integrations)
	Training  time.Duration // the API's training period
	Window    time.Duration // the engine's window
	Detection time.Duration // normal traffic plus the attacks, after training
	Seed      uint64
	Items     int // the catalogue's size
	// BigNAT humans share one more address (an office's); 0 in the
	// default mix, whose NATs are small.
	BigNAT int
}

// DefaultConfig is the benchmark's default setup.
func DefaultConfig() Config {
	return Config{Clients: 2000, Training: time.Hour, Window: time.Minute, Detection: 30 * time.Minute, Seed: 1, Items: 5000}
}

// The normal mix's parameters.
const (
	meanSession    = 10 * time.Minute // a human's session
	meanGap        = 20 * time.Minute // between a human's sessions
	humanRateMed   = 0.1              // requests a second in a session, median (lognormal)
	humanRateSigma = 0.8
	humanRateMax   = 1.0
	integrFrac     = 0.005 // clients that are machine integrations (API keys), always on
	integrRateMed  = 1.0
	integrRateMax  = 4.0
	natFrac        = 0.10 // humans behind a shared address (NAT), in groups of 2..8
	roamFrac       = 0.02 // humans switching between two addresses
	cookieFrac     = 0.25 // humans with a session cookie (a new one per login); the others a bearer token
	mistype        = 0.05 // logins failing on a mistyped password (401)
	staleLink      = 0.015
	sessionLogin   = 0.3 // token clients logging in at a session's start (cookie clients always do)
)

// attack is one attacker, started at a known time.
type attack struct {
	Name     string
	Det      behave.Detector
	start    int64
	every    time.Duration // between requests
	reqs     int           // sent since start
	fire     func(r *replay, n int, now int64)
	res      AttackResult
	detected map[behave.Detector]bool
}

// AttackResult is what the replay measured of one attacker.
type AttackResult struct {
	Attack         string   `json:"attack"`
	Detector       string   `json:"detector"`
	StartS         float64  `json:"start_s"` // into the detection period
	RatePerS       float64  `json:"rate_per_s"`
	Detected       bool     `json:"detected"`
	DelayS         float64  `json:"delay_s"`
	DelayRequests  int      `json:"delay_requests"`
	Identity       string   `json:"identity,omitempty"` // the first one found
	Figure         string   `json:"figure,omitempty"`
	Observed       float64  `json:"observed,omitempty"`
	Threshold      float64  `json:"threshold,omitempty"`
	Requests       int      `json:"requests"`   // the attacker's, in all
	Detections     int      `json:"detections"` // of the attacker's identities, by any detector
	OtherDetectors []string `json:"other_detectors,omitempty"`
}

// FP is a normal identity reported.
type FP struct {
	Identity  string  `json:"identity"`
	Detector  string  `json:"detector"`
	Figure    string  `json:"figure"`
	Observed  float64 `json:"observed"`
	Threshold float64 `json:"threshold"`
	AtS       float64 `json:"at_s"` // into the detection period
	Note      string  `json:"note,omitempty"`
}

// Result is a replay's outcome.
type Result struct {
	Clients          int                   `json:"clients"`
	Seed             uint64                `json:"seed"`
	Training         string                `json:"training"`
	Window           string                `json:"window"`
	Detection        string                `json:"detection"`
	Requests         int64                 `json:"requests"`
	NormalRequests   int64                 `json:"normal_requests_detection"`
	NormalIdentities int                   `json:"normal_identities"` // seen in the detection period
	FalsePositives   int                   `json:"false_positives"`   // distinct normal identities reported
	FPRate           float64               `json:"false_positive_rate"`
	FPByDetector     map[string]int        `json:"false_positives_by_detector"`
	FPs              []FP                  `json:"false_positive_details,omitempty"` // the first of each identity
	Attacks          []AttackResult        `json:"attacks"`
	Thresholds       []behave.FigureStatus `json:"thresholds"`
}

type clientKind uint8

const (
	human clientKind = iota
	integration
)

type client struct {
	idx       int
	kind      clientKind
	ips       [2]netip.Addr
	nIPs      int
	cur       int
	cred      lists.Kind
	token     string
	cookie    string
	apiKey    string
	user      string
	rate      float64 // requests a second in a session
	inSession bool
	end       int64 // the session's
	login     int   // login attempts pending (a retry after a mistyped password)
	orders    int
	sessions  int
}

// actor is something that sends requests: a client or an attacker.
type actor struct {
	next int64
	seq  int
	c    *client
	a    *attack
}

type queue []*actor

func (q queue) Len() int { return len(q) }
func (q queue) Less(i, j int) bool {
	if q[i].next != q[j].next {
		return q[i].next < q[j].next
	}
	return q[i].seq < q[j].seq
}
func (q queue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *queue) Push(x any)   { *q = append(*q, x.(*actor)) }
func (q *queue) Pop() any {
	old := *q
	x := old[len(old)-1]
	*q = old[:len(old)-1]
	return x
}

type replay struct {
	cfg         Config
	rng         *rand.Rand
	zipf        *rand.Zipf
	cats        *rand.Zipf
	e           *behave.Engine
	api         *apidef.API
	now         int64
	t0          int64
	detectStart int64
	end         int64
	clients     []*client
	attacks     []*attack
	attackOf    map[string]*attack // identity key -> attacker
	cur         *attack            // the attacker whose request is being decided
	requests    int64
	normalReqs  int64
	normalSeen  map[string]bool
	fps         map[string]bool
	fpByDet     map[string]int
	fpList      []FP
}

// loop returns the i-th address of loopback block b (127.b.x.y).
func loop(b, i int) netip.Addr {
	return netip.AddrFrom4([4]byte{127, byte(b + i>>16), byte(i >> 8), byte(i)})
}

func identKey(k lists.Kind, name, value string) string {
	if name != "" {
		return k.String() + ":" + name + "=" + value
	}
	return k.String() + ":" + value
}

func (r *replay) exp(mean float64) float64 { return r.rng.ExpFloat64() * mean }

func (r *replay) after(now int64, sec float64) int64 {
	return now + max(int64(sec*1e9), int64(time.Millisecond))
}

// Run replays cfg's mix: training, then detection with the attacks.
func Run(cfg Config) *Result {
	r := newReplay(cfg)
	r.e = behave.New(behave.Config{Window: cfg.Window, Training: cfg.Training, MaxIdentities: 1 << 17, Now: func() time.Time { return time.Unix(0, r.now) }},
		r.onDetect)
	r.api = &apidef.API{ID: "shop", URL: "/shop", LoginURL: "/shop/login"}
	r.e.Sync(map[string]*apidef.API{"shop": r.api})

	q := &queue{}
	seq := 0
	push := func(a *actor) { a.seq = seq; seq++; heap.Push(q, a) }
	r.makeClients()
	for _, c := range r.clients {
		push(&actor{next: r.first(c), c: c})
	}
	r.makeAttacks()
	for _, a := range r.attacks {
		push(&actor{next: a.start, a: a})
	}
	for q.Len() > 0 {
		x := (*q)[0]
		if x.next >= r.end {
			break
		}
		r.now = x.next
		if x.c != nil {
			x.next = r.step(x.c, x.next)
		} else {
			a := x.a
			a.reqs++
			r.cur = a
			a.fire(r, a.reqs-1, x.next)
			r.cur = nil
			jitter := 0.8 + 0.4*r.rng.Float64()
			x.next += max(int64(float64(a.every)*jitter), 1)
		}
		heap.Fix(q, 0)
	}
	return r.result()
}

func newReplay(cfg Config) *replay {
	if cfg.Items < 2 {
		cfg.Items = 5000
	}
	r := &replay{cfg: cfg, attackOf: map[string]*attack{}, normalSeen: map[string]bool{}, fps: map[string]bool{}, fpByDet: map[string]int{}}
	r.rng = rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))
	r.zipf = rand.NewZipf(r.rng, 1.1, 1, uint64(cfg.Items-1))
	r.cats = rand.NewZipf(r.rng, 1.3, 1, 49)
	r.t0 = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	r.now = r.t0
	r.detectStart = r.t0 + int64(cfg.Training)
	r.end = r.detectStart + int64(cfg.Detection)
	return r
}

func (r *replay) makeClients() {
	cfg := r.cfg
	n := cfg.Clients
	nInt := max(1, int(math.Round(float64(n)*integrFrac)))
	nat, natLeft := 0, 0 // the shared address, and the clients it still takes
	inNAT := int(float64(n-nInt) * natFrac)
	for i := 0; i < n; i++ {
		c := &client{idx: i, user: fmt.Sprintf("user%05d", i), nIPs: 1, orders: 1 + r.rng.IntN(8)}
		c.ips[0] = loop(10, i)
		if i < nInt {
			c.kind = integration
			c.cred = lists.APIKey
			c.apiKey = fmt.Sprintf("ak-%016x", r.rng.Uint64())
			c.rate = math.Min(integrRateMed*math.Exp(0.5*r.rng.NormFloat64()), integrRateMax)
		} else {
			c.kind = human
			c.rate = math.Min(humanRateMed*math.Exp(humanRateSigma*r.rng.NormFloat64()), humanRateMax)
			if r.rng.Float64() < cookieFrac {
				c.cred = lists.Cookie
			} else {
				c.cred = lists.Token
				c.token = fmt.Sprintf("eyJ-%016x%016x", r.rng.Uint64(), r.rng.Uint64())
			}
			switch h := i - nInt; {
			case h < cfg.BigNAT:
				c.ips[0] = loop(7, 1)
			case h < cfg.BigNAT+inNAT: // groups of 2..8 behind one address
				if natLeft == 0 {
					nat, natLeft = nat+1, 2+r.rng.IntN(7)
				}
				natLeft--
				c.ips[0] = loop(9, nat)
			case h < cfg.BigNAT+inNAT+max(1, int(float64(n-nInt)*roamFrac)):
				c.nIPs = 2
				c.ips[1] = loop(8, i)
			}
		}
		r.clients = append(r.clients, c)
	}
}

// first puts c in its stationary state at the start: in a session or not.
func (r *replay) first(c *client) int64 {
	if c.kind == integration {
		c.inSession, c.end = true, math.MaxInt64
		return r.after(r.t0, r.exp(1/c.rate))
	}
	on := float64(meanSession) / float64(meanSession+meanGap)
	if r.rng.Float64() < on {
		c.inSession = true
		c.end = r.after(r.t0, r.exp(meanSession.Seconds()))
		c.newCookie(r)
		return r.after(r.t0, r.exp(1/c.rate))
	}
	return r.after(r.t0, r.exp(meanGap.Seconds()))
}

func (c *client) newCookie(r *replay) {
	if c.cred == lists.Cookie {
		c.sessions++
		c.cookie = fmt.Sprintf("s%05d-%d-%08x", c.idx, c.sessions, r.rng.Uint32())
	}
}

func (c *client) identity() lists.Identity {
	id := lists.Identity{IP: c.ips[c.cur]}
	switch c.cred {
	case lists.Token:
		id.Token = c.token
	case lists.Cookie:
		id.CookieName, id.Cookie = "SESSIONID", c.cookie
	case lists.APIKey:
		id.APIKeyName, id.APIKey = "x-api-key", c.apiKey
	}
	return id
}

// step sends c's next request (or starts or ends its session) and returns
// when c acts next.
func (r *replay) step(c *client, now int64) int64 {
	if c.nIPs == 2 && r.rng.Float64() < 0.03 {
		c.cur = 1 - c.cur // moved between home and mobile
	}
	if !c.inSession {
		c.inSession = true
		c.end = r.after(now, r.exp(meanSession.Seconds()))
		if c.cred == lists.Cookie || r.rng.Float64() < sessionLogin {
			c.login = 3
		}
	} else if now >= c.end {
		c.inSession = false
		return r.after(now, r.exp(meanGap.Seconds()))
	}
	if c.login > 0 {
		c.login--
		id := lists.Identity{IP: c.ips[c.cur], ClaimedUsername: c.user}
		if c.login > 0 && r.rng.Float64() < mistype {
			r.do(&id, "POST", "/shop/login", 401, 90)
			return r.after(now, 3+r.exp(6))
		}
		c.login = 0
		c.newCookie(r)
		r.do(&id, "POST", "/shop/login", 200, 420)
		return r.after(now, r.exp(1/c.rate))
	}
	id := c.identity()
	if c.kind == integration {
		r.integration(&id)
	} else {
		r.browse(c, &id)
	}
	return r.after(now, r.exp(1/c.rate))
}

func (r *replay) size(median float64) int64 {
	return int64(median * math.Exp(0.5*r.rng.NormFloat64()))
}

// browse is one request of a human: mostly the catalogue (Zipf), some
// search, cart, orders and invoices, a stale link now and then.
func (r *replay) browse(c *client, id *lists.Identity) {
	p := r.rng.Float64()
	switch {
	case p < 0.55:
		item := r.zipf.Uint64() + 1
		if r.rng.Float64() < staleLink {
			r.do(id, "GET", fmt.Sprintf("/shop/items/%d", uint64(r.cfg.Items)+1+r.rng.Uint64N(2000)), 404, 150)
			return
		}
		r.do(id, "GET", fmt.Sprintf("/shop/items/%d", item), 200, r.size(3000))
	case p < 0.65:
		r.do(id, "GET", fmt.Sprintf("/shop/categories/%d", r.cats.Uint64()+1), 200, r.size(12000))
	case p < 0.75:
		r.do(id, "GET", "/shop/search", 200, r.size(8000))
	case p < 0.85:
		r.do(id, "GET", "/shop/cart", 200, r.size(1200))
	case p < 0.90:
		r.do(id, "POST", "/shop/cart", 200, 300)
	case p < 0.95:
		r.do(id, "GET", "/shop/orders", 200, r.size(4000))
	case p < 0.985:
		r.do(id, "GET", fmt.Sprintf("/shop/orders/%d-%d", c.idx, r.rng.IntN(c.orders)), 200, r.size(2500))
	case p < 0.995:
		r.do(id, "GET", fmt.Sprintf("/shop/invoices/%d-%d.pdf", c.idx, r.rng.IntN(c.orders)), 200, r.size(150_000))
	default:
		r.do(id, "GET", "/shop/favicon.ico", 404, 150)
	}
}

// integration is one request of a partner's integration: polling orders
// and inventory, reading and updating items.
func (r *replay) integration(id *lists.Identity) {
	p := r.rng.Float64()
	switch {
	case p < 0.4:
		r.do(id, "GET", "/shop/inventory", 200, r.size(20000))
	case p < 0.7:
		r.do(id, "GET", "/shop/orders", 200, r.size(6000))
	case p < 0.9:
		item := r.zipf.Uint64() + 1
		if r.rng.Float64() < staleLink {
			r.do(id, "GET", fmt.Sprintf("/shop/items/%d", uint64(r.cfg.Items)+1+r.rng.Uint64N(2000)), 404, 150)
			return
		}
		r.do(id, "GET", fmt.Sprintf("/shop/items/%d", item), 200, r.size(3000))
	default:
		r.do(id, "PUT", fmt.Sprintf("/shop/items/%d", r.zipf.Uint64()+1), 200, 200)
	}
}

// do sends one request through the engine and answers it.
func (r *replay) do(id *lists.Identity, method, path string, status int, bytes int64) {
	r.requests++
	if r.cur == nil && r.now >= r.detectStart {
		r.normalReqs++
		r.seeNormal(lists.IP, "", id.IP.String())
		switch {
		case id.Token != "":
			r.seeNormal(lists.Token, "", id.Token)
		case id.Cookie != "":
			r.seeNormal(lists.Cookie, id.CookieName, id.Cookie)
		case id.APIKey != "":
			r.seeNormal(lists.APIKey, id.APIKeyName, id.APIKey)
		}
	}
	var t behave.Ticket
	r.e.Begin(r.api, id, method, path, r.now, &t)
	r.e.End(&t, status, bytes, behave.IdentityValues(id)) // as inline: the answer's detections on credentials are listed at once
}

func (r *replay) seeNormal(k lists.Kind, name, value string) {
	if k != lists.IP { // normal addresses are never an attacker's
		if a := r.attackOf[identKey(k, name, value)]; a != nil && r.now >= a.start {
			return // the stolen token, once stolen
		}
	}
	r.normalSeen[identKey(k, name, value)] = true
}

// onDetect is the engine's Reporter.
func (r *replay) onDetect(d *behave.Detection) bool {
	key := identKey(d.Kind, d.Name, d.Value)
	at := d.At.UnixNano()
	if a := r.attacker(d.Kind, d.Name, d.Value); a != nil && at >= a.start {
		a.res.Detections++
		if d.Detector == a.Det && !a.res.Detected {
			a.res.Detected = true
			a.res.DelayS = float64(at-a.start) / 1e9
			a.res.DelayRequests = a.reqs
			a.res.Identity = key
			a.res.Figure = d.Figure.String()
			a.res.Observed, a.res.Threshold = d.Observed, d.Threshold
		} else if d.Detector != a.Det && !a.detected[d.Detector] {
			a.res.OtherDetectors = append(a.res.OtherDetectors, d.Detector.String())
		}
		a.detected[d.Detector] = true
		return true
	}
	if !r.fps[key] {
		r.fps[key] = true
		r.fpByDet[d.Detector.String()]++
		r.fpList = append(r.fpList, FP{Identity: key, Detector: d.Detector.String(), Figure: d.Figure.String(), Observed: d.Observed,
			Threshold: d.Threshold, AtS: float64(at-r.detectStart) / 1e9, Note: d.Note})
	}
	return true
}

// attackBlock is the first of the attackers' address blocks (127.200/16).
const attackBlock = 200

// words a prober tries, each under several prefixes.
var words = []string{"admin", ".env", ".git/config", "backup", "debug", "console", "actuator/env", "api/v1/users", "config.json", "phpinfo.php",
	"wp-login.php", "internal", "graphql", "swagger.json", "server-status", "old", "test", "dump.sql", "metrics", "private"}

func (r *replay) makeAttacks() {
	// The stolen token is a human's with a bearer token and its own address.
	var victim *client
	for _, c := range r.clients {
		if c.kind == human && c.cred == lists.Token && c.nIPs == 1 && c.ips[0] == loop(10, c.idx) {
			victim = c
			break
		}
	}
	// The username credential stuffing is against: a real user's.
	target := r.clients[len(r.clients)/2].user
	zipfItem := func() uint64 { return r.zipf.Uint64() + 1 }

	r.attacks = []*attack{
		{Name: "stolen token (a new address every request)", Det: behave.StolenCredential, every: 4 * time.Second,
			fire: func(r *replay, n int, now int64) {
				r.do(&lists.Identity{IP: loop(attackBlock, n), Token: victim.token}, "GET", fmt.Sprintf("/shop/items/%d", zipfItem()), 200, r.size(3000))
			}},
		{Name: "login brute force (one client, many usernames)", Det: behave.LoginAttack, every: 3 * time.Second,
			fire: func(r *replay, n int, now int64) {
				u := r.clients[r.rng.IntN(len(r.clients))].user
				r.do(&lists.Identity{IP: loop(attackBlock+1, 1), ClaimedUsername: u}, "POST", "/shop/login", 401, 90)
			}},
		{Name: "credential stuffing (many addresses, one username)", Det: behave.LoginAttack, every: 3 * time.Second,
			fire: func(r *replay, n int, now int64) {
				r.do(&lists.Identity{IP: loop(attackBlock+2, n), ClaimedUsername: target}, "POST", "/shop/login", 401, 90)
			}},
		{Name: "probing (distinct paths, 404)", Det: behave.Probing, every: time.Second,
			fire: func(r *replay, n int, now int64) {
				path := fmt.Sprintf("/shop/%s", words[n%len(words)])
				if n >= len(words) {
					path = fmt.Sprintf("/shop/v%d/%s", n/len(words), words[n%len(words)])
				}
				r.do(&lists.Identity{IP: loop(attackBlock+3, 1)}, "GET", path, 404, 150)
			}},
		{Name: "extreme activity (20 req/s, normal paths)", Det: behave.ExtremeActivity, every: 50 * time.Millisecond,
			fire: func(r *replay, n int, now int64) {
				id := lists.Identity{IP: loop(attackBlock+4, 1), Token: "eyJ-bot-extreme"}
				if n%4 == 0 {
					r.do(&id, "GET", "/shop/search", 200, r.size(8000))
				} else {
					r.do(&id, "GET", fmt.Sprintf("/shop/items/%d", zipfItem()), 200, r.size(3000))
				}
			}},
		{Name: "exfiltration (800 KB answers, one every 2 s)", Det: behave.Exfiltration, every: 2 * time.Second,
			fire: func(r *replay, n int, now int64) {
				r.do(&lists.Identity{IP: loop(attackBlock+5, 1), Token: "eyJ-insider-export"}, "GET", fmt.Sprintf("/shop/orders/export/%d", n), 200, r.size(800_000))
			}},
		{Name: "scraping (every item in turn, 4 req/s)", Det: behave.Scraping, every: 250 * time.Millisecond,
			fire: func(r *replay, n int, now int64) {
				r.do(&lists.Identity{IP: loop(attackBlock+6, 1)}, "GET", fmt.Sprintf("/shop/items/%d", n%r.cfg.Items+1), 200, r.size(3000))
			}},
	}
	d := int64(r.cfg.Detection)
	for i, a := range r.attacks {
		// Staggered over the detection period's first half, off the minute.
		a.start = r.detectStart + d/10 + int64(i)*(d/2)/int64(len(r.attacks)) + int64(i+1)*7*int64(time.Second)
		a.detected = map[behave.Detector]bool{}
		a.res = AttackResult{Attack: a.Name, Detector: a.Det.String(), StartS: float64(a.start-r.detectStart) / 1e9, RatePerS: 1 / a.every.Seconds()}
	}
	// Attacker i's addresses are 127.(200+i).x.y; its credentials:
	r.attackOf[identKey(lists.Token, "", victim.token)] = r.attacks[0]
	r.attackOf[identKey(lists.Token, "", "eyJ-bot-extreme")] = r.attacks[4]
	r.attackOf[identKey(lists.Token, "", "eyJ-insider-export")] = r.attacks[5]
}

// attacker returns the attacker identity (kind, name, value) belongs to,
// nil for a normal one.
func (r *replay) attacker(k lists.Kind, name, value string) *attack {
	if k == lists.IP {
		a, err := netip.ParseAddr(value)
		if err != nil || !a.Is4() {
			return nil
		}
		if b := int(a.As4()[1]) - attackBlock; b >= 0 && b < len(r.attacks) {
			return r.attacks[b]
		}
		return nil
	}
	return r.attackOf[identKey(k, name, value)]
}

func (r *replay) result() *Result {
	res := &Result{Clients: r.cfg.Clients, Seed: r.cfg.Seed, Training: r.cfg.Training.String(), Window: r.cfg.Window.String(),
		Detection: r.cfg.Detection.String(), Requests: r.requests, NormalRequests: r.normalReqs, NormalIdentities: len(r.normalSeen),
		FalsePositives: len(r.fps), FPByDetector: r.fpByDet, FPs: r.fpList}
	if len(r.normalSeen) > 0 {
		res.FPRate = float64(len(r.fps)) / float64(len(r.normalSeen))
	}
	for _, a := range r.attacks {
		a.res.Requests = a.reqs
		sort.Strings(a.res.OtherDetectors)
		res.Attacks = append(res.Attacks, a.res)
	}
	if st, ok := r.e.Status("shop"); ok && len(st) == 1 {
		res.Thresholds = st[0].Figures
	}
	return res
}
