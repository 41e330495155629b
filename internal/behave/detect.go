package behave

import (
	"hash/maphash"
	"math"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/ase-project/ase/internal/apidef"
	"github.com/ase-project/ase/internal/lists"
)

// Behavioural detection (issue 20): the vendor's ABS engine, in process.
//
// Every request that passes the lists is counted, per API, for each
// identity it presents: its address and, when present, its token, API
// key, session cookie and (gateway-asserted) username. Per identity ASE
// keeps one tumbling window (Config.Window) of figures: requests,
// response bytes, failed logins, distinct paths answered 2xx and 4xx, and
// for credentials the distinct addresses they came from; for a username
// someone tries to log in as, the distinct clients that failed. During an
// API's training period (Config.Training) each completed window's figures
// are learned into the API's distributions (Histogram); when training
// ends each figure's threshold is Factor times its learned Quantile, never
// below its Floor, unless the operator overrides it. From then on a
// window whose figure passes its threshold is a detection: the identity
// is reported (Reporter) with its evidence, once per window and detector.
//
// Request-side figures (requests, distinct addresses) are checked when
// the request is decided (Begin), so the identity is listed before the
// request goes on: the engine checks the deny list again and refuses it.
// Response-side figures (bytes, failed logins, answered paths) are known
// only when the answer is (End): a detection there is held in the
// identity's state and listed at its next request, before that request is
// decided (the answer's strings are gone by then; the next request
// carries them again).
//
// Memory is fixed: at most Config.MaxIdentities identities are tracked, in
// StateBytes each; past the cap an identity not seen for the longest is
// evicted (CLOCK). Per API the learned distributions take about 53 KiB
// (one per kind of identity and figure).
// Nothing on the path allocates except a detection's report.

// Detector is one kind of attack, named after the vendor's attack types.
type Detector uint8

// The detectors.
const (
	StolenCredential Detector = iota // one credential from more addresses than is normal
	LoginAttack                      // failed logins from one client, or from many against one username
	Probing                          // a client collecting 4xx answers over many distinct paths
	ExtremeActivity                  // a client far above the API's learned request rate
	Exfiltration                     // a client's response bytes far above the learned
	Scraping                         // a client walking many distinct resources
	NumDetectors
)

var detectorNames = [NumDetectors]string{"stolen_credential", "login_attack", "api_probing", "extreme_client_activity", "data_exfiltration", "content_scraping"}

func (d Detector) String() string {
	if d < NumDetectors {
		return detectorNames[d]
	}
	return "unknown"
}

// ParseDetector reads a detector's name.
func ParseDetector(s string) (Detector, bool) {
	for i, n := range detectorNames {
		if n == s {
			return Detector(i), true
		}
	}
	return 0, false
}

// AttackType is the vendor's name of the attack d found on an identity of
// kind k ("Stolen Token Attack").
func (d Detector) AttackType(k lists.Kind) string {
	switch d {
	case StolenCredential:
		switch k {
		case lists.Cookie:
			return "Stolen Cookie Attack"
		case lists.APIKey:
			return "Stolen API Key Attack"
		case lists.Username:
			return "Stolen Username Attack"
		}
		return "Stolen Token Attack"
	case LoginAttack:
		return "API Login Attack"
	case Probing:
		return "API Probing Replay Attack"
	case ExtremeActivity:
		return "Extreme Client Activity Attack"
	case Exfiltration:
		return "Data Exfiltration Attack"
	case Scraping:
		return "Content Scraping Attack"
	}
	return "unknown"
}

// Figure is what is counted per identity and window; each belongs to one
// detector.
type Figure uint8

// The figures.
const (
	FigIPs            Figure = iota // distinct addresses a credential came from
	FigFailedLogins                 // failed logins of a client at the API's login_url
	FigFailingClients               // distinct clients failing to log in as one username
	FigErrorPaths                   // distinct paths answered 4xx
	FigRequests                     // requests
	FigBytes                        // response body bytes
	FigOKPaths                      // distinct paths answered 2xx
	NumFigures
)

var figureNames = [NumFigures]string{"distinct_ips", "failed_logins", "failing_clients", "error_paths", "requests", "response_bytes", "distinct_paths"}

// FigureDetector maps each figure to its detector.
var FigureDetector = [NumFigures]Detector{StolenCredential, LoginAttack, LoginAttack, Probing, ExtremeActivity, Exfiltration, Scraping}

func (f Figure) String() string {
	if f < NumFigures {
		return figureNames[f]
	}
	return "unknown"
}

// ParseFigure reads a figure's name.
func ParseFigure(s string) (Figure, bool) {
	for i, n := range figureNames {
		if n == s {
			return Figure(i), true
		}
	}
	return 0, false
}

// Rule is how a figure's threshold is derived from what was learned.
type Rule struct {
	Quantile float64 // of the learned per-window values
	Factor   float64
	// Floor is the least threshold; for requests and bytes it is per
	// minute of window, scaled to the window's length.
	Floor  float64
	PerMin bool // Floor scales with the window
}

