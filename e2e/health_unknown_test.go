package e2e

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// gatedBackend is a backend whose health page answers only when the test
// says how: each probe is announced on probes and then waits for a
// status code on answer. Other paths answer 200 with the backend's name.
type gatedBackend struct {
	*httptest.Server
	name   string
	probes chan struct{}
	answer chan int
}

func newGatedBackend(t *testing.T, name string) *gatedBackend {
	t.Helper()
	g := &gatedBackend{name: name, probes: make(chan struct{}, 16), answer: make(chan int, 16)}
	stop := make(chan struct{})
	g.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/health" {
			w.Header().Set("X-Backend", name)
			fmt.Fprintf(w, "%s %s", name, r.URL.Path)
			return
		}
		g.probes <- struct{}{}
		select {
		case code := <-g.answer:
			w.WriteHeader(code)
		case <-r.Context().Done():
		case <-stop:
		}
	}))
	t.Cleanup(g.Close)
	t.Cleanup(func() { close(stop) }) // runs before Close: no handler left waiting
	return g
}

func (g *gatedBackend) addr() string { return g.Listener.Addr().String() }

func (g *gatedBackend) port() int { return g.Listener.Addr().(*net.TCPAddr).Port }

// awaitProbe waits for the next health probe to reach g.
func (g *gatedBackend) awaitProbe(t *testing.T) {
	t.Helper()
	select {
	case <-g.probes:
	case <-time.After(30 * time.Second):
		t.Fatalf("no health probe reached %s", g.name)
	}
}

// healthOf returns each server's health_status as GET /server reports it.
func healthOf(t *testing.T, i *Instance, apiID string) map[string]string {
	t.Helper()
	var l struct {
		Server []struct {
			Host   string `json:"host"`
			Port   int    `json:"port"`
			Health string `json:"health_status"`
		} `json:"server"`
	}
	r := i.Do("GET", "/v5/ase/server?api_id="+apiID, "", nil)
	if r.Code != 200 {
		t.Fatalf("GET /server: got %d %s", r.Code, r.Body)
	}
	decode(t, r, &l)
	out := map[string]string{}
	for _, s := range l.Server {
		out[fmt.Sprintf("%s:%d", s.Host, s.Port)] = s.Health
	}
	return out
}

// wantHealthEverywhere checks one server's state through REST, both CLI
// commands and the metrics.
func wantHealthEverywhere(t *testing.T, i *Instance, apiID, addr, state string) {
	t.Helper()
	if got := healthOf(t, i, apiID)[addr]; got != state {
		t.Fatalf("GET /server: %s is %q, want %q", addr, got, state)
	}
	for _, cmd := range []string{"health_status", "list_server"} {
		// The race detector's exit pause (1 s by default) would eat into
		// the 5 s a held probe stays unanswered.
		out, errOut, code := i.CLIEnv([]string{"ASE_URL=" + i.MgmtURL, "ASE_PASSWORD=" + i.Password, "GORACE=atexit_sleep_ms=0"}, "", cmd, apiID)
		if code != 0 || !strings.Contains(out, "server "+addr+" ") || !hasLineEnding(out, "server "+addr, state) {
			t.Fatalf("%s %s: got %d %q %q, want %s %s", cmd, apiID, code, out, errOut, addr, state)
		}
	}
	fams := scrape(t, i)
	wantUp := 0.0
	if state == "Up" {
		wantUp = 1
	}
	if got := value(t, fams, "ase_backend_up", map[string]string{"api_id": apiID, "server": addr}); got != wantUp {
		t.Fatalf("ase_backend_up of %s: got %v, want %v", addr, got, wantUp)
	}
	for _, s := range []string{"Up", "Down", "Unknown"} {
		want := 0.0
		if s == state {
			want = 1
		}
		if got := value(t, fams, "ase_backend_health", map[string]string{"api_id": apiID, "server": addr, "state": strings.ToLower(s)}); got != want {
			t.Fatalf("ase_backend_health{state=%q} of %s: got %v, want %v", strings.ToLower(s), addr, got, want)
		}
	}
}

// hasLineEnding reports whether out has a line starting with prefix and
// ending with the word last.
func hasLineEnding(out, prefix, last string) bool {
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if strings.HasPrefix(l, prefix) && len(f) > 0 && f[len(f)-1] == last {
			return true
		}
	}
	return false
}

