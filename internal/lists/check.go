package lists

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/ase-project/ase/internal/jsondoc"
	"github.com/ase-project/ase/internal/store"
)

// Checks: "why is this client blocked?"

// CheckResult is what both lists hold about one identity.
type CheckResult struct {
	// Allow and Deny are the live entries of each list that match, in the
	// order a decision meets them: an address's own entry, then the ranges
	// covering it, most specific first. Each carries what the store keeps
	// of it (reason, creation time).
	Allow, Deny []Entry
}

// Decides returns the entry that decides, as decisions do: the allow list
// wins over the deny list. It reports false when neither list matches.
func (c CheckResult) Decides() (List, Entry, bool) {
	switch {
	case len(c.Allow) > 0:
		return Allow, c.Allow[0], true
	case len(c.Deny) > 0:
		return Deny, c.Deny[0], true
	}
	return 0, Entry{}, false
}

// ParseCheck validates what a check asks about, as an entry of type typ:
// an IP address (a range is refused: a check is about one client, and the
// ranges covering it are what it finds), a token, a cookie or API key
// with its name, or a username.
func ParseCheck(typ string, name *string, value string) (Entry, error) {
	var w jsondoc.Walker
	if value == "" {
		w.Fail("value", "is required")
		return Entry{}, w.Err()
	}
	e, ok := validate(&w, func() string { return "" }, Input{Type: typ, Name: name, Value: value}, time.Time{})
	if !ok {
		return Entry{}, w.Err()
	}
	if e.Kind == IP && !e.Prefix.IsSingleIP() {
		w.Fail("value", "%q is not an IP address (a check is about one client; it finds the ranges that cover it)", value)
		return Entry{}, w.Err()
	}
	e.Created = time.Time{}
	return e, nil
}

// Check returns the entries of both lists that match q (from ParseCheck)
// now, as a request presenting it would be matched: an address by its
// own entry and the ranges covering it, an API key's name without case.
// It answers what is enforced, not what an open transaction staged.
func (l *Lists) Check(ctx context.Context, q Entry) (CheckResult, error) {
	if err := l.Flush(ctx); err != nil {
		return CheckResult{}, err
	}
	var res CheckResult
	var err error
	if res.Allow, err = l.matching(ctx, Allow, q); err != nil {
		return CheckResult{}, err
	}
	if res.Deny, err = l.matching(ctx, Deny, q); err != nil {
		return CheckResult{}, err
	}
	return res, nil
}

// matching returns list's live entries matching q: what the in-memory set
// matches, described as the store keeps them.
func (l *Lists) matching(ctx context.Context, list List, q Entry) ([]Entry, error) {
	s := l.sets[list]
	now := l.now().UnixMilli()
	live := func(exp int64) bool { return exp == 0 || now < exp }
	var out []Entry
	if tag, exp, ok := s.lookup(l.h, q); ok && live(exp) {
		e := Entry{Kind: q.Kind, Name: q.Name, Value: q.Value, Prefix: q.Prefix, Tag: tag}
		if exp != 0 {
			e.Expires = time.UnixMilli(exp)
		}
		out = append(out, e)
	}
	if q.Kind == IP {
		for _, e := range s.covering(q.Prefix.Addr()) {
			if e.Expires.IsZero() || live(e.Expires.UnixMilli()) {
				out = append(out, e)
			}
		}
	}
	for i := range out {
		if err := l.describeStored(ctx, list, &out[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// describeStored replaces e by the entry the store holds for it, when
// there is one (deleted meanwhile, e stays as memory had it). An API key
// entry may be stored under its name in another case.
func (l *Lists) describeStored(ctx context.Context, list List, e *Entry) error {
	key := e.StoreKey(list)
	v, err := l.st.Get(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		if e.Kind != APIKey {
			return nil
		}
		now := l.now().UnixMilli()
		err := l.st.Scan(ctx, ListPrefix(list)+APIKey.String()+"/", func(k string, value []byte) error {
			_, se, perr := parseStored(k, value)
			if perr == nil && se.Value == e.Value && strings.EqualFold(se.Name, e.Name) &&
				(se.Expires.IsZero() || now < se.Expires.UnixMilli()) && l.enforced(value) {
				*e = se
				return errStop
			}
			return nil
		})
		if errors.Is(err, errStop) {
			err = nil
		}
		return err
	}
	if err != nil {
		return err
	}
	if _, se, err := parseStored(key, v); err == nil && l.enforced(v) {
		*e = se
	}
	return nil
}
