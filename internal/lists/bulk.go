package lists

import (
	"bytes"
	"encoding/json"
	"fmt"
	"iter"
	"time"

	"github.com/ase-project/ase/internal/jsondoc"
)

// Bulk imports are read as a stream: the body is checked once (every
// problem named, nothing kept), then its entries are decoded again each
// time the import goes through them (Bulk.All), one at a time. A body of
// a million entries is never held decoded: an Entry takes ten times the
// bytes of the text it comes from.

// maxProblems is how many bad entries (JSON) or lines (feeds) a refusal
// names.
const maxProblems = 20

// Bulk is a bulk import's body once checked: a JSON array of entries, or a
// plain-text feed.
type Bulk struct {
	body []byte
	text bool
	now  time.Time
	d    Defaults
	n    int
	c    counts // every entry, none of them listed yet
	size int    // the bytes of their keys and values, in either list
}

// IsArray reports whether a JSON body is an array (a bulk import) rather
// than one entry.
func IsArray(body []byte) bool {
	t := bytes.TrimLeft(body, " \t\r\n")
	return len(t) > 0 && t[0] == '['
}

// ParseBulk checks a bulk import's body: a plain-text feed when text is
// set (see feed.go), else a JSON array of entries. Every problem is named
// (those of the first 20 bad entries or lines), each entry by its index
// ("[3].value: ...") or line; a body with no entries or more than MaxBulk
// is refused. now is the entries' creation time and stamps their TTLs; d
// applies to the entries that carry no TTL or reason.
func ParseBulk(body []byte, text bool, now time.Time, d Defaults) (*Bulk, error) {
	b := &Bulk{body: body, text: text, now: now, d: d}
	var err error
	if text {
		b.body = bytes.TrimPrefix(body, []byte("\xef\xbb\xbf"))
		err = checkFeed(b)
	} else {
		err = checkArray(b)
	}
	if err != nil {
		return nil, err
	}
	return b, nil
}

// count counts a checked entry in b's bounds.
func (b *Bulk) count(e *Entry) {
	b.n++
	b.c.add(*e)
	b.size += plannedSize(len(allowPrefix), e)
}

// Len returns how many entries the body holds (repeats included).
func (b *Bulk) Len() int { return b.n }

// Bounds implements Source.
func (b *Bulk) Bounds() (int, counts, int) { return b.n, b.c, b.size }

// All decodes the entries, in the body's order.
func (b *Bulk) All() iter.Seq[Entry] {
	if b.text {
		return feedEntries(b.body, b.now, b.d)
	}
	return func(yield func(Entry) bool) {
		var w jsondoc.Walker
		eachElem(b.body, func(i int, raw []byte) bool {
			var in Input
			if !decodeElem(raw, &in) {
				return true // checked: cannot happen
			}
			e, ok := validate(&w, itemPath(true, i), in, b.now)
			return !ok || yield(b.d.apply(e, in, b.now))
		})
	}
}

// checkArray checks b's JSON array of entries and counts them.
func checkArray(b *Bulk) error {
	var w jsondoc.Walker
	bad := false
	ok := eachElem(b.body, func(i int, raw []byte) bool {
		var in Input
		if !decodeElem(raw, &in) {
			bad = true
			return false
		}
		if e, valid := validate(&w, itemPath(true, i), in, b.now); valid {
			e = b.d.apply(e, in, b.now)
			b.count(&e)
		}
		return len(w.Errs()) == 0
	})
	switch {
	case !ok || bad || len(w.Errs()) > 0:
		// Name every problem, as the document is: only now is it read a
		// second time, and each entry parsed on its own.
		return describeArray(b.body, b.now)
	case b.n == 0:
		return jsondoc.ValidationError{{Msg: "the array of entries is empty"}}
	case b.n > MaxBulk:
		return tooMany(b.n)
	}
	return nil
}

func tooMany(n int) error {
	return jsondoc.ValidationError{{Msg: fmt.Sprintf("a bulk import takes at most %d entries, got %d", MaxBulk, n)}}
}

// describeArray names every problem of a JSON body that is not a valid
// array of entries: a document that is not well-formed JSON (checked
// without building it), or else each problem of each entry, those of the
// first 20 bad entries.
func describeArray(body []byte, now time.Time) error {
	if err := jsondoc.Check(body); err != nil {
		return jsondoc.ValidationError{{Msg: "invalid JSON: " + err.Error()}}
	}
	var w jsondoc.Walker
	bad := 0
	if !eachElem(body, func(i int, raw []byte) bool {
		var in Input
		var scratch jsondoc.Walker
		if decodeElem(raw, &in) {
			if validate(&scratch, itemPath(true, i), in, now); len(scratch.Errs()) == 0 {
				return true
			}
		}
		if bad++; bad <= maxProblems {
			item, _ := jsondoc.Parse(raw) // well-formed: the body is
			describeItem(&w, i, true, item, now)
		}
		return true
	}) {
		doc, _ := jsondoc.Parse(body)
		w.Fail("", "must be an entry object or an array of them, got %s", jsondoc.TypeName(doc))
		return w.Err()
	}
	if bad > maxProblems {
		w.Fail("", "and %d more entries with problems", bad-maxProblems)
	}
	if err := w.Err(); err != nil {
		return err
	}
	return jsondoc.ValidationError{{Msg: "invalid JSON: the entries could not be decoded"}}
}