// Rules are the default derivations, per figure. A client is an outlier
// only when it is several times past nearly every window learned, and
// past a floor a normal client never reaches.
var Rules = [NumFigures]Rule{
	FigIPs:            {Quantile: 0.999, Factor: 2, Floor: 4},
	FigFailedLogins:   {Quantile: 0.999, Factor: 3, Floor: 10},
	FigFailingClients: {Quantile: 0.999, Factor: 2, Floor: 5},
	FigErrorPaths:     {Quantile: 0.999, Factor: 3, Floor: 10},
	FigRequests:       {Quantile: 0.999, Factor: 3, Floor: 60, PerMin: true},
	FigBytes:          {Quantile: 0.999, Factor: 3, Floor: 2 << 20, PerMin: true},
	FigOKPaths:        {Quantile: 0.999, Factor: 3, Floor: 20},
}

// MinSamples is how many windows a figure must have learned for its
// learned threshold to count; with fewer, the floor alone applies.
const MinSamples = 10

// Mode is what a detector does with what it finds.
type Mode uint8

// The modes.
const (
	Enforce Mode = iota // deny-list the identity
	Report              // report it (audit, metrics, the attack list) only
	Off                 // neither
)

var modeNames = [...]string{"enforce", "report", "off"}

func (m Mode) String() string {
	if int(m) < len(modeNames) {
		return modeNames[m]
	}
	return "unknown"
}

// ParseMode reads a mode's name.
func ParseMode(s string) (Mode, bool) {
	for i, n := range modeNames {
		if n == s {
			return Mode(i), true
		}
	}
	return 0, false
}

// Policy is an operator's settings for one API: a mode per detector and
// a threshold per figure (0: the learned one).
type Policy struct {
	Modes      [NumDetectors]Mode
	Thresholds [NumFigures]float64
}

// Config sets the engine up.
type Config struct {
	Training      time.Duration // an API's training period
	Window        time.Duration // the window figures are counted over
	MaxIdentities int           // identities tracked at most
	Now           func() time.Time
}

// Sample is one request of a detected identity, for the evidence.
type Sample struct {
	Time   time.Time  `json:"time"`
	Method string     `json:"method"`
	Path   string     `json:"path"`
	Status int        `json:"status,omitempty"`
	IP     netip.Addr `json:"ip"`
}

// Detection is one identity found attacking, with its evidence.
type Detection struct {
	Detector  Detector
	Figure    Figure
	Mode      Mode
	API       string
	Kind      lists.Kind
	Name      string // a cookie's or API key's name
	Value     string
	IP        netip.Addr // the address of the request that showed it
	Observed  float64
	Threshold float64
	Learned   float64 // the learned quantile (0 before training ends or with an override)
	Windows   uint64  // windows learned
	Override  bool    // Threshold is the operator's
	Window    time.Duration
	At        time.Time
	Note      string // e.g. the username a credential-stuffing attack targets
	Samples   []Sample
}

// Reporter receives detections, on the data path: it must be quick. It
// returns whether the identity is deny-listed now.
type Reporter func(d *Detection) bool

const (
	shardBits = 6
	numShards = 1 << shardBits
	// maxIDs is how many of a request's identities have their answer
	// counted: its address and up to seven credential values. Every value
	// is counted at the request (see Begin).
	maxIDs      = 8
	samplesKept = 3
	samplePath  = 38 // bytes of a sample's path kept (a sample is one cache line)
	noteLen     = 48
)

// sample is a Sample in fixed memory.
type sample struct {
	at     int64
	ip     [16]byte
	method uint8 // index in methods; 0 = other
	plen   uint8
	path   [samplePath]byte
}

var methods = [...]string{"OTHER", "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"}

func methodCode(m string) uint8 {
	for i, s := range methods[1:] {
		if s == m {
			return uint8(i + 1)
		}
	}
	return 0
}

// state is one identity's window, in fixed memory. The fields every
// request touches come first: with the tracker's key they share one cache
// line.
type state struct {
	start      int64 // the window's start, Unix ns
	bytes      uint64
	reqs       uint32
	fails      uint32
	kind       lists.Kind
	reported   uint8 // detectors found this window (bits)
	flag       uint8 // a response-side detection held for the next request: its figure+1 (0: none)
	nsamp      uint8
	lastSample uint8
	sgen       uint8               // samples ever written (wrapping): End's check that its sample is still there
	status     [samplesKept]uint16 // each sample's answer status (0: not known yet), here so End touches one line
	flagNoteN  uint8
	// warm is set once a figure of the window passes half its threshold:
	// from then on every request is kept as a sample (before, only the
	// window's first samplesKept are: a client far from every threshold,
	// the usual case, does not touch its samples' lines).
	warm bool
	// lastIP is the hash of the address a credential came from last: the
	// same address again (the usual case) skips its sketch's cache line.
	lastIP uint64
	// The second line: the sketches a request (ips, for a credential)
	// and its 2xx answer (okPaths) touch. Then what is seldom touched: the
	// sketch of 4xx answers, a held detection, the samples (a line each).
	ips      HLL // credentials: addresses; usernames logged in as: failing clients
	okPaths  HLL
	errPaths HLL
	flagObs  float64
	flagThr  float64
	flagNote [noteLen]byte
	_        [32]byte // the samples start on a line
	samples  [samplesKept]sample
}

