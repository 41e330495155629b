package apidef

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/ase-project/ase/internal/units"
)

// FieldError is one problem in a document, at a JSON path such as
// "api_metadata.servers[1].port".
type FieldError struct {
	Path string
	Msg  string
}

func (e FieldError) Error() string {
	if e.Path == "" {
		return e.Msg
	}
	return e.Path + ": " + e.Msg
}

// ValidationError lists every problem found in a document.
type ValidationError []FieldError

func (e ValidationError) Error() string {
	parts := make([]string, len(e))
	for i, fe := range e {
		parts[i] = fe.Error()
	}
	return strings.Join(parts, "; ")
}

// walker reads typed fields out of a parsed document, collecting every
// problem instead of stopping at the first.
type walker struct {
	errs ValidationError
}

func (w *walker) fail(path, format string, args ...any) {
	w.errs = append(w.errs, FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
}

func (w *walker) err() error {
	if len(w.errs) == 0 {
		return nil
	}
	return w.errs
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// fields reads one JSON object. Each getter marks its key used; close
// reports the keys nobody asked for.
type fields struct {
	w    *walker
	path string
	obj  *object
	used map[string]bool
}

// object returns the fields of v, which must be a JSON object; a null or
// absent v (when optional) gives an empty object.
func (w *walker) object(path string, v any, required bool) *fields {
	f := &fields{w: w, path: path, obj: &object{values: map[string]any{}}, used: map[string]bool{}}
	switch o := v.(type) {
	case *object:
		f.obj = o
	case nil:
		if required {
			w.fail(path, "is required")
		}
	default:
		w.fail(path, "must be an object, got %s", typeName(v))
	}
	return f
}

// get returns the raw value of key and whether it was given (null counts as
// not given, so that the default applies).
func (f *fields) get(key string) (any, bool) {
	f.used[key] = true
	v, ok := f.obj.values[key]
	return v, ok && v != nil
}

func (f *fields) at(key string) string { return join(f.path, key) }

func (f *fields) close() {
	var unknown []string
	for _, k := range f.obj.keys {
		if !f.used[k] {
			unknown = append(unknown, k)
		}
	}
	for _, k := range unknown {
		msg := "unknown field"
		if s := suggest(k, f.knownKeys()); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", s)
		}
		f.w.fail(f.at(k), "%s", msg)
	}
}

// knownKeys returns the keys the getters asked for: the object's schema.
func (f *fields) knownKeys() []string {
	ks := make([]string, 0, len(f.used))
	for k := range f.used {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func (f *fields) str(key, def string) string {
	v, ok := f.get(key)
	if !ok {
		return def
	}
	s, isStr := v.(string)
	if !isStr {
		f.w.fail(f.at(key), "must be a string, got %s", typeName(v))
		return def
	}
	return s
}

func (f *fields) boolean(key string, def bool) bool {
	v, ok := f.get(key)
	if !ok {
		return def
	}
	b, isBool := v.(bool)
	if !isBool {
		f.w.fail(f.at(key), "must be true or false, got %s", typeName(v))
		return def
	}
	return b
}

// integer reads a whole JSON number in [lo, hi].
func (f *fields) integer(key string, def, lo, hi int) int {
	v, ok := f.get(key)
	if !ok {
		return def
	}
	n, isNum := v.(json.Number)
	if !isNum {
		f.w.fail(f.at(key), "must be a whole number from %d to %d, got %s", lo, hi, typeName(v))
		return def
	}
	return f.inRange(key, string(n), def, lo, hi)
}

// code reads an HTTP status code given as a number or a numeric string (the
// vendor's examples use both), in [lo, hi]. Empty string means 0 when
// allowEmpty.
func (f *fields) code(key string, def, lo, hi int, allowEmpty bool) int {
	v, ok := f.get(key)
	if !ok {
		return def
	}
	switch t := v.(type) {
	case json.Number:
		return f.inRange(key, string(t), def, lo, hi)
	case string:
		if t == "" && allowEmpty {
			return 0
		}
		return f.inRange(key, t, def, lo, hi)
	}
	f.w.fail(f.at(key), "must be an HTTP status code from %d to %d, got %s", lo, hi, typeName(v))
	return def
}

func (f *fields) inRange(key, s string, def, lo, hi int) int {
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		f.w.fail(f.at(key), "must be a whole number from %d to %d, got %s", lo, hi, s)
		return def
	}
	return n
}

func (f *fields) rate(key string, def units.Rate) units.Rate {
	s := f.str(key, def.String())
	r, err := units.ParseRate(s)
	if err != nil {
		f.w.fail(f.at(key), "must be a rate such as 100/second (a whole number per second, minute or hour), got %q", s)
		return def
	}
	return r
}

// strings reads an array of strings; absent gives nil.
func (f *fields) strings(key string, max int) []string {
	v, ok := f.get(key)
	if !ok {
		return nil
	}
	arr, isArr := v.([]any)
	if !isArr {
		f.w.fail(f.at(key), "must be an array of strings, got %s", typeName(v))
		return nil
	}
	if len(arr) > max {
		f.w.fail(f.at(key), "must have at most %d entries, got %d", max, len(arr))
		return nil
	}
	out := make([]string, 0, len(arr))
	for i, e := range arr {
		s, isStr := e.(string)
		if !isStr {
			f.w.fail(fmt.Sprintf("%s[%d]", f.at(key), i), "must be a string, got %s", typeName(e))
			continue
		}
		out = append(out, s)
	}
	return out
}

// suggest returns the known key closest to k, if it is a likely typo.
func suggest(k string, known []string) string {
	best, bestD := "", 3
	for _, c := range known {
		if c == k {
			continue
		}
		if d := distance(k, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// distance is the Levenshtein distance, for typo suggestions only.
func distance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 64
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
