package cluster

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ase-project/ase/internal/flow"
	"github.com/ase-project/ase/internal/store"
)

// Flow control's keys in the store.
const (
	FlowPrefix  = "flow/"             // + uuid: the node's latest flow.Summary, on its lease
	flowSeedKey = "cluster/flow-seed" // the hashes' shared secret seed
)

// FlowSeed returns the cluster's flow-control seed, made (random) by the
// first node that finds none.
func FlowSeed(ctx context.Context, st store.Store) (uint64, error) {
	if v, err := st.Get(ctx, flowSeedKey); err == nil && len(v) == 8 {
		return binary.BigEndian.Uint64(v), nil
	}
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return 0, err
	}
	_, err := st.Commit(ctx, store.Batch{Conds: []store.Cond{store.Absent(flowSeedKey)}, Ops: []store.Op{store.Put(flowSeedKey, b[:])}})
	var ce *store.ConflictError
	if err != nil && !errors.As(err, &ce) {
		return 0, err
	}
	v, err := st.Get(ctx, flowSeedKey)
	if err != nil || len(v) != 8 {
		return 0, errors.New("cluster: the flow-control seed is missing")
	}
	return binary.BigEndian.Uint64(v), nil
}

// FlowPeers carries flow-control summaries between the nodes through etcd
// (flow.Peers): a node's latest summary lives under flow/<uuid>, attached
// to its lease (gone with the node); the store's mirror brings the
// others', by watch.
type FlowPeers struct {
	st   *store.Etcd
	self string
	log  *slog.Logger

	mu     sync.Mutex
	others map[string]flow.Summary
	node   *Node
	latest []byte // the summary to write
	wake   chan struct{}
	stop   func()
	cancel context.CancelFunc
	done   chan struct{}
}

// NewFlowPeers follows the other nodes' summaries; it writes this node's
// once Attach gives it the node's lease.
func NewFlowPeers(ctx context.Context, st *store.Etcd, self string, log *slog.Logger) (*FlowPeers, error) {
	p := &FlowPeers{st: st, self: self, log: log, others: map[string]flow.Summary{}, wake: make(chan struct{}, 1), done: make(chan struct{})}
	stop, err := st.Subscribe(ctx, FlowPrefix, func(key string, value []byte) error {
		p.put(key, value)
		return nil
	}, func(ev store.Event) {
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, c := range ev.Changes {
			if c.Deleted {
				delete(p.others, strings.TrimPrefix(c.Key, FlowPrefix))
			} else {
				p.putLocked(c.Key, c.Value)
			}
		}
	})
	if err != nil {
		return nil, err
	}
	p.stop = stop
	var wctx context.Context
	wctx, p.cancel = context.WithCancel(context.Background())
	go p.write(wctx)
	return p, nil
}

func (p *FlowPeers) put(key string, value []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.putLocked(key, value)
}

func (p *FlowPeers) putLocked(key string, value []byte) {
	id := strings.TrimPrefix(key, FlowPrefix)
	if id == p.self {
		return
	}
	var s flow.Summary
	if err := s.UnmarshalBinary(value); err != nil {
		return // a malformed summary counts as none
	}
	p.others[id] = s
}

// Attach gives the peers the node whose lease their summaries ride on.
func (p *FlowPeers) Attach(n *Node) {
	p.mu.Lock()
	p.node = n
	p.mu.Unlock()
	n.OnLease(p.signal) // a new lease: write again (the old key went with the old lease)
}

// Publish implements flow.Peers: the latest summary is written by the
// writer; one not yet written is replaced.
func (p *FlowPeers) Publish(s flow.Summary) {
	b, err := s.MarshalBinary()
	if err != nil {
		return
	}
	p.mu.Lock()
	p.latest = b
	p.mu.Unlock()
	p.signal()
}

func (p *FlowPeers) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Others implements flow.Peers.
func (p *FlowPeers) Others() []flow.Summary {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]flow.Summary, 0, len(p.others))
	for _, s := range p.others {
		out = append(out, s)
	}
	return out
}

func (p *FlowPeers) write(ctx context.Context) {
	defer close(p.done)
	key := p.st.Prefix() + FlowPrefix + p.self
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.wake:
		}
		p.mu.Lock()
		b, n := p.latest, p.node
		p.mu.Unlock()
		if b == nil || n == nil || n.Lease() == 0 {
			continue
		}
		wctx, cancel := context.WithTimeout(ctx, time.Second)
		err := p.st.Call(wctx, func(ctx context.Context, cli *clientv3.Client) error {
			_, err := cli.Put(ctx, key, string(b), clientv3.WithLease(n.Lease()))
			return err
		})
		cancel()
		if err != nil && ctx.Err() == nil {
			p.log.Debug("could not publish this node's flow-control summary", "error", err)
		}
	}
}

// Close stops following and writing.
func (p *FlowPeers) Close() {
	p.cancel()
	<-p.done
	p.stop()
}
