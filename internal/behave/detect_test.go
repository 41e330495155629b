package behave

import (
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/ase-project/ase/internal/apidef"
	"github.com/ase-project/ase/internal/lists"
)

// sim drives an engine with virtual time.
type sim struct {
	e     *Engine
	api   *apidef.API
	now   int64
	found []Detection
	// noValues: End is not given the credentials' values (a sideband
	// response call whose request's values were not kept).
	noValues bool
	id       lists.Identity
}

func newSim(t testing.TB, window, training time.Duration) *sim {
	s := &sim{now: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC).UnixNano()}
	s.e = New(Config{Window: window, Training: training, MaxIdentities: 1 << 14, Now: func() time.Time { return time.Unix(0, s.now) }},
		func(d *Detection) bool { s.found = append(s.found, *d); return true })
	s.api = &apidef.API{ID: "shop", LoginURL: "/shop/login"}
	s.e.Sync(map[string]*apidef.API{"shop": s.api})
	return s
}

func (s *sim) do(id lists.Identity, method, path string, status int, bytes int64) bool {
	var t Ticket
	listed := s.e.Begin(s.api, &id, method, path, s.now, &t)
	var vals Values
	if !s.noValues {
		s.id = id // a request's identity lives on the heap (vals escapes)
		vals = IdentityValues(&s.id)
	}
	s.e.End(&t, status, bytes, vals)
	return listed
}

func ip(i int) netip.Addr { return netip.AddrFrom4([4]byte{127, 1, byte(i >> 8), byte(i)}) }

// normal is one second of a normal mix: 50 clients, each with its token,
// a request every few seconds to a few resources, a login now and then.
func (s *sim) normal(sec int) {
	for c := 0; c < 50; c++ {
		if (sec+c)%3 != 0 {
			continue
		}
		id := lists.Identity{IP: ip(c), Token: fmt.Sprintf("tok-%d", c)}
		s.do(id, "GET", fmt.Sprintf("/shop/items/%d", (sec/3+c)%4), 200, 2000)
		if (sec+c)%90 == 0 {
			id.ClaimedUsername = fmt.Sprintf("user%d", c)
			st := 200
			if c%5 == 0 {
				st = 401 // a mistyped password
			}
			s.do(id, "POST", "/shop/login", st, 100)
		}
	}
}

func (s *sim) run(t *testing.T, seconds int, attack func(sec int)) {
	for sec := 0; sec < seconds; sec++ {
		s.normal(sec)
		if attack != nil {
			attack(sec)
		}
		s.now += int64(time.Second)
	}
}

func TestDetectors(t *testing.T) {
	attacks := map[string]struct {
		det    Detector
		kind   lists.Kind
		value  string
		attack func(s *sim, sec int)
	}{
		"stolen token": {StolenCredential, lists.Token, "tok-7", func(s *sim, sec int) {
			s.do(lists.Identity{IP: ip(1000 + sec), Token: "tok-7"}, "GET", "/shop/items/1", 200, 2000)
		}},
		"login per client": {LoginAttack, lists.IP, "127.1.3.232", func(s *sim, sec int) {
			for i := 0; i < 3; i++ {
				s.do(lists.Identity{IP: ip(1000), ClaimedUsername: fmt.Sprintf("victim%d", sec*3+i)}, "POST", "/shop/login", 401, 50)
			}
		}},
		"credential stuffing": {LoginAttack, lists.IP, "127.1.7.218", func(s *sim, sec int) {
			s.do(lists.Identity{IP: ip(2000 + sec), ClaimedUsername: "alice"}, "POST", "/shop/login", 401, 50)
		}},
		"probing": {Probing, lists.IP, "127.1.3.232", func(s *sim, sec int) {
			for i := 0; i < 2; i++ {
				s.do(lists.Identity{IP: ip(1000)}, "GET", fmt.Sprintf("/shop/admin%d", sec*2+i), 404, 10)
			}
		}},
		"extreme activity": {ExtremeActivity, lists.IP, "127.1.3.232", func(s *sim, sec int) {
			for i := 0; i < 10; i++ {
				s.do(lists.Identity{IP: ip(1000)}, "GET", "/shop/items/1", 200, 2000)
			}
		}},
		"exfiltration": {Exfiltration, lists.Token, "tok-x", func(s *sim, sec int) {
			s.do(lists.Identity{IP: ip(1000), Token: "tok-x"}, "GET", "/shop/export", 200, 5<<20)
		}},
		"scraping": {Scraping, lists.IP, "127.1.3.232", func(s *sim, sec int) {
			for i := 0; i < 3; i++ {
				s.do(lists.Identity{IP: ip(1000)}, "GET", fmt.Sprintf("/shop/items/%d", 100+sec*3+i), 200, 2000)
			}
		}},
	}
	for name, a := range attacks {
		t.Run(name, func(t *testing.T) {
			s := newSim(t, time.Minute, 30*time.Minute)
			s.run(t, 35*60, nil) // training, then normal traffic enforced
			if len(s.found) > 0 {
				t.Fatalf("normal traffic found: %+v", s.found[0])
			}
			st, _ := s.e.Status("shop")
			if st[0].Training {
				t.Fatal("still training")
			}
			s.run(t, 5*60, func(sec int) { a.attack(s, sec) })
			// The attacker may show on other detectors too (probing at a high
			// rate is also extreme activity); no normal client may.
			ok := false
			for _, d := range s.found {
				if d.Detector == a.det && d.Kind == a.kind && d.Value == a.value {
					ok = true
				}
				if (d.Kind == lists.Token && d.Value != a.value) || (d.Kind == lists.IP && d.IP.As4()[2] == 0) {
					t.Errorf("a normal client found: %+v", d)
				}
			}
			if !ok {
				t.Fatalf("attacker %s %s not found; found %d, first %+v", a.kind, a.value, len(s.found), s.found[:min(len(s.found), 1)])
			}
		})
	}
}

