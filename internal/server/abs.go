package server

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ase-project/ase/internal/audit"
	"github.com/ase-project/ase/internal/behave"
	"github.com/ase-project/ase/internal/catalog"
	"github.com/ase-project/ase/internal/cluster"
	"github.com/ase-project/ase/internal/config"
	"github.com/ase-project/ase/internal/engine"
	"github.com/ase-project/ase/internal/lists"
	"github.com/ase-project/ase/internal/store"
)

// Behavioural detection's state in the store (behave.PolicyPrefix and
// behave.LearnedPrefix): an API's policy (the operator's modes and
// thresholds) and what it learned in training, both shared by every node
// of a cluster: a node that restarts, or joins, enforces at once what was
// learned.

// absAuditQueue bounds the detections waiting to be written to the audit
// log: past it they are counted and dropped (the deny list and the
// metrics still have them), so a flood of detections never blocks a
// request on the disk nor queues without bound.
const absAuditQueue = 1024

// absReporter turns the detection engine's findings into deny-list
// entries (tag abs_generated, the TTL of their kind, their evidence as
// reason), audit lines and log lines.
type absReporter struct {
	lists        *lists.Lists
	live         *catalog.Live
	now          func() time.Time
	ttl          [8]time.Duration // by lists.Kind
	log          *slog.Logger
	audit        chan audit.Entry
	droppedAudit atomic.Int64
	logged       atomic.Int64 // Unix seconds of the last log line
	// found queues detections for this node's ring in the store
	// (behave.FoundPrefix), written in batches; past absAuditQueue
	// waiting, they are counted in foundDropped and dropped.
	found        chan behave.Found
	foundDropped atomic.Int64
}

// setupABS builds the detection engine, makes eng count for it, and
// follows the policies and learned state in the store until ctx ends.
func setupABS(ctx context.Context, cfg *config.Config, st store.Store, live *catalog.Live, lst *lists.Lists, eng *engine.Engine,
	auditLog *audit.Log, now func() time.Time, log *slog.Logger) (*behave.Engine, *absReporter, error) {
	r := &absReporter{lists: lst, live: live, now: now, log: log, audit: make(chan audit.Entry, absAuditQueue), found: make(chan behave.Found, absAuditQueue)}
	node, err := cluster.NodeUUID(cfg.DataDir)
	if err != nil {
		return nil, nil, err
	}
	next, err := nextFoundSlot(ctx, st, node)
	if err != nil {
		return nil, nil, err
	}
	go r.writeFound(ctx, st, node, next)
	r.ttl[lists.IP] = cfg.ABSTTLIP.Std()
	r.ttl[lists.Token] = cfg.ABSTTLToken.Std()
	r.ttl[lists.Cookie] = cfg.ABSTTLCookie.Std()
	r.ttl[lists.APIKey] = cfg.ABSTTLAPIKey.Std()
	r.ttl[lists.Username] = cfg.ABSTTLUsername.Std()
	b := behave.New(behave.Config{
		Training: cfg.ABSTraining.Std(), Window: cfg.ABSWindow.Std(), MaxIdentities: cfg.ABSMaxClients, Now: now,
	}, r.report)
	eng.SetBehave(b)
	go func() {
		for {
			select {
			case e := <-r.audit:
				auditLog.Record(e)
			case <-ctx.Done():
				return
			}
		}
	}()
	b.OnTrained(func(id string, l behave.Learned) {
		v, err := json.Marshal(l)
		if err != nil {
			return
		}
		wctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := st.Commit(wctx, store.Batch{Ops: []store.Op{store.Put(behave.LearnedPrefix+id, v)}}); err != nil {
			log.Warn("what an API learned could not be stored; it is enforced on this node, and learned again after a restart", "api_id", id, "error", err)
			return
		}
		log.Info("behavioural detection trained: enforcing", "api_id", id)
	})
	learned := func(key string, value []byte, deleted bool) {
		id := strings.TrimPrefix(key, behave.LearnedPrefix)
		if deleted {
			b.Retrain(id)
			return
		}
		l, err := behave.DecodeLearned(value)
		if err != nil {
			log.Error("ignoring what an API learned: malformed in the store", "api_id", id, "error", err)
			return
		}
		b.Restore(id, l)
	}
	stop, err := st.Subscribe(ctx, behave.LearnedPrefix, func(key string, value []byte) error {
		learned(key, value, false)
		return nil
	}, func(e store.Event) {
		for _, c := range e.Changes {
			learned(c.Key, c.Value, c.Deleted)
		}
	})
	if err != nil {
		return nil, nil, err
	}
	context.AfterFunc(ctx, stop)
	policy := func(key string, value []byte, deleted bool) {
		id := strings.TrimPrefix(key, behave.PolicyPrefix)
		if deleted {
			b.SetPolicy(id, nil)
			return
		}
		p, err := behave.DecodePolicy(value)
		if err != nil {
			log.Error("ignoring a malformed detection policy in the store", "api_id", id, "error", err)
			return
		}
		b.SetPolicy(id, &p)
	}
	stop, err = st.Subscribe(ctx, behave.PolicyPrefix, func(key string, value []byte) error {
		policy(key, value, false)
		return nil
	}, func(e store.Event) {
		for _, c := range e.Changes {
			policy(c.Key, c.Value, c.Deleted)
		}
	})
	if err != nil {
		return nil, nil, err
	}
	context.AfterFunc(ctx, stop)
	return b, r, nil
}

