package store

import (
	"bytes"
	"context"
	"errors"
	"sort"
	"strconv"
	"strings"
)

// Overlay is a Reader of a base store plus changes not yet committed: the
// view of a transaction. Stage (or Apply) stages a batch, checking its
// conditions against the view; Batch returns everything staged as one
// batch that commits what the view shows, or nothing.
//
// Conditions are carried: a staged batch's condition on a key the overlay
// had not changed was checked against the base, so it goes into Batch as
// it is, and the commit fails (a *ConflictError, nothing applied) if
// another writer changed that key meanwhile. A condition on a key the
// overlay had already changed (put, deleted, or under a deleted prefix)
// was checked against a value the staged operations themselves determine:
// committed in order, they produce that value again, whatever the base
// holds, so the condition is implied and is not carried (carrying it
// would wrongly test the base's value). An overlay is not safe for
// concurrent use while it is being staged into; Clone gives a copy to
// stage into while others read the original.
type Overlay struct {
	base Reader
	// changes maps a key to its staged value; nil means deleted.
	changes map[string][]byte
	// cleared are the prefixes of staged DeletePrefix ops: a key under
	// one is absent from the view unless staged again since, as the
	// commit (which deletes what the base holds then) will make it.
	cleared []string
	conds   []Cond
	// carried indexes conds, to carry each condition once.
	carried map[string]bool
}

// NewOverlay returns an empty overlay of base.
func NewOverlay(base Reader) *Overlay {
	return &Overlay{base: base, changes: map[string][]byte{}, carried: map[string]bool{}}
}

// Clone returns a copy of o that can be staged into without changing o.
func (o *Overlay) Clone() *Overlay {
	c := &Overlay{
		base:    o.base,
		changes: make(map[string][]byte, len(o.changes)),
		cleared: append([]string(nil), o.cleared...),
		conds:   append([]Cond(nil), o.conds...),
		carried: make(map[string]bool, len(o.carried)),
	}
	for k, v := range o.changes {
		c.changes[k] = v
	}
	for k := range o.carried {
		c.carried[k] = true
	}
	return c
}

