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

func TestProbeTransitions(t *testing.T) {
	var healthy atomic.Bool
	healthy.Store(true)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/health" || !healthy.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer backend.Close()

	c := New(slog.Default(), nil)
	var changes []bool
	c.OnChange = func(_, _ string, up bool) { changes = append(changes, up) }
	tg := &target{apiID: "a", url: backend.URL + "/health", interval: time.Second, retries: 3, up: c.State("a", "x")}
	ctx := context.Background()

	c.probe(ctx, tg)
	healthy.Store(false)
	for n := 1; n <= 2; n++ {
		c.probe(ctx, tg)
		if !tg.up.Load() {
			t.Fatalf("down after %d failures, want 3", n)
		}
	}
	c.probe(ctx, tg)
	if tg.up.Load() {
		t.Fatal("still up after 3 failures in a row")
	}
	healthy.Store(true)
	c.probe(ctx, tg)
	if !tg.up.Load() {
		t.Fatal("not up again after a success")
	}
	if len(changes) != 2 || changes[0] || !changes[1] {
		t.Fatalf("got changes %v, want [false true]", changes)
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
	c.Sync(&catalog.Snapshot{APIs: map[string]*apidef.API{"a": a}})
	deadline := time.Now().Add(10 * time.Second)
	for c.Status("a", s) != "Down" {
		if time.Now().After(deadline) {
			t.Fatal("a dead server is not marked Down")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Health checks turned off: the server is Up, and no prober remains.
	off := *a
	off.HealthCheck = false
	c.Sync(&catalog.Snapshot{APIs: map[string]*apidef.API{"a": &off}})
	if c.Status("a", s) != "Up" || len(c.targets) != 0 {
		t.Fatalf("got %s with %d probers", c.Status("a", s), len(c.targets))
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
