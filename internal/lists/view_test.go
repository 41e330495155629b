package lists

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ase-project/ase/internal/store"
)

// sortedReader is a store.Reader over a sorted slice of keys, counting its
// scans.
type sortedReader struct {
	keys  []string
	scans int
}

func (r *sortedReader) Get(ctx context.Context, key string) ([]byte, error) {
	i := sort.SearchStrings(r.keys, key)
	if i < len(r.keys) && r.keys[i] == key {
		return []byte{}, nil
	}
	return nil, store.ErrNotFound
}

func (r *sortedReader) Scan(ctx context.Context, prefix string, fn func(string, []byte) error) error {
	r.scans++
	for i := sort.SearchStrings(r.keys, prefix); i < len(r.keys) && strings.HasPrefix(r.keys[i], prefix); i++ {
		if err := fn(r.keys[i], nil); err != nil {
			return err
		}
	}
	return nil
}

// after returns the keys of r under prefix that sort after after, the
// plain way.
func (r *sortedReader) after(prefix, after string) []string {
	var out []string
	for _, k := range r.keys {
		if strings.HasPrefix(k, prefix) && k > after {
			out = append(out, k)
		}
	}
	return out
}

func randomKeys(rng *rand.Rand, prefix string, alpha []byte, n, maxLen int) []string {
	seen := map[string]bool{}
	for len(seen) < n {
		b := []byte(prefix)
		for l := 1 + rng.IntN(maxLen); l > 0; l-- {
			b = append(b, alpha[rng.IntN(len(alpha))])
		}
		seen[string(b)] = true
	}
	keys := make([]string, 0, n)
	for k := range seen {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// scanAfter gives exactly the keys after a position, in order, whether the
// position is a key, between keys, before or past them all; in dense
// lists (probes) and sparse ones (walks).
func TestScanAfter(t *testing.T) {
	const prefix = "list/deny/ip/"
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tt := range []struct {
		name   string
		alpha  []byte
		n, max int
	}{
		{"dense addresses", ipAlphabet, 20_000, 6},
		{"sparse addresses", ipAlphabet, 300, 15},
		{"text", []byte("\x00 abc~\x80\xf4"), 5_000, 8}, // sorted, as scanAfter needs
		{"one key", ipAlphabet, 1, 4},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := &sortedReader{keys: randomKeys(rng, prefix, tt.alpha, tt.n, tt.max)}
			r.keys = append([]string{"list/allow/ip/1", "list/deny/api_key/x"}, r.keys...)
			r.keys = append(r.keys, "list/deny/token/z")
			positions := []string{"", "list/", "list/deny/", prefix, "list/deny/ip0", "list/deny/token/", "zz", r.keys[3]}
			for i := 0; i < 300; i++ {
				k := r.keys[rng.IntN(len(r.keys))]
				positions = append(positions, k, k+"\x00", k[:len(k)-1], k[:max(len(prefix), len(k)-1-rng.IntN(3))]+string([]byte{tt.alpha[rng.IntN(len(tt.alpha))]}))
			}
			for _, pos := range positions {
				want := r.after(prefix, pos)
				var got []string
				limit := 1 + rng.IntN(200)
				err := scanAfter(context.Background(), r, prefix, pos, tt.alpha, func(k string, _ []byte) error {
					got = append(got, k)
					if len(got) == limit {
						return errStop
					}
					return nil
				})
				if err != nil && err != errStop {
					t.Fatal(err)
				}
				if len(want) > limit {
					want = want[:limit]
				}
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Fatalf("after %q (limit %d): got %d keys %q..., want %d %q...", pos, limit, len(got), head(got), len(want), head(want))
				}
			}
		})
	}
}

func head(s []string) []string { return s[:min(len(s), 3)] }

// A page after a position costs a bounded number of scans, wherever the
// position is in a list of a million addresses.
func TestScanAfterCost(t *testing.T) {
	const prefix = "list/deny/ip/"
	r := &sortedReader{}
	for i := 0; i < 1_000_000; i++ {
		r.keys = append(r.keys, fmt.Sprintf("%s%d.%d.%d.%d", prefix, 10+i>>16, (i>>8)&255, i&255, i%7))
	}
	sort.Strings(r.keys)
	worst := 0
	for i := 0; i < len(r.keys); i += 9973 {
		r.scans = 0
		n := 0
		scanAfter(context.Background(), r, prefix, r.keys[i], ipAlphabet, func(string, []byte) error {
			if n++; n == 101 {
				return errStop
			}
			return nil
		})
		worst = max(worst, r.scans)
	}
	// Up to 20 levels of 19 probes in the worst case; far fewer in fact.
	if worst > 200 {
		t.Fatalf("a page took %d scans", worst)
	}
	t.Logf("at most %d scans per page of 100", worst)
}

