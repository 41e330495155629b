package lists

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ase-project/ase/internal/store"
)

// matches reports the deny-list match of id.
func matches(l *Lists, id Identity) (Match, bool) {
	k := l.Keys(&id)
	return l.Match(Deny, &id, &k)
}

// A detected attacker is refused as soon as Report returns, by every
// identity it presented, and stored right after under its tag.
func TestReportEnforcesBeforeReturning(t *testing.T) {
	l, st, _ := open(t, 1<<20)
	id := Identity{IP: netip.MustParseAddr("::ffff:192.0.2.10"), Token: "tok", CookieName: "SID", Cookie: "c1",
		More: []Credential{{Kind: Cookie, Name: "SID", Value: "c2"}, {Kind: Token, Value: "tok"}}}
	l.Report(InvalidMethod, &id)
	for _, probe := range []Identity{
		{IP: netip.MustParseAddr("192.0.2.10")}, {Token: "tok"}, {CookieName: "SID", Cookie: "c1"}, {CookieName: "SID", Cookie: "c2"},
	} {
		if m, ok := matches(l, probe); !ok || m.Tag != InvalidMethod {
			t.Fatalf("%+v right after Report: got %+v %v", probe, m, ok)
		}
	}
	if err := l.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"list/deny/ip/192.0.2.10", "list/deny/token/tok", "list/deny/cookie/SID\x00c1", "list/deny/cookie/SID\x00c2"} {
		if tag, exp, ok := stored(t, st, key); !ok || tag != InvalidMethod || exp != 0 {
			t.Fatalf("%q stored: %v %v %v", key, tag, exp, ok)
		}
	}
	if listed, refused, pending := l.Detections(); listed != 1 || refused != 0 || pending != 0 {
		t.Fatalf("detections: listed %d refused %d pending %d", listed, refused, pending)
	}
	// Reported again: nothing new.
	l.Report(Decoy, &id)
	if listed, _, _ := l.Detections(); listed != 1 {
		t.Fatalf("a listed attacker counted again: %d", listed)
	}
}

// An operator's entry is never replaced by a detection: neither one
// listed before, nor one written while the detection is pending. An
// expired one is.
func TestReportKeepsOperatorEntries(t *testing.T) {
	ctx := context.Background()
	l, st, c := open(t, 1<<20)
	add(t, l, st, Deny, `{"type": "ip", "value": "192.0.2.1"}`)
	l.Report(Decoy, &Identity{IP: netip.MustParseAddr("192.0.2.1")})
	l.Flush(ctx)
	if tag, _, _ := stored(t, st, "list/deny/ip/192.0.2.1"); tag != Manual {
		t.Fatalf("listed entry re-tagged %v", tag)
	}
	for n := 0; n < 200; n++ {
		ip := fmt.Sprintf("198.51.100.%d", n)
		l.Report(Decoy, &Identity{IP: netip.MustParseAddr(ip)})
		// An operator's write that did not see the pending entry (a
		// transaction's commit): it wins, whenever the group commit runs.
		e := mustEntries(t, `{"type": "ip", "value": "`+ip+`", "ttl": 3600}`, c.now())[0]
		if _, err := st.Commit(ctx, store.Batch{Ops: []store.Op{store.Put(e.StoreKey(Deny), e.storeValue())}}); err != nil {
			t.Fatal(err)
		}
	}
	l.Flush(ctx)
	for n := 0; n < 200; n++ {
		ip := fmt.Sprintf("198.51.100.%d", n)
		tag, exp, ok := stored(t, st, "list/deny/ip/"+ip)
		m, matched := matches(l, Identity{IP: netip.MustParseAddr(ip)})
		if !ok || tag != Manual || exp == 0 || !matched || m.Tag != Manual {
			t.Fatalf("%s: stored %v %v %v, memory %+v %v; want the operator's entry in both", ip, tag, exp, ok, m, matched)
		}
	}
	if _, _, pending := l.Detections(); pending != 0 {
		t.Fatalf("%d entries still pending", pending)
	}
	// An expired entry, not yet swept, is replaced: the attacker is
	// listed for good, and the sweep leaves it.
	add(t, l, st, Deny, `{"type": "ip", "value": "203.0.113.5", "ttl": 1}`)
	c.add(2 * time.Second)
	l.Report(Decoy, &Identity{IP: netip.MustParseAddr("203.0.113.5")})
	l.Flush(ctx)
	l.ExpireDue(ctx)
	if tag, exp, ok := stored(t, st, "list/deny/ip/203.0.113.5"); !ok || tag != Decoy || exp != 0 {
		t.Fatalf("stored %v %v %v, want decoy without expiry", tag, exp, ok)
	}
	if m, ok := matches(l, Identity{IP: netip.MustParseAddr("203.0.113.5")}); !ok || m.Tag != Decoy {
		t.Fatalf("memory: %+v %v", m, ok)
	}
}

