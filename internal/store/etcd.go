package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ErrUnavailable is returned by Commit when the cluster store cannot be
// reached: nothing was changed (or, if the change was made, it has not
// reached this node yet: a retry is then refused as a conflict or finds
// the change made).
var ErrUnavailable = errors.New("store: the cluster store (etcd) cannot be reached")

// EtcdOptions configure OpenEtcd.
type EtcdOptions struct {
	Endpoints []string
	// Prefix is where this cluster's keys live in etcd ("/ase/<cluster_id>/"):
	// clusters sharing one etcd never see each other's state.
	Prefix   string
	TLS      *tls.Config // nil: plain
	Username string
	Password string
	// MirrorPath is the local copy of the cluster's state (a bbolt file
	// in data_dir): reads, decisions and subscriptions are served from
	// it, so a node keeps its last state through an etcd outage, and
	// starts from it at once.
	MirrorPath string
	// Timeout bounds a commit (then ErrUnavailable) and the initial
	// connection; 0 is 5 s.
	Timeout time.Duration
	Log     *slog.Logger
}

// Etcd is the cluster store: etcd is the source of truth; a local mirror
// (a Bolt file) follows it by watch, and serves every read and
// subscription. Commit writes to etcd in one transaction and returns once
// the watch has brought the change into the mirror (and so to this node's
// subscribers): an acknowledged change is enforced here, and on every other
// node as soon as its watch delivers it.
//
// The mirror catches up by watching from the revision it holds. When that
// revision was compacted in etcd meanwhile, or etcd was rebuilt (its
// revision is behind the mirror's), the mirror is resynchronised: etcd's
// keys are read in pages at one revision and compared with the mirror's,
// and only the differences are applied (deletions included: a node never
// resurrects state deleted while it was away). A watch that stops making
// progress is replaced.
type Etcd struct {
	o      EtcdOptions
	cli    *clientv3.Client
	creds  *tokenCreds
	authMu sync.Mutex // one authentication at a time
	mirror *Bolt
	log    *slog.Logger

	mu      sync.Mutex
	applied *sync.Cond // broadcast when the mirror's revision advances
	closed  bool

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	// syncs counts full resynchronisations (for tests and the status).
	syncs int
	// offline: etcd could not be reached lately (set by a failed contact,
	// cleared by the watch's first answer): commits fail at once rather
	// than after their timeout.
	offline atomic.Bool
}

// OpenEtcd connects to etcd, brings the local mirror up to date (a full
// load for a new node), and follows etcd from then on. If etcd cannot be
// reached and the mirror holds a state, the node starts from it and
// catches up when etcd returns; with no state at all, it fails.
func OpenEtcd(ctx context.Context, o EtcdOptions) (*Etcd, error) {
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	mirror, err := Open(o.MirrorPath)
	if err != nil {
		return nil, err
	}
	creds := &tokenCreds{}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: o.Endpoints, TLS: o.TLS,
		DialTimeout: o.Timeout, DialKeepAliveTime: 5 * time.Second, DialKeepAliveTimeout: 5 * time.Second,
		PermitWithoutStream: true,
		// ASE logs what matters itself, in its own log; the client's
		// retries would be JSON noise on stderr.
		Logger: zap.NewNop(),
		DialOptions: []grpc.DialOption{
			// The token of etcd's authentication is attached here rather
			// than by the client (see tokenCreds).
			grpc.WithPerRPCCredentials(creds),
			// Back within a second of etcd's return, whatever the outage's
			// length (gRPC's default backoff grows to 2 minutes).
			grpc.WithConnectParams(grpc.ConnectParams{Backoff: backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second}, MinConnectTimeout: o.Timeout}),
		},
	})
	if err != nil {
		mirror.Close()
		return nil, fmt.Errorf("etcd_endpoints: %w", err)
	}
	e := &Etcd{o: o, cli: cli, creds: creds, mirror: mirror, log: o.Log, done: make(chan struct{})}
	e.applied = sync.NewCond(&e.mu)
	e.ctx, e.cancel = context.WithCancel(context.Background())
	// Reachable? Then the mirror is brought up to date before anything is
	// served from it (a new node loads everything: minutes at most).
	pctx, cancel := context.WithTimeout(ctx, o.Timeout)
	err = e.call(pctx, func(ctx context.Context) error {
		_, err := cli.Get(ctx, o.Prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
		return err
	})
	cancel()
	if errors.Is(err, rpctypes.ErrAuthFailed) {
		e.cancel()
		cli.Close()
		mirror.Close()
		return nil, fmt.Errorf("etcd_username/etcd_password: etcd refused them (%v)", err)
	}
	if err == nil {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
		err = e.resync(sctx)
		cancel()
	}
	if err != nil {
		e.offline.Store(true)
		if mirror.Rev() == 0 {
			e.cancel()
			cli.Close()
			mirror.Close()
			return nil, fmt.Errorf("cluster store: etcd at %v cannot be reached and this node has no state of its own yet: %w", o.Endpoints, err)
		}
		e.log.Warn("etcd cannot be reached: serving the last state this node had; it catches up when etcd returns",
			"endpoints", o.Endpoints, "revision", mirror.Rev(), "error", err)
	}
	go e.follow()
	return e, nil
}

