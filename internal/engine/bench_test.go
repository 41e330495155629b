package engine

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"testing"

	"github.com/ase-project/ase/internal/flow"
	"github.com/ase-project/ase/internal/lists"
)

// loadBig fills the deny list with 10,000,000 IPv4 addresses, 1,000,000
// CIDR ranges and 1,000,000 each of tokens, cookies and API keys, and the
// allow list with 100 addresses.
func loadBig(b *testing.B, f *fixture) {
	b.Helper()
	rng := rand.New(rand.NewPCG(1, 1))
	const chunk = 1_000_000
	entries := make([]lists.Entry, 0, chunk)
	flush := func(list lists.List) {
		f.lists.Load(list, entries)
		entries = entries[:0]
	}
	for i := 0; i < 10_000_000; i++ {
		a := netip.AddrFrom4([4]byte{byte(11 + rng.IntN(180)), byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32())})
		entries = append(entries, lists.Entry{Kind: lists.IP, Prefix: netip.PrefixFrom(a, 32)})
		if len(entries) == chunk {
			flush(lists.Deny)
		}
	}
	for i := 0; i < 1_000_000; i++ {
		a := netip.AddrFrom4([4]byte{byte(11 + rng.IntN(180)), byte(rng.Uint32()), byte(rng.Uint32()), 0})
		entries = append(entries, lists.Entry{Kind: lists.IP, Prefix: netip.PrefixFrom(a, 16+rng.IntN(9)).Masked()})
	}
	flush(lists.Deny)
	for _, kind := range []lists.Kind{lists.Token, lists.Cookie, lists.APIKey} {
		name := map[lists.Kind]string{lists.Cookie: "SID", lists.APIKey: "x-api-key"}[kind]
		for i := 0; i < 1_000_000; i++ {
			entries = append(entries, lists.Entry{Kind: kind, Name: name, Value: fmt.Sprintf("%s-%016x", kind, rng.Uint64())})
		}
		flush(lists.Deny)
	}
	for i := 0; i < 100; i++ {
		a := netip.AddrFrom4([4]byte{192, 0, 2, byte(i)})
		entries = append(entries, lists.Entry{Kind: lists.IP, Prefix: netip.PrefixFrom(a, 32)})
	}
	flush(lists.Allow)
	runtime.GC()
}

// BenchmarkDecide is a full decision for a client that presents an IP, a
// bearer token, a cookie and an API key, none of them listed: every
// structure of both lists is consulted.
//
// The engine has flow control's limiter, as the server gives it: the
// API has no client spike threshold, so a decision must not pay for it.
func BenchmarkDecide(b *testing.B) {
	f := newFixture(b, flow.NewClients(nil))
	loadBig(b, f)
	api := mustAPI(b, `{"api_metadata": {"url": "/shop", "cookie": "SID", "oauth2_access_token": true, "apikey_header": "X-API-KEY",
		"api_pattern_enforcement": {"methods_allowed": ["GET", "POST"], "content_type_allowed": "application/json"},
		"decoy_config": {"decoy_enabled": true, "decoy_subpaths": ["/admin"]}}}`)
	rng := rand.New(rand.NewPCG(2, 2))
	const n = 4096
	reqs := make([]Request, n)
	for i := range reqs {
		// Clients come from outside the listed ranges (first octet 200-223),
		// so every structure is consulted and nothing matches.
		reqs[i] = Request{API: api, Path: "/shop/items/42", Method: "GET", Scheme: "https", ID: lists.Identity{
			IP:    netip.AddrFrom4([4]byte{byte(200 + rng.IntN(24)), byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32())}),
			Token: fmt.Sprintf("clean-token-%016x", rng.Uint64()), CookieName: "SID", Cookie: fmt.Sprintf("clean-cookie-%016x", rng.Uint64()),
			APIKeyName: "x-api-key", APIKey: fmt.Sprintf("clean-key-%016x", rng.Uint64()),
		}}
	}
	b.Run("clean", func(b *testing.B) {
		b.ReportAllocs()
		// cpu-ns/op is the thread's own CPU time per decision: on a shared
		// machine, ns/op also counts the time other processes held the
		// core (both are reported; quiet, they agree).
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		cpu0, ok := threadCPU()
		for i := 0; i < b.N; i++ {
			if d := f.eng.Decide(&reqs[i%n]); d.Action != Allow || d.Reason != ReasonNone {
				b.Fatalf("a clean client got %+v", d)
			}
		}
		if cpu1, ok1 := threadCPU(); ok && ok1 {
			b.ReportMetric(float64(cpu1-cpu0)/float64(b.N), "cpu-ns/op")
		}
	})
	listed := reqs[0]
	listed.ID.Token = "token-listed"
	f.lists.Load(lists.Deny, []lists.Entry{{Kind: lists.Token, Value: "token-listed"}})
	b.Run("listed_token", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if d := f.eng.Decide(&listed); d.Action != Block {
				b.Fatalf("got %+v", d)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				f.eng.Decide(&reqs[i%n])
				i++
			}
		})
	})
}