// TestHealthUnknownUntilFirstProbe: a server whose API checks health is
// Unknown, never Up, until its first probe answers; that probe runs at
// once (the interval here is 10 minutes) when health checks are turned on
// and when ASE starts. With every server Unknown, requests are served.
func TestHealthUnknownUntilFirstProbe(t *testing.T) {
	g := newGatedBackend(t, "g")
	i := startInstance(t, nil)
	wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=shop", apiDoc("/shop", fmt.Sprintf(`"servers": [{"host": "127.0.0.1", "port": %d}]`, g.port())), nil), 200, ok)
	// health_check off: Up at once, never probed.
	waitUntil(t, func() bool { return i.get("GET", "/shop/x", nil).Code == 200 })
	wantHealthEverywhere(t, i, "shop", g.addr(), "Up")

	on := apiDoc("/shop", fmt.Sprintf(`"health_check": true, "health_check_interval": 600, "health_retry_count": 3, "servers": [{"host": "127.0.0.1", "port": %d}]`, g.port()))
	wantJSON(t, i.Do("PUT", "/v5/ase/api?api_id=shop", on, nil), 200, ok)
	if got := healthOf(t, i, "shop")[g.addr()]; got != "Unknown" {
		t.Fatalf("right after health_check was turned on: %q, want Unknown", got)
	}
	g.awaitProbe(t)
	wantHealthEverywhere(t, i, "shop", g.addr(), "Unknown")
	// The only server is Unknown: it is tried rather than refused.
	if r := i.get("GET", "/shop/x", nil); r.Code != 200 || r.Header.Get("X-Backend") != "g" {
		t.Fatalf("with every server Unknown: got %d %s, want 200 from g", r.Code, r.Body)
	}
	g.answer <- 200
	waitUntil(t, func() bool { return healthOf(t, i, "shop")[g.addr()] == "Up" })
	wantHealthEverywhere(t, i, "shop", g.addr(), "Up")

	// A restart knows nothing yet: Unknown until the first probe, at once.
	i.Restart()
	g.awaitProbe(t)
	wantHealthEverywhere(t, i, "shop", g.addr(), "Unknown")
	if r := i.get("GET", "/shop/x", nil); r.Code != 200 {
		t.Fatalf("after a restart, every server Unknown: got %d %s", r.Code, r.Body)
	}
	g.answer <- 200
	waitUntil(t, func() bool { return healthOf(t, i, "shop")[g.addr()] == "Up" })
	wantHealthEverywhere(t, i, "shop", g.addr(), "Up")
}

// TestHealthUnknownRouting: while a server of the API is Up, an Unknown
// one gets no requests; it gets its share once its first probe succeeds.
// A server whose first probe fails is Down at once, whatever
// health_retry_count says: it was never known healthy.
func TestHealthUnknownRouting(t *testing.T) {
	u, b := newGatedBackend(t, "u"), newGatedBackend(t, "b")
	b.answer <- 200 // b's first probe succeeds
	i := startInstance(t, nil)
	def := apiDoc("/shop", fmt.Sprintf(`"health_check": true, "health_check_interval": 600, "health_retry_count": 3,
		"servers": [{"host": "127.0.0.1", "port": %d}, {"host": "127.0.0.1", "port": %d}]`, u.port(), b.port()))
	wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=shop", def, nil), 200, ok)
	u.awaitProbe(t)
	waitUntil(t, func() bool { return healthOf(t, i, "shop")[b.addr()] == "Up" })
	for n := 0; n < 10; n++ {
		if r := i.get("GET", "/shop/x", nil); r.Code != 200 || r.Header.Get("X-Backend") != "b" {
			t.Fatalf("request %d with u Unknown and b Up: got %d from %q, want 200 from b", n, r.Code, r.Header.Get("X-Backend"))
		}
	}
	if got := healthOf(t, i, "shop")[u.addr()]; got != "Unknown" {
		t.Fatalf("u is %q, want still Unknown (its probe waits for the test; it times out after 5 s)", got)
	}
	wantHealthEverywhere(t, i, "shop", u.addr(), "Unknown")

	u.answer <- 200
	waitUntil(t, func() bool { return healthOf(t, i, "shop")[u.addr()] == "Up" })
	seen := map[string]int{}
	for n := 0; n < 10; n++ {
		seen[i.get("GET", "/shop/x", nil).Header.Get("X-Backend")]++
	}
	if seen["u"] == 0 || seen["b"] == 0 {
		t.Fatalf("with both Up: got %v, want both used", seen)
	}

	// A server added with health_retry_count 3 whose first probe fails.
	d := newGatedBackend(t, "d")
	wantJSON(t, i.Do("POST", "/v5/ase/server?api_id=shop", fmt.Sprintf(`{"server": {"host": "127.0.0.1", "port": %d}}`, d.port()), nil), 200, ok)
	if got := healthOf(t, i, "shop")[d.addr()]; got != "Unknown" {
		t.Fatalf("a server just added: %q, want Unknown", got)
	}
	d.awaitProbe(t)
	d.answer <- 503
	waitUntil(t, func() bool { return healthOf(t, i, "shop")[d.addr()] == "Down" })
	wantHealthEverywhere(t, i, "shop", d.addr(), "Down")
}

// settleHealth waits until no server of the API is Unknown any more: for
// tests whose API checks the health of servers nothing listens at (Down
// once each first probe has answered).
func settleHealth(t *testing.T, i *Instance, apiID string) {
	t.Helper()
	waitUntil(t, func() bool {
		for _, h := range healthOf(t, i, apiID) {
			if h == "Unknown" {
				return false
			}
		}
		return true
	})
}
