package lists

import (
	"context"
	"errors"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ase-project/ase/internal/store"
	"github.com/ase-project/ase/internal/units"
)

// ASE-detected attacks.
//
// Report enforces a detected attacker in memory at once: when it returns,
// the deny list matches every identity the attacker presented, so the
// next request is refused. The entries are then made durable by a group
// commit: a background loop takes everything reported meanwhile and
// writes it in batches within the store's limits. A crash between the two
// loses at most the reports of that window (one commit's time,
// milliseconds).
//
// Until its commit is applied, an entry is pending: it is in the in-memory
// sets (so it counts against attack_list_memory) and in det.pending. The
// store's commit path (apply) re-applies the same entry idempotently and
// ends its pending state; a deletion from the store of a pending key (an
// expiry sweep of an older entry, a clear) leaves the pending entry in
// memory, since it is written right after. An entry put meanwhile by an
// operator is never replaced: in memory, Set.add only fills an absent or
// expired slot, and in the store each put is conditional on the value the
// key held when the attacker was reported.

// logEvery is how often, at most, detected attackers listed and refused
// are logged: a flood of detections writes two lines per interval, not
// one per attacker.
const logEvery = 10 * time.Second

// retryEvery is the pause after a failed group commit.
const retryEvery = time.Second

// pendOverhead estimates the bytes a pending entry holds beside its key
// and its stored value: its map slot and queue slot, the struct.
const pendOverhead = 128

// pend is a detected attacker's entry enforced in memory, not yet stored.
type pend struct {
	value []byte // the stored value to write: the tag, no expiry
	// gen counts the store's changes to the key since it was reported:
	// a change between a commit's read of the key and its outcome means
	// the read is stale.
	gen uint32
	// stale: the store may hold the key (an expired entry, or one changed
	// since the report): read it before writing.
	stale bool
	bytes int64
}

// detections is the state of the detected attackers not yet stored, and
// the counters of detections.
type detections struct {
	mu        sync.Mutex
	pending   map[string]*pend
	queue     []string // pending keys no commit has taken yet
	bytes     int64    // what pending holds, bounded by attack_list_memory
	nextRound chan struct{}
	inflight  chan struct{} // closed when the commit in progress ends
	closed    bool
	sample    string // the first attacker listed since the last log line
	// recent are the last attackers listed, a ring (the console's
	// "newly detected": bounded, whatever the flood).
	recent  [recentDetections]Entry
	nRecent int // entries ever put in recent

	npending atomic.Int64
	wake     chan struct{}

	listed, refused                 atomic.Int64 // since start
	unloggedListed, unloggedRefused atomic.Int64
	lastListedLog, lastRefusedLog   time.Time // commit loop only
}

// recentDetections is how many of the last detected attackers are kept
// for Recent.
const recentDetections = 50

// Recent returns the last attackers this node deny-listed for a detection
// (at most 50), newest first, with when and why they were listed.
func (l *Lists) Recent() []Entry {
	d := &l.det
	d.mu.Lock()
	defer d.mu.Unlock()
	n := min(d.nRecent, recentDetections)
	out := make([]Entry, 0, n)
	for i := 1; i <= n; i++ {
		out = append(out, d.recent[(d.nRecent-i)%recentDetections])
	}
	return out
}

func (d *detections) init() {
	d.pending = map[string]*pend{}
	d.nextRound = make(chan struct{})
	d.wake = make(chan struct{}, 1)
}

func (d *detections) signal() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// close releases every Flush waiting: after Close nothing is committed.
func (d *detections) close() {
	d.mu.Lock()
	if !d.closed {
		d.closed = true
		close(d.nextRound)
	}
	d.mu.Unlock()
}

