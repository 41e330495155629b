// Package health probes the backend servers of every API: a GET of the
// API's health_url every health_check_interval seconds.
//
// A server of an API with health_check off is always Up. One with
// health_check on is Unknown until its first probe answers, and that probe
// runs at once when the server is added, when ASE starts and when the
// API's health settings change. The first answer decides: a success makes
// it Up, a failure Down (a server never seen healthy gets no retries).
// After that it is Down after health_retry_count failures in a row and Up
// again on the next success.
//
// Routing: a server takes requests when it is Up, or when it is Unknown
// and no server of its API is Up. So a server not yet known healthy gets
// nothing while another one is known healthy, and right after a start
// (every server Unknown) requests are tried rather than refused with 503
// for the seconds the first probes take. Down servers take nothing.
package health

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ase-project/ase/internal/apidef"
	"github.com/ase-project/ase/internal/catalog"
)

// The health of a backend server, as the management API, the CLI and the
// metrics name it.
const (
	Unknown = "Unknown"
	Up      = "Up"
	Down    = "Down"
)

// Values of state.health.
const (
	unknown int32 = iota
	up
	down
)

var names = [...]string{unknown: Unknown, up: Up, down: Down}

// state is one server's health, shared with the data path.
type state struct {
	health atomic.Int32
	// route is what the data path reads per request: whether the server
	// may take requests now (see the package comment). It is recomputed,
	// for the whole API, only when a server's health changes.
	route atomic.Bool
	// probed: health_check was on in the last Sync. Checker.mu only.
	probed bool
}

func newState() *state {
	st := &state{}
	st.health.Store(up)
	st.route.Store(true)
	return st
}

// Checker runs one prober per (API, server) with health checks on.
type Checker struct {
	log    *slog.Logger
	client *http.Client
	// OnChange, if set, is called when a server's health changes (to Up
	// or Down).
	OnChange func(apiID, addr, health string)

	mu      sync.Mutex
	targets map[string]*target // apiID + " " + addr
	// states outlive probers restarted by a settings change, so the data
	// path can keep a pointer and read it without a lock.
	states map[string]*state
	// groups are each API's servers' states: the routing of one depends
	// on the health of the others.
	groups map[string][]*state
	closed bool
}

type target struct {
	apiID    string
	server   apidef.Server
	url      string
	interval time.Duration
	retries  int
	st       *state
	fails    int // consecutive failures; prober goroutine only
	cancel   context.CancelFunc
	done     chan struct{}
}

// New returns a Checker that reaches TLS backends with tlsConfig.
func New(log *slog.Logger, tlsConfig *tls.Config) *Checker {
	tr := &http.Transport{
		TLSClientConfig:     tlsConfig,
		MaxIdleConnsPerHost: 1,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	return &Checker{
		log:     log,
		client:  &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		targets: map[string]*target{},
		states:  map[string]*state{},
		groups:  map[string][]*state{},
	}
}

func key(apiID, addr string) string { return apiID + " " + addr }

// Sync starts probers for new servers and stops those of removed servers
// or changed settings, so a server added through the management API is
// probed at once. It is meant for catalog.Live.Watch, registered before
// the data path's watcher, so the states the data path picks up are
// already those of the snapshot.
func (c *Checker) Sync(snap *catalog.Snapshot) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	want := map[string]*target{}
	groups := map[string][]*state{}
	listed := map[string]bool{}
	for _, a := range snap.APIs {
		for _, s := range a.Servers {
			k := key(a.ID, s.Addr())
			listed[k] = true
			st := c.stateLocked(k)
			switch {
			case !a.HealthCheck:
				st.health.Store(up) // not probed (any more): Up
			case !st.probed:
				st.health.Store(unknown) // new, or checks just turned on
			}
			// Otherwise only the probe settings may have changed: the
			// last answer stands until the restarted prober's first one.
			st.probed = a.HealthCheck
			groups[a.ID] = append(groups[a.ID], st)
		}
		if !a.HealthCheck {
			continue
		}
		scheme := "http://"
		if a.ServerSSL {
			scheme = "https://"
		}
		for _, s := range a.Servers {
			want[key(a.ID, s.Addr())] = &target{
				apiID: a.ID, server: s, url: scheme + s.Addr() + a.HealthURL,
				interval: time.Duration(a.HealthCheckInterval) * time.Second, retries: a.HealthRetryCount,
			}
		}
	}
	for k, old := range c.targets {
		if n, ok := want[k]; !ok || n.url != old.url || n.interval != old.interval || n.retries != old.retries {
			old.cancel()
			delete(c.targets, k)
		}
	}
	for k := range c.states {
		if !listed[k] {
			delete(c.states, k)
		}
	}
	c.groups = groups
	for _, g := range groups {
		routeLocked(g)
	}
	for k, t := range want {
		if _, running := c.targets[k]; running {
			continue
		}
		t.st = c.states[k]
		ctx, cancel := context.WithCancel(context.Background())
		t.cancel, t.done = cancel, make(chan struct{})
		c.targets[k] = t
		go c.run(ctx, t)
	}
}

