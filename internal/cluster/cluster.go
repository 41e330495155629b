// Package cluster is a node's membership in an ASE cluster: several ase
// nodes sharing one state through etcd (internal/store's Etcd). Each node
// has a UUID kept in its data_dir across restarts, a member record in the
// store (its host and management port), and a liveness key attached to an
// etcd lease it renews: a node that stops renewing (killed, cut off from
// etcd) shows inactive within the lease's TTL; a clean stop revokes the
// lease, and the node shows inactive at once.
package cluster

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ase-project/ase/internal/store"
	"github.com/ase-project/ase/internal/wire"
)

// Key prefixes in the store.
const (
	MembersPrefix = "cluster/members/" // + uuid: a Member, kept
	AlivePrefix   = "cluster/alive/"   // + uuid: present while the node's lease lives
)

// Member is a node's record.
type Member struct {
	UUID    string    `json:"uuid"`
	Host    string    `json:"host"`
	Port    int       `json:"port"`
	Version string    `json:"version,omitempty"`
	Joined  time.Time `json:"joined"`
}

// uuidFile keeps a node's UUID in its data_dir.
const uuidFile = "node-uuid"

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// NodeUUID returns the node's UUID, made (random, version 4) and kept in
// dataDir the first time.
func NodeUUID(dataDir string) (string, error) {
	path := filepath.Join(dataDir, uuidFile)
	if b, err := os.ReadFile(path); err == nil {
		id := strings.TrimSpace(string(b))
		if !uuidRE.MatchString(id) {
			return "", fmt.Errorf("%s: %q is not a node UUID; delete the file to make a new one", path, id)
		}
		return id, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	id := fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(id+"\n"), 0o600); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", err
	}
	return id, nil
}

// Node is this node's membership, kept alive until Leave.
type Node struct {
	st      *store.Etcd
	self    Member
	ttl     time.Duration
	log     *slog.Logger
	cancel  context.CancelFunc
	done    chan struct{}
	lease   chan clientv3.LeaseID // the current lease, for Leave
	cur     atomic.Int64          // the current lease's ID; 0 while there is none
	mu      sync.Mutex
	onLease func() // called when a new lease is in place
}

// Join records the node as a member and keeps its liveness key alive
// with a lease of ttl, re-made whenever it is lost (an etcd outage).
func Join(ctx context.Context, st *store.Etcd, self Member, ttl time.Duration, log *slog.Logger) (*Node, error) {
	b, _ := json.Marshal(self)
	if _, err := st.Commit(ctx, store.Batch{Ops: []store.Op{store.Put(MembersPrefix+self.UUID, b)}}); err != nil {
		if !errors.Is(err, store.ErrUnavailable) {
			return nil, err
		}
		// Started from its last state during an outage: recorded later.
		log.Warn("cannot record this node in the cluster yet (etcd cannot be reached); retrying in the background")
	}
	n := &Node{st: st, self: self, ttl: ttl, log: log, done: make(chan struct{}), lease: make(chan clientv3.LeaseID, 1)}
	var lctx context.Context
	lctx, n.cancel = context.WithCancel(context.Background())
	go n.keepAlive(lctx)
	return n, nil
}

// keepAlive holds the node's liveness key under a lease, re-granting it
// when it is lost.
func (n *Node) keepAlive(ctx context.Context) {
	defer close(n.done)
	cli := n.st.Client()
	key := n.st.Prefix() + AlivePrefix + n.self.UUID
	b, _ := json.Marshal(n.self)
	recorded := false
	for ctx.Err() == nil {
		if !recorded {
			if _, err := n.st.Commit(ctx, store.Batch{Ops: []store.Op{store.Put(MembersPrefix+n.self.UUID, b)}}); err == nil {
				recorded = true
			}
		}
		secs := max(int64(n.ttl/time.Second), 1)
		gctx, cancel := context.WithTimeout(ctx, n.ttl)
		var lease *clientv3.LeaseGrantResponse
		err := n.st.Call(gctx, func(ctx context.Context, cli *clientv3.Client) (err error) {
			if lease, err = cli.Grant(ctx, secs); err == nil {
				_, err = cli.Put(ctx, key, string(b), clientv3.WithLease(lease.ID))
			}
			return err
		})
		cancel()
		if err != nil {
			n.pause(ctx, time.Second)
			continue
		}
		select {
		case <-n.lease:
		default:
		}
		n.lease <- lease.ID
		n.cur.Store(int64(lease.ID))
		if f := n.onLeaseFunc(); f != nil {
			f()
		}
		ka, err := cli.KeepAlive(ctx, lease.ID)
		if err == nil {
			for range ka {
			}
		}
		n.cur.Store(0)
		if ctx.Err() == nil {
			n.log.Warn("the cluster lease of this node was lost; renewing", "uuid", n.self.UUID)
			n.pause(ctx, time.Second)
		}
	}
}

func (n *Node) pause(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// Lease returns the node's current lease (0 while it has none): keys
// attached to it go with the node.
func (n *Node) Lease() clientv3.LeaseID { return clientv3.LeaseID(n.cur.Load()) }

// OnLease calls f whenever the node has a new lease (its keys attached
// to the old one are gone with it).
func (n *Node) OnLease(f func()) {
	n.mu.Lock()
	n.onLease = f
	n.mu.Unlock()
	if n.Lease() != 0 {
		f()
	}
}

func (n *Node) onLeaseFunc() func() {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.onLease
}

// Leave revokes the node's lease: it shows inactive at once.
func (n *Node) Leave() {
	n.cancel()
	<-n.done
	select {
	case id := <-n.lease:
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		n.st.Client().Revoke(ctx, id)
		cancel()
	default:
	}
}

// View returns the cluster as GET /cluster shows it (seed 001): every
// member, active while its liveness key lives, in the order they joined.
func View(ctx context.Context, r store.Reader, clusterID string) (wire.Cluster, error) {
	alive := map[string]bool{}
	if err := r.Scan(ctx, AlivePrefix, func(key string, _ []byte) error {
		alive[strings.TrimPrefix(key, AlivePrefix)] = true
		return nil
	}); err != nil {
		return wire.Cluster{}, err
	}
	var members []Member
	if err := r.Scan(ctx, MembersPrefix, func(key string, value []byte) error {
		var m Member
		if json.Unmarshal(value, &m) == nil {
			members = append(members, m)
		}
		return nil
	}); err != nil {
		return wire.Cluster{}, err
	}
	sort.Slice(members, func(i, j int) bool {
		if !members[i].Joined.Equal(members[j].Joined) {
			return members[i].Joined.Before(members[j].Joined)
		}
		return members[i].UUID < members[j].UUID
	})
	out := wire.Cluster{ClusterID: clusterID, NodeCount: len(members), Node: []wire.ClusterNode{}}
	for _, m := range members {
		status := "inactive"
		if alive[m.UUID] {
			status = "active"
		}
		out.Node = append(out.Node, wire.ClusterNode{Host: m.Host, Port: m.Port, UUID: m.UUID, Status: status})
	}
	return out, nil
}

// Lookup returns a member's record.
func Lookup(ctx context.Context, r store.Reader, uuid string) (Member, error) {
	var m Member
	b, err := r.Get(ctx, MembersPrefix+uuid)
	if err != nil {
		return m, err
	}
	return m, json.Unmarshal(b, &m)
}
