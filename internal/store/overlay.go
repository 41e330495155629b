package store

import (
	"bytes"
	"context"
	"errors"
	"sort"
	"strings"
)

// Overlay is a Reader of a base store plus changes not yet committed: the
// view of a transaction. Apply stages a batch (checking its conditions
// against the view); Batch returns everything staged as one batch.
type Overlay struct {
	base Reader
	// changes maps a key to its staged value; nil means deleted.
	changes map[string][]byte
	ops     []Op
}

// NewOverlay returns an empty overlay of base.
func NewOverlay(base Reader) *Overlay {
	return &Overlay{base: base, changes: map[string][]byte{}}
}

// Get implements Reader.
func (o *Overlay) Get(ctx context.Context, key string) ([]byte, error) {
	if v, ok := o.changes[key]; ok {
		if v == nil {
			return nil, ErrNotFound
		}
		return v, nil
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
	err := o.base.Scan(ctx, prefix, func(k string, v []byte) error {
		if err := emitStaged(k, false); err != nil {
			return err
		}
		if _, changed := o.changes[k]; changed {
			return emitStaged(k, true) // the staged value (or deletion) wins
		}
		return fn(k, v)
	})
	if err != nil {
		return err
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
	for _, c := range b.Conds {
		v, err := o.Get(ctx, c.Key)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		exists := err == nil
		if exists != c.Exists || (c.Value != nil && !bytes.Equal(v, c.Value)) {
			return &ConflictError{Cond: c}
		}
	}
	for _, op := range b.Ops {
		switch op.Kind {
		case OpPut:
			o.changes[op.Key] = op.Value
		case OpDelete:
			o.changes[op.Key] = nil
		case OpDeletePrefix:
			// Deleting a prefix deletes what the view holds under it now.
			var keys []string
			err := o.Scan(ctx, op.Key, func(k string, _ []byte) error {
				keys = append(keys, k)
				return nil
			})
			if err != nil {
				return err
			}
			for _, k := range keys {
				o.changes[k] = nil
			}
		}
		o.ops = append(o.ops, op)
	}
	return nil
}

// Batch returns the staged operations as one batch, in staging order.
func (o *Overlay) Batch() Batch { return Batch{Ops: append([]Op(nil), o.ops...)} }

// Changes returns the staged keys with their new values (nil: deleted).
func (o *Overlay) Changes() map[string][]byte { return o.changes }

// Empty reports whether nothing is staged.
func (o *Overlay) Empty() bool { return len(o.ops) == 0 }