// A sweep that deletes an expired entry while a detection of the same
// client is pending does not unlist the attacker.
func TestSweepWhileDetectionPending(t *testing.T) {
	ctx := context.Background()
	l, st, c := open(t, 1<<30)
	add(t, l, st, Deny, `{"type": "ip", "value": "192.0.2.7", "ttl": 1}`)
	var once sync.Once
	setSweepHook(l, func() {
		once.Do(func() { l.Report(Decoy, &Identity{IP: netip.MustParseAddr("192.0.2.7")}) })
	})
	c.add(2 * time.Second)
	l.ExpireDue(ctx)
	setSweepHook(l, nil)
	if m, ok := matches(l, Identity{IP: netip.MustParseAddr("192.0.2.7")}); !ok || m.Tag != Decoy {
		t.Fatalf("after the sweep: %+v %v", m, ok)
	}
	l.Flush(ctx)
	if tag, exp, ok := stored(t, st, "list/deny/ip/192.0.2.7"); !ok || tag != Decoy || exp != 0 {
		t.Fatalf("stored %v %v %v, want decoy without expiry", tag, exp, ok)
	}
	if m, ok := matches(l, Identity{IP: netip.MustParseAddr("192.0.2.7")}); !ok || m.Tag != Decoy {
		t.Fatalf("after the commit: %+v %v", m, ok)
	}
}

// floodIP is the n-th address of 198.18.0.0/15 (131,072 addresses).
func floodIP(n int) netip.Addr {
	return netip.AddrFrom4([4]byte{198, byte(18 + n>>16), byte(n >> 8), byte(n)})
}