// dropped returns the detections whose audit line, and whose record in
// the store, were dropped.
func (r *absReporter) dropped() (int64, int64) { return r.droppedAudit.Load(), r.foundDropped.Load() }

// report deny-lists d's identity (unless it is reported only: the
// detector's mode, or enable_abs_attack off) and audits it. It runs on the
// data path: the list change is in memory, the audit line queued.
func (r *absReporter) report(d *behave.Detection) bool {
	if d.Mode == behave.Enforce && !r.live.Setting(catalog.ABSAttack) {
		d.Mode = behave.Report
	}
	ev := d.Evidence()
	reason := ev.Encode()
	listed := false
	if d.Mode == behave.Enforce {
		now := r.now()
		e := lists.Entry{Kind: d.Kind, Name: d.Name, Value: d.Value, Tag: lists.ABSGenerated, Created: now.Truncate(time.Millisecond), Reason: reason}
		if d.Kind == lists.IP {
			a := d.IP.Unmap()
			if !a.IsValid() {
				return false
			}
			e.Value, e.Prefix = a.String(), netip.PrefixFrom(a, a.BitLen())
		}
		if ttl := r.ttl[d.Kind]; ttl > 0 {
			e.Expires = now.Add(ttl).Truncate(time.Millisecond)
		}
		listed = r.lists.ReportEntries([]lists.Entry{e})
	}
	result := "report_only"
	if d.Mode == behave.Enforce {
		result = "listed"
		if !listed {
			result = "not_listed" // listed already, or past attack_list_memory
		}
	}
	select {
	case r.found <- behave.NewFound(d, reason, r.ttl[d.Kind]):
	default:
		r.foundDropped.Add(1)
	}
	params := map[string]any{"type": d.Kind.String(), "value": d.Value, "evidence": json.RawMessage(reason)}
	if d.Name != "" {
		params["name"] = d.Name
	}
	select {
	case r.audit <- audit.Entry{User: "ase", Via: "behavioural_detection", Auth: "none", Client: d.IP.String(), Action: "abs_detection", Params: params, Result: result}:
	default:
		r.droppedAudit.Add(1)
	}
	// One log line per 10 seconds at most, whatever the flood.
	sec := r.now().Unix()
	if last := r.logged.Load(); sec-last >= 10 && r.logged.CompareAndSwap(last, sec) {
		r.log.Warn("behavioural detection found an attacker", "api_id", d.API, "detector", d.Detector.String(),
			"type", d.Kind.String(), "observed", d.Observed, "threshold", d.Threshold, "result", result)
	}
	return listed
}

// nextFoundSlot is the slot of node's ring after its newest record (0 for
// a node that has none).
func nextFoundSlot(ctx context.Context, st store.Reader, node string) (int, error) {
	next, newest := 0, time.Time{}
	prefix := behave.FoundPrefix + node + "/"
	err := st.Scan(ctx, prefix, func(key string, value []byte) error {
		i, err := strconv.Atoi(strings.TrimPrefix(key, prefix))
		if err != nil {
			return nil // not a slot of the ring: ignored
		}
		if f, err := behave.DecodeFound(value); err == nil && f.Detected.After(newest) {
			next, newest = (i+1)%behave.FoundKept, f.Detected
		}
		return nil
	})
	return next, err
}

// writeFound writes queued detections to node's ring, from slot next, as
// many as are waiting in one batch, until ctx ends. A failed write is
// logged and its records dropped: the deny list, the audit log and the
// metrics have them.
func (r *absReporter) writeFound(ctx context.Context, st store.Store, node string, next int) {
	// A batch takes at most what the store's limits allow (etcd's: 128
	// records of at most 2 KiB or so).
	most := 256
	if l := st.Limits().MaxOps; l > 0 {
		most = min(most, l)
	}
	for {
		var b store.Batch
		select {
		case f := <-r.found:
			b.Ops = append(b.Ops, r.foundOp(node, &next, f))
		case <-ctx.Done():
			return
		}
	more:
		for len(b.Ops) < most {
			select {
			case f := <-r.found:
				b.Ops = append(b.Ops, r.foundOp(node, &next, f))
			default:
				break more
			}
		}
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := st.Commit(wctx, b)
		cancel()
		if err != nil && ctx.Err() == nil {
			r.log.Warn("detections could not be kept in the store for the cluster's attack list", "count", len(b.Ops), "error", err)
		}
	}
}

func (r *absReporter) foundOp(node string, next *int, f behave.Found) store.Op {
	v, _ := json.Marshal(f)
	op := store.Put(behave.FoundKey(node, *next), v)
	*next = (*next + 1) % behave.FoundKept
	return op
}
