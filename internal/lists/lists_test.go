package lists

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ase-project/ase/internal/store"
)

// clock is an injected, settable time.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func open(t testing.TB, limit int64) (*Lists, *store.Bolt, *clock) {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "ase.db"))
	if err != nil {
		t.Fatal(err)
	}
	c := &clock{t: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)}
	l, err := Open(context.Background(), st, Options{Limit: limit, Now: c.now, Log: slog.Default()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close(); st.Close() })
	return l, st, c
}

func mustEntries(t testing.TB, body string, now time.Time) []Entry {
	t.Helper()
	es, _, err := DecodeEntries([]byte(body), true, now)
	if err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	return es
}

func add(t testing.TB, l *Lists, st store.Store, list List, body string) {
	t.Helper()
	b, _, err := l.Add(context.Background(), st, list, mustEntries(t, body, l.now()), strings.HasPrefix(body, "["))
	if err != nil {
		t.Fatalf("add %s: %v", body, err)
	}
	if _, err := st.Commit(context.Background(), b); err != nil {
		t.Fatal(err)
	}
}

func TestDecodeEntries(t *testing.T) {
	now := time.Unix(1000, 0)
	tests := []struct {
		body     string
		describe []string
		err      string
	}{
		{body: `{"type": "ip", "value": "1.1.1.1"}`, describe: []string{"ip 1.1.1.1"}},
		{body: `{"type": "ip", "value": "10.1.2.3/8"}`, describe: []string{"ip 10.0.0.0/8"}},
		{body: `{"type": "ip", "value": "::ffff:1.2.3.4"}`, describe: []string{"ip 1.2.3.4"}},
		{body: `{"type": "ip", "value": "2001:DB8::1/128"}`, describe: []string{"ip 2001:db8::1"}},
		{body: `{"type": "token", "value": "sadjhasiufgkjdsbfkgfa"}`, describe: []string{"token sadjhasiufgkjdsbfkgfa"}},
		{body: `{"type": "cookie", "name": "JSESSIONID", "value": "ljkhasioutfdqbjsfdmakhflia"}`, describe: []string{"cookie JSESSIONID ljkhasioutfdqbjsfdmakhflia"}},
		{body: `{"type": "api_key", "name": "X-API-KEY", "value": "k1", "ttl": 60}`, describe: []string{"api_key X-API-KEY k1"}},
		{body: `[{"type": "username", "value": "bob"}, {"type": "ip", "value": "::1"}]`, describe: []string{"username bob", "ip ::1"}},
		{body: `{"type": "ip", "value": "1.1.1.300"}`, err: `value: "1.1.1.300" is not an IP address or CIDR range`},
		{body: `{"type": "mac", "value": "x"}`, err: `type: must be ip, token, cookie, api_key or username, got "mac"`},
		{body: `{"type": "cookie", "value": "x"}`, err: "name: is required for a cookie entry"},
		{body: `{"type": "token", "name": "n", "value": "x"}`, err: "name: applies to cookie and api_key entries only"},
		{body: `{"type": "ip"}`, err: "value: is required"},
		{body: `{"type": "ip", "value": 5}`, err: "value: must be a string, got a number"},
		{body: `{"type": "ip", "value": "1.1.1.1", "ttl": 0}`, err: "ttl: must be from 1 second to 10 years, got 0"},
		{body: `{"type": "ip", "value": "1.1.1.1", "tll": 5}`, err: `tll: unknown field (did you mean "ttl"?)`},
		{body: `{"type": "token", "value": "a\u0000b"}`, err: "value: must be printable text"},
		{body: `[{"type": "ip", "value": "x"}, {"type": "ip", "value": "1.1.1.1"}, {"type": "token"}]`, err: `[0].value: "x" is not an IP address or CIDR range; [2].value: is required`},
		{body: `[]`, err: "the array of entries is empty"},
		{body: `{"type": "ip", "value": "1.1.1.1"`, err: "invalid JSON"},
		{body: `"ip"`, err: "must be an object"},
	}
	for _, tt := range tests {
		t.Run(tt.body, func(t *testing.T) {
			es, _, err := DecodeEntries([]byte(tt.body), true, now)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("got %v, want an error containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range es {
				got = append(got, e.Describe())
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.describe) {
				t.Fatalf("got %v, want %v", got, tt.describe)
			}
		})
	}
	if _, _, err := DecodeEntries([]byte(`[{"type": "ip", "value": "1.1.1.1"}]`), false, now); err == nil {
		t.Fatal("an array accepted where one entry is expected")
	}
	es, _, _ := DecodeEntries([]byte(`{"type": "ip", "value": "1.1.1.1", "ttl": 60}`), false, now)
	if !es[0].Expires.Equal(now.Add(time.Minute)) {
		t.Fatalf("got expiry %v", es[0].Expires)
	}
}

