// Package store persists ASE's configuration and lists as ordered keys and
// values, with atomic conditional batches and change subscriptions.
//
// The store is the source of truth: the runtime (engine, proxy, sideband)
// is built from a snapshot and kept current by the changes a subscription
// delivers, never by polling. The embedded implementation (Open, on bbolt)
// delivers each change before Commit returns, so a change acknowledged to
// an operator is already durable and enforced. A clustered implementation
// (etcd) fills the same interface.
package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// ErrNotFound is returned by Get for an absent key.
var ErrNotFound = errors.New("store: key not found")

// ErrClosed is returned by every call after Close.
var ErrClosed = errors.New("store: closed")

// OpKind says what an Op does.
type OpKind uint8

// The operations of a batch.
const (
	OpPut          OpKind = iota + 1 // set Key to Value
	OpDelete                         // remove Key (absent is not an error)
	OpDeletePrefix                   // remove every key starting with Key
)

// Op is one change in a Batch.
type Op struct {
	Kind  OpKind
	Key   string
	Value []byte
}

// Put returns an Op that sets key to value.
func Put(key string, value []byte) Op { return Op{Kind: OpPut, Key: key, Value: value} }

// Delete returns an Op that removes key.
func Delete(key string) Op { return Op{Kind: OpDelete, Key: key} }

// DeletePrefix returns an Op that removes every key with the prefix.
func DeletePrefix(prefix string) Op { return Op{Kind: OpDeletePrefix, Key: prefix} }

// Cond is a precondition of a Batch on one key.
type Cond struct {
	Key    string
	Exists bool   // true: the key must exist; false: it must not
	Value  []byte // with Exists: the key must also hold exactly this value
}

// Absent is the condition that key does not exist.
func Absent(key string) Cond { return Cond{Key: key} }

// Present is the condition that key exists.
func Present(key string) Cond { return Cond{Key: key, Exists: true} }

// Unchanged is the condition that key still holds value: optimistic
// concurrency for a read-modify-write.
func Unchanged(key string, value []byte) Cond { return Cond{Key: key, Exists: true, Value: value} }

// Batch is an atomic unit of change: if every condition holds, every
// operation applies, in order; otherwise nothing does.
type Batch struct {
	Conds []Cond
	Ops   []Op
}

// Size returns the bytes of keys and values a batch carries.
func (b *Batch) Size() int {
	n := 0
	for _, c := range b.Conds {
		n += len(c.Key) + len(c.Value)
	}
	for _, op := range b.Ops {
		n += len(op.Key) + len(op.Value)
	}
	return n
}

// Limits bound one batch. A store refuses a batch past them with a
// *TooLargeError before changing anything. A writer whose change may be
// larger splits it (Split), and where it must apply all or nothing, makes
// it so another way (internal/lists commits a bulk import as a generation
// made live by one last small batch). The embedded store has none by
// default; etcd has its server's (128 operations and 128 conditions per
// transaction, 1.5 MiB per request, by default).
type Limits struct {
	MaxOps   int // operations per batch, and conditions per batch; 0 = no limit
	MaxBytes int // keys and values per batch; 0 = no limit
}

// EtcdLimits are the limits of an etcd server with its default settings,
// with room for the request's framing.
var EtcdLimits = Limits{MaxOps: 128, MaxBytes: 1 << 20}

// Fits reports whether b is within l.
func (l Limits) Fits(b *Batch) bool {
	return (l.MaxOps == 0 || len(b.Ops) <= l.MaxOps && len(b.Conds) <= l.MaxOps) &&
		(l.MaxBytes == 0 || b.Size() <= l.MaxBytes)
}