// put is called by apply for each put under the lists' prefix, in commit
// order, before it mirrors the put in memory.
func (d *detections) put(key string, value []byte) {
	if d.npending.Load() == 0 {
		// A pending key is only ever written by a commit that starts after
		// it was reported, when npending counts it. Another writer's put
		// racing with a report is mirrored either way: Set.add does not
		// replace it, and it replaces what Set.add put.
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	p := d.pending[key]
	if p == nil {
		return
	}
	if string(value) == string(p.value) {
		// The group commit wrote it (or someone wrote the very same
		// entry): it is durable now.
		d.drop(key, p)
		return
	}
	p.gen++ // an operator's entry: the group commit will leave it
}

// deleteUnlessPending mirrors the deletion of a stored entry in memory,
// unless it is a detected attacker's entry not yet stored (it replaced an
// older entry, which is what was deleted): that one stays, and is written
// right after. The check and the deletion are one step under det.mu,
// which Report holds to add an entry.
func (l *Lists) deleteUnlessPending(key string, list List, e Entry) {
	d := &l.det
	d.mu.Lock()
	defer d.mu.Unlock()
	if p := d.pending[key]; p != nil {
		p.gen++
		return
	}
	l.sets[list].del(l.h, e)
}

// drop ends key's pending state (under mu).
func (d *detections) drop(key string, p *pend) {
	delete(d.pending, key)
	d.bytes -= p.bytes
	d.npending.Add(-1)
}

// Report puts the client identified by id on the deny list under tag:
// every identity it presented (its IP, and its token, cookie, API key and
// username when present, each of their values). When Report returns the
// lists refuse the client; the entries are stored right after, in the
// background. Past attack_list_memory the detection is refused: counted
// (Detections) and logged once per interval, nothing already listed is
// dropped.
func (l *Lists) Report(tag Tag, id *Identity) {
	at := l.now()
	l.ReportEntries(detectedEntries(tag, id, at))
}

// ReportEntries deny-lists entries found by a detection (the behavioural
// engine's, each with its own TTL and evidence), as Report does: enforced
// in memory when it returns, stored right after. Entries must be valid
// (single addresses for IPs) and own their strings. It reports whether
// any entry was listed now (not listed already, and within
// attack_list_memory).
func (l *Lists) ReportEntries(entries []Entry) bool {
	if len(entries) == 0 {
		return false
	}
	now := l.now().UnixMilli()
	d := &l.det
	d.mu.Lock()
	keys := make([]string, 0, len(entries))
	fresh := entries[:0]
	stale := make([]bool, 0, len(entries))
	values := make([][]byte, 0, len(entries))
	var need counts
	bytes := int64(0)
	for _, e := range entries {
		key := e.StoreKey(Deny)
		if d.pending[key] != nil || containsKey(keys, key) {
			continue
		}
		exp, ok := l.sets[Deny].expiry(l.h, e)
		if ok && (exp == 0 || now < exp) {
			continue // listed already
		}
		v := e.storeValue()
		fresh, keys, stale, values = append(fresh, e), append(keys, key), append(stale, ok), append(values, v)
		need.add(e)
		bytes += int64(len(key)+len(v)) + pendOverhead
	}
	if len(fresh) == 0 {
		d.mu.Unlock()
		return false
	}
	if l.checkBudget(Deny, need) != nil || d.bytes+bytes > l.limit {
		d.mu.Unlock()
		d.refused.Add(1)
		if d.unloggedRefused.Add(1) == 1 {
			d.signal() // the first refusal of an interval is logged at once
		}
		return false
	}
	added := false
	for i, e := range fresh {
		if !l.sets[Deny].add(l.h, e, now) {
			continue // listed by the store's commit path meanwhile
		}
		p := &pend{value: values[i], stale: stale[i], bytes: int64(len(keys[i])+len(values[i])) + pendOverhead}
		if !added && d.unloggedListed.Load() == 0 {
			d.sample = e.Describe() + " (" + e.Tag.String() + ")"
		}
		added = true
		d.recent[d.nRecent%recentDetections] = e
		d.nRecent++
		d.pending[keys[i]] = p
		d.queue = append(d.queue, keys[i])
		d.bytes += p.bytes
		d.npending.Add(1)
	}
	d.mu.Unlock()
	if added {
		d.listed.Add(1)
		d.unloggedListed.Add(1)
		d.signal()
	}
	return added
}

func containsKey(keys []string, k string) bool {
	for _, x := range keys {
		if x == k {
			return true
		}
	}
	return false
}

// detectedReasons say what each kind of detection saw: the reason of the
// entries it lists.
var detectedReasons = [numTags]string{
	Manual:             "listed by an operator",
	ABSGenerated:       "reported by the detection engine",
	InvalidContentType: "sent a content type the API does not allow",
	InvalidMethod:      "used a method the API does not allow",
	InvalidProtocol:    "used a protocol the API does not allow",
	Decoy:              "requested a decoy path",
}

// detectedEntries returns the deny-list entries of every identity in id,
// with their own copies of the strings (id's may point into a request's
// buffer), created at now. The reason of a token, cookie, API key or
// username names the address that presented it.
func detectedEntries(tag Tag, id *Identity, now time.Time) []Entry {
	entries := make([]Entry, 0, 2+len(id.More))
	created := now.Truncate(time.Millisecond)
	reason := detectedReasons[tag]
	if id.IP.IsValid() {
		a := id.IP.Unmap()
		entries = append(entries, Entry{Kind: IP, Prefix: netip.PrefixFrom(a, a.BitLen()), Value: a.String(), Tag: tag, Created: created, Reason: reason})
		reason += " (client " + a.String() + ")"
	}
	add := func(kind Kind, name, value string) {
		if value != "" && valueProblem(value) == "" && len(name) <= maxNameLen {
			entries = append(entries, Entry{Kind: kind, Name: strings.Clone(name), Value: strings.Clone(value), Tag: tag, Created: created, Reason: reason})
		}
	}
	add(Token, "", id.Token)
	add(Cookie, id.CookieName, id.Cookie)
	add(APIKey, id.APIKeyName, id.APIKey)
	add(Username, "", id.Username)
	for _, c := range id.More {
		if !c.Claimed {
			add(c.Kind, c.Name, c.Value)
		}
	}
	return entries
}

// Detections returns how many detected attackers were listed and how
// many were refused (past attack_list_memory) since start, and how many
// entries are enforced in memory but not yet stored.
func (l *Lists) Detections() (listed, refused, pending int64) {
	return l.det.listed.Load(), l.det.refused.Load(), l.det.npending.Load()
}

// Flush waits until the detected attackers reported before the call have
// been written to the store (or their commit failed).
func (l *Lists) Flush(ctx context.Context) error {
	d := &l.det
	d.mu.Lock()
	var ch chan struct{}
	switch {
	case d.closed:
	case len(d.queue) > 0:
		ch = d.nextRound
	case d.inflight != nil:
		ch = d.inflight
	}
	d.mu.Unlock()
	if ch == nil {
		return nil
	}
	d.signal()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// commitLoop writes the pending entries, one round at a time: while a
// round commits, the next one gathers. Its log timer is armed only while
// detections wait to be logged.
func (l *Lists) commitLoop(ctx context.Context) {
	defer l.done.Done()
	timer := time.NewTimer(logEvery)
	timer.Stop()
	defer timer.Stop()
	var logDue <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			// Close: write what is pending before the store closes.
			for {
				more, err := l.commitRound(context.Background())
				if !more || err != nil {
					break
				}
			}
			l.logDetections(true)
			return
		case <-l.det.wake:
		case <-logDue:
			logDue = nil
		}
		for {
			more, err := l.commitRound(ctx)
			if err != nil {
				if ctx.Err() == nil {
					l.log.Error("could not store detected attackers; they stay enforced in memory, retrying", "error", err)
					select {
					case <-ctx.Done():
					case <-time.After(retryEvery):
					}
					l.det.signal()
				}
				break
			}
			if !more {
				break
			}
		}
		l.logDetections(false)
		if logDue == nil && (l.det.unloggedListed.Load() > 0 || l.det.unloggedRefused.Load() > 0) {
			timer.Reset(logEvery)
			logDue = timer.C
		}
	}
}