// lineMask is the lines of an identity's slot a request touches,
// prefetched before any is read (Tracker.Prefetch): the key and the
// counters, and the line of the sketches of addresses (a credential's) and
// of 2xx paths (its answer's).
var lineMask = uint32(1 | 1<<((unsafe.Offsetof(slot[state]{}.s)+unsafe.Offsetof(slot[state]{}.s.ips))/64) |
	1<<((unsafe.Offsetof(slot[state]{}.s)+unsafe.Offsetof(slot[state]{}.s.okPaths))/64))

// StateBytes is the memory one tracked identity takes, with its share of
// the tracker's index (two 4-byte entries) and its CLOCK bit: a 448-byte
// slot (the key, the counters, three 32-byte sketches, a held detection,
// three 64-byte samples) and 9 bytes.
const StateBytes = 464

type shard struct {
	mu sync.Mutex
	t  *Tracker[state]
	_  [40]byte // keep shards on their own cache lines
}

// apiState is what is learned of one API.
type apiState struct {
	id  string
	idx uint64 // mixed into identity keys: an identity is tracked per API

	mu sync.Mutex
	// Per class of identity (addresses, tokens, cookies, API keys,
	// usernames: each kind of client has its own normal) and figure.
	hist       [NumClasses][NumFigures]Histogram
	trainUntil atomic.Int64 // Unix ns
	trained    atomic.Bool
	learned    [NumClasses][NumFigures]atomic.Uint64 // the learned quantile (float bits), set when training ends
	thr        [NumClasses][NumFigures]atomic.Uint64 // the derived threshold (float bits)
	policy     atomic.Pointer[Policy]
}

// NumClasses is the number of classes of identity an API learns apart:
// addresses, tokens, cookies, API keys, usernames (lists.Kind order). A
// partner integration's API key and a person's session do not share one
// normal.
const NumClasses = 5

// classOf is the class of an identity of kind k (a username logged in
// as, the target of failed logins, is a username).
func classOf(k lists.Kind) int { return int(k&0x7f) - 1 }

// ClassName names class c as lists name its kind.
func ClassName(c int) string { return lists.Kind(c + 1).String() }

// apiRef is an API definition's detection state and login path.
type apiRef struct {
	st        *apiState
	loginPath string
}

// Engine is the detection engine.
type Engine struct {
	cfg    Config
	seed   maphash.Seed
	shards [numShards]shard
	report Reporter

	mu     sync.Mutex // apis and byID
	byID   map[string]*apiState
	apis   atomic.Pointer[map[*apidef.API]apiRef]
	byIdx  atomic.Pointer[map[uint64]*apiState] // End's way from a ticket to its API
	nextID uint64

	policies sync.Map // api id -> *Policy (kept for APIs not defined yet)

	detections [NumDetectors][3]atomic.Int64 // by mode

	// onTrained is called (in its own goroutine) when an API's training
	// ends, to keep what was learned.
	onTrained func(id string, l Learned)
}