// key is a store key's etcd key.
func (e *Etcd) key(k string) string { return e.o.Prefix + k }

// Client returns the etcd client (for the cluster's leases).
func (e *Etcd) Client() *clientv3.Client { return e.cli }

// Prefix returns the cluster's key prefix in etcd.
func (e *Etcd) Prefix() string { return e.o.Prefix }

// Get implements Reader, from the mirror.
func (e *Etcd) Get(ctx context.Context, key string) ([]byte, error) { return e.mirror.Get(ctx, key) }

// Scan implements Reader, from the mirror.
func (e *Etcd) Scan(ctx context.Context, prefix string, fn func(key string, value []byte) error) error {
	return e.mirror.Scan(ctx, prefix, fn)
}

// Subscribe implements Store, on the mirror.
func (e *Etcd) Subscribe(ctx context.Context, prefix string, load func(key string, value []byte) error, onEvent func(Event)) (func(), error) {
	return e.mirror.Subscribe(ctx, prefix, load, onEvent)
}

// Rev implements Store: the etcd revision the mirror holds.
func (e *Etcd) Rev() int64 { return e.mirror.Rev() }

// Limits implements Store: an etcd server's default limits.
func (e *Etcd) Limits() Limits { return EtcdLimits }

// Syncs returns how many full resynchronisations the mirror has made.
func (e *Etcd) Syncs() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.syncs
}

// Commit implements Store: one etcd transaction, then a wait until the
// mirror holds it.
func (e *Etcd) Commit(ctx context.Context, b Batch) (int64, error) {
	if err := checkLimits(e.Limits(), &b); err != nil {
		return 0, err
	}
	if e.offline.Load() {
		return 0, fmt.Errorf("%w (no answer since the last attempt): the change was not made; retry when etcd is back", ErrUnavailable)
	}
	cmps := make([]clientv3.Cmp, 0, len(b.Conds))
	for _, c := range b.Conds {
		k := e.key(c.Key)
		switch {
		case !c.Exists:
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(k), "=", 0))
		case c.Value == nil:
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(k), ">", 0))
		default:
			// A value compare fails on an absent key, as Unchanged must.
			cmps = append(cmps, clientv3.Compare(clientv3.Value(k), "=", string(c.Value)))
		}
	}
	ops, err := e.txnOps(b.Ops)
	if err != nil {
		return 0, err
	}
	// On a failed condition, the keys' current values say which one.
	orElse := make([]clientv3.Op, 0, len(b.Conds))
	for _, c := range b.Conds {
		orElse = append(orElse, clientv3.OpGet(e.key(c.Key)))
	}
	tctx, cancel := context.WithTimeout(ctx, e.o.Timeout)
	defer cancel()
	var resp *clientv3.TxnResponse
	err = e.call(tctx, func(ctx context.Context) (err error) {
		resp, err = e.cli.Txn(ctx).If(cmps...).Then(ops...).Else(orElse...).Commit()
		return err
	})
	if err != nil {
		if ctx.Err() == nil && !errors.Is(err, context.Canceled) {
			e.offline.Store(true)
		}
		return 0, e.unavailable(err)
	}
	if !resp.Succeeded {
		// The mirror is brought to the revision that refused the batch, so
		// that a retry reads what made it fail.
		e.waitApplied(tctx, resp.Header.Revision)
		for i, c := range b.Conds {
			kvs := resp.Responses[i].GetResponseRange().GetKvs()
			exists := len(kvs) > 0
			if exists != c.Exists || c.Value != nil && exists && !bytes.Equal(kvs[0].Value, c.Value) {
				return 0, &ConflictError{Cond: c}
			}
		}
		// Changed back between the transaction and its reads.
		return 0, &ConflictError{Cond: b.Conds[0]}
	}
	rev := resp.Header.Revision
	// Made: now this node must hold it before it is acknowledged. A mirror
	// busy with a large import elsewhere may lag behind; that is not an
	// outage, so the wait is longer than a commit's.
	wctx, wcancel := context.WithTimeout(ctx, applyWait)
	defer wcancel()
	if err := e.waitApplied(wctx, rev); err != nil {
		return 0, fmt.Errorf("%w: the change was made in etcd (revision %d) but has not reached this node yet", ErrUnavailable, rev)
	}
	return rev, nil
}

