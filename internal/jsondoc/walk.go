package jsondoc

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/ase-project/ase/internal/typo"
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

// Walker reads typed fields out of a parsed document, collecting every
// problem instead of stopping at the first.
type Walker struct {
	errs ValidationError
}

func (w *Walker) Fail(path, format string, args ...any) {
	w.errs = append(w.errs, FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
}

// Errs returns the problems found so far.
func (w *Walker) Errs() ValidationError { return w.errs }

func (w *Walker) Err() error {
	if len(w.errs) == 0 {
		return nil
	}
	return w.errs
}

func Join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// Fields reads one JSON object. Each getter marks its key used; close
// reports the keys nobody asked for.
type Fields struct {
	w    *Walker
	path string
	obj  *Object
	used map[string]bool
}

// object returns the fields of v, which must be a JSON object; a null or
// absent v (when optional) gives an empty object.
func (w *Walker) Object(path string, v any, required bool) *Fields {
	f := &Fields{w: w, path: path, obj: &Object{values: map[string]any{}}, used: map[string]bool{}}
	switch o := v.(type) {
	case *Object:
		f.obj = o
	case nil:
		if required {
			w.Fail(path, "is required")
		}
	default:
		w.Fail(path, "must be an object, got %s", TypeName(v))
	}
	return f
}

// get returns the raw value of key and whether it was given (null counts as
// not given, so that the default applies).
func (f *Fields) Get(key string) (any, bool) {
	f.used[key] = true
	v, ok := f.obj.values[key]
	return v, ok && v != nil
}

func (f *Fields) At(key string) string { return Join(f.path, key) }

func (f *Fields) Close() {
	var unknown []string
	for _, k := range f.obj.keys {
		if !f.used[k] {
			unknown = append(unknown, k)
		}
	}
	for _, k := range unknown {
		msg := "unknown field"
		if s := typo.Closest(k, f.knownKeys()); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", s)
		}
		f.w.Fail(f.At(k), "%s", msg)
	}
}

// knownKeys returns the keys the getters asked for: the object's schema.
func (f *Fields) knownKeys() []string {
	ks := make([]string, 0, len(f.used))
	for k := range f.used {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func (f *Fields) Str(key, def string) string {
	v, ok := f.Get(key)
	if !ok {
		return def
	}
	s, isStr := v.(string)
	if !isStr {
		f.w.Fail(f.At(key), "must be a string, got %s", TypeName(v))
		return def
	}
	return s
}

func (f *Fields) Bool(key string, def bool) bool {
	v, ok := f.Get(key)
	if !ok {
		return def
	}
	b, isBool := v.(bool)
	if !isBool {
		f.w.Fail(f.At(key), "must be true or false, got %s", TypeName(v))
		return def
	}
	return b
}

// integer reads a whole JSON number in [lo, hi].
func (f *Fields) Int(key string, def, lo, hi int) int {
	v, ok := f.Get(key)
	if !ok {
		return def
	}
	n, isNum := v.(json.Number)
	if !isNum {
		f.w.Fail(f.At(key), "must be a whole number from %d to %d, got %s", lo, hi, TypeName(v))
		return def
	}
	return f.inRange(key, string(n), def, lo, hi)
}

// code reads an HTTP status code given as a number or a numeric string (the
// vendor's examples use both), in [lo, hi]. Empty string means 0 when
// allowEmpty.
func (f *Fields) Code(key string, def, lo, hi int, allowEmpty bool) int {
	v, ok := f.Get(key)
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
	f.w.Fail(f.At(key), "must be an HTTP status code from %d to %d, got %s", lo, hi, TypeName(v))
	return def
}

func (f *Fields) inRange(key, s string, def, lo, hi int) int {
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		f.w.Fail(f.At(key), "must be a whole number from %d to %d, got %s", lo, hi, s)
		return def
	}
	return n
}

func (f *Fields) Rate(key string, def units.Rate) units.Rate {
	s := f.Str(key, def.String())
	r, err := units.ParseRate(s)
	if err != nil {
		f.w.Fail(f.At(key), "must be a rate such as 100/second (a whole number per second, minute or hour), got %q", s)
		return def
	}
	return r
}

// strings reads an array of strings; absent gives nil.
func (f *Fields) Strings(key string, max int) []string {
	v, ok := f.Get(key)
	if !ok {
		return nil
	}
	arr, isArr := v.([]any)
	if !isArr {
		f.w.Fail(f.At(key), "must be an array of strings, got %s", TypeName(v))
		return nil
	}
	if len(arr) > max {
		f.w.Fail(f.At(key), "must have at most %d entries, got %d", max, len(arr))
		return nil
	}
	out := make([]string, 0, len(arr))
	for i, e := range arr {
		s, isStr := e.(string)
		if !isStr {
			f.w.Fail(fmt.Sprintf("%s[%d]", f.At(key), i), "must be a string, got %s", TypeName(e))
			continue
		}
		out = append(out, s)
	}
	return out
}