func TestStoreKeyRoundTrip(t *testing.T) {
	now := time.UnixMilli(1_800_000_000_123)
	for _, body := range []string{
		`{"type": "ip", "value": "10.0.0.0/8", "ttl": 5}`, `{"type": "ip", "value": "2001:db8::/32"}`,
		`{"type": "cookie", "name": "JSESSIONID", "value": "a/b=c"}`, `{"type": "api_key", "name": "X-Key", "value": "v"}`,
		`{"type": "token", "value": "t"}`, `{"type": "username", "value": "bob smith"}`,
	} {
		e := mustEntries(t, body, now)[0]
		e.Tag = Decoy
		for _, list := range []List{Deny, Allow} {
			gl, got, err := parseStored(e.StoreKey(list), e.storeValue())
			if err != nil || gl != list || got.Describe() != e.Describe() || got.Tag != e.Tag || !got.Expires.Equal(e.Expires) || got.Prefix != e.Prefix {
				t.Fatalf("%s: got %v %+v %v, want %+v", body, gl, got, err, e)
			}
		}
	}
}

func TestMatching(t *testing.T) {
	l, st, _ := open(t, 1<<30)
	add(t, l, st, Deny, `[{"type": "ip", "value": "192.0.2.1"}, {"type": "ip", "value": "10.0.0.0/8"},
		{"type": "ip", "value": "2001:db8::1"}, {"type": "ip", "value": "2001:db8:ff::/48"},
		{"type": "token", "value": "tok"}, {"type": "cookie", "name": "JSESSIONID", "value": "c1"},
		{"type": "api_key", "name": "X-API-KEY", "value": "k1"}, {"type": "username", "value": "mallory"}]`)
	ip := netip.MustParseAddr
	tests := []struct {
		name string
		id   Identity
		kind Kind
	}{
		{"v4 exact", Identity{IP: ip("192.0.2.1")}, IP},
		{"v4 cidr", Identity{IP: ip("10.200.3.4")}, IP},
		{"v6 exact", Identity{IP: ip("2001:db8::1")}, IP},
		{"v6 cidr", Identity{IP: ip("2001:db8:ff:1::9")}, IP},
		{"token", Identity{IP: ip("192.0.2.99"), Token: "tok"}, Token},
		{"cookie", Identity{IP: ip("192.0.2.99"), CookieName: "JSESSIONID", Cookie: "c1"}, Cookie},
		{"api key header case", Identity{IP: ip("192.0.2.99"), APIKeyName: "x-api-key", APIKey: "k1"}, APIKey},
		{"username", Identity{IP: ip("192.0.2.99"), Username: "mallory"}, Username},
		{"clean", Identity{IP: ip("192.0.2.2"), Token: "other", CookieName: "JSESSIONID", Cookie: "c2", APIKeyName: "x-api-key", APIKey: "k2", Username: "alice"}, 0},
		{"cookie of another name", Identity{IP: ip("192.0.2.99"), CookieName: "SID", Cookie: "c1"}, 0},
		{"token value as username", Identity{IP: ip("192.0.2.99"), Username: "tok"}, 0},
		{"no ip", Identity{}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := l.Keys(&tt.id)
			m, ok := l.Match(Deny, &tt.id, &k)
			if ok != (tt.kind != 0) || m.Kind != tt.kind {
				t.Fatalf("got %+v, %v, want kind %v", m, ok, tt.kind)
			}
			if _, ok := l.Match(Allow, &tt.id, &k); ok {
				t.Fatal("matched the empty allow list")
			}
		})
	}
}

