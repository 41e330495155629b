package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ase-project/ase/internal/durable"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

var (
	bucketKV   = []byte("kv")
	bucketMeta = []byte("meta")
	keyRev     = []byte("rev")
)

// Bolt is the embedded Store: one bbolt file, fsynced on every commit.
type Bolt struct {
	db *bolt.DB

	// mu orders commits with their delivery to subscribers, so that events
	// arrive in revision order and a new subscription's snapshot and its
	// first event meet with nothing lost in between.
	mu     sync.Mutex
	rev    atomic.Int64
	subs   map[int]*subscription
	nextID int
	closed bool
	limits Limits
}

type subscription struct {
	prefix  string
	onEvent func(Event)
}

// Open opens (creating if needed) the store file at path. It fails at
// once if another process holds the file.
func Open(path string) (*Bolt, error) {
	made, err := durable.MakeDirs(filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:      time.Second,
		FreelistType: bolt.FreelistMapType,
	})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("store: %s is in use by another ase process", path)
	}
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	// bbolt syncs the file, never its directory entry: without this a power
	// cut could lose a new file, and every change acknowledged in it.
	if err := durable.SyncDirs(append([]string{filepath.Dir(path)}, made...)...); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: %w", err)
	}
	s := &Bolt{db: db, subs: map[int]*subscription{}}
	err = db.Update(func(tx *bolt.Tx) error {
		if _, err := tx.CreateBucketIfNotExists(bucketKV); err != nil {
			return err
		}
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		if v := meta.Get(keyRev); len(v) == 8 {
			s.rev.Store(int64(binary.BigEndian.Uint64(v)))
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	return s, nil
}

// Get implements Store.
func (s *Bolt) Get(ctx context.Context, key string) ([]byte, error) {
	var out []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketKV).Get([]byte(key))
		if v == nil {
			return ErrNotFound
		}
		out = bytes.Clone(v)
		return nil
	})
	return out, s.wrap(err)
}

// Scan implements Store.
func (s *Bolt) Scan(ctx context.Context, prefix string, fn func(key string, value []byte) error) error {
	return s.wrap(s.db.View(func(tx *bolt.Tx) error { return scan(ctx, tx, prefix, fn) }))
}

func scan(ctx context.Context, tx *bolt.Tx, prefix string, fn func(string, []byte) error) error {
	p := []byte(prefix)
	c := tx.Bucket(bucketKV).Cursor()
	n := 0
	for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
		if n++; n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if err := fn(string(k), v); err != nil {
			return err
		}
	}
	return nil
}

// Commit implements Store.
func (s *Bolt) Commit(ctx context.Context, b Batch) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, ErrClosed
	}
	if err := checkLimits(s.limits, &b); err != nil {
		return 0, err
	}
	var changes []Change
	rev := s.rev.Load() + 1
	err := s.db.Update(func(tx *bolt.Tx) error {
		kv := tx.Bucket(bucketKV)
		// One cursor and one key buffer for the whole batch: a batch of a
		// bulk import checks and puts thousands of keys (bbolt copies the
		// keys it keeps).
		cur, key := kv.Cursor(), []byte(nil)
		for _, c := range b.Conds {
			key = append(key[:0], c.Key...)
			k, v := cur.Seek(key)
			if !bytes.Equal(k, key) {
				v = nil
			} else if v == nil {
				v = []byte{} // present, empty
			}
			if (v != nil) != c.Exists || (c.Value != nil && !bytes.Equal(v, c.Value)) {
				return &ConflictError{Cond: c}
			}
		}
		changes = make([]Change, 0, len(b.Ops))
		for _, op := range b.Ops {
			switch op.Kind {
			case OpPut:
				if op.Key == "" {
					return errors.New("store: empty key")
				}
				if err := kv.Put(append(key[:0], op.Key...), op.Value); err != nil {
					return err
				}
				changes = append(changes, Change{Key: op.Key, Value: op.Value})
			case OpDelete:
				if kv.Get([]byte(op.Key)) == nil {
					continue
				}
				if err := kv.Delete([]byte(op.Key)); err != nil {
					return err
				}
				changes = append(changes, Change{Key: op.Key, Deleted: true})
			case OpDeletePrefix:
				var keys [][]byte
				p := []byte(op.Key)
				c := kv.Cursor()
				for k, _ := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, _ = c.Next() {
					keys = append(keys, bytes.Clone(k))
				}
				for _, k := range keys {
					if err := kv.Delete(k); err != nil {
						return err
					}
					changes = append(changes, Change{Key: string(k), Deleted: true})
				}
			default:
				return fmt.Errorf("store: unknown op kind %d", op.Kind)
			}
		}
		var buf [8]byte
		binary.BigEndian.PutUint64(buf[:], uint64(rev))
		return tx.Bucket(bucketMeta).Put(keyRev, buf[:])
	})
	if err != nil {
		return 0, err
	}
	if len(b.Ops) >= dropAfter {
		s.dropResident()
	}
	s.rev.Store(rev)
	for _, sub := range s.subs {
		if cs := filter(changes, sub.prefix); len(cs) > 0 {
			sub.onEvent(Event{Rev: rev, Changes: cs})
		}
	}
	return rev, nil
}