// New returns an engine reporting to report.
func New(cfg Config, report Reporter) *Engine {
	if cfg.Window <= 0 {
		cfg.Window = 5 * time.Minute
	}
	if cfg.Training <= 0 {
		cfg.Training = 24 * time.Hour
	}
	if cfg.MaxIdentities <= 0 {
		cfg.MaxIdentities = 65536
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	e := &Engine{cfg: cfg, seed: maphash.MakeSeed(), report: report, byID: map[string]*apiState{}}
	// One array for every shard's identities, and one for their indexes,
	// hinted to huge pages: the identities of a busy API are met at random
	// over tens of MiB, and with 4 KiB pages each would miss the TLB on top
	// of the cache.
	per := max(cfg.MaxIdentities/numShards, 1)
	all := make([]slot[state], per*numShards)
	lists.HugePages(unsafe.Pointer(&all[0]), uintptr(len(all))*unsafe.Sizeof(all[0]))
	ref := make([]bool, len(all))
	isz := indexSize(per)
	index := make([]atomic.Int32, isz*numShards)
	lists.HugePages(unsafe.Pointer(&index[0]), uintptr(len(index))*unsafe.Sizeof(index[0]))
	for i := range e.shards {
		lo, hi := i*per, (i+1)*per
		e.shards[i].t = newTrackerOn(all[lo:hi:hi], ref[lo:hi:hi], index[i*isz:(i+1)*isz:(i+1)*isz])
	}
	m := map[*apidef.API]apiRef{}
	e.apis.Store(&m)
	bi := map[uint64]*apiState{}
	e.byIdx.Store(&bi)
	return e
}

// Config returns the engine's configuration.
func (e *Engine) Config() Config { return e.cfg }

// OnTrained sets the function told what an API learned when its training
// ends.
func (e *Engine) OnTrained(fn func(id string, l Learned)) { e.onTrained = fn }

// Sync follows the catalog: an API keeps what it learned across changes
// of its definition (by id); a new API starts training; a removed one is
// forgotten.
func (e *Engine) Sync(apis map[string]*apidef.API) {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.cfg.Now().UnixNano()
	m := make(map[*apidef.API]apiRef, len(apis))
	for id, a := range apis {
		st := e.byID[id]
		if st == nil {
			e.nextID++
			st = &apiState{id: id, idx: e.nextID}
			st.trainUntil.Store(now + int64(e.cfg.Training))
			if p, ok := e.policies.Load(id); ok {
				st.policy.Store(p.(*Policy))
			}
			e.byID[id] = st
		}
		m[a] = apiRef{st: st, loginPath: loginPath(a.LoginURL)}
	}
	for id := range e.byID {
		if apis[id] == nil {
			delete(e.byID, id)
		}
	}
	bi := make(map[uint64]*apiState, len(e.byID))
	for _, st := range e.byID {
		bi[st.idx] = st
	}
	e.byIdx.Store(&bi)
	e.apis.Store(&m)
}

func loginPath(u string) string {
	if u == "" || strings.HasPrefix(u, "/") {
		return u
	}
	p, err := url.Parse(u)
	if err != nil {
		return ""
	}
	if p.Path == "" {
		return "/"
	}
	return p.Path
}

// SetPolicy sets an API's policy (nil: the defaults).
func (e *Engine) SetPolicy(apiID string, p *Policy) {
	if p == nil {
		e.policies.Delete(apiID)
	} else {
		e.policies.Store(apiID, p)
	}
	e.mu.Lock()
	st := e.byID[apiID]
	e.mu.Unlock()
	if st != nil {
		st.policy.Store(p)
	}
}

// Ticket carries a request's identities from Begin to End without their
// strings: End may run after the request's buffers are gone (a streamed
// answer, a sideband /ase/response). It holds no pointer, so the tables
// that keep tickets waiting (sideband's) cost the garbage collector
// nothing to scan. Its zero value observes nothing.
type Ticket struct {
	api      uint64 // the API's apiState.idx; 0: none
	prep     uint64 // the API Prepare prepared the ticket for; 0: none
	n        uint8
	login    bool
	slot     [maxIDs]uint8 // each identity's sample slot
	sgen     [maxIDs]uint8 // and its generation
	tslot    [maxIDs]int32 // each identity's tracker slot
	keys     [maxIDs][2]uint64
	target   [2]uint64 // the username a login is for; zero: none
	now      int64
	ipHash   uint64
	pathHash uint64
	ip       [16]byte
	hasIP    bool
	tlen     uint8
	tname    [noteLen]byte // the username logged in as, for the evidence
	method   uint8
	plen     uint8
	path     [samplePath]byte // the request's sample, for a detection its answer makes
}

// noSample is a ticket's sample slot for an identity whose request was
// not kept as a sample (it was cold: see state.warm).
const noSample = 0xff

// Observed reports whether t is waiting for its answer.
func (t *Ticket) Observed() bool { return t.api != 0 }

// addr is the ticket's client address (invalid when it had none).
func (t *Ticket) addr() netip.Addr {
	if !t.hasIP {
		return netip.Addr{}
	}
	return netip.AddrFrom16(t.ip).Unmap()
}

func (e *Engine) hashString(s string) uint64 { return maphash.String(e.seed, s) }

func (e *Engine) key(a *apiState, kind lists.Kind, name, value string) [2]uint64 {
	h := maphash.String(e.seed, value)
	if name != "" {
		h ^= maphash.String(e.seed, name) * 0x9e3779b97f4a7c15
	}
	return [2]uint64{h, a.idx<<8 | uint64(kind)}
}

// shardOf is the shard of key k, from the top bits of its hash: a
// tracker's index places keys by their low bits, which must not be the
// same for every key of a shard.
func (e *Engine) shardOf(k [2]uint64) *shard { return &e.shards[k[0]>>(64-shardBits)] }

// found is a detection made under a shard's lock, reported after.
type found struct {
	cls      int // the class whose threshold it passed
	fig      Figure
	obs, thr float64
	kind     lists.Kind
	name     string
	value    string
	note     string
	samples  [samplesKept]sample
	status   [samplesKept]uint16
	nsamp    uint8
	last     uint8
}

// Prepare computes the keys of id's identities on api into t and starts
// loading their state into the cache, without waiting for it: a caller
// with other work to do before Begin (the lists' lookups) calls it first,
// and Begin, given the same t and id, finds the identities' memory on its
// way. Begin without Prepare prepares itself.
func (e *Engine) Prepare(api *apidef.API, id *lists.Identity, t *Ticket) {
	if a := (*e.apis.Load())[api].st; a != nil {
		e.prepare(a, id, t)
	}
}

// prepare starts t for a request from id to a: its identities' keys (up
// to maxIDs), each one's slot lines prefetched, so that their cache misses
// overlap instead of coming one after the other (each visit's lock orders
// its reads).
func (e *Engine) prepare(a *apiState, id *lists.Identity, t *Ticket) {
	*t = Ticket{prep: a.idx, ip: id.IP.As16(), hasIP: id.IP.IsValid()}
	if t.hasIP {
		t.ipHash = maphash.Comparable(e.seed, t.ip)
	}
	n := 0
	eachIdentity(id, func(kind lists.Kind, name, value string) bool {
		if n == maxIDs {
			return false
		}
		k := e.identityKey(a, t, kind, name, value)
		t.keys[n] = k
		e.shardOf(k).t.Prefetch(k, lineMask)
		n++
		return true
	})
	t.n = uint8(n)
}

// identityKey is the tracker key of an identity of a request (t holds the
// hash of its address).
func (e *Engine) identityKey(a *apiState, t *Ticket, kind lists.Kind, name, value string) [2]uint64 {
	if kind == lists.IP {
		return [2]uint64{t.ipHash, a.idx<<8 | uint64(lists.IP)}
	}
	return e.key(a, kind, name, value)
}

// eachIdentity calls fn with each identity of a request (its address,
// then its credentials), in an order that does not change, while fn
// returns true. Every further value of a credential (a repeated header,
// cookie or query parameter: the backend may read any of them) is an
// identity too, so that a stolen token cannot hide behind a decoy value
// sent first. Claimed usernames are never identities (anyone can claim
// any).
func eachIdentity(id *lists.Identity, fn func(kind lists.Kind, name, value string) bool) {
	if id.IP.IsValid() && !fn(lists.IP, "", "") {
		return
	}
	if id.Token != "" && !fn(lists.Token, "", id.Token) {
		return
	}
	if id.APIKey != "" && !fn(lists.APIKey, id.APIKeyName, id.APIKey) {
		return
	}
	if id.Cookie != "" && !fn(lists.Cookie, id.CookieName, id.Cookie) {
		return
	}
	if id.Username != "" && !fn(lists.Username, "", id.Username) {
		return
	}
	for _, c := range id.More {
		if !c.Claimed && c.Value != "" && !fn(c.Kind, c.Name, c.Value) {
			return
		}
	}
}

// Answering starts loading the state of t's identities, which End will
// count the answer in: a caller with other work before End (writing the
// answer out) calls it when the answer's status is known.
func (e *Engine) Answering(t *Ticket) {
	if t.api != 0 {
		e.prefetchSlots(t)
	}
}

// prefetchSlots starts loading the lines of every identity Begin counted
// t's request for, so that their misses overlap (see Begin).
func (e *Engine) prefetchSlots(t *Ticket) {
	for i := uint8(0); i < t.n; i++ {
		e.shardOf(t.keys[i]).t.PrefetchSlot(t.tslot[i], lineMask)
	}
}

// Begin counts a request to api from id (method and path as decided on)
// at now (Unix ns), and fills t for End. It returns whether it deny-listed
// one of the request's identities (the caller decides again). It does not
// allocate unless it reports a detection.
func (e *Engine) Begin(api *apidef.API, id *lists.Identity, method, path string, now int64, t *Ticket) bool {
	ref := (*e.apis.Load())[api]
	a := ref.st
	if a == nil {
		return false
	}
	if !a.trained.Load() && now >= a.trainUntil.Load() {
		e.endTraining(a)
	}
	if t.prep != a.idx {
		e.prepare(a, id, t)
	}
	prepared := int(t.n)
	t.prep, t.api, t.now, t.pathHash = 0, a.idx, now, e.hashString(path)
	t.method, t.plen = methodCode(method), uint8(copy(t.path[:], path))
	t.login = ref.loginPath != "" && path == ref.loginPath
	if t.login {
		if u := loginName(id); u != "" {
			t.target = e.key(a, lists.Username|0x80, "", u)
			t.tlen = uint8(copy(t.tname[:], u))
		}
	}
	var fs []found // allocated only for a detection
	i := 0         // the identity visited
	visit := func(kind lists.Kind, k [2]uint64, name, value string) {
		sh := e.shardOf(k)
		sh.mu.Lock()
		st, n, isNew := sh.t.Get(k)
		if i < maxIDs {
			t.keys[i], t.tslot[i] = k, n
		}
		if isNew {
			st.kind = kind
		}
		e.roll(a, st, now)
		st.reqs++
		fig, obs, thr, note := NumFigures, 0.0, 0.0, ""
		if st.flag != 0 {
			fig, obs, thr, note = Figure(st.flag-1), st.flagObs, st.flagThr, string(st.flagNote[:st.flagNoteN])
			st.flag = 0
		} else if th, ok := e.over(a, st, FigRequests, float64(st.reqs)); ok {
			fig, obs, thr = FigRequests, float64(st.reqs), th
		} else if kind != lists.IP && st.lastIP != t.ipHash {
			st.lastIP = t.ipHash
			if st.ips.AddChanged(t.ipHash) {
				if th, ok := e.over(a, st, FigIPs, st.ips.Count()); ok {
					fig, obs, thr = FigIPs, st.ips.Count(), th
				}
			}
		}
		// The request is a sample when it shows something (or may soon:
		// warm), and the window's first few are, so that every detection
		// has samples.
		sl := uint8(noSample)
		if fig != NumFigures || st.warm || st.reqs <= samplesKept {
			var g uint8
			sl, g = st.addSample(now, t.ip, t.method, path)
			if i < maxIDs {
				t.sgen[i] = g
			}
		}
		if i < maxIDs {
			t.slot[i] = sl
		}
		if fig != NumFigures {
			cls := classOf(kind)
			if fig == FigFailingClients {
				cls = classOf(lists.Username)
			}
			fs = append(fs, found{cls: cls, fig: fig, obs: obs, thr: thr, note: note, kind: kind, name: name, value: value,
				samples: st.samples, status: st.status, nsamp: st.nsamp, last: st.lastSample})
		}
		sh.mu.Unlock()
		i++
	}
	eachIdentity(id, func(kind lists.Kind, name, value string) bool {
		k := t.keys[min(i, maxIDs-1)]
		if i >= prepared {
			k = e.identityKey(a, t, kind, name, value)
		}
		visit(kind, k, name, value)
		return true
	})
	t.n = uint8(min(i, maxIDs))
	listed := false
	for i := range fs {
		if e.emit(a, &fs[i], id.IP, now) {
			listed = true
		}
	}
	return listed
}

// loginName is the username a login request is for: the one a gateway
// asserted, else the one the request claims.
func loginName(id *lists.Identity) string {
	if id.Username != "" {
		return id.Username
	}
	return id.ClaimedUsername
}

// over reports whether figure f's value v passes its threshold on a
// trained API whose detector is on, and the threshold; a detector finds
// an identity once per window.
func (e *Engine) over(a *apiState, st *state, f Figure, v float64) (float64, bool) {
	thr, ok := e.crossing(a, st, f, v)
	if ok {
		st.reported |= 1 << FigureDetector[f]
	}
	return thr, ok
}

// crossing returns figure f's threshold on st and whether v passes it
// for a detector that has not reported st in this window and is not off
// (over and passes, without their effects). Past half the threshold, st
// is warm (see state.warm).
func (e *Engine) crossing(a *apiState, st *state, f Figure, v float64) (float64, bool) {
	thr, ok := e.threshold(a, f, classOf(st.kind))
	if !ok {
		return 0, false
	}
	if v*2 > thr {
		st.warm = true
	}
	d := FigureDetector[f]
	if v <= thr || st.reported&(1<<d) != 0 {
		return 0, false
	}
	if p := a.policy.Load(); p != nil && p.Modes[d] == Off {
		return 0, false
	}
	return thr, true
}

// threshold returns figure f's threshold on a for identities of class
// cls, and whether there is one (the operator's, or the learned one once
// training is over).
func (e *Engine) threshold(a *apiState, f Figure, cls int) (float64, bool) {
	if p := a.policy.Load(); p != nil && p.Thresholds[f] > 0 {
		return p.Thresholds[f], true
	}
	if !a.trained.Load() {
		return 0, false
	}
	return math.Float64frombits(a.thr[cls][f].Load()), true
}

// roll starts a new window when st's is over, learning the one that ended
// while a trains.
func (e *Engine) roll(a *apiState, st *state, now int64) {
	w := int64(e.cfg.Window)
	if st.start != 0 && now < st.start+w {
		return
	}
	if st.start != 0 && !a.trained.Load() && st.start < a.trainUntil.Load() {
		a.mu.Lock()
		h := &a.hist[classOf(st.kind)]
		if st.kind&0x80 != 0 {
			h[FigFailingClients].Observe(st.ips.Count())
		} else {
			if st.kind != lists.IP {
				h[FigIPs].Observe(st.ips.Count())
			}
			h[FigRequests].Observe(float64(st.reqs))
			h[FigBytes].Observe(float64(st.bytes))
			h[FigFailedLogins].Observe(float64(st.fails))
			h[FigErrorPaths].Observe(st.errPaths.Count())
			h[FigOKPaths].Observe(st.okPaths.Count())
		}
		a.mu.Unlock()
	}
	start := now
	if st.start != 0 {
		start = st.start + (now-st.start)/w*w // windows stay aligned to the first
	}
	kind, flag := st.kind, st.flag
	fobs, fthr, fn, fnote := st.flagObs, st.flagThr, st.flagNoteN, st.flagNote
	samples, status, ns, last, gen := st.samples, st.status, st.nsamp, st.lastSample, st.sgen
	*st = state{start: start, kind: kind, samples: samples, status: status, nsamp: ns, lastSample: last, sgen: gen}
	if flag != 0 { // a detection waiting for the identity's next request survives the window
		st.flag, st.flagObs, st.flagThr, st.flagNoteN, st.flagNote = flag, fobs, fthr, fn, fnote
		st.reported = 1 << FigureDetector[flag-1]
	}
}

func (st *state) addSample(now int64, ip [16]byte, m uint8, path string) (uint8, uint8) {
	i := (st.lastSample + 1) % samplesKept
	if st.nsamp == 0 {
		i = 0
	}
	s := &st.samples[i]
	s.at, s.ip, s.method = now, ip, m
	s.plen = uint8(copy(s.path[:], path))
	st.status[i] = 0
	st.lastSample = i
	st.sgen++
	if st.nsamp < samplesKept {
		st.nsamp++
	}
	return i, st.sgen
}

// End counts the answer to t's request: its status (0: unknown, as on the
// forward-auth path) and the response body's bytes. A detection it makes
// is reported at once: on the request's address, and on a credential
// whose value vals gives (the ticket holds none); one on a credential vals
// does not know (vals nil, or a value too long to have been kept) is held
// and reported at the credential's next request, before it is decided.
func (e *Engine) End(t *Ticket, status int, bytes int64, vals Values) {
	a := (*e.byIdx.Load())[t.api]
	t.api = 0
	if a == nil {
		return // the API is gone
	}
	is4xx := status >= 400 && status < 500
	is2xx := status >= 200 && status < 300
	failed := t.login && is4xx
	// Each identity's lines first, all at once.
	e.prefetchSlots(t)
	var fs []found // allocated only for a detection
	for i := uint8(0); i < t.n; i++ {
		k := t.keys[i]
		sh := e.shardOf(k)
		sh.mu.Lock()
		st := sh.t.At(t.tslot[i], k)
		if st == nil || st.start > t.now {
			sh.mu.Unlock() // evicted, or its window ended meanwhile
			continue
		}
		if t.slot[i] != noSample && st.sgen-t.sgen[i] < samplesKept { // its sample was not written over since
			st.status[t.slot[i]] = uint16(status)
		}
		fig, v := NumFigures, 0.0
		if bytes > 0 {
			st.bytes += uint64(bytes)
			if e.passes(a, st, FigBytes, float64(st.bytes)) {
				fig, v = FigBytes, float64(st.bytes)
			}
		}
		switch {
		case is2xx && st.okPaths.AddChanged(t.pathHash):
			if c := st.okPaths.Count(); fig == NumFigures && e.passes(a, st, FigOKPaths, c) {
				fig, v = FigOKPaths, c
			}
		case is4xx && st.errPaths.AddChanged(t.pathHash):
			if c := st.errPaths.Count(); fig == NumFigures && e.passes(a, st, FigErrorPaths, c) {
				fig, v = FigErrorPaths, c
			}
		}
		if failed {
			st.fails++
			if fig == NumFigures && e.passes(a, st, FigFailedLogins, float64(st.fails)) {
				fig, v = FigFailedLogins, float64(st.fails)
			}
		}
		if fig != NumFigures {
			thr, _ := e.over(a, st, fig, v)
			t.sample(st, i, status)
			f := found{cls: classOf(st.kind), fig: fig, obs: v, thr: thr, kind: st.kind, samples: st.samples, status: st.status, nsamp: st.nsamp, last: st.lastSample}
			if f.credential(vals, i) {
				fs = append(fs, f)
			} else {
				st.setFlag(fig, v, thr, "")
			}
		}
		sh.mu.Unlock()
	}
	if failed && t.target != ([2]uint64{}) {
		fs = e.loginTarget(a, t, status, vals, fs)
	}
	for i := range fs {
		e.emit(a, &fs[i], t.addr(), t.now)
	}
}

// sample keeps t's request as a sample of st, its i-th identity, with
// its answer's status, if it was not kept when it came (st was cold).
func (t *Ticket) sample(st *state, i uint8, status int) {
	if t.slot[i] != noSample {
		return
	}
	sl, g := st.addSample(t.now, t.ip, t.method, string(t.path[:t.plen]))
	st.status[sl] = uint16(status)
	t.slot[i], t.sgen[i] = sl, g
}

// passes reports whether figure f's value v would be a detection on st
// (over without its effect).
func (e *Engine) passes(a *apiState, st *state, f Figure, v float64) bool {
	_, ok := e.crossing(a, st, f, v)
	return ok && st.flag == 0
}

// loginTarget counts a failed login against a username: past the
// threshold of distinct failing clients, the username is under attack for
// the rest of its window, and every client that fails against it then is
// found (credential stuffing): its address at once (returned), its
// credentials at their next request.
func (e *Engine) loginTarget(a *apiState, t *Ticket, status int, vals Values, fs []found) []found {
	sh := e.shardOf(t.target)
	sh.mu.Lock()
	st, _, isNew := sh.t.Get(t.target)
	if isNew {
		st.kind = lists.Username | 0x80
	}
	e.roll(a, st, t.now)
	attacked := st.reported&(1<<LoginAttack) != 0
	var obs, thr float64
	if st.ips.AddChanged(t.ipHash) || attacked {
		obs = st.ips.Count()
		if !attacked {
			thr, attacked = e.over(a, st, FigFailingClients, obs)
		} else {
			thr, _ = e.threshold(a, FigFailingClients, classOf(lists.Username))
		}
	}
	sh.mu.Unlock()
	if !attacked {
		return fs
	}
	note := "against username " + string(t.tname[:t.tlen])
	for i := uint8(0); i < t.n; i++ {
		k := t.keys[i]
		csh := e.shardOf(k)
		csh.mu.Lock()
		if cst := csh.t.Peek(k); cst != nil && cst.reported&(1<<LoginAttack) == 0 {
			cst.reported |= 1 << LoginAttack
			t.sample(cst, i, status)
			f := found{cls: classOf(lists.Username), fig: FigFailingClients, obs: obs, thr: thr, kind: cst.kind, note: note, samples: cst.samples, status: cst.status, nsamp: cst.nsamp, last: cst.lastSample}
			if f.credential(vals, i) {
				fs = append(fs, f)
			} else {
				cst.setFlag(FigFailingClients, obs, thr, note)
			}
		}
		csh.mu.Unlock()
	}
	return fs
}

// credential reports whether f, found on a request's i-th identity, can be
// reported now: an address always (the ticket holds it), a credential when
// vals gives its value (set in f).
func (f *found) credential(vals Values, i uint8) bool {
	if f.kind == lists.IP {
		return true
	}
	if vals == nil {
		return false
	}
	kind, name, value, ok := vals.Identity(int(i))
	if !ok || kind != f.kind {
		return false
	}
	f.name, f.value = name, value
	return true
}

func (st *state) setFlag(f Figure, obs, thr float64, note string) {
	st.flag, st.flagObs, st.flagThr = uint8(f)+1, obs, thr
	st.flagNoteN = uint8(copy(st.flagNote[:], note))
}

// emit reports a detection.
func (e *Engine) emit(a *apiState, f *found, ip netip.Addr, now int64) bool {
	d := FigureDetector[f.fig]
	mode := Enforce
	if p := a.policy.Load(); p != nil {
		mode = p.Modes[d]
	}
	if mode == Off {
		return false
	}
	value := strings.Clone(f.value)
	if f.kind == lists.IP {
		value = ip.Unmap().String()
	}
	det := Detection{
		Detector: d, Figure: f.fig, Mode: mode, API: a.id, Kind: f.kind, Name: strings.Clone(f.name),
		Value: value, IP: ip.Unmap(), Observed: math.Round(f.obs*100) / 100, Threshold: math.Round(f.thr*100) / 100,
		Window: e.cfg.Window, At: time.Unix(0, now), Note: f.note,
	}
	if p := a.policy.Load(); p != nil && p.Thresholds[f.fig] > 0 {
		det.Override = true
	} else {
		det.Learned = math.Float64frombits(a.learned[f.cls][f.fig].Load())
		a.mu.Lock()
		det.Windows = a.hist[f.cls][f.fig].Count()
		a.mu.Unlock()
	}
	for j := uint8(0); j < f.nsamp; j++ {
		k := (f.last + samplesKept - j) % samplesKept
		s := &f.samples[k]
		det.Samples = append(det.Samples, Sample{
			Time: time.Unix(0, s.at), Method: methods[s.method], Path: string(s.path[:s.plen]),
			Status: int(f.status[k]), IP: netip.AddrFrom16(s.ip).Unmap(),
		})
	}
	listed := false
	if e.report != nil {
		listed = e.report(&det) // it may say the detection was reported only
	}
	e.detections[d][det.Mode].Add(1)
	return listed
}

// Counts returns the detections made since start, by detector and mode.
func (e *Engine) Counts() [NumDetectors][3]int64 {
	var out [NumDetectors][3]int64
	for d := range out {
		for m := range out[d] {
			out[d][m] = e.detections[d][m].Load()
		}
	}
	return out
}

// Tracked returns how many identities are tracked now.
func (e *Engine) Tracked() int {
	n := 0
	for i := range e.shards {
		sh := &e.shards[i]
		sh.mu.Lock()
		n += sh.t.Len()
		sh.mu.Unlock()
	}
	return n
}

// endTraining derives a's thresholds from what it learned.
func (e *Engine) endTraining(a *apiState) {
	a.mu.Lock()
	if a.trained.Load() {
		a.mu.Unlock()
		return
	}
	a.derive(e.cfg.Window)
	a.trained.Store(true)
	var l Learned
	if e.onTrained != nil {
		l = a.snapshot()
		l.Window = e.cfg.Window.String()
	}
	a.mu.Unlock()
	if e.onTrained != nil {
		go e.onTrained(a.id, l)
	}
}

// derive sets a's thresholds from its histograms (under a.mu): each class
// from its own, or, for a class that learned fewer than MinSamples windows
// of a figure (a kind of client seldom seen in training), from every
// class's together, so a rare kind of client is not held to the floor
// alone.
func (a *apiState) derive(window time.Duration) {
	for f := Figure(0); f < NumFigures; f++ {
		var pooled Histogram
		for c := range a.hist {
			pooled.Merge(&a.hist[c][f])
		}
		for c := range a.hist {
			h := &a.hist[c][f]
			if h.Count() < MinSamples {
				h = &pooled
			}
			q, thr := derive(f, h, window)
			a.learned[c][f].Store(math.Float64bits(q))
			a.thr[c][f].Store(math.Float64bits(thr))
		}
	}
}

// derive returns figure f's learned quantile and its threshold.
func derive(f Figure, h *Histogram, window time.Duration) (float64, float64) {
	r := Rules[f]
	floor := r.Floor
	if r.PerMin {
		floor = math.Max(1, math.Round(floor*window.Minutes()))
	}
	if h.Count() < MinSamples {
		return 0, floor
	}
	q := h.Quantile(r.Quantile)
	return q, math.Max(r.Factor*q, floor)
}