func TestTTLExpiresExactly(t *testing.T) {
	l, st, c := open(t, 1<<30)
	add(t, l, st, Deny, `[{"type": "ip", "value": "192.0.2.1", "ttl": 10}, {"type": "ip", "value": "10.0.0.0/8", "ttl": 10},
		{"type": "ip", "value": "10.1.0.0/16", "ttl": 5}, {"type": "token", "value": "tok", "ttl": 10},
		{"type": "ip", "value": "192.0.2.2"}]`)
	id := func(ip string) *Identity { return &Identity{IP: netip.MustParseAddr(ip), Token: "tok"} }
	matches := func(i *Identity) bool { k := l.Keys(i); _, ok := l.Match(Deny, i, &k); return ok }
	count := func() int {
		n := 0
		l.View(context.Background(), st, Deny, nil, func(Entry) error { n++; return nil })
		return n
	}
	c.add(5*time.Second - time.Millisecond)
	if !matches(&Identity{IP: netip.MustParseAddr("10.1.2.3")}) || count() != 5 {
		t.Fatal("entries gone before their time")
	}
	c.add(time.Millisecond) // 5s: the /16 expired, the /8 still covers
	if m := (&Identity{IP: netip.MustParseAddr("10.1.2.3")}); !matches(m) || count() != 4 {
		t.Fatalf("after 5s: match %v, view %d, want the /8 to match and 4 entries", matches(m), count())
	}
	c.add(5*time.Second - time.Millisecond)
	if !matches(id("192.0.2.1")) {
		t.Fatal("expired early")
	}
	c.add(time.Millisecond) // 10s
	for _, ip := range []string{"192.0.2.1", "10.2.3.4"} {
		if i := id(ip); matches(&Identity{IP: i.IP}) || matches(&Identity{IP: netip.MustParseAddr("192.0.2.9"), Token: "tok"}) {
			t.Fatalf("%s still matches at its expiry", ip)
		}
	}
	if count() != 1 {
		t.Fatalf("view shows %d entries after expiry, want 1", count())
	}
	// The sweep (this one, or the background one that follows the same
	// clock) removes exactly the due entries from the store.
	l.ExpireDue(context.Background())
	n := 0
	st.Scan(context.Background(), Prefix, func(string, []byte) error { n++; return nil })
	if n != 1 || l.Count(Deny, IP) != 1 {
		t.Fatalf("store holds %d entries, memory %d IPs; want 1 and 1", n, l.Count(Deny, IP))
	}
}

func TestReaddedEntryKeepsNewTTL(t *testing.T) {
	l, st, c := open(t, 1<<30)
	add(t, l, st, Deny, `{"type": "ip", "value": "192.0.2.1", "ttl": 1}`)
	c.add(2 * time.Second)
	// Expired but not yet swept: adding it again is allowed and wins.
	add(t, l, st, Deny, `{"type": "ip", "value": "192.0.2.1", "ttl": 100}`)
	if n := l.ExpireDue(context.Background()); n != 0 {
		t.Fatalf("the sweep deleted %d re-added entries", n)
	}
	if !l.Contains(Deny, mustEntries(t, `{"type": "ip", "value": "192.0.2.1"}`, c.now())[0]) {
		t.Fatal("re-added entry missing")
	}
}