// detItem is one pending entry in a commit round.
type detItem struct {
	key   string
	value []byte
	gen   uint32
	cond  store.Cond
	drop  bool // the store holds a live entry of its own: leave it
}

// commitRound writes every entry pending and not yet taken, in batches
// within the store's limits, and reports whether there was anything to
// write.
func (l *Lists) commitRound(ctx context.Context) (bool, error) {
	d := &l.det
	d.mu.Lock()
	if len(d.queue) == 0 || d.closed {
		d.mu.Unlock()
		return false, nil
	}
	keys := d.queue
	d.queue = nil
	done := d.nextRound
	d.nextRound, d.inflight = make(chan struct{}), done
	items := make([]detItem, 0, len(keys))
	var stale []int
	for _, k := range keys {
		p := d.pending[k]
		if p == nil {
			continue
		}
		if p.stale {
			stale = append(stale, len(items))
		}
		items = append(items, detItem{key: k, value: p.value, gen: p.gen, cond: store.Absent(k)})
	}
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		d.inflight = nil
		d.mu.Unlock()
		close(done)
	}()

	// Keys in order fill the store's pages sequentially.
	sort.Slice(items, func(i, j int) bool { return items[i].key < items[j].key })
	var err error
	for _, i := range stale {
		if err = l.resolve(ctx, &items[i]); err != nil {
			break
		}
	}
	// In batches within the store's limits, each written on its own: a
	// batch not written leaves its entries pending for the next round.
	lim := l.st.Limits()
	for start, attempt := 0, 0; err == nil && start < len(items); {
		f := newFiller(lim, room{})
		b := store.Batch{}
		end := start
		for ; end < len(items); end++ {
			it := &items[end]
			if it.drop {
				continue
			}
			if !f.take(1, 1, 2*len(it.key)+len(it.value)+len(it.cond.Value)) {
				break
			}
			b.Conds = append(b.Conds, it.cond)
			b.Ops = append(b.Ops, store.Put(it.key, it.value))
		}
		if len(b.Ops) == 0 {
			break
		}
		_, err = l.st.Commit(ctx, b)
		var conflict *store.ConflictError
		if err == nil {
			start, attempt = end, 0
			continue
		}
		if !errors.As(err, &conflict) || attempt == 3 {
			break
		}
		// A key changed since it was reported (an operator's entry, a
		// sweep): read the batch's keys again and retry.
		attempt++
		err = nil
		for i := start; i < end && err == nil; i++ {
			err = l.resolve(ctx, &items[i])
		}
	}
	if err != nil && errors.As(err, new(*store.ConflictError)) {
		err = nil // still changing: the next round reads them again
	}
	d.mu.Lock()
	for _, it := range items {
		p := d.pending[it.key]
		switch {
		case p == nil:
			// written: apply ended its pending state
		case it.drop && p.gen == it.gen:
			// the store holds an entry of its own, which apply put in
			// memory; nothing changed it since it was read
			d.drop(it.key, p)
		default:
			// not written (the commit failed, or the key changed since
			// it was read): the next round reads the key again
			p.stale = true
			d.queue = append(d.queue, it.key)
		}
	}
	d.mu.Unlock()
	return true, err
}

