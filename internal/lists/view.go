package lists

import (
	"context"
	"encoding/base64"
	"errors"
	"sort"
	"strings"

	"github.com/ase-project/ase/internal/store"
)

// Views: filters, and pages that can be browsed through lists of
// millions of entries.
//
// A page is the entries that follow a cursor in the store's key order (the
// order of every view), and the cursor is the last key the page looked at.
// A cursor is a position, not an offset: the entries added or deleted
// between two pages neither repeat nor hide the others. An entry listed
// from the first page to the last is on exactly one page; one deleted meanwhile
// is on none or on the page read before its deletion; one added meanwhile
// is on a page when it sorts after the cursor of that time.
//
// The store offers scans of a prefix, not of a range: the keys after a
// cursor are read as the prefixes that cover them, longest first (see
// scanAfter), so that a page costs about the same wherever it starts.

// Filter selects the entries of a view.
type Filter struct {
	Tag   *Tag   // nil: every tag
	Kind  Kind   // 0: every kind
	Value string // the entry's value contains it (case matters); "": any
}

// match reports whether e passes the filter (its tag was checked already).
func (f *Filter) match(e *Entry) bool {
	return (f.Kind == 0 || e.Kind == f.Kind) && (f.Value == "" || strings.Contains(e.Value, f.Value))
}

// MaxPage is the most entries one page may hold.
const MaxPage = 10_000

// pageExamine bounds the keys one page reads: a filter that few entries
// pass gives a shorter page (perhaps empty) and a cursor to go on from, so
// that each page answers in bounded time. A variable for tests.
var pageExamine = 200_000

// errStop ends a scan early.
var errStop = errors.New("lists: stop")

// kindOrder is the kinds in the order of their store keys.
var kindOrder = func() []Kind {
	ks := []Kind{IP, Token, Cookie, APIKey, Username}
	sort.Slice(ks, func(i, j int) bool { return ks[i].String() < ks[j].String() })
	return ks
}()

// ViewWhere calls fn for each live entry of list that passes f, in store
// order.
func (l *Lists) ViewWhere(ctx context.Context, r store.Reader, list List, f Filter, fn func(Entry) error) error {
	if err := l.Flush(ctx); err != nil {
		return err
	}
	prefix := ListPrefix(list)
	if f.Kind != 0 {
		prefix += f.Kind.String() + "/"
	}
	now := l.now()
	return r.Scan(ctx, prefix, func(key string, value []byte) error {
		if e, ok := l.viewable(key, value, &f, now.UnixMilli()); ok {
			return fn(e)
		}
		return nil
	})
}

// viewable decodes a stored entry and reports whether a view shows it:
// live, enforced, and passing f.
func (l *Lists) viewable(key string, value []byte, f *Filter, now int64) (Entry, bool) {
	t, ok := valueTag(value)
	if !ok || f.Tag != nil && t != *f.Tag {
		return Entry{}, false
	}
	_, e, err := parseStored(key, value)
	if err != nil || !f.match(&e) || !e.Expires.IsZero() && e.Expires.UnixMilli() <= now || !l.enforced(value) {
		return Entry{}, false
	}
	return e, true
}

// Page calls fn for up to limit live entries of list that pass f and
// follow the cursor (a key from an earlier page's next; "" for the
// start), in store order. It returns the cursor of the next page, or ""
// when there are no more entries. A page may hold fewer than limit
// entries and still have a next one: a page reads at most pageExamine
// keys.
func (l *Lists) Page(ctx context.Context, r store.Reader, list List, f Filter, cursor string, limit int, fn func(Entry) error) (string, error) {
	if err := l.Flush(ctx); err != nil {
		return "", err
	}
	now := l.now().UnixMilli()
	n, examined, next := 0, 0, ""
	last := cursor // the last key returned or examined
	visit := func(key string, value []byte) error {
		e, ok := l.viewable(key, value, &f, now)
		if ok && n == limit {
			next = last // one more: the page ends at the last one given
			return errStop
		}
		last = key
		if examined++; examined >= pageExamine {
			next = key
			if ok {
				n++
				if err := fn(e); err != nil {
					return err
				}
			}
			return errStop
		}
		if !ok {
			return nil
		}
		n++
		return fn(e)
	}
	err := l.scanKinds(ctx, r, list, f.Kind, cursor, visit)
	if errors.Is(err, errStop) {
		err = nil
	}
	if err != nil {
		return "", err
	}
	return next, nil
}