// txnOps turns a batch's operations into one etcd transaction's, which
// may not touch a key twice nor put a key inside a range it deletes: a
// key's operations reduce to its last, and a prefix deletion becomes the
// deletion of the ranges between the keys the batch writes after it (an
// earlier put under the prefix is deleted with it).
func (e *Etcd) txnOps(in []Op) ([]clientv3.Op, error) {
	type final struct {
		put   bool
		value []byte
	}
	last := map[string]final{}
	var prefixes []string
	for _, op := range in {
		switch op.Kind {
		case OpPut:
			if op.Key == "" {
				return nil, errors.New("store: empty key")
			}
			last[op.Key] = final{put: true, value: op.Value}
		case OpDelete:
			last[op.Key] = final{}
		case OpDeletePrefix:
			for k := range last {
				if strings.HasPrefix(k, op.Key) {
					delete(last, k) // the range deletion removes it
				}
			}
			prefixes = append(prefixes, op.Key)
		default:
			return nil, fmt.Errorf("store: unknown op kind %d", op.Kind)
		}
	}
	keys := make([]string, 0, len(last))
	for k := range last {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var ops []clientv3.Op
	// Prefix deletions, merged where they nest, minus the written keys.
	sort.Strings(prefixes)
	var merged []string
	for _, p := range prefixes {
		if n := len(merged); n > 0 && strings.HasPrefix(p, merged[n-1]) {
			continue
		}
		merged = append(merged, p)
	}
	for _, p := range merged {
		end := clientv3.GetPrefixRangeEnd(e.key(p))
		from := e.key(p)
		for _, k := range keys {
			if !strings.HasPrefix(k, p) {
				continue
			}
			if ek := e.key(k); from < ek {
				ops = append(ops, clientv3.OpDelete(from, clientv3.WithRange(ek)))
			}
			from = e.key(k) + "\x00"
		}
		if from < end {
			ops = append(ops, clientv3.OpDelete(from, clientv3.WithRange(end)))
		}
	}
	for _, k := range keys {
		f := last[k]
		covered := false
		for _, p := range merged {
			covered = covered || strings.HasPrefix(k, p)
		}
		switch {
		case f.put:
			ops = append(ops, clientv3.OpPut(e.key(k), string(f.value)))
		case !covered:
			ops = append(ops, clientv3.OpDelete(e.key(k)))
		}
	}
	if len(ops) > EtcdLimits.MaxOps {
		return nil, &TooLargeError{Limits: EtcdLimits, Ops: len(ops)}
	}
	return ops, nil
}

// unavailable maps a client error to what the API says: etcd cannot be
// reached (ErrUnavailable), or the error itself.
func (e *Etcd) unavailable(err error) error {
	if errors.Is(err, context.Canceled) {
		return err
	}
	return fmt.Errorf("%w (%v): the change was not made, or not confirmed; retry when etcd is back", ErrUnavailable, err)
}

// waitApplied waits until the mirror holds revision rev.
func (e *Etcd) waitApplied(ctx context.Context, rev int64) error {
	stop := context.AfterFunc(ctx, func() {
		e.mu.Lock()
		e.applied.Broadcast()
		e.mu.Unlock()
	})
	defer stop()
	e.mu.Lock()
	defer e.mu.Unlock()
	for e.mirror.Rev() < rev {
		if err := ctx.Err(); err != nil {
			return err
		}
		if e.closed {
			return ErrClosed
		}
		e.applied.Wait()
	}
	return nil
}

// advanced wakes the commits waiting for the mirror.
func (e *Etcd) advanced() {
	e.mu.Lock()
	e.applied.Broadcast()
	e.mu.Unlock()
}

// Close implements Store.
func (e *Etcd) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	e.applied.Broadcast()
	e.mu.Unlock()
	e.cancel()
	<-e.done
	e.cli.Close()
	return e.mirror.Close()
}

// applyWait bounds the wait for a change made to reach this node's mirror.
const applyWait = time.Minute