// resolve reads it's key from the store and sets what its put must be
// conditional on: the key absent, or holding an entry whose own expiry is
// due; a live entry there is left alone.
func (l *Lists) resolve(ctx context.Context, it *detItem) error {
	d := &l.det
	d.mu.Lock()
	if p := d.pending[it.key]; p != nil {
		it.gen = p.gen
	}
	d.mu.Unlock()
	v, err := l.st.Get(ctx, it.key)
	if errors.Is(err, store.ErrNotFound) {
		it.cond, it.drop = store.Absent(it.key), false
		return nil
	}
	if err != nil {
		return err
	}
	if _, e, err := parseStored(it.key, v); err == nil && (e.Expires.IsZero() || l.now().Before(e.Expires)) && l.enforced(v) {
		it.drop = true
		return nil
	}
	// Absent, expired, or an entry of a bulk import not live: replaced.
	it.cond, it.drop = store.Unchanged(it.key, v), false
	return nil
}

// logDetections logs the detected attackers listed and refused since the
// last line of each kind, at most once per logEvery (force: now).
func (l *Lists) logDetections(force bool) {
	d := &l.det
	now := time.Now()
	if force || now.Sub(d.lastListedLog) >= logEvery {
		if n := d.unloggedListed.Swap(0); n > 0 {
			d.mu.Lock()
			sample := d.sample
			d.mu.Unlock()
			l.log.Info("detected attackers deny-listed", "count", n, "first", sample, "total", d.listed.Load())
			d.lastListedLog = now
		}
	}
	if force || now.Sub(d.lastRefusedLog) >= logEvery {
		if n := d.unloggedRefused.Swap(0); n > 0 {
			used := l.MemoryUsed()
			l.log.Warn("attack list memory is full: detected attackers not deny-listed; delete entries or raise attack_list_memory",
				"count", n, "total", d.refused.Load(), "configured", units.Size(l.limit).MB(), "used", units.Size(used).MB(),
				"metric", `ase_detections_total{result="refused"}`, "logged_at_most_every", logEvery.String())
			d.lastRefusedLog = now
		}
	}
}
