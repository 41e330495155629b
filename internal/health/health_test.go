package health

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ase-project/ase/internal/apidef"
	"github.com/ase-project/ase/internal/catalog"
)

// probedTarget is a target of API "a" as Sync would make it, without a
// prober goroutine, so the test calls probe itself.
func probedTarget(c *Checker, url string, retries int) *target {
	st := c.stateLocked(key("a", "x"))
	st.probed = true
	st.health.Store(unknown)
	c.groups["a"] = []*state{st}
	return &target{apiID: "a", url: url, interval: time.Second, retries: retries, st: st}
}

func TestProbeTransitions(t *testing.T) {
	var healthy atomic.Bool
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/health" || !healthy.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer backend.Close()
	ctx := context.Background()

	t.Run("first answer a success", func(t *testing.T) {
		c := New(slog.Default(), nil)
		var changes []string
		c.OnChange = func(_, _ string, h string) { changes = append(changes, h) }
		tg := probedTarget(c, backend.URL+"/health", 3)
		if got := c.Health("a", "x"); got != Unknown {
			t.Fatalf("before the first probe: got %s, want Unknown", got)
		}
		healthy.Store(true)
		c.probe(ctx, tg)
		if got := c.Health("a", "x"); got != Up {
			t.Fatalf("after a success: got %s, want Up", got)
		}
		healthy.Store(false)
		for n := 1; n <= 2; n++ {
			c.probe(ctx, tg)
			if got := c.Health("a", "x"); got != Up {
				t.Fatalf("after %d failures: got %s, want Up until 3", n, got)
			}
		}
		c.probe(ctx, tg)
		if got := c.Health("a", "x"); got != Down {
			t.Fatalf("after 3 failures in a row: got %s, want Down", got)
		}
		healthy.Store(true)
		c.probe(ctx, tg)
		if got := c.Health("a", "x"); got != Up {
			t.Fatalf("after a success: got %s, want Up", got)
		}
		if strings.Join(changes, " ") != "Up Down Up" {
			t.Fatalf("got changes %v, want [Up Down Up]", changes)
		}
	})
	t.Run("first answer a failure", func(t *testing.T) {
		c := New(slog.Default(), nil)
		tg := probedTarget(c, backend.URL+"/health", 3)
		healthy.Store(false)
		c.probe(ctx, tg)
		if got := c.Health("a", "x"); got != Down {
			t.Fatalf("after a first failure with health_retry_count 3: got %s, want Down (never known healthy)", got)
		}
	})
}

func TestRouting(t *testing.T) {
	for _, tc := range []struct {
		name   string
		health []int32
		want   []bool
	}{
		{"all unknown: all tried", []int32{unknown, unknown}, []bool{true, true}},
		{"one up: unknown ones wait", []int32{unknown, up, unknown}, []bool{false, true, false}},
		{"unknown and down: unknown tried", []int32{down, unknown}, []bool{false, true}},
		{"all down: none", []int32{down, down}, []bool{false, false}},
		{"up and down", []int32{up, down}, []bool{true, false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var g []*state
			for _, h := range tc.health {
				st := newState()
				st.health.Store(h)
				st.route.Store(h != up) // the opposite of most answers
				g = append(g, st)
			}
			routeLocked(g)
			for i, st := range g {
				if got := st.route.Load(); got != tc.want[i] {
					t.Fatalf("server %d (%s): route %v, want %v", i, names[tc.health[i]], got, tc.want[i])
				}
			}
		})
	}
}

func TestSyncFollowsCatalog(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	deadAddr := strings.TrimPrefix(dead.URL, "http://")
	dead.Close() // nothing listens there now

	c := New(slog.Default(), nil)
	defer c.Close()
	host, port := splitAddr(t, deadAddr)
	s := apidef.Server{Host: host, Port: port}
	a := &apidef.API{ID: "a", HealthCheck: true, HealthCheckInterval: 1, HealthRetryCount: 1, HealthURL: "/health", Servers: []apidef.Server{s}}
	if got := c.Status("a", s); got != Unknown {
		t.Fatalf("a server the checker has not been told about: got %s, want Unknown", got)
	}
	c.Sync(&catalog.Snapshot{APIs: map[string]*apidef.API{"a": a}})
	deadline := time.Now().Add(10 * time.Second)
	for c.Status("a", s) != Down {
		if time.Now().After(deadline) {
			t.Fatal("a dead server is not marked Down")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if c.State("a", s.Addr()).Load() {
		t.Fatal("a Down server takes requests")
	}
	// Health checks turned off: the server is Up, and no prober remains.
	off := *a
	off.HealthCheck = false
	c.Sync(&catalog.Snapshot{APIs: map[string]*apidef.API{"a": &off}})
	if c.Health("a", s.Addr()) != Up || !c.State("a", s.Addr()).Load() || len(c.targets) != 0 {
		t.Fatalf("got %s with %d probers", c.Health("a", s.Addr()), len(c.targets))
	}
	// Turned on again: Unknown until probed.
	c.Sync(&catalog.Snapshot{APIs: map[string]*apidef.API{"a": a}})
	if got := c.Status("a", s); got != Unknown && got != Down {
		t.Fatalf("checks turned on again: got %s, want Unknown (or Down once probed)", got)
	}
	// Removed: forgotten.
	c.Sync(&catalog.Snapshot{APIs: map[string]*apidef.API{}})
	if len(c.states) != 0 || len(c.targets) != 0 {
		t.Fatalf("got %d states and %d probers after the API went", len(c.states), len(c.targets))
	}
}

// TestSettingsChangeKeepsHealth: a changed interval restarts the prober
// (first probe at once) but does not forget what the last one said.
func TestSettingsChangeKeepsHealth(t *testing.T) {
	probes := make(chan struct{}, 4)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { probes <- struct{}{} }))
	defer backend.Close()
	host, port := splitAddr(t, strings.TrimPrefix(backend.URL, "http://"))
	s := apidef.Server{Host: host, Port: port}
	c := New(slog.Default(), nil)
	defer c.Close()
	a := &apidef.API{ID: "a", HealthCheck: true, HealthCheckInterval: 600, HealthRetryCount: 1, HealthURL: "/health", Servers: []apidef.Server{s}}
	c.Sync(&catalog.Snapshot{APIs: map[string]*apidef.API{"a": a}})
	<-probes
	deadline := time.Now().Add(10 * time.Second)
	for c.Status("a", s) != Up {
		if time.Now().After(deadline) {
			t.Fatal("a live server is not marked Up")
		}
		time.Sleep(10 * time.Millisecond)
	}
	b := *a
	b.HealthCheckInterval = 300
	c.Sync(&catalog.Snapshot{APIs: map[string]*apidef.API{"a": &b}})
	if got := c.Status("a", s); got != Up {
		t.Fatalf("after an interval change: got %s, want Up still", got)
	}
	select {
	case <-probes:
	case <-time.After(10 * time.Second):
		t.Fatal("the restarted prober did not probe at once")
	}
}

func splitAddr(t *testing.T, addr string) (string, int) {
	t.Helper()
	i := strings.LastIndexByte(addr, ':')
	var port int
	for _, ch := range addr[i+1:] {
		port = port*10 + int(ch-'0')
	}
	return addr[:i], port
}