// dropAfter is how many changes a commit makes before the pages of the
// file it read are dropped from the process's resident memory (a batch of
// a bulk import reads thousands; a setting, a few).
const dropAfter = 1024

// dropResident drops the file's pages from the process's resident memory
// (see resident.go). Under mu.
func (s *Bolt) dropResident() {
	var size int64
	s.db.View(func(tx *bolt.Tx) error {
		size = tx.Size()
		return nil
	})
	dropResident(s.db, size)
}

// revChanges are the changes of one revision made elsewhere.
type revChanges struct {
	rev     int64
	changes []Change
}

// applyRev writes changes made elsewhere (the cluster store's etcd, as
// its watch reports them) at revision rev, without conditions, and gives
// them to subscribers as a local commit does; rev 0 keeps the revision.
// The cluster store's mirror is written only so.
func (s *Bolt) applyRev(rev int64, changes []Change, meta map[string][]byte) error {
	return s.applyRevs([]revChanges{{rev: rev, changes: changes}}, meta)
}

// applyRevs writes several revisions' changes in one transaction (one
// fsync for a watch response that brings many), then gives subscribers
// each revision's changes as its own event, in order.
func (s *Bolt) applyRevs(revs []revChanges, meta map[string][]byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	rev := s.rev.Load()
	done := make([][]Change, len(revs))
	err := s.db.Update(func(tx *bolt.Tx) error {
		kv := tx.Bucket(bucketKV)
		for i, rc := range revs {
			done[i] = make([]Change, 0, len(rc.changes))
			for _, c := range rc.changes {
				if c.Deleted {
					if kv.Get([]byte(c.Key)) == nil {
						continue
					}
					if err := kv.Delete([]byte(c.Key)); err != nil {
						return err
					}
				} else if err := kv.Put([]byte(c.Key), c.Value); err != nil {
					return err
				}
				done[i] = append(done[i], c)
			}
			if rc.rev != 0 {
				rev = rc.rev
			}
		}
		mb := tx.Bucket(bucketMeta)
		for k, v := range meta {
			if err := mb.Put([]byte(k), v); err != nil {
				return err
			}
		}
		var buf [8]byte
		binary.BigEndian.PutUint64(buf[:], uint64(rev))
		return mb.Put(keyRev, buf[:])
	})
	if err != nil {
		return s.wrap(err)
	}
	n := 0
	for i := range done {
		n += len(done[i])
	}
	if n >= dropAfter {
		s.dropResident()
	}
	for i, rc := range revs {
		r := rc.rev
		if r == 0 {
			r = s.rev.Load()
		}
		s.rev.Store(r)
		for _, sub := range s.subs {
			if cs := filter(done[i], sub.prefix); len(cs) > 0 {
				sub.onEvent(Event{Rev: r, Changes: cs})
			}
		}
	}
	s.rev.Store(rev)
	return nil
}

// scanRange calls fn for every key in [from, upTo) (upTo "": to the
// end), in key order; values are only valid during the call.
func (s *Bolt) scanRange(from, upTo string, fn func(key string, value []byte)) error {
	return s.wrap(s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketKV).Cursor()
		for k, v := c.Seek([]byte(from)); k != nil && (upTo == "" || string(k) < upTo); k, v = c.Next() {
			fn(string(k), v)
		}
		return nil
	}))
}

// meta returns a value of the store's own metadata, or nil.
func (s *Bolt) meta(key string) []byte {
	var out []byte
	s.db.View(func(tx *bolt.Tx) error {
		out = bytes.Clone(tx.Bucket(bucketMeta).Get([]byte(key)))
		return nil
	})
	return out
}

// Subscribe implements Store. onEvent runs synchronously inside Commit, so
// it must be quick and must not call Commit or Subscribe; the values it
// receives are the committed ones and must not be modified.
func (s *Bolt) Subscribe(ctx context.Context, prefix string, load func(key string, value []byte) error, onEvent func(Event)) (func(), error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	if load != nil {
		if err := s.db.View(func(tx *bolt.Tx) error { return scan(ctx, tx, prefix, load) }); err != nil {
			return nil, err
		}
		// A first load reads every page of the prefix: a million list
		// entries are a hundred megabytes of the file.
		s.dropResident()
	}
	id := s.nextID
	s.nextID++
	s.subs[id] = &subscription{prefix: prefix, onEvent: onEvent}
	return func() {
		s.mu.Lock()
		delete(s.subs, id)
		s.mu.Unlock()
	}, nil
}

// Rev implements Store.
func (s *Bolt) Rev() int64 { return s.rev.Load() }

// Limits implements Store.
func (s *Bolt) Limits() Limits {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.limits
}

// SetLimits bounds later batches (none by default): tests use it to run
// bulk writers as they run on a cluster.
func (s *Bolt) SetLimits(l Limits) {
	s.mu.Lock()
	s.limits = l
	s.mu.Unlock()
}

// Close implements Store.
func (s *Bolt) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return s.db.Close()
}

func (s *Bolt) wrap(err error) error {
	if errors.Is(err, bolterrors.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	return err
}

// Check verifies the file's internal consistency (pages, freelist,
// buckets) and returns every problem found.
func (s *Bolt) Check() error {
	return s.db.View(func(tx *bolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	})
}