// stored returns the tag and expiry (Unix ms) stored under key, or false.
func stored(t *testing.T, st store.Store, key string) (Tag, int64, bool) {
	t.Helper()
	v, err := st.Get(context.Background(), key)
	if err != nil {
		return 0, 0, false
	}
	sv, ok := decodeValue(v)
	if !ok {
		t.Fatalf("%s: malformed value %x", key, v)
	}
	return sv.tag, sv.exp, true
}

// setSweepHook sets the hook ExpireDue runs between its two steps.
func setSweepHook(l *Lists, f func()) {
	l.sweepMu.Lock()
	l.sweepHook = f
	l.sweepMu.Unlock()
}

// The sweep checks an expired entry in memory, then reads it from the
// store: an entry re-added between the two steps keeps its new TTL.
func TestSweepSparesEntryReaddedBetweenItsSteps(t *testing.T) {
	ctx := context.Background()
	l, st, c := open(t, 1<<30)
	add(t, l, st, Deny, `{"type": "ip", "value": "192.0.2.1", "ttl": 1}`)
	var once sync.Once
	var readdErr error
	// Set before the entry is due: whichever sweep takes it runs the hook.
	setSweepHook(l, func() {
		once.Do(func() {
			b, _, err := l.Add(ctx, st, Deny, mustEntries(t, `{"type": "ip", "value": "192.0.2.1", "ttl": 100}`, c.now()), false)
			if err == nil {
				_, err = st.Commit(ctx, b)
			}
			readdErr = err
		})
	})
	c.add(2 * time.Second)
	l.ExpireDue(ctx) // this sweep, or the background one it waits for, runs the hook
	setSweepHook(l, nil)
	if readdErr != nil {
		t.Fatal(readdErr)
	}
	want := c.now().Add(100 * time.Second).UnixMilli()
	if _, exp, ok := stored(t, st, "list/deny/ip/192.0.2.1"); !ok || exp != want {
		t.Fatalf("the re-added entry: stored %v, expiry %d, want %d", ok, exp, want)
	}
	if !l.Contains(Deny, mustEntries(t, `{"type": "ip", "value": "192.0.2.1"}`, c.now())[0]) {
		t.Fatal("the re-added entry is gone from memory")
	}
}

func TestAddRemoveClear(t *testing.T) {
	ctx := context.Background()
	l, st, _ := open(t, 1<<30)
	one := mustEntries(t, `{"type": "cookie", "name": "JSESSIONID", "value": "abc"}`, l.now())
	add(t, l, st, Deny, `{"type": "cookie", "name": "JSESSIONID", "value": "abc"}`)
	var ee *ExistsError
	if _, _, err := l.Add(ctx, st, Deny, one, false); !errors.As(err, &ee) || err.Error() != "cookie JSESSIONID abc already exist" {
		t.Fatalf("got %v", err)
	}
	// A bulk import skips what is listed and what repeats.
	b, res, err := l.Add(ctx, st, Deny, mustEntries(t, `[{"type": "cookie", "name": "JSESSIONID", "value": "abc"}, {"type": "ip", "value": "1.1.1.1"}, {"type": "ip", "value": "1.1.1.1/32"}]`, l.now()), true)
	if err != nil || res != (AddResult{Added: 1, Skipped: 2}) || len(b.Ops) != 1 {
		t.Fatalf("got %+v, %v, %d ops", res, err, len(b.Ops))
	}
	st.Commit(ctx, b)
	// The same entry may be on both lists.
	add(t, l, st, Allow, `{"type": "ip", "value": "1.1.1.1"}`)

	b, err = l.Remove(ctx, st, Deny, one[0])
	if err != nil {
		t.Fatal(err)
	}
	st.Commit(ctx, b)
	var ae *AbsentError
	if _, err := l.Remove(ctx, st, Deny, one[0]); !errors.As(err, &ae) || err.Error() != "cookie JSESSIONID abc does not exist in blacklist" {
		t.Fatalf("got %v", err)
	}

	add(t, l, st, Deny, `{"type": "token", "value": "t1"}`)
	l.Report(Decoy, &Identity{IP: netip.MustParseAddr("192.0.2.50"), Token: "t2"})
	tag := Manual
	b, _ = l.Clear(ctx, st, Deny, &tag)
	st.Commit(ctx, b)
	var left []string
	l.View(ctx, st, Deny, nil, func(e Entry) error { left = append(left, e.Describe()+":"+e.Tag.String()); return nil })
	if fmt.Sprint(left) != "[ip 192.0.2.50:decoy token t2:decoy]" {
		t.Fatalf("after clearing manual: %v", left)
	}
	b, _ = l.RemoveDetected(ctx, st)
	st.Commit(ctx, b)
	b, _ = l.Clear(ctx, st, Allow, nil)
	st.Commit(ctx, b)
	if l.Count(Deny, IP)+l.Count(Deny, Token)+l.Count(Allow, IP) != 0 || l.MemoryUsed() != 0 {
		t.Fatalf("lists not empty: memory %d", l.MemoryUsed())
	}
}