// Watch progress: a watch that has brought nothing (no event, no progress
// notice) for stallAfter is replaced; progress is asked for every
// progressEvery.
const (
	progressEvery = 2 * time.Second
	stallAfter    = 6 * time.Second
	retryPause    = 500 * time.Millisecond
)

// follow keeps the mirror following etcd until Close: it watches from
// the mirror's revision, resynchronises when that revision is gone
// (compacted, or etcd rebuilt), and replaces a watch that stalls.
func (e *Etcd) follow() {
	defer close(e.done)
	for e.ctx.Err() == nil {
		err := e.watch()
		if e.ctx.Err() != nil {
			return
		}
		var resync *resyncNeeded
		if errors.As(err, &resync) {
			e.log.Warn("the cluster store's mirror resynchronises with etcd", "reason", resync.why, "revision", e.mirror.Rev())
			ctx, cancel := context.WithTimeout(e.ctx, time.Minute)
			err = e.resync(ctx)
			cancel()
			if err == nil {
				continue
			}
		}
		e.log.Debug("etcd watch ended; resuming", "error", err)
		select {
		case <-e.ctx.Done():
			return
		case <-time.After(retryPause):
		}
	}
}

// resyncNeeded says the watch cannot resume from the mirror's revision.
type resyncNeeded struct{ why string }

func (r *resyncNeeded) Error() string { return "resync needed: " + r.why }

// watch follows etcd from the mirror's revision until an error.
func (e *Etcd) watch() error {
	from := e.mirror.Rev() + 1
	// etcd's revision must not be behind the mirror's: a rebuilt etcd
	// starts again from 1, and a watch from the old revision would wait,
	// silently, for revisions that are not the same changes.
	if err := e.checkRevision(); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(clientv3.WithRequireLeader(e.ctx))
	defer cancel()
	wch := e.cli.Watch(ctx, e.o.Prefix, clientv3.WithPrefix(), clientv3.WithRev(from), clientv3.WithProgressNotify(), clientv3.WithCreatedNotify())
	tick := time.NewTicker(progressEvery)
	defer tick.Stop()
	last := time.Now()
	for {
		select {
		case <-e.ctx.Done():
			return e.ctx.Err()
		case <-tick.C:
			if time.Since(last) > stallAfter {
				return errors.New("the watch made no progress")
			}
			if err := e.checkRevision(); err != nil {
				return err
			}
			pctx, pcancel := context.WithTimeout(ctx, progressEvery)
			e.cli.RequestProgress(pctx)
			pcancel()
		case resp, ok := <-wch:
			if !ok {
				return errors.New("the watch channel closed")
			}
			last = time.Now()
			e.offline.Store(false)
			if resp.CompactRevision != 0 {
				return &resyncNeeded{why: "revision " + strconv.FormatInt(from, 10) + " was compacted in etcd"}
			}
			if err := resp.Err(); err != nil {
				if errors.Is(err, rpctypes.ErrCompacted) {
					return &resyncNeeded{why: err.Error()}
				}
				if authError(err) {
					e.authenticate(e.ctx) // the watch is reopened with the new token
				}
				return err
			}
			if err := e.applyEvents(resp.Events); err != nil {
				return err
			}
			if n := len(resp.Events); n > 0 {
				from = resp.Events[n-1].Kv.ModRevision + 1
			}
		}
	}
}

// checkRevision refuses to go on from a state etcd does not have: its
// revision is behind the mirror's, or its incarnation (a marker made once
// per etcd keyspace) is not the one the mirror followed. A rebuilt etcd
// keeps its cluster and member IDs, and once its revision passes the
// mirror's, only the incarnation tells it apart: a watch resumed on it
// would silently miss every change before that revision.
func (e *Etcd) checkRevision() error {
	ctx, cancel := context.WithTimeout(e.ctx, e.o.Timeout)
	defer cancel()
	var resp *clientv3.GetResponse
	err := e.call(ctx, func(ctx context.Context) (err error) {
		resp, err = e.cli.Get(ctx, e.key(incarnationKey))
		return err
	})
	if err != nil {
		if e.ctx.Err() == nil {
			e.offline.Store(true)
		}
		return err
	}
	e.offline.Store(false)
	if resp.Header.Revision < e.mirror.Rev() {
		return &resyncNeeded{why: fmt.Sprintf("etcd's revision %d is behind this node's %d: etcd was rebuilt", resp.Header.Revision, e.mirror.Rev())}
	}
	if len(resp.Kvs) == 0 || string(resp.Kvs[0].Value) != string(e.mirror.meta(metaIncarnation)) {
		return &resyncNeeded{why: "etcd holds another keyspace than the one this node followed (rebuilt, or replaced)"}
	}
	return nil
}