// scanKinds calls fn for every key of list (of kind, when not 0) after
// the key after, in order.
func (l *Lists) scanKinds(ctx context.Context, r store.Reader, list List, kind Kind, after string, fn func(string, []byte) error) error {
	for _, k := range kindOrder {
		if kind != 0 && k != kind {
			continue
		}
		prefix := ListPrefix(list) + k.String() + "/"
		if err := scanAfter(ctx, r, prefix, after, alphabet(k), fn); err != nil {
			return err
		}
	}
	return nil
}

// alphabet returns the bytes an identity of kind may hold, in order:
// canonical IP addresses and ranges, or printable text, a name's NUL
// separator and UTF-8.
func alphabet(k Kind) []byte {
	if k == IP {
		return ipAlphabet
	}
	return textAlphabet
}

var (
	ipAlphabet   = []byte("./0123456789:abcdef")
	textAlphabet = func() []byte {
		b := []byte{0}
		for c := 0x20; c <= 0xf4; c++ {
			if c != 0x7f && c != 0xc0 && c != 0xc1 {
				b = append(b, byte(c))
			}
		}
		return b
	}()
)

// probeCost is how many keys a scan may walk past for the cost of one
// more prefix probe (an empty scan: a read transaction and a seek). On
// the embedded store a probe costs about what walking 10 keys does; 8
// made pages of 100 from a million addresses cheapest (BenchmarkPage).
const probeCost = 8

// scanAfter calls fn for every key with prefix that sorts after after, in
// order, given the bytes the keys may hold past the prefix (a key with
// another byte is skipped). fn may end the scan with an error.
//
// The keys after after are, in order: those that extend it, then for each
// position i from its last byte back to the prefix, those that share
// after[:i] and hold a larger byte at i. At each position the keys are
// read either by one scan of after[:i] that walks past those already seen
// (cheap while that part of the list is small), or, when the walk grows
// past what the probes would cost, by one scan per larger byte.
func scanAfter(ctx context.Context, r store.Reader, prefix, after string, alpha []byte, fn func(string, []byte) error) error {
	switch {
	case after < prefix: // "" included
		return r.Scan(ctx, prefix, fn)
	case !strings.HasPrefix(after, prefix):
		return nil // every key with prefix sorts before after
	}
	seen := after // the keys up to seen were given or are before after
	give := func(key string, value []byte) error {
		seen = key
		return fn(key, value)
	}
	walk := true // while the walks stay cheap
	for i := len(after); i >= len(prefix); i-- {
		var larger []byte
		if i < len(after) {
			at := sort.Search(len(alpha), func(j int) bool { return alpha[j] > after[i] })
			larger = alpha[at:]
		}
		if walk {
			budget, skipped := probeCost*(len(larger)+1), 0
			errWalk := errors.New("walk")
			err := r.Scan(ctx, after[:i], func(key string, value []byte) error {
				if key <= seen {
					if skipped++; skipped > budget {
						return errWalk
					}
					return nil
				}
				return give(key, value)
			})
			if err == nil {
				continue
			}
			if err != errWalk {
				return err
			}
			walk = false // larger parts of the list only: probe from now on
		}
		// A walk that stopped gave nothing: every key under these
		// prefixes sorts after seen.
		for _, c := range larger {
			if err := r.Scan(ctx, after[:i]+string([]byte{c}), give); err != nil {
				return err
			}
		}
	}
	return nil
}

// EncodeCursor writes a page's next key as the cursor clients send back.
func EncodeCursor(key string) string {
	if key == "" {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString([]byte(key))
}

// ErrCursor refuses a cursor that no page of the list gave.
var ErrCursor = errors.New("lists: not a cursor of this list")

// DecodeCursor reads a cursor of list, as EncodeCursor wrote it.
func DecodeCursor(list List, s string) (string, error) {
	if s == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	key := string(b)
	if err != nil || !strings.HasPrefix(key, ListPrefix(list)) {
		return "", ErrCursor
	}
	kind, _, ok := strings.Cut(key[len(ListPrefix(list)):], "/")
	if _, known := parseKind(kind); !ok || !known {
		return "", ErrCursor
	}
	return key, nil
}