// routeLocked recomputes which of one API's servers may take requests.
// Flags turning on are set before those turning off, so the data path
// never sees no server where there is one.
func routeLocked(group []*state) {
	anyUp := false
	for _, st := range group {
		anyUp = anyUp || st.health.Load() == up
	}
	routable := func(st *state) bool {
		h := st.health.Load()
		return h == up || h == unknown && !anyUp
	}
	for _, st := range group {
		if routable(st) {
			st.route.Store(true)
		}
	}
	for _, st := range group {
		if !routable(st) {
			st.route.Store(false)
		}
	}
}

func (c *Checker) run(ctx context.Context, t *target) {
	defer close(t.done)
	tick := time.NewTicker(t.interval)
	defer tick.Stop()
	for {
		c.probe(ctx, t)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// probe checks t once and updates its state (and its API's routing).
func (c *Checker) probe(ctx context.Context, t *target) {
	ok := c.get(ctx, t)
	if ok {
		t.fails = 0
	} else {
		t.fails++
	}
	c.mu.Lock()
	if ctx.Err() != nil { // stopped by Sync (which holds mu) meanwhile
		c.mu.Unlock()
		return
	}
	cur := t.st.health.Load()
	next := cur
	switch {
	case ok:
		next = up
	case cur == unknown || t.fails >= t.retries:
		next = down
	}
	if next != cur {
		t.st.health.Store(next)
		routeLocked(c.groups[t.apiID])
	}
	c.mu.Unlock()
	if next != cur {
		c.changed(t, cur, next)
	}
}

func (c *Checker) changed(t *target, from, to int32) {
	level := slog.LevelWarn
	if from == unknown && to == up {
		level = slog.LevelInfo // every start does this for every server
	}
	c.log.Log(context.Background(), level, "backend server health changed", "api_id", t.apiID, "server", t.server.Addr(),
		"health", names[to], "was", names[from])
	if c.OnChange != nil {
		c.OnChange(t.apiID, t.server.Addr(), names[to])
	}
}

func (c *Checker) get(ctx context.Context, t *target) bool {
	timeout := min(t.interval, 5*time.Second)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.url, nil)
	if err != nil {
		return false
	}
	req.Header.Set("User-Agent", "ase-health-check")
	resp, err := c.client.Do(req)
	if err != nil {
		return false
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return resp.StatusCode >= 200 && resp.StatusCode < 400
}

// State returns whether a server of an API may take requests now, as a
// flag the data path keeps and reads without a lock (see the package
// comment). The flag follows the server for as long as it is in the
// catalog.
func (c *Checker) State(apiID, addr string) *atomic.Bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return &c.stateLocked(key(apiID, addr)).route
}

// stateLocked returns a server's state, creating it Up and routable: a
// server the checker has not seen in a snapshot yet is not probed.
func (c *Checker) stateLocked(k string) *state {
	st := c.states[k]
	if st == nil {
		st = newState()
		c.states[k] = st
	}
	return st
}

// Health returns a server's health as the data path knows it: Up, Down
// or Unknown; a server the checker does not probe is Up. For the metrics.
func (c *Checker) Health(apiID, addr string) string {
	c.mu.Lock()
	st := c.states[key(apiID, addr)]
	c.mu.Unlock()
	if st == nil {
		return Up
	}
	return names[st.health.Load()]
}

// Status returns the health of a server of an API whose definition, as
// the caller read it, has health_check on (the management API answers Up
// itself for the others): Up or Down once a probe has answered, Unknown
// before, including while the checker has not yet been given that
// definition (the management API may read a change before the checker
// sees it: a server just added, or checks just turned on, is never shown
// Up unprobed).
func (c *Checker) Status(apiID string, s apidef.Server) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.states[key(apiID, s.Addr())]
	if st == nil || !st.probed {
		return Unknown
	}
	return names[st.health.Load()]
}

// Close stops every prober and waits for them.
func (c *Checker) Close() {
	c.mu.Lock()
	c.closed = true
	ts := c.targets
	c.targets = map[string]*target{}
	c.mu.Unlock()
	for _, t := range ts {
		t.cancel()
		<-t.done
	}
}