// incarnationKey marks one etcd keyspace: made, with a random value, by
// the first node that finds it absent.
const incarnationKey = "cluster/incarnation"

// metaIncarnation is the mirror's record of the incarnation it follows.
const metaIncarnation = "etcd_incarnation"

// incarnation returns etcd's marker, making it if absent.
func (e *Etcd) incarnation(ctx context.Context) (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	k := e.key(incarnationKey)
	var resp *clientv3.TxnResponse
	err := e.call(ctx, func(ctx context.Context) (err error) {
		resp, err = e.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).
			Then(clientv3.OpPut(k, hex.EncodeToString(b[:]))).Else(clientv3.OpGet(k)).Commit()
		return err
	})
	if err != nil {
		return "", err
	}
	if resp.Succeeded {
		return hex.EncodeToString(b[:]), nil
	}
	return string(resp.Responses[0].GetResponseRange().GetKvs()[0].Value), nil
}

// applyEvents brings one watch response's events into the mirror in one
// mirror transaction, given to subscribers as one event per etcd revision
// (one etcd transaction).
func (e *Etcd) applyEvents(events []*clientv3.Event) error {
	var revs []revChanges
	for len(events) > 0 {
		rev := events[0].Kv.ModRevision
		n := 1
		for n < len(events) && events[n].Kv.ModRevision == rev {
			n++
		}
		if rev > e.mirror.Rev() {
			changes := make([]Change, 0, n)
			for _, ev := range events[:n] {
				k := string(ev.Kv.Key[len(e.o.Prefix):])
				if ev.Type == clientv3.EventTypeDelete {
					changes = append(changes, Change{Key: k, Deleted: true})
				} else {
					changes = append(changes, Change{Key: k, Value: ev.Kv.Value})
				}
			}
			revs = append(revs, revChanges{rev: rev, changes: changes})
		}
		events = events[n:]
	}
	if len(revs) == 0 {
		return nil
	}
	if err := e.mirror.applyRevs(revs, nil); err != nil {
		return err
	}
	e.advanced()
	return nil
}

// resyncPage is how many keys a resynchronisation reads at a time.
const resyncPage = 20_000