// Split cuts ops into batches within l, in order (none of them with
// conditions): for changes that need not apply all at once.
func (l Limits) Split(ops []Op) []Batch {
	var out []Batch
	cur, size := Batch{}, 0
	for _, op := range ops {
		n := len(op.Key) + len(op.Value)
		if len(cur.Ops) > 0 && (l.MaxOps > 0 && len(cur.Ops) == l.MaxOps || l.MaxBytes > 0 && size+n > l.MaxBytes) {
			out = append(out, cur)
			cur, size = Batch{}, 0
		}
		cur.Ops = append(cur.Ops, op)
		size += n
	}
	if len(cur.Ops) > 0 {
		out = append(out, cur)
	}
	return out
}

// TooLargeError refuses a batch past the store's limits.
type TooLargeError struct {
	Limits     Limits
	Ops, Conds int
	Bytes      int
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("store: a batch of %d operations, %d conditions and %d bytes is past the store's limits (%d operations or conditions, %d bytes)",
		e.Ops, e.Conds, e.Bytes, e.Limits.MaxOps, e.Limits.MaxBytes)
}

// checkLimits returns a *TooLargeError for a batch past l.
func checkLimits(l Limits, b *Batch) error {
	if l.Fits(b) {
		return nil
	}
	return &TooLargeError{Limits: l, Ops: len(b.Ops), Conds: len(b.Conds), Bytes: b.Size()}
}

// ConflictError is returned by Commit when a condition does not hold.
type ConflictError struct{ Cond Cond }

func (e *ConflictError) Error() string {
	if e.Cond.Value != nil {
		return fmt.Sprintf("store: key %q was changed concurrently", e.Cond.Key)
	}
	if e.Cond.Exists {
		return fmt.Sprintf("store: key %q does not exist", e.Cond.Key)
	}
	return fmt.Sprintf("store: key %q already exists", e.Cond.Key)
}

// Change is one key's change as subscribers see it: a put with its new
// value, or a delete (Value nil, Deleted true). A DeletePrefix op reaches
// subscribers as one Change per key it removed.
type Change struct {
	Key     string
	Value   []byte
	Deleted bool
}

// Event is one committed batch, as the changes under a subscription's
// prefix.
type Event struct {
	Rev     int64
	Changes []Change
}

// Reader reads the store, or a view of it with staged changes.
type Reader interface {
	// Get returns the value of key, or ErrNotFound.
	Get(ctx context.Context, key string) ([]byte, error)
	// Scan calls fn for every key with the prefix, in key order, from one
	// consistent snapshot. The value is only valid during the call.
	Scan(ctx context.Context, prefix string, fn func(key string, value []byte) error) error
}

// Store is the persistence interface shared by the embedded and the
// clustered implementations.
type Store interface {
	Reader
	// Commit applies the batch atomically and durably, and returns its
	// revision once this node's subscribers have been given the change: a
	// change acknowledged is enforced here. A failed condition returns a
	// *ConflictError, a batch past Limits a *TooLargeError.
	Commit(ctx context.Context, b Batch) (rev int64, err error)
	// Limits returns the bounds of one batch.
	Limits() Limits
	// Subscribe calls load for every key under prefix in one snapshot, then
	// onEvent for every later batch that changes a key under the prefix, in
	// commit order, with nothing lost or repeated in between. The returned
	// func stops the subscription.
	Subscribe(ctx context.Context, prefix string, load func(key string, value []byte) error, onEvent func(Event)) (stop func(), err error)
	// Rev returns the revision of the last committed batch.
	Rev() int64
	Close() error
}

// filter returns the changes under prefix.
func filter(changes []Change, prefix string) []Change {
	n := 0
	for _, c := range changes {
		if strings.HasPrefix(c.Key, prefix) {
			n++
		}
	}
	// Every change (a bulk import's batch of list entries to the lists'
	// subscription), or none: nothing to copy.
	switch n {
	case len(changes):
		return changes
	case 0:
		return nil
	}
	out := make([]Change, 0, n)
	for _, c := range changes {
		if strings.HasPrefix(c.Key, prefix) {
			out = append(out, c)
		}
	}
	return out
}