// Every detection of a flood from distinct addresses is listed, each one
// refused from the moment Report returns, and all of them stored.
func TestDetectionFlood(t *testing.T) {
	n := 100_000
	if testing.Short() {
		n = 10_000
	}
	const workers = 8
	l, st, _ := open(t, 128<<20)
	var next, missed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				id := Identity{IP: floodIP(i)}
				l.Report(Tag(InvalidContentType+Tag(i%4)), &id)
				if _, ok := matches(l, id); !ok {
					missed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	reported := time.Since(start)
	if err := l.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d detections reported in %v, all stored after %v", n, reported, time.Since(start))
	if missed.Load() > 0 {
		t.Fatalf("%d of %d attackers not refused right after their detection", missed.Load(), n)
	}
	inStore := 0
	st.Scan(context.Background(), ListPrefix(Deny), func(string, []byte) error { inStore++; return nil })
	listed, refused, pending := l.Detections()
	if inStore != n || l.Count(Deny, IP) != int64(n) || listed != int64(n) || refused != 0 || pending != 0 {
		t.Fatalf("stored %d, in memory %d, listed %d, refused %d, pending %d; want %d stored and listed", inStore, l.Count(Deny, IP), listed, refused, pending, n)
	}
}

// lineCounter counts log lines containing a word.
type lineCounter struct {
	mu    sync.Mutex
	lines []string
}

func (c *lineCounter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lines = append(c.lines, strings.Split(strings.TrimSpace(string(p)), "\n")...)
	return len(p), nil
}

func (c *lineCounter) count(word string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, l := range c.lines {
		if strings.Contains(l, word) {
			n++
		}
	}
	return n
}

// Past the memory budget detections are refused, counted and logged in a
// summary, not once each; nothing listed is dropped, and the entries
// waiting for the store are bounded too.
func TestDetectionPastBudget(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "ase.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var logs lineCounter
	l, err := Open(context.Background(), st, Options{Limit: 1 << 20, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	// Addresses up to 10 short of the budget: an 11th more would grow the
	// table past 1 MB.
	fits := func(n int64) bool { return l.checkBudget(Deny, counts{v4: n}) == nil }
	for i := 0; fits(11); i++ {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		l.Load(Deny, []Entry{{Kind: IP, Prefix: netip.PrefixFrom(a, 32), Value: a.String()}})
	}
	full := l.Count(Deny, IP)
	for i := 0; i < 1000; i++ {
		l.Report(Decoy, &Identity{IP: floodIP(i)})
	}
	listed, refused, _ := l.Detections()
	if listed != 10 || refused != 990 || l.Count(Deny, IP) != full+10 {
		t.Fatalf("listed %d, refused %d, %d in memory; want 10, 990, %d", listed, refused, l.Count(Deny, IP), full+10)
	}
	for i := 0; i < 10; i++ {
		if _, ok := matches(l, Identity{IP: floodIP(i)}); !ok {
			t.Fatalf("attacker %d, listed within the budget, is not refused", i)
		}
	}
	l.Close() // logs what is left to log
	if n := logs.count("not deny-listed"); n < 1 || n > 2 {
		t.Fatalf("990 refusals wrote %d log lines, want 1 or 2:\n%s", n, strings.Join(logs.lines, "\n"))
	}
	if n := logs.count("detected attackers deny-listed"); n < 1 || n > 2 {
		t.Fatalf("10 listings wrote %d log lines, want 1 or 2", n)
	}
	var summary bytes.Buffer
	for _, line := range logs.lines {
		if strings.Contains(line, "not deny-listed") {
			summary.WriteString(line)
		}
	}
	if !strings.Contains(summary.String(), "count=") {
		t.Fatalf("the refusal log does not say how many: %s", summary.String())
	}
}

// A clean stop writes the detected attackers still pending; disabling
// detected attacks removes the pending ones too.
func TestPendingDetectionsAtCloseAndRemoval(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "ase.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	l, err := Open(ctx, st, Options{Limit: 1 << 20, Log: slog.Default()})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 500; i++ {
		l.Report(InvalidProtocol, &Identity{IP: floodIP(i)})
	}
	l.Close()
	l, err = Open(ctx, st, Options{Limit: 1 << 20, Log: slog.Default()})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.Count(Deny, IP) != 500 {
		t.Fatalf("after a clean stop, %d of 500 detected attackers are listed", l.Count(Deny, IP))
	}
	for i := 500; i < 600; i++ {
		l.Report(Decoy, &Identity{IP: floodIP(i)})
	}
	b, err := l.RemoveDetected(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Ops) != 600 {
		t.Fatalf("removing detected attackers deletes %d entries, want 600", len(b.Ops))
	}
	if _, err := st.Commit(ctx, b); err != nil {
		t.Fatal(err)
	}
	if l.Count(Deny, IP) != 0 || l.MemoryUsed() != 0 {
		t.Fatalf("%d entries left", l.Count(Deny, IP))
	}
}

// BenchmarkReport measures a detection of a new attacker, stored by the
// group commit (the benchmark's time includes writing them all).
func BenchmarkReport(b *testing.B) {
	l, _, _ := open(b, 1<<30)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		l.Report(Decoy, &Identity{IP: netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})})
	}
	l.Flush(context.Background())
}

// TestRecentDetections: the last 50 attackers listed, newest first, each
// with when and why; bounded whatever the number of detections; an
// attacker listed already is not repeated.
func TestRecentDetections(t *testing.T) {
	l, _, _ := open(t, 1<<20)
	if got := l.Recent(); len(got) != 0 {
		t.Fatalf("a new list has recent detections: %v", got)
	}
	for i := range 70 {
		id := Identity{IP: netip.AddrFrom4([4]byte{192, 0, 2, byte(i)})}
		l.Report(Decoy, &id)
	}
	again := Identity{IP: netip.AddrFrom4([4]byte{192, 0, 2, 69})}
	l.Report(Decoy, &again)
	got := l.Recent()
	if len(got) != recentDetections || got[0].Value != "192.0.2.69" || got[49].Value != "192.0.2.20" {
		t.Fatalf("%d recent, first %+v, last %+v", len(got), got[0], got[len(got)-1])
	}
	if got[0].Tag != Decoy || got[0].Reason == "" || got[0].Created.IsZero() {
		t.Fatalf("%+v: no tag, reason or time", got[0])
	}
}