func TestBeginEndDoNotAllocate(t *testing.T) {
	s := newSim(t, time.Minute, time.Hour)
	id := lists.Identity{IP: ip(1), Token: "tok", CookieName: "JSESSIONID", Cookie: "c"}
	n := testing.AllocsPerRun(1000, func() {
		s.do(id, "GET", "/shop/items/1", 200, 100)
		s.now += int64(time.Millisecond)
	})
	if n != 0 {
		t.Fatalf("%v allocations per request", n)
	}
}

// BenchmarkBeginEnd counts a request and its answer, for an address and a
// token: few clients (their state in cache), and 20,000 clients met in
// random order (tracked beyond the caches, as on a busy API).
func BenchmarkBeginEnd(b *testing.B) {
	for _, n := range []int{1024, 20000} {
		b.Run(fmt.Sprint(n, "_clients"), func(b *testing.B) {
			s := newSim(b, time.Minute, time.Hour)
			s.e = New(Config{Window: time.Minute, Training: time.Hour, MaxIdentities: 65536, Now: func() time.Time { return time.Unix(0, s.now) }}, nil)
			s.e.Sync(map[string]*apidef.API{"shop": s.api})
			ids := make([]lists.Identity, n)
			paths := make([]string, 50)
			for i := range ids {
				ids[i] = lists.Identity{IP: netip.AddrFrom4([4]byte{127, byte(i >> 16), byte(i >> 8), byte(i)}), Token: fmt.Sprintf("token-%d-abcdefghijklmnop", i)}
			}
			for i := range paths {
				paths[i] = fmt.Sprintf("/shop/items/%d", i)
			}
			order := rand.New(rand.NewPCG(1, 2)).Perm(n)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				s.now += 1000
				s.do(ids[order[i%n]], "GET", paths[i%len(paths)], 200, 100)
			}
		})
	}
}

// A stolen token sent second, behind a decoy value, is still counted: the
// backend may read either.
func TestEveryCredentialValueCounts(t *testing.T) {
	s := newSim(t, time.Minute, 30*time.Minute)
	s.run(t, 31*60, nil)
	for k := 0; k < 10; k++ {
		id := lists.Identity{IP: ip(3000 + k), Token: fmt.Sprintf("decoy-%d", k),
			More: []lists.Credential{{Kind: lists.Token, Value: "tok-5"}}}
		s.do(id, "GET", "/shop/items/1", 200, 2000)
		s.now += int64(time.Second)
	}
	for _, d := range s.found {
		if d.Detector == StolenCredential && d.Kind == lists.Token && d.Value == "tok-5" {
			return
		}
	}
	t.Fatalf("the token sent second was not found stolen: %+v", s.found)
}