// decodeElem decodes one element of an array of entries: on the fast path
// when it is an object of the fields an entry has, with plain string
// values (most of a feed's), else with encoding/json, as strictly (unknown
// fields are errors). It reports false for an element that is not an
// entry, or lacks a type or a value.
func decodeElem(raw []byte, in *Input) bool {
	if !fastEntry(raw, in) {
		*in = Input{}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if dec.Decode(in) != nil {
			return false
		}
	}
	// encoding/json leaves absent fields empty; describeItem tells
	// "missing" from "empty".
	return in.Type != "" && in.Value != ""
}

// fastEntry decodes {"type": "ip", "value": "1.2.3.4", ...} when every key
// is one of Input's, spelled exactly, and every value a string of printable
// ASCII without escapes (a TTL may be a whole number): what encoding/json
// would decode to the same Input. Anything else is left to encoding/json.
func fastEntry(b []byte, in *Input) bool {
	*in = Input{}
	i := skipWS(b, 0)
	if i == len(b) || b[i] != '{' {
		return false
	}
	for i = skipWS(b, i+1); ; {
		if i == len(b) || b[i] != '"' {
			return false
		}
		end := plainString(b, i)
		if end < 0 {
			return false
		}
		key := b[i+1 : end]
		if i = skipWS(b, end+1); i == len(b) || b[i] != ':' {
			return false
		}
		if i = skipWS(b, i+1); i == len(b) {
			return false
		}
		start, isStr := i, b[i] == '"'
		if isStr {
			if end = plainString(b, i); end < 0 {
				return false
			}
			i = end + 1
		} else {
			for i < len(b) && '0' <= b[i] && b[i] <= '9' {
				i++
			}
			if i == start || b[start] == '0' && i-start > 1 {
				return false
			}
		}
		switch string(key) {
		case "type":
			if !isStr {
				return false
			}
			if k, ok := parseKind(string(b[start+1 : i-1])); ok {
				in.Type = kindNames[k] // not a string made per entry
			} else {
				in.Type = string(b[start+1 : i-1])
			}
		case "value", "name", "reason":
			if !isStr {
				return false
			}
			s := string(b[start+1 : i-1])
			switch key[0] {
			case 'v':
				in.Value = s
			case 'n':
				in.Name = &s
			default:
				in.Reason = &s
			}
		case "ttl":
			in.TTL = json.RawMessage(b[start:i:i])
		default:
			return false
		}
		if i = skipWS(b, i); i == len(b) {
			return false
		}
		switch b[i] {
		case ',':
			i = skipWS(b, i+1)
		case '}':
			return skipWS(b, i+1) == len(b)
		default:
			return false
		}
	}
}

// plainString returns the index of the quote that closes the JSON string
// opening at b[i], or -1 when it is not closed or holds anything but
// printable ASCII without escapes.
func plainString(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return j
		case c < 0x20 || c == '\\' || c >= 0x7f:
			return -1
		}
	}
	return -1
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// eachElem calls fn with the raw bytes of each element of the JSON array
// body, until fn returns false. It reports false when body is not an
// array as far as its brackets, commas and strings go (an element's own
// syntax is its decoder's to check).
func eachElem(body []byte, fn func(i int, raw []byte) bool) bool {
	i := skipWS(body, 0)
	if i == len(body) || body[i] != '[' {
		return false
	}
	if i = skipWS(body, i+1); i < len(body) && body[i] == ']' {
		return skipWS(body, i+1) == len(body)
	}
	for n := 0; ; n++ {
		end := valueEnd(body, i)
		if end <= i {
			return false
		}
		if !fn(n, body[i:end]) {
			return true
		}
		if i = skipWS(body, end); i == len(body) {
			return false
		}
		switch body[i] {
		case ',':
			i = skipWS(body, i+1)
		case ']':
			return skipWS(body, i+1) == len(body)
		default:
			return false
		}
	}
}

// valueEnd returns where the JSON value starting at b[i] ends: an object
// or array at its closing bracket (strings skipped), anything else at the
// next delimiter; -1 when it does not end.
func valueEnd(b []byte, i int) int {
	depth := 0
	for ; i < len(b); i++ {
		switch b[i] {
		case '"':
			j := i + 1
			for ; j < len(b) && b[j] != '"'; j++ {
				if b[j] == '\\' {
					j++
				}
			}
			if j >= len(b) {
				return -1
			}
			if i = j; depth == 0 {
				return i + 1
			}
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return i
			}
			if depth--; depth == 0 {
				return i + 1
			}
		case ',', ' ', '\t', '\r', '\n':
			if depth == 0 {
				return i
			}
		}
	}
	if depth > 0 {
		return -1
	}
	return i
}