// isCleared reports whether key is under a staged DeletePrefix.
func (o *Overlay) isCleared(key string) bool {
	for _, p := range o.cleared {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}

// determines reports whether the staged operations alone decide key's
// value in the view.
func (o *Overlay) determines(key string) bool {
	_, ok := o.changes[key]
	return ok || o.isCleared(key)
}

// Get implements Reader.
func (o *Overlay) Get(ctx context.Context, key string) ([]byte, error) {
	if v, ok := o.changes[key]; ok {
		if v == nil {
			return nil, ErrNotFound
		}
		return v, nil
	}
	if o.isCleared(key) {
		return nil, ErrNotFound
	}
	return o.base.Get(ctx, key)
}

// Scan implements Reader: the base's keys merged with the staged ones, in
// key order.
func (o *Overlay) Scan(ctx context.Context, prefix string, fn func(string, []byte) error) error {
	var staged []string
	for k := range o.changes {
		if strings.HasPrefix(k, prefix) {
			staged = append(staged, k)
		}
	}
	sort.Strings(staged)
	i := 0
	emitStaged := func(upTo string, inclusive bool) error {
		for i < len(staged) && (staged[i] < upTo || inclusive && staged[i] == upTo) {
			k := staged[i]
			i++
			if v := o.changes[k]; v != nil {
				if err := fn(k, v); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if !o.isCleared(prefix) { // else nothing of the base's shows
		err := o.base.Scan(ctx, prefix, func(k string, v []byte) error {
			if err := emitStaged(k, false); err != nil {
				return err
			}
			if _, changed := o.changes[k]; changed {
				return emitStaged(k, true) // the staged value (or deletion) wins
			}
			if o.isCleared(k) {
				return nil
			}
			return fn(k, v)
		})
		if err != nil {
			return err
		}
	}
	for ; i < len(staged); i++ {
		if v := o.changes[staged[i]]; v != nil {
			if err := fn(staged[i], v); err != nil {
				return err
			}
		}
	}
	return nil
}

// Apply checks b's conditions against the view and stages its operations.
func (o *Overlay) Apply(ctx context.Context, b Batch) error {
	_, err := o.Stage(ctx, b)
	return err
}

// Stage checks b's conditions against the view and stages its operations,
// all or nothing. It returns b as staged: its operations and the
// conditions carried into Batch (those on keys the overlay had not
// changed, each once), which is what Restore takes to rebuild the same
// overlay elsewhere.
func (o *Overlay) Stage(ctx context.Context, b Batch) (Batch, error) {
	var carry []Cond
	for _, c := range b.Conds {
		v, err := o.Get(ctx, c.Key)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return Batch{}, err
		}
		exists := err == nil
		if exists != c.Exists || (c.Value != nil && !bytes.Equal(v, c.Value)) {
			return Batch{}, &ConflictError{Cond: c}
		}
		if !o.determines(c.Key) {
			carry = append(carry, c)
		}
	}
	staged := Batch{Ops: append([]Op(nil), b.Ops...)}
	for _, c := range carry {
		if id := condID(c); !o.carried[id] {
			o.carried[id] = true
			o.conds = append(o.conds, c)
			staged.Conds = append(staged.Conds, c)
		}
	}
	o.stageOps(staged.Ops)
	return staged, nil
}

// Restore stages a batch Stage returned, on an overlay of the same base
// that has had the same batches restored before it: its conditions were
// checked when it was first staged and are carried as they are.
func (o *Overlay) Restore(staged Batch) {
	for _, c := range staged.Conds {
		if id := condID(c); !o.carried[id] {
			o.carried[id] = true
			o.conds = append(o.conds, c)
		}
	}
	o.stageOps(staged.Ops)
}

func (o *Overlay) stageOps(ops []Op) {
	for _, op := range ops {
		switch op.Kind {
		case OpPut:
			v := op.Value
			if v == nil {
				v = []byte{} // nil would read as deleted
			}
			o.changes[op.Key] = v
		case OpDelete:
			o.changes[op.Key] = nil
		case OpDeletePrefix:
			// What the view holds under the prefix is gone, and so is
			// what the base gains there before the commit: the commit
			// deletes the prefix as it is then.
			for k := range o.changes {
				if strings.HasPrefix(k, op.Key) {
					delete(o.changes, k)
				}
			}
			if !o.isCleared(op.Key) {
				kept := o.cleared[:0]
				for _, p := range o.cleared {
					if !strings.HasPrefix(p, op.Key) {
						kept = append(kept, p)
					}
				}
				o.cleared = append(kept, op.Key)
			}
		}
	}
}

// condID identifies a condition, to carry it once.
func condID(c Cond) string {
	switch {
	case !c.Exists:
		return "a" + c.Key
	case c.Value == nil:
		return "p" + c.Key
	}
	return "u" + strconv.Itoa(len(c.Key)) + ":" + c.Key + string(c.Value)
}

// Batch returns what was staged as one batch: the carried conditions, and
// operations that make what the view shows, each key written once (a key
// staged several times is written with its last value; etcd refuses a
// transaction that writes a key twice): a DeletePrefix per deleted prefix,
// then the staged keys in key order, less the deletes those prefixes make.
func (o *Overlay) Batch() Batch {
	b := Batch{Conds: append([]Cond(nil), o.conds...), Ops: make([]Op, 0, len(o.cleared)+len(o.changes))}
	for _, p := range o.cleared {
		b.Ops = append(b.Ops, DeletePrefix(p))
	}
	keys := make([]string, 0, len(o.changes))
	for k, v := range o.changes {
		if v != nil || !o.isCleared(k) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		if v := o.changes[k]; v != nil {
			b.Ops = append(b.Ops, Put(k, v))
		} else {
			b.Ops = append(b.Ops, Delete(k))
		}
	}
	return b
}

// Changes returns the staged keys with their new values (nil: deleted).
// Keys of the base under a staged DeletePrefix are not listed.
func (o *Overlay) Changes() map[string][]byte { return o.changes }

// Empty reports whether nothing is staged.
func (o *Overlay) Empty() bool { return len(o.changes) == 0 && len(o.cleared) == 0 }