// A client far from every threshold keeps only its window's first
// requests as samples (its later ones do not touch the samples' lines); a
// detection's evidence still shows the request that made it, with its
// answer's status, and a client nearing a threshold keeps its latest
// requests.
func TestSamplesOfColdAndWarmClients(t *testing.T) {
	s := newSim(t, time.Minute, 30*time.Minute)
	s.run(t, 31*60, nil)
	cold := lists.Identity{IP: ip(1000)}
	for i := range 20 {
		s.do(cold, "GET", fmt.Sprintf("/shop/items/%d", i%4), 200, 2000)
		s.now += int64(100 * time.Millisecond)
	}
	a := (*s.e.apis.Load())[s.api].st
	k := [2]uint64{maphash.Comparable(s.e.seed, cold.IP.As16()), a.idx<<8 | uint64(lists.IP)}
	sh := s.e.shardOf(k)
	sh.mu.Lock()
	st := sh.t.Peek(k)
	gen, warm := st.sgen, st.warm
	sh.mu.Unlock()
	if gen != samplesKept || warm {
		t.Fatalf("a cold client wrote %d samples in 20 requests (warm %v), want the first %d", gen, warm, samplesKept)
	}
	s.do(cold, "GET", "/shop/export", 200, 5<<20)
	if len(s.found) != 1 || s.found[0].Detector != Exfiltration {
		t.Fatalf("found %+v, want the exfiltration", s.found)
	}
	sm := s.found[0].Samples
	if len(sm) != samplesKept || sm[0].Path != "/shop/export" || sm[0].Status != 200 || sm[1].Path != "/shop/items/2" {
		t.Fatalf("samples %+v, want the exfiltrating request first, then the window's first ones", sm)
	}

	// A client ramping up its rate is warm past half the threshold: its
	// samples are its latest requests when it is found.
	s.found = nil
	hot := lists.Identity{IP: ip(1001)}
	for i := 0; len(s.found) == 0 && i < 100_000; i++ {
		s.do(hot, "GET", fmt.Sprintf("/shop/items/%d", i%4), 200, 2000)
		s.now += int64(time.Millisecond)
	}
	if len(s.found) == 0 || s.found[0].Detector != ExtremeActivity {
		t.Fatalf("found %+v, want extreme activity", s.found)
	}
	d := s.found[0]
	if len(d.Samples) != samplesKept || !d.Samples[0].Time.Equal(d.At) || d.Samples[2].Time.Before(d.At.Add(-3*time.Millisecond)) {
		t.Fatalf("samples %+v of a detection at %v, want its last 3 requests", d.Samples, d.At)
	}
}

// A detection an answer makes on a credential is reported at once when
// End is given the credential's value (inline; sideband when its request's
// values were kept), else at the credential's next request.
func TestAnswerSideCredentialDetection(t *testing.T) {
	for _, known := range []bool{true, false} {
		s := newSim(t, time.Minute, 30*time.Minute)
		s.run(t, 31*60, nil)
		s.noValues = !known
		id := lists.Identity{IP: ip(1000), Token: "tok-x", CookieName: "JSESSIONID", Cookie: "c-x"}
		s.do(id, "GET", "/shop/export", 200, 5<<20)
		var got []string
		for _, d := range s.found {
			got = append(got, d.Kind.String()+" "+d.Value)
		}
		if known && (len(got) != 3 || got[1] != "token tok-x" || got[2] != "cookie c-x" || s.found[1].Name != "" || s.found[2].Name != "JSESSIONID") {
			t.Fatalf("values known: found %v at the answer, want the address, the token and the cookie", got)
		}
		if !known {
			if len(got) != 1 || s.found[0].Kind != lists.IP {
				t.Fatalf("values unknown: found %v at the answer, want the address only", got)
			}
			s.do(id, "GET", "/shop/items/1", 200, 100)
			if len(s.found) != 3 || s.found[1].Value != "tok-x" || s.found[2].Value != "c-x" || s.found[2].Samples[0].Path != "/shop/items/1" {
				t.Fatalf("values unknown: found %+v by the next request, want the token and the cookie", s.found)
			}
		}
		if d := s.found[1]; d.Detector != Exfiltration || d.Samples[len(d.Samples)-1].Path == "" {
			t.Fatalf("credential's detection %+v", d)
		}
	}
}

// A Packed gives back the identities it took, in Begin's order, and the
// first that does not fit and every one after it are unknown.
func TestPacked(t *testing.T) {
	id := lists.Identity{IP: ip(1), Token: "tok", APIKeyName: "X-Key", APIKey: "k1", CookieName: "SID", Cookie: "c1", Username: "alice",
		More: []lists.Credential{{Kind: lists.Token, Value: "tok2"}, {Kind: lists.Username, Value: "mallory", Claimed: true}, {Kind: lists.Cookie, Name: "SID", Value: strings.Repeat("x", PackedBytes)}, {Kind: lists.Token, Value: "tok3"}}}
	var p Packed
	p.Pack(&id)
	want := IdentityValues(&id)
	for i := range 6 {
		k, n, v, ok := p.Identity(i)
		wk, wn, wv, wok := want.Identity(i)
		if !ok || !wok || k != wk || n != wn || v != wv {
			t.Fatalf("identity %d: %v %q %q %v, want %v %q %q", i, k, n, v, ok, wk, wn, wv)
		}
	}
	for i := 6; i < 9; i++ {
		if _, _, _, ok := p.Identity(i); ok {
			t.Fatalf("identity %d known, past the one too long", i)
		}
	}
	if _, _, _, ok := want.Identity(6); !ok {
		t.Fatal("the long cookie is an identity")
	}
	var q Packed
	q.CopyFrom(&p)
	if k, _, v, ok := q.Identity(5); !ok || k != lists.Token || v != "tok2" {
		t.Fatalf("a copy: %v %q %v", k, v, ok)
	}
	p.Pack(&lists.Identity{})
	if _, _, _, ok := p.Identity(0); ok {
		t.Fatal("an empty identity packed something")
	}
}