// resync makes the mirror exactly etcd's state at one revision: etcd's
// keys are read in pages at that revision and merged with the mirror's
// (both in key order); only differences are applied, deletions included.
func (e *Etcd) resync(ctx context.Context) error {
	began := time.Now()
	read, changed := 0, 0
	inc, err := e.incarnation(ctx)
	if err != nil {
		return err
	}
	var head *clientv3.GetResponse
	err = e.call(ctx, func(ctx context.Context) (err error) {
		head, err = e.cli.Get(ctx, e.o.Prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
		return err
	})
	if err != nil {
		return err
	}
	rev := head.Header.Revision
	// Pages are read ahead of the mirror's writes: one fetch in flight
	// while the previous page is compared and applied.
	type page struct {
		kvs  []*mvccpb.KeyValue
		more bool
		err  error
	}
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pages := make(chan page, 1)
	go func() {
		defer close(pages)
		end := clientv3.GetPrefixRangeEnd(e.o.Prefix)
		from := e.o.Prefix
		for {
			var resp *clientv3.GetResponse
			err := e.call(pctx, func(ctx context.Context) (err error) {
				resp, err = e.cli.Get(ctx, from, clientv3.WithRange(end), clientv3.WithRev(rev), clientv3.WithLimit(resyncPage),
					clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
				return err
			})
			if err != nil {
				pages <- page{err: err}
				return
			}
			select {
			case pages <- page{kvs: resp.Kvs, more: resp.More && len(resp.Kvs) > 0}:
			case <-pctx.Done():
				return
			}
			if !resp.More || len(resp.Kvs) == 0 {
				return
			}
			from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
		}
	}()
	var lastKey string // the mirror is in step below here
	for p := range pages {
		if p.err != nil {
			return p.err
		}
		upTo := "" // this page covers the mirror's keys below upTo ("" = all the rest)
		if p.more {
			upTo = string(p.kvs[len(p.kvs)-1].Key[len(e.o.Prefix):]) + "\x00"
		}
		changes, err := e.diff(lastKey, upTo, p.kvs)
		if err != nil {
			return err
		}
		read, changed = read+len(p.kvs), changed+len(changes)
		if len(changes) > 0 {
			if err := e.mirror.applyRev(0, changes, nil); err != nil {
				return err
			}
		}
		if upTo == "" {
			break
		}
		lastKey = upTo
	}
	if err := e.mirror.applyRev(rev, nil, map[string][]byte{metaIncarnation: []byte(inc)}); err != nil {
		return err
	}
	e.mu.Lock()
	e.syncs++
	e.applied.Broadcast()
	e.mu.Unlock()
	e.log.Info("the cluster store's mirror is in step with etcd", "revision", rev, "keys", read, "changed", changed, "took", time.Since(began).Round(time.Millisecond))
	return nil
}

// diff compares one page of etcd's keys (kvs, sorted) with the mirror's
// keys in [from, upTo) ("" upTo: to the end) and returns the changes that
// make the mirror equal to etcd there.
func (e *Etcd) diff(from, upTo string, kvs []*mvccpb.KeyValue) ([]Change, error) {
	var changes []Change
	i := 0
	err := e.mirror.scanRange(from, upTo, func(k string, v []byte) {
		for i < len(kvs) && string(kvs[i].Key[len(e.o.Prefix):]) < k {
			changes = append(changes, Change{Key: string(kvs[i].Key[len(e.o.Prefix):]), Value: kvs[i].Value})
			i++
		}
		if i < len(kvs) && string(kvs[i].Key[len(e.o.Prefix):]) == k {
			if !bytes.Equal(kvs[i].Value, v) {
				changes = append(changes, Change{Key: k, Value: kvs[i].Value})
			}
			i++
			return
		}
		changes = append(changes, Change{Key: k, Deleted: true})
	})
	for ; i < len(kvs); i++ {
		changes = append(changes, Change{Key: string(kvs[i].Key[len(e.o.Prefix):]), Value: kvs[i].Value})
	}
	return changes, err
}

// tokenCreds attaches the token of etcd's authentication to every call.
// The client's own handling is not used: after etcd restarts, its
// in-memory ("simple") tokens are gone, and etcd 3.4 then refuses the
// stale token the client keeps sending, for good. Here a call refused so
// authenticates again (call) and is retried.
type tokenCreds struct{ tok atomic.Pointer[string] }

func (c *tokenCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	if t := c.tok.Load(); t != nil && *t != "" {
		return map[string]string{rpctypes.TokenFieldNameGRPC: *t}, nil
	}
	return nil, nil
}

func (c *tokenCreds) RequireTransportSecurity() bool { return false }

// authError reports whether etcd refused a call's token.
func authError(err error) bool {
	return errors.Is(err, rpctypes.ErrInvalidAuthToken) || errors.Is(err, rpctypes.ErrAuthOldRevision) ||
		status.Code(err) == codes.Unauthenticated && !errors.Is(err, rpctypes.ErrAuthFailed)
}

// authenticate gets a new token, on a connection of its own that sends
// none (a stale one would be refused first).
func (e *Etcd) authenticate(ctx context.Context) error {
	if e.o.Username == "" {
		return nil
	}
	e.authMu.Lock()
	defer e.authMu.Unlock()
	c, err := clientv3.New(clientv3.Config{Endpoints: e.o.Endpoints, TLS: e.o.TLS, DialTimeout: e.o.Timeout, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	defer c.Close()
	actx, cancel := context.WithTimeout(ctx, e.o.Timeout)
	defer cancel()
	resp, err := c.Authenticate(actx, e.o.Username, e.o.Password)
	if err != nil {
		return err
	}
	e.creds.tok.Store(&resp.Token)
	return nil
}

// call runs fn, authenticating first when there is no token yet, and once
// more when etcd refuses the token.
func (e *Etcd) call(ctx context.Context, fn func(ctx context.Context) error) error {
	if e.o.Username != "" && e.creds.tok.Load() == nil {
		if err := e.authenticate(ctx); err != nil {
			return err
		}
	}
	err := fn(ctx)
	if err != nil && e.o.Username != "" && authError(err) {
		if aerr := e.authenticate(ctx); aerr != nil {
			return aerr
		}
		err = fn(ctx)
	}
	return err
}

// Call runs fn with the cluster store's etcd client, re-authenticating
// when etcd refuses its token (for the cluster's leases).
func (e *Etcd) Call(ctx context.Context, fn func(ctx context.Context, cli *clientv3.Client) error) error {
	return e.call(ctx, func(ctx context.Context) error { return fn(ctx, e.cli) })
}
