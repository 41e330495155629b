// Package health probes the backend servers of every API: a GET of the
// API's health_url every health_check_interval seconds; a server is Down
// after health_retry_count failures in a row and Up again on the next
// success. A server of an API with health_check off is always Up.
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

// Checker runs one prober per (API, server) with health checks on.
type Checker struct {
	log    *slog.Logger
	client *http.Client
	// OnChange, if set, is called when a server goes Up or Down.
	OnChange func(apiID, addr string, up bool)

	mu      sync.Mutex
	targets map[string]*target // apiID + " " + addr
	// states outlive probers restarted by a settings change, so the data
	// path can keep a pointer and read it without a lock.
	states map[string]*atomic.Bool
	closed bool
}

type target struct {
	apiID    string
	server   apidef.Server
	url      string
	interval time.Duration
	retries  int
	up       *atomic.Bool
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
		states:  map[string]*atomic.Bool{},
	}
}

func key(apiID, addr string) string { return apiID + " " + addr }

// Sync starts probers for new servers and stops those of removed servers
// or changed settings, so a server added through the management API is
// probed at once. It is meant for catalog.Live.Watch.
func (c *Checker) Sync(snap *catalog.Snapshot) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	want := map[string]*target{}
	servers := map[string]bool{}
	for _, a := range snap.APIs {
		for _, s := range a.Servers {
			servers[key(a.ID, s.Addr())] = true
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
	for k, st := range c.states {
		if _, probed := want[k]; !probed {
			st.Store(true) // not probed (any more): Up
		}
		if !servers[k] {
			delete(c.states, k)
		}
	}
	for k, t := range want {
		if _, running := c.targets[k]; running {
			continue
		}
		t.up = c.stateLocked(k)
		ctx, cancel := context.WithCancel(context.Background())
		t.cancel, t.done = cancel, make(chan struct{})
		c.targets[k] = t
		go c.run(ctx, t)
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

// probe checks t once and updates its state.
func (c *Checker) probe(ctx context.Context, t *target) {
	ok := c.get(ctx, t)
	if ctx.Err() != nil {
		return
	}
	if ok {
		t.fails = 0
		if !t.up.Swap(true) {
			c.changed(t, true)
		}
		return
	}
	t.fails++
	if t.fails >= t.retries && t.up.Swap(false) {
		c.changed(t, false)
	}
}

func (c *Checker) changed(t *target, up bool) {
	state := "Down"
	if up {
		state = "Up"
	}
	c.log.Warn("backend server health changed", "api_id", t.apiID, "server", t.server.Addr(), "health", state)
	if c.OnChange != nil {
		c.OnChange(t.apiID, t.server.Addr(), up)
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

// State returns the health of a server of an API as a flag the data path
// can keep and read without a lock: true is Up. A server starts Up (until
// probed), and a server whose API does not check health stays Up.
func (c *Checker) State(apiID, addr string) *atomic.Bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stateLocked(key(apiID, addr))
}

func (c *Checker) stateLocked(k string) *atomic.Bool {
	st := c.states[k]
	if st == nil {
		st = &atomic.Bool{}
		st.Store(true)
		c.states[k] = st
	}
	return st
}

// Up reports whether a server of an API is healthy. Servers that are not
// probed (health_check off, or unknown) are Up.
func (c *Checker) Up(apiID, addr string) bool {
	c.mu.Lock()
	st := c.states[key(apiID, addr)]
	c.mu.Unlock()
	return st == nil || st.Load()
}

// Status returns "Up" or "Down", for the management API.
func (c *Checker) Status(apiID string, s apidef.Server) string {
	if c.Up(apiID, s.Addr()) {
		return "Up"
	}
	return "Down"
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