// collect pages through list with limit, changing the list between pages
// with between (given the page number), and returns the entries seen in
// order.
func collect(t *testing.T, l *Lists, st store.Store, list List, f Filter, limit int, between func(page int)) []string {
	t.Helper()
	var seen []string
	cursor := ""
	for page := 0; ; page++ {
		if page > 100_000 {
			t.Fatal("the pages never end")
		}
		n := 0
		next, err := l.Page(context.Background(), st, list, f, cursor, limit, func(e Entry) error {
			seen = append(seen, e.StoreKey(list))
			n++
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if n > limit {
			t.Fatalf("a page of %d entries with limit %d", n, limit)
		}
		if next == "" {
			return seen
		}
		if enc, err := DecodeCursor(list, EncodeCursor(next)); err != nil || enc != next {
			t.Fatalf("cursor %q does not round-trip: %q %v", next, enc, err)
		}
		cursor = next
		if between != nil {
			between(page)
		}
	}
}

func TestPageFilters(t *testing.T) {
	l, st, _ := open(t, 1<<30)
	var feed []string
	for i := 0; i < 500; i++ {
		feed = append(feed, fmt.Sprintf(`{"type": "ip", "value": "10.%d.%d.0/24"}`, i/100, i%100))
		feed = append(feed, fmt.Sprintf(`{"type": "token", "value": "tok-%03d"}`, i))
		feed = append(feed, fmt.Sprintf(`{"type": "cookie", "name": "SID", "value": "c-%03d"}`, i))
	}
	add(t, l, st, Deny, "["+strings.Join(feed, ",")+"]")
	ctx := context.Background()
	for _, es := range [][]Entry{mustEntries(t, `{"type": "username", "value": "tok-user"}`, l.now())} {
		es[0].Tag = Decoy
		b, _, err := l.Add(ctx, st, Deny, es, false)
		if err != nil {
			t.Fatal(err)
		}
		st.Commit(ctx, b)
	}
	decoy, manual := Decoy, Manual
	for _, tt := range []struct {
		f    Filter
		want int
	}{
		{Filter{}, 1501},
		{Filter{Kind: Token}, 500},
		{Filter{Kind: IP, Value: "10.3."}, 100},
		{Filter{Value: "tok-"}, 501},
		{Filter{Tag: &decoy}, 1},
		{Filter{Tag: &manual, Value: "tok-"}, 500},
		{Filter{Tag: &decoy, Kind: Token}, 0},
		{Filter{Kind: Cookie, Value: "SID"}, 0}, // the name is not the value
	} {
		var all []string
		l.ViewWhere(ctx, st, Deny, tt.f, func(e Entry) error { all = append(all, e.StoreKey(Deny)); return nil })
		if len(all) != tt.want {
			t.Fatalf("%+v: viewed %d, want %d", tt.f, len(all), tt.want)
		}
		for _, limit := range []int{1, 7, 100, 5000} {
			got := collect(t, l, st, Deny, tt.f, limit, nil)
			if fmt.Sprint(got) != fmt.Sprint(all) {
				t.Fatalf("%+v, limit %d: paged %d entries, viewed %d", tt.f, limit, len(got), len(all))
			}
		}
	}
	// A filter few entries pass gives short pages, each reading a bounded
	// number of keys, and still every entry.
	defer func(n int) { pageExamine = n }(pageExamine)
	pageExamine = 50
	pages := 0
	got := collect(t, l, st, Deny, Filter{Value: "tok-user"}, 10, func(int) { pages++ })
	if len(got) != 1 || pages < 1500/50-1 {
		t.Fatalf("sparse filter: %d entries in %d pages", len(got), pages+1)
	}
}

// The cursor is a position: entries listed throughout are each on exactly
// one page whatever is added or deleted between pages, none is on two
// pages, and the pages are in key order.
func TestPageStableUnderChanges(t *testing.T) {
	l, st, _ := open(t, 1<<30)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(3, 4))
	ip := func() string {
		return netip.AddrFrom4([4]byte{10, byte(rng.IntN(4)), byte(rng.IntN(256)), byte(rng.IntN(256))}).String()
	}
	stable := map[string]bool{}
	var feed []string
	for len(stable) < 2000 {
		v := ip()
		if !stable["list/deny/ip/"+v] {
			stable["list/deny/ip/"+v] = true
			feed = append(feed, `{"type": "ip", "value": "`+v+`"}`)
		}
	}
	add(t, l, st, Deny, "["+strings.Join(feed, ",")+"]")
	var churn []string // the keys added or deleted between pages
	for _, limit := range []int{1, 13, 250} {
		seen := collect(t, l, st, Deny, Filter{Kind: IP}, limit, func(page int) {
			if page%max(1, 40/limit) != 0 {
				return
			}
			for i := 0; i < 5; i++ {
				v := ip()
				k := "list/deny/ip/" + v
				if stable[k] {
					continue
				}
				e := mustEntries(t, `{"type": "ip", "value": "`+v+`"}`, l.now())[0]
				if b, err := l.Remove(ctx, st, Deny, e); err == nil {
					st.Commit(ctx, b)
				} else if b, _, err := l.Add(ctx, st, Deny, []Entry{e}, false); err == nil {
					st.Commit(ctx, b)
				}
				churn = append(churn, k)
			}
		})
		count := map[string]int{}
		for i, k := range seen {
			count[k]++
			if count[k] > 1 {
				t.Fatalf("limit %d: %s on two pages", limit, k)
			}
			if i > 0 && seen[i-1] >= k {
				t.Fatalf("limit %d: %s after %s", limit, k, seen[i-1])
			}
		}
		for k := range stable {
			if count[k] != 1 {
				t.Fatalf("limit %d: %s, listed throughout, on %d pages", limit, k, count[k])
			}
		}
	}
	if len(churn) == 0 {
		t.Fatal("nothing changed between pages")
	}
}

func TestDecodeCursor(t *testing.T) {
	for _, tt := range []struct {
		list List
		s    string
		ok   bool
	}{
		{Deny, EncodeCursor("list/deny/ip/1.2.3.4"), true},
		{Deny, EncodeCursor("list/deny/cookie/SID\x00v"), true},
		{Deny, "", true},
		{Allow, EncodeCursor("list/deny/ip/1.2.3.4"), false},
		{Deny, EncodeCursor("list/deny/mac/1"), false},
		{Deny, EncodeCursor("list/_gen/0000000000000001"), false},
		{Deny, EncodeCursor("list/deny/"), false},
		{Deny, "!!", false},
		{Deny, "bGlzdC9kZW55L2lwLzEuMi4zLjQ=", false}, // padded
	} {
		_, err := DecodeCursor(tt.list, tt.s)
		if (err == nil) != tt.ok {
			t.Errorf("DecodeCursor(%v, %q): %v, want ok %v", tt.list, tt.s, err, tt.ok)
		}
	}
}

// Entries stored by earlier versions (9 bytes, or 17 with a generation)
// still load, match, show in views (without a creation time or reason),
// check, clear by tag and delete; new entries carry both.
func TestOldStoredValues(t *testing.T) {
	l, st, c := open(t, 1<<30)
	l.Close()
	ctx := context.Background()
	old := func(tag Tag, exp int64) []byte {
		return binary.BigEndian.AppendUint64([]byte{byte(tag)}, uint64(exp))
	}
	const g = 0x77
	live := marker{state: genLive, list: Deny, deadline: 1, owner: "x"}
	exp := c.now().Add(time.Hour).UnixMilli()
	_, err := st.Commit(ctx, store.Batch{Ops: []store.Op{
		store.Put(genKey(g), live.encode()),
		store.Put("list/deny/ip/192.0.2.1", old(Decoy, 0)),
		store.Put("list/deny/ip/198.51.100.0/24", binary.BigEndian.AppendUint64(old(Manual, exp), g)),
		store.Put("list/allow/token/t1", old(Manual, 0)),
		store.Put("list/deny/api_key/X-Key\x00k1", old(InvalidMethod, 0)),
	}})
	if err != nil {
		t.Fatal(err)
	}
	l, err = Open(ctx, st, Options{Limit: 1 << 30, Now: c.now, Log: l.log})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	add(t, l, st, Deny, `{"type": "ip", "value": "192.0.2.2", "reason": "new"}`)
	var view []string
	l.View(ctx, st, Deny, nil, func(e Entry) error {
		view = append(view, fmt.Sprintf("%s %s created=%v reason=%q exp=%v", e.Describe(), e.Tag, !e.Created.IsZero(), e.Reason, !e.Expires.IsZero()))
		return nil
	})
	want := []string{
		`api_key X-Key k1 invalid_method created=false reason="" exp=false`,
		`ip 192.0.2.1 decoy created=false reason="" exp=false`,
		`ip 192.0.2.2 manual created=true reason="new" exp=false`,
		`ip 198.51.100.0/24 manual created=false reason="" exp=true`,
	}
	if fmt.Sprint(view) != fmt.Sprint(want) {
		t.Fatalf("view:\n%s\nwant\n%s", strings.Join(view, "\n"), strings.Join(want, "\n"))
	}
	q, _ := ParseCheck("ip", nil, "198.51.100.9")
	res, err := l.Check(ctx, q)
	if list, e, ok := res.Decides(); err != nil || !ok || list != Deny || e.Value != "198.51.100.0/24" || e.Expires.UnixMilli() != exp {
		t.Fatalf("check: %+v %v", res, err)
	}
	name := "x-key"
	q, _ = ParseCheck("api_key", &name, "k1")
	if res, _ := l.Check(ctx, q); len(res.Deny) != 1 || res.Deny[0].Name != "X-Key" || res.Deny[0].Tag != InvalidMethod {
		t.Fatalf("check of an old API key entry by its name in another case: %+v", res)
	}
	tag := Decoy
	b, err := l.Clear(ctx, st, Deny, &tag)
	if err != nil {
		t.Fatal(err)
	}
	st.Commit(ctx, b)
	b, err = l.Remove(ctx, st, Allow, mustEntries(t, `{"type": "token", "value": "t1"}`, c.now())[0])
	if err != nil {
		t.Fatal(err)
	}
	st.Commit(ctx, b)
	if l.Count(Deny, IP) != 2 || l.Count(Allow, Token) != 0 {
		t.Fatalf("after clearing decoys and deleting t1: %d deny IPs, %d allowed tokens", l.Count(Deny, IP), l.Count(Allow, Token))
	}
}

func TestCheckEntries(t *testing.T) {
	l, st, c := open(t, 1<<30)
	ctx := context.Background()
	add(t, l, st, Deny, `[{"type": "ip", "value": "203.0.113.0/24", "reason": "net"}, {"type": "ip", "value": "203.0.0.0/16", "ttl": 60},
		{"type": "ip", "value": "203.0.113.7"}, {"type": "ip", "value": "2001:db8::/32"}, {"type": "token", "value": "tk", "reason": "leaked"}]`)
	add(t, l, st, Allow, `[{"type": "ip", "value": "203.0.113.8"}, {"type": "username", "value": "ops"}]`)
	l.Report(Decoy, &Identity{IP: netip.MustParseAddr("192.0.2.50"), Token: "trap"})
	check := func(typ, value string) (string, string, string) {
		t.Helper()
		q, err := ParseCheck(typ, nil, value)
		if err != nil {
			t.Fatal(err)
		}
		res, err := l.Check(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		var a, d []string
		for _, e := range res.Allow {
			a = append(a, e.Value)
		}
		for _, e := range res.Deny {
			d = append(d, e.Value+"/"+e.Reason)
		}
		by := "none"
		if list, e, ok := res.Decides(); ok {
			by = list.String() + " " + e.Value
		}
		return by, strings.Join(a, ","), strings.Join(d, ",")
	}
	for _, tt := range []struct{ typ, value, by, allow, deny string }{
		{"ip", "203.0.113.7", "blacklist 203.0.113.7", "", "203.0.113.7/,203.0.113.0/24/net,203.0.0.0/16/"},
		{"ip", "203.0.113.8", "whitelist 203.0.113.8", "203.0.113.8", "203.0.113.0/24/net,203.0.0.0/16/"},
		{"ip", "203.0.1.1", "blacklist 203.0.0.0/16", "", "203.0.0.0/16/"},
		{"ip", "2001:db8::5", "blacklist 2001:db8::/32", "", "2001:db8::/32/"},
		{"ip", "192.0.2.50", "blacklist 192.0.2.50", "", "192.0.2.50/requested a decoy path"},
		{"token", "trap", "blacklist trap", "", "trap/requested a decoy path (client 192.0.2.50)"},
		{"token", "tk", "blacklist tk", "", "tk/leaked"},
		{"username", "ops", "whitelist ops", "ops", ""},
		{"ip", "192.0.2.1", "none", "", ""},
	} {
		by, a, d := check(tt.typ, tt.value)
		if by != tt.by || a != tt.allow || d != tt.deny {
			t.Errorf("check %s %s: by %q, allow %q, deny %q; want %q, %q, %q", tt.typ, tt.value, by, a, d, tt.by, tt.allow, tt.deny)
		}
	}
	// Expired entries do not match, even before the sweep deletes them.
	c.add(61 * time.Second)
	if by, _, d := check("ip", "203.0.1.1"); by != "none" || d != "" {
		t.Fatalf("after the /16 expired: by %q, deny %q", by, d)
	}
	for _, tt := range []struct{ typ, value, err string }{
		{"ip", "203.0.113.0/24", `value: "203.0.113.0/24" is not an IP address (a check is about one client; it finds the ranges that cover it)`},
		{"ip", "", "value: is required"},
		{"cookie", "v", "name: is required for a cookie entry"},
		{"mac", "v", "type: must be ip, token, cookie, api_key or username"},
	} {
		if _, err := ParseCheck(tt.typ, nil, tt.value); err == nil || !strings.HasPrefix(err.Error(), tt.err) {
			t.Errorf("ParseCheck(%s, %s): %v, want %q", tt.typ, tt.value, err, tt.err)
		}
	}
}

// BenchmarkPage measures a page of 100 entries from a deny list of
// 1,000,000 (addresses, tokens and cookies), from cursors spread over the
// list, on the embedded store; and the same with filters (tokens only; a
// value half the entries hold).
func BenchmarkPage(b *testing.B) {
	l, st, c := open(b, 1<<40)
	ctx := context.Background()
	const n = 1_000_000
	now := c.now()
	entries := make([]Entry, 0, n)
	for i := 0; i < n; i++ {
		var e Entry
		switch i % 4 {
		case 0, 1:
			a := netip.AddrFrom4([4]byte{byte(11 + i%200), byte(i >> 16), byte(i >> 8), byte(i)})
			e = Entry{Kind: IP, Prefix: netip.PrefixFrom(a, 32), Value: a.String()}
		case 2:
			e = Entry{Kind: Token, Value: fmt.Sprintf("token-%08d-abcdefghijklmnop", i)}
		case 3:
			e = Entry{Kind: Cookie, Name: "JSESSIONID", Value: fmt.Sprintf("cookie-%08d-abcdefghijk", i)}
		}
		e.Created, e.Reason = now, "benchmark feed"
		entries = append(entries, e)
	}
	if _, err := l.Import(ctx, Deny, entries); err != nil {
		b.Fatal(err)
	}
	var cursors []string
	cursor := ""
	for {
		next, err := l.Page(ctx, st, Deny, Filter{}, cursor, 10_000, func(Entry) error { return nil })
		if err != nil {
			b.Fatal(err)
		}
		if next == "" {
			break
		}
		cursors = append(cursors, next)
		cursor = next
	}
	for _, bc := range []struct {
		name string
		f    Filter
	}{{"all", Filter{}}, {"type=token", Filter{Kind: Token}}, {"value=ghijk", Filter{Value: "ghijk"}}} {
		b.Run(bc.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				got := 0
				_, err := l.Page(ctx, st, Deny, bc.f, cursors[i%len(cursors)], 100, func(Entry) error { got++; return nil })
				// A filter may give a short page: a page reads at most
				// pageExamine keys.
				if err != nil || got != 100 && bc.f == (Filter{}) {
					b.Fatalf("a page of %d entries: %v", got, err)
				}
			}
		})
	}
}

// scanAfter reads the alphabets in order.
func TestAlphabetsSorted(t *testing.T) {
	for _, a := range [][]byte{ipAlphabet, textAlphabet} {
		if !sort.SliceIsSorted(a, func(i, j int) bool { return a[i] < a[j] }) {
			t.Fatalf("%q is not sorted", a)
		}
	}
}