// The budget counts what the lists' structures will take: 768 addresses
// fill 3/4 of a table of 1,024 8-byte slots, so one more (which doubles
// the table) or a first token (a table of 1,024 16-byte slots) is past 8
// KiB.
func TestMemoryBudget(t *testing.T) {
	ctx := context.Background()
	l, st, _ := open(t, 8<<10)
	var body strings.Builder
	body.WriteString("[")
	for i := 0; i < 768; i++ {
		fmt.Fprintf(&body, `{"type": "ip", "value": "192.0.%d.%d"},`, i/256, i%256)
	}
	add(t, l, st, Deny, strings.TrimSuffix(body.String(), ",")+"]")
	if used := l.MemoryUsed(); used != 8<<10 {
		t.Fatalf("768 addresses take %d bytes, want 8 KiB", used)
	}
	for _, more := range []string{`{"type": "ip", "value": "198.51.100.1"}`, `{"type": "token", "value": "t"}`} {
		_, _, err := l.Add(ctx, st, Deny, mustEntries(t, `[`+more+`, {"type": "ip", "value": "192.0.2.1"}]`, l.now()), true)
		var me *MemoryError
		if !errors.As(err, &me) || !strings.HasPrefix(err.Error(), "attack list memory is full: configured 0.01 MB, used 0.01 MB, free 0.00 MB") {
			t.Fatalf("%s: got %v", more, err)
		}
	}
	// Entries already listed cost nothing to re-add; nothing was dropped.
	if _, res, err := l.Add(ctx, st, Deny, mustEntries(t, `[{"type": "ip", "value": "192.0.2.1"}]`, l.now()), true); err != nil || res.Skipped != 1 {
		t.Fatalf("got %+v, %v", res, err)
	}
	if l.Count(Deny, IP) != 768 {
		t.Fatalf("got %d entries, want 768", l.Count(Deny, IP))
	}
	// A detected attacker is not listed past the budget either.
	l.Report(Decoy, &Identity{IP: netip.MustParseAddr("203.0.113.1")})
	if err := l.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if l.Count(Deny, IP) != 768 {
		t.Fatal("detection went past the memory budget")
	}
}

func TestReloadFromStore(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, _ := store.Open(filepath.Join(dir, "ase.db"))
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	l, _ := Open(ctx, st, Options{Limit: 1 << 30, Now: c.now, Log: slog.Default()})
	add(t, l, st, Deny, `[{"type": "ip", "value": "10.0.0.0/8"}, {"type": "ip", "value": "192.0.2.1", "ttl": 5}, {"type": "api_key", "name": "X-Key", "value": "k"}]`)
	add(t, l, st, Allow, `{"type": "ip", "value": "10.9.9.9"}`)
	l.Close()
	c.add(10 * time.Second) // the TTL entry expires while ASE is down
	l2, err := Open(ctx, st, Options{Limit: 1 << 30, Now: c.now, Log: slog.Default()})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { l2.Close(); st.Close() }()
	if l2.Count(Deny, IP) != 1 || l2.Count(Deny, APIKey) != 1 || l2.Count(Allow, IP) != 1 {
		t.Fatalf("reloaded %d deny IPs, %d keys, %d allow IPs", l2.Count(Deny, IP), l2.Count(Deny, APIKey), l2.Count(Allow, IP))
	}
	if _, err := st.Get(ctx, "list/deny/ip/192.0.2.1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatal("the entry that expired while down is still stored")
	}
	id := &Identity{IP: netip.MustParseAddr("10.1.1.1")}
	k := l2.Keys(id)
	if _, ok := l2.Match(Deny, id, &k); !ok {
		t.Fatal("reloaded CIDR does not match")
	}
}

