package flow

import (
	"bytes"
	"fmt"
	"io"
	"net/netip"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ase-project/ase/internal/apidef"
	"github.com/ase-project/ase/internal/lists"
	"github.com/ase-project/ase/internal/units"
)

// clock is an injected time in Unix ns.
type clock struct{ t atomic.Int64 }

func (c *clock) now() int64              { return c.t.Load() }
func (c *clock) advance(d time.Duration) { c.t.Add(int64(d)) }

func api(t testing.TB, id, threshold string) *apidef.API {
	t.Helper()
	a, err := apidef.Decode(id, []byte(`{"api_metadata": {"url": "/`+id+`", "flow_control": {"client_spike_threshold": "`+threshold+`"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestClientAccuracy sends at twice the threshold for 10 seconds (of an
// injected clock) and counts what is admitted: the threshold within 5%.
func TestClientAccuracy(t *testing.T) {
	for _, threshold := range []string{"10/second", "100/second", "1000/second", "600/minute", "36000/hour"} {
		t.Run(threshold, func(t *testing.T) {
			c := &clock{}
			c.t.Store(time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC).UnixNano())
			l := NewClients(c.now)
			a := api(t, "shop", threshold)
			r, _ := units.ParseRate(threshold)
			perSec := float64(r.Count) / r.Per.Duration().Seconds()
			sent := int(2 * perSec * 10)
			gap := time.Duration(float64(time.Second) / (2 * perSec))
			id := &lists.Identity{IP: netip.MustParseAddr("192.0.2.1")}
			admitted := 0
			var lastWait time.Duration
			for i := 0; i < sent; i++ {
				if ok, wait := l.Allow(a, id, c.now()); ok {
					admitted++
				} else {
					lastWait = wait
				}
				c.advance(gap)
			}
			want := perSec * 10
			if dev := (float64(admitted) - want) / want; dev < -0.05 || dev > 0.05 {
				t.Fatalf("admitted %d of %d, want %.0f within 5%% (off by %.1f%%)", admitted, sent, want, dev*100)
			}
			if lastWait <= 0 || lastWait > time.Duration(float64(time.Second)/perSec) {
				t.Fatalf("retry-after %v for a rate of %.1f/s", lastWait, perSec)
			}
			t.Logf("admitted %d of %d (threshold %.0f in 10s)", admitted, sent, want)
		})
	}
}

func TestClientsAreSeparate(t *testing.T) {
	c := &clock{}
	l := NewClients(c.now)
	a, b := api(t, "a", "1/second"), api(t, "b", "1/second")
	ip := &lists.Identity{IP: netip.MustParseAddr("192.0.2.1")}
	other := &lists.Identity{IP: netip.MustParseAddr("192.0.2.2")}
	keyed := &lists.Identity{IP: netip.MustParseAddr("192.0.2.1"), APIKey: "k1"}
	for _, tt := range []struct {
		api  *apidef.API
		id   *lists.Identity
		want bool
	}{
		{a, ip, true}, {a, ip, false}, // one per second
		{b, ip, true},    // another API: its own share
		{a, other, true}, // another client
		{a, keyed, true}, // the same address with an API key is another client
		{a, keyed, false},
	} {
		if ok, _ := l.Allow(tt.api, tt.id, c.now()); ok != tt.want {
			t.Fatalf("%s %v: got %v, want %v", tt.api.ID, tt.id, ok, tt.want)
		}
	}
	// 0/second is no limit.
	free := api(t, "free", "0/second")
	for i := 0; i < 1000; i++ {
		if ok, _ := l.Allow(free, ip, c.now()); !ok {
			t.Fatal("0/second limited a client")
		}
	}
}

func TestClientsEvictIdle(t *testing.T) {
	c := &clock{}
	l := NewClients(c.now)
	a := api(t, "a", "10/second")
	for i := 0; i < 1000; i++ {
		l.Allow(a, &lists.Identity{IP: netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})}, c.now())
	}
	if l.Clients() != 1000 {
		t.Fatalf("tracking %d clients", l.Clients())
	}
	if n := l.Sweep(); n != 0 {
		t.Fatalf("swept %d active clients", n)
	}
	c.advance(time.Second)
	if n := l.Sweep(); n != 1000 || l.Clients() != 0 {
		t.Fatalf("swept %d, %d left", n, l.Clients())
	}
}

func servers(up *atomic.Bool, quota int, spike string) []ServerLimits {
	r, _ := units.ParseRate(spike)
	return []ServerLimits{{Quota: quota, Spike: r, Up: up}, {Quota: quota, Spike: r, Up: up}}
}

func TestGateQuotaAndFIFO(t *testing.T) {
	c := &clock{}
	up := &atomic.Bool{}
	up.Store(true)
	g := NewGate(servers(up, 2, "0/second"), GateOptions{Queueing: true, MaxQueue: 10, MaxWait: 5 * time.Second, Now: c.now})
	var held []int
	for i := 0; i < 4; i++ {
		s, err := g.Acquire(-1, 0)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, s)
	}
	if g.InFlight(0) != 2 || g.InFlight(1) != 2 {
		t.Fatalf("in flight %d/%d, want 2/2", g.InFlight(0), g.InFlight(1))
	}
	// Four more wait. Freeing one slot at a time, each goes to the
	// request that has waited longest.
	order := make(chan int, 4)
	for i := 0; i < 4; i++ {
		go func(i int) {
			if _, err := g.Acquire(-1, 0); err == nil {
				order <- i
			}
		}(i)
		for g.Waiting() != i+1 { // arrival order is the order they queued
			runtime.Gosched()
		}
	}
	for want, s := range held {
		g.Release(s)
		if got := <-order; got != want {
			t.Fatalf("a freed slot went to request %d, want %d (arrival order)", got, want)
		}
	}
	if g.InFlight(0) != 2 || g.InFlight(1) != 2 || g.Waiting() != 0 {
		t.Fatalf("in flight %d/%d, waiting %d", g.InFlight(0), g.InFlight(1), g.Waiting())
	}
}

func TestGateQueueBoundsAndTimeout(t *testing.T) {
	c := &clock{}
	g := NewGate(servers(nil, 1, "0/second"), GateOptions{Queueing: true, MaxQueue: 1, MaxWait: time.Second, Now: c.now})
	a, _ := g.Acquire(-1, 0)
	b, _ := g.Acquire(-1, 0)
	done := make(chan error, 1)
	go func() { _, err := g.Acquire(-1, 0); done <- err }()
	for g.Waiting() != 1 {
		runtime.Gosched()
	}
	if _, err := g.Acquire(-1, 0); err != ErrNoServer {
		t.Fatalf("a full queue accepted a request: %v", err)
	}
	c.advance(time.Second)
	g.Dispatch()
	if err := <-done; err != ErrNoServer {
		t.Fatalf("a request waited past the limit: %v", err)
	}
	g.Release(a)
	g.Release(b)
	// Without queueing, a busy API refuses at once.
	g = NewGate(servers(nil, 1, "0/second"), GateOptions{Now: c.now})
	g.Acquire(-1, 0)
	g.Acquire(-1, 0)
	if _, err := g.Acquire(-1, 0); err != ErrNoServer {
		t.Fatalf("got %v", err)
	}
}

func TestGateSpikeAndHealth(t *testing.T) {
	c := &clock{}
	up := &atomic.Bool{}
	up.Store(true)
	// 4/second on each of two servers with a quarter second of burst: one
	// each at once, then each waits 250 ms.
	g := NewGate(servers(up, 0, "4/second"), GateOptions{Now: c.now})
	ok := 0
	for i := 0; i < 10; i++ {
		if s, err := g.Acquire(-1, 0); err == nil {
			ok++
			g.Release(s)
		}
	}
	if ok != 2 {
		t.Fatalf("admitted %d at once, want 2", ok)
	}
	// Queued, a request is served when the rate allows.
	g = NewGate(servers(up, 0, "4/second"), GateOptions{Queueing: true, MaxQueue: 100, MaxWait: time.Minute, Now: c.now})
	for i := 0; i < 2; i++ {
		s, _ := g.Acquire(-1, 0)
		g.Release(s)
	}
	got := make(chan int, 1)
	go func() { s, _ := g.Acquire(-1, 0); got <- s }()
	for g.Waiting() != 1 {
		runtime.Gosched()
	}
	c.advance(250 * time.Millisecond)
	g.Dispatch()
	if s := <-got; s < 0 {
		t.Fatal("the rate allowed a request but the queue did not serve it")
	}
	// Down servers take nothing.
	up.Store(false)
	c.advance(time.Hour)
	if _, err := (NewGate(servers(up, 0, "0/second"), GateOptions{Now: c.now})).Acquire(-1, 0); err != ErrNoServer {
		t.Fatalf("got %v", err)
	}
}

type fakeClock struct{ now time.Time }

func (f *fakeClock) Now() time.Time        { return f.now }
func (f *fakeClock) Sleep(d time.Duration) { f.now = f.now.Add(d) }

func TestCopyThrottled(t *testing.T) {
	clk := &fakeClock{now: time.Unix(1000, 0)}
	src := strings.NewReader(strings.Repeat("x", 100_000))
	var dst bytes.Buffer
	rate := units.MustRate("10000/second")
	n, err := CopyThrottled(&dst, src, func() units.Rate { return rate }, clk)
	if err != nil || n != 100_000 || dst.Len() != 100_000 {
		t.Fatalf("copied %d, %v", n, err)
	}
	// 100 KB at 10 KB/s, with one second's burst: 9 to 10 seconds.
	if el := clk.now.Sub(time.Unix(1000, 0)); el < 9*time.Second || el > 10*time.Second {
		t.Fatalf("took %v", el)
	}
	// No limit: no waiting.
	clk = &fakeClock{now: time.Unix(0, 0)}
	CopyThrottled(io.Discard, strings.NewReader(strings.Repeat("x", 1<<20)), func() units.Rate { return units.Rate{} }, clk)
	if !clk.now.Equal(time.Unix(0, 0)) {
		t.Fatal("an unlimited copy waited")
	}
}

// BenchmarkClientAllow is the flow-control check the engine makes: it
// must not allocate and must cost well under 100 ns.
func BenchmarkClientAllow(b *testing.B) {
	l := NewClients(nil)
	a := api(b, "shop", "1000000000/second")
	ids := make([]lists.Identity, 1024)
	for i := range ids {
		ids[i] = lists.Identity{IP: netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), Token: fmt.Sprintf("token-%d", i)}
	}
	now := time.Now().UnixNano()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		l.Allow(a, &ids[i%len(ids)], now+int64(i))
	}
}

// BenchmarkClientMemory measures 1,000,000 tracked clients.
func BenchmarkClientMemory(b *testing.B) {
	for it := 0; it < b.N; it++ {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		l := NewClients(nil)
		a := api(b, "shop", "10/second")
		for i := 0; i < 1_000_000; i++ {
			l.Allow(a, &lists.Identity{IP: netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})}, time.Now().UnixNano())
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "MB/1M_clients")
		runtime.KeepAlive(l)
	}
}