func FuzzDecodeEntries(f *testing.F) {
	f.Add([]byte(`{"type": "ip", "value": "1.1.1.1"}`))
	f.Add([]byte(`[{"type": "cookie", "name": "JSESSIONID", "value": "x", "ttl": 5}, {"type": "ip", "value": "2001:db8::/32"}]`))
	f.Add([]byte(`{"type": "api_key", "name": "X-API-KEY", "value": "k1"}`))
	f.Add([]byte(`[{"type": "token", "value": "t", "ttl": "1h30m", "reason": "seen on a paste site"}, {"type": "ip", "value": "10.1.2.3/8", "ttl": "7d"}]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		es, _, err := DecodeEntries(body, true, time.Unix(1000, 0))
		if err != nil {
			if es != nil || err.Error() == "" {
				t.Fatal("an error with entries, or an empty error")
			}
			return
		}
		for _, e := range es {
			for _, l := range []List{Deny, Allow} {
				gl, back, err := parseStored(e.StoreKey(l), e.storeValue())
				if err != nil || gl != l || back.Describe() != e.Describe() || back.Prefix != e.Prefix || back.Reason != e.Reason || !back.Created.Equal(e.Created) || !back.Expires.Equal(e.Expires) {
					t.Fatalf("entry %+v does not round-trip through the store: %+v %v", e, back, err)
				}
			}
		}
	})
}

// A request that carries several values of one identity is matched on
// every one of them: the backend may read any.
func TestMatchEveryValue(t *testing.T) {
	l, st, _ := open(t, 1<<20)
	add(t, l, st, Deny, `[{"type": "token", "value": "tbad"}, {"type": "cookie", "name": "SID", "value": "cbad"}, {"type": "api_key", "name": "X-Api-Key", "value": "kbad"}]`)
	add(t, l, st, Allow, `{"type": "username", "value": "ops"}`)
	tests := []struct {
		name string
		id   Identity
		list List
		want Kind
	}{
		{"token second", Identity{Token: "good", More: []Credential{{Kind: Token, Value: "tbad"}}}, Deny, Token},
		{"cookie third", Identity{CookieName: "SID", Cookie: "a", More: []Credential{{Kind: Cookie, Name: "SID", Value: "b"}, {Kind: Cookie, Name: "SID", Value: "cbad"}}}, Deny, Cookie},
		{"api key second", Identity{APIKeyName: "x-api-key", APIKey: "good", More: []Credential{{Kind: APIKey, Name: "x-api-key", Value: "kbad"}}}, Deny, APIKey},
		{"other name", Identity{APIKeyName: "x-api-key", APIKey: "good", More: []Credential{{Kind: APIKey, Name: "key", Value: "kbad"}}}, Deny, 0},
		{"allow second", Identity{Username: "x", More: []Credential{{Kind: Username, Value: "ops"}}}, Allow, Username},
		{"all clean", Identity{Token: "a", More: []Credential{{Kind: Token, Value: "b"}}}, Deny, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := l.Keys(&tt.id)
			m, ok := l.Match(tt.list, &tt.id, &k)
			if ok != (tt.want != 0) || ok && m.Kind != tt.want {
				t.Fatalf("got %v %v, want kind %v", m, ok, tt.want)
			}
		})
	}
}
