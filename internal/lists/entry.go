package lists

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/ase-project/ase/internal/jsondoc"
	"github.com/ase-project/ase/internal/rfc9110"
)

// Kind is what an entry identifies a client by.
type Kind uint8

// The kinds of entries, as the vendor names them on the wire.
const (
	IP Kind = iota + 1
	Token
	Cookie
	APIKey
	Username
)

var kindNames = map[Kind]string{IP: "ip", Token: "token", Cookie: "cookie", APIKey: "api_key", Username: "username"}

func (k Kind) String() string { return kindNames[k] }

// ParseKind parses a kind's name as the vendor spells it ("api_key").
func ParseKind(s string) (Kind, bool) { return parseKind(s) }

func parseKind(s string) (Kind, bool) {
	switch s { // not a loop over kindNames: a bulk import parses a million
	case "ip":
		return IP, true
	case "token":
		return Token, true
	case "cookie":
		return Cookie, true
	case "api_key":
		return APIKey, true
	case "username":
		return Username, true
	}
	return 0, false
}

// Tag says why an entry is on the deny list.
type Tag uint8

// The deny-list tags. Allow-list entries are always Manual.
const (
	Manual Tag = iota
	ABSGenerated
	InvalidContentType
	InvalidMethod
	InvalidProtocol
	Decoy
	numTags
)

var tagNames = [numTags]string{"manual", "abs_generated", "invalid_content_type", "invalid_method", "invalid_protocol", "decoy"}

func (t Tag) String() string {
	if t < numTags {
		return tagNames[t]
	}
	return "unknown"
}

// Tags lists every deny-list tag in the vendor's order.
func Tags() []Tag {
	return []Tag{Manual, ABSGenerated, InvalidContentType, InvalidMethod, InvalidProtocol, Decoy}
}

// ParseTag parses a tag name.
func ParseTag(s string) (Tag, bool) {
	for i, n := range tagNames {
		if n == s {
			return Tag(i), true
		}
	}
	return 0, false
}

// Detected reports whether entries with this tag come from ASE-detected
// attacks (and go when that feature is disabled).
func (t Tag) Detected() bool {
	return t == InvalidContentType || t == InvalidMethod || t == InvalidProtocol || t == Decoy
}

// List is the deny list or the allow list.
type List uint8

// The two lists, named as the vendor's REST API names them.
const (
	Deny List = iota
	Allow
)

func (l List) String() string {
	if l == Allow {
		return "whitelist"
	}
	return "blacklist"
}

// Entry is one list entry.
type Entry struct {
	Kind   Kind
	Name   string       // cookie or API key name
	Value  string       // canonical: an IP or prefix in its shortest form
	Prefix netip.Prefix // for IP entries; a single address is a full-length prefix
	Tag    Tag
	// Expires is when the entry stops matching; zero means never. Kept to
	// the millisecond, so expiry is exact to the second and better.
	Expires time.Time
	// Created is when the entry was added (zero for entries stored before
	// ASE kept it), and Reason why: the operator's words, or what a
	// detection saw. Both live in the store only, never in the in-memory
	// sets, and are read for views and checks.
	Created time.Time
	Reason  string
}

// Describe returns the vendor CLI's wording of the entry: "ip 1.1.1.1",
// "cookie JSESSIONID abc".
func (e Entry) Describe() string {
	if e.Name != "" {
		return e.Kind.String() + " " + e.Name + " " + e.Value
	}
	return e.Kind.String() + " " + e.Value
}

// Limits on entries.
const (
	maxValueLen = 4096
	maxNameLen  = 256
	maxTTL      = 10 * 365 * 24 * 3600 // ten years, in seconds
	// MaxReason is the longest reason an entry may carry, in bytes.
	MaxReason = 1024
	// MaxBulk is how many entries one bulk import may carry: a plain-text
	// feed of a million addresses fits the 32 MiB a body may take.
	MaxBulk = 1_000_000
)

// Input is an entry as a client sent it, before validation.
type Input struct {
	Type  string  `json:"type"`
	Name  *string `json:"name,omitempty"`
	Value string  `json:"value"`
	// TTL is seconds as a JSON number, or a string: seconds or a duration
	// with units ("4h", "90m", "7d"; see ParseTTL). Kept raw until
	// validation so that both forms decode on the fast path.
	TTL    json.RawMessage `json:"ttl,omitempty"`
	Reason *string         `json:"reason,omitempty"`
}

// Defaults apply to the entries of an add that carry no TTL or reason of
// their own (the ttl and reason query parameters of a bulk import).
type Defaults struct {
	TTL    int64 // seconds; 0 for none
	Reason string
}

// DecodeEntries decodes a request body holding one entry object or (when
// bulk is allowed) an array of them, validates every entry and returns
// them. Every problem is reported at once, each with its JSON path
// ("[3].value" in an array). now stamps TTLs into expiry times and is the
// entries' creation time.
func DecodeEntries(body []byte, allowBulk bool, now time.Time) ([]Entry, bool, error) {
	return DecodeEntriesWith(body, allowBulk, now, Defaults{})
}

// DecodeEntriesWith is DecodeEntries with defaults for the entries that
// carry no TTL or reason. An array is read as a bulk import is (ParseBulk).
func DecodeEntriesWith(body []byte, allowBulk bool, now time.Time, d Defaults) ([]Entry, bool, error) {
	if IsArray(body) {
		if !allowBulk {
			return nil, false, jsondoc.ValidationError{{Msg: "this endpoint takes one entry, not an array"}}
		}
		b, err := ParseBulk(body, false, now, d)
		if err != nil {
			return nil, true, err
		}
		return slices.Collect(b.All()), true, nil
	}
	in, err := decodeOne(body, now)
	if err != nil {
		return nil, false, err
	}
	var w jsondoc.Walker
	e, _ := validate(&w, itemPath(false, 0), in, now)
	if err := w.Err(); err != nil {
		return nil, false, err
	}
	return []Entry{d.apply(e, in, now)}, false, nil
}

// decodeOne decodes one entry object quickly with encoding/json; only when
// that fails does it walk the document again to name every problem.
func decodeOne(body []byte, now time.Time) (Input, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var in Input
	err := dec.Decode(&in)
	if err == nil && dec.More() {
		err = errors.New("unexpected data after the JSON document")
	}
	// encoding/json leaves absent fields empty; the walker tells "missing"
	// from "empty", so let it name them.
	if err == nil && in.Type != "" && in.Value != "" {
		return in, nil
	}
	doc, err := jsondoc.Parse(body)
	if err != nil {
		return in, jsondoc.ValidationError{{Msg: "invalid JSON: " + err.Error()}}
	}
	var w jsondoc.Walker
	describeItem(&w, 0, false, doc, now)
	if err := w.Err(); err != nil {
		return in, err
	}
	return in, jsondoc.ValidationError{{Msg: "invalid JSON: the entries could not be decoded"}}
}

// describeItem names every problem of one decoded entry (the i-th of an
// array, or the body's only one).
func describeItem(w *jsondoc.Walker, i int, isArray bool, item any, now time.Time) {
	prefix := itemPath(isArray, i)()
	n := len(w.Errs())
	f := w.Object(prefix, item, true)
	var in Input
	if v, ok := f.Get("type"); !ok {
		w.Fail(f.At("type"), "is required (ip, token, cookie, api_key or username)")
	} else if s, isStr := v.(string); !isStr {
		w.Fail(f.At("type"), "must be a string, got %s", jsondoc.TypeName(v))
	} else {
		in.Type = s
	}
	if v, ok := f.Get("value"); !ok {
		w.Fail(f.At("value"), "is required")
	} else if s, isStr := v.(string); !isStr {
		w.Fail(f.At("value"), "must be a string, got %s", jsondoc.TypeName(v))
	} else if s == "" {
		w.Fail(f.At("value"), "must not be empty")
	} else {
		in.Value = s
	}
	if _, ok := f.Get("name"); ok {
		name := f.Str("name", "")
		in.Name = &name
	}
	if v, ok := f.Get("ttl"); ok {
		// validate names a wrong value; here only its JSON form.
		switch t := v.(type) {
		case json.Number:
			in.TTL = json.RawMessage(t)
		case string:
			in.TTL, _ = json.Marshal(t)
		default:
			w.Fail(f.At("ttl"), "%s, got %s", ttlSyntax, jsondoc.TypeName(v))
		}
	}
	if _, ok := f.Get("reason"); ok {
		reason := f.Str("reason", "")
		in.Reason = &reason
	}
	f.Close()
	if len(w.Errs()) == n {
		validate(w, itemPath(isArray, i), in, now)
	}
}

// itemPath returns the JSON path of an entry, formatted only when a
// problem needs naming: a bulk import validates a million entries.
func itemPath(isArray bool, i int) func() string {
	return func() string {
		if isArray {
			return fmt.Sprintf("[%d]", i)
		}
		return ""
	}
}

// validate checks one input and returns its canonical entry.
func validate(w *jsondoc.Walker, path func() string, in Input, now time.Time) (Entry, bool) {
	at := func(k string) string { return jsondoc.Join(path(), k) }
	n := len(w.Errs())
	kind, ok := parseKind(in.Type)
	if !ok {
		w.Fail(at("type"), "must be ip, token, cookie, api_key or username, got %q", in.Type)
		return Entry{}, false
	}
	e := Entry{Kind: kind, Value: in.Value}
	named := kind == Cookie || kind == APIKey
	switch {
	case named && (in.Name == nil || *in.Name == ""):
		w.Fail(at("name"), "is required for a %s entry", kind)
	case !named && in.Name != nil:
		w.Fail(at("name"), "applies to cookie and api_key entries only")
	case named:
		e.Name = *in.Name
		if kind == Cookie && !isToken(e.Name) {
			w.Fail(at("name"), "must be a cookie name (letters, digits and !#$%%&'*+-.^_`|~, at most %d), got %q", maxNameLen, e.Name)
		}
		if kind == APIKey && !isName(e.Name) {
			w.Fail(at("name"), "must be a header or query parameter name (printable, no spaces, at most %d), got %q", maxNameLen, e.Name)
		}
	}
	if kind == IP {
		p, err := parseIP(in.Value)
		if err != nil {
			w.Fail(at("value"), "%v", err)
		} else {
			e.Prefix = p
			// Most values are canonical already: keep them, rather than
			// make the same string again.
			var buf [64]byte
			if v := appendPrefix(buf[:0], p); string(v) != in.Value {
				e.Value = string(v)
			}
		}
	} else if msg := valueProblem(in.Value); msg != "" {
		w.Fail(at("value"), "%s", msg)
	}
	if len(in.TTL) > 0 && string(in.TTL) != "null" {
		if secs, err := ttlJSON(in.TTL); err != nil {
			w.Fail(at("ttl"), "%v", err)
		} else {
			e.Expires = expiry(now, secs)
		}
	}
	if in.Reason != nil {
		if err := CheckReason(*in.Reason); err != nil {
			w.Fail(at("reason"), "%v", err)
		} else {
			e.Reason = *in.Reason
		}
	}
	e.Created = now.Truncate(time.Millisecond)
	return e, len(w.Errs()) == n
}

// apply gives e (decoded from in) the defaults it has no value of its own
// for.
func (d Defaults) apply(e Entry, in Input, now time.Time) Entry {
	if d.TTL > 0 && (len(in.TTL) == 0 || string(in.TTL) == "null") {
		e.Expires = expiry(now, d.TTL)
	}
	if d.Reason != "" && in.Reason == nil {
		e.Reason = d.Reason
	}
	return e
}

// expiry is now plus secs, to the millisecond.
func expiry(now time.Time, secs int64) time.Time {
	return now.Add(time.Duration(secs) * time.Second).Truncate(time.Millisecond)
}

// CheckReason checks an entry's reason: printable text of at most
// MaxReason bytes.
func CheckReason(s string) error {
	if len(s) > MaxReason {
		return fmt.Errorf("must be at most %d bytes, got %d", MaxReason, len(s))
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == 0xfffd {
			return errors.New("must be printable text without control characters")
		}
	}
	return nil
}

// parseIP accepts an address or a CIDR, IPv4 or IPv6, and returns it as a
// masked prefix: "10.1.2.3/8" becomes 10.0.0.0/8, an IPv4-mapped IPv6
// address its IPv4 form.
func parseIP(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil || p.Addr().Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("%q is not an IP address or CIDR range", s)
		}
		a := p.Addr()
		bits := p.Bits()
		if a.Is4In6() {
			if bits < 96 {
				return netip.Prefix{}, fmt.Errorf("%q is not an IP address or CIDR range", s)
			}
			a, bits = a.Unmap(), bits-96
		}
		return netip.PrefixFrom(a, bits).Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("%q is not an IP address or CIDR range", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// formatPrefix prints a single address without its length.
func formatPrefix(p netip.Prefix) string {
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}

// appendPrefix appends formatPrefix(p) to b.
func appendPrefix(b []byte, p netip.Prefix) []byte {
	if p.IsSingleIP() {
		return p.Addr().AppendTo(b)
	}
	return p.AppendTo(b)
}

func valueProblem(s string) string {
	if len(s) > maxValueLen {
		return fmt.Sprintf("must be at most %d bytes, got %d", maxValueLen, len(s))
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == 0xfffd {
			return "must be printable text without control characters"
		}
	}
	return ""
}

func isToken(s string) bool { return len(s) <= maxNameLen && rfc9110.IsToken(s) }

func isName(s string) bool {
	if s == "" || len(s) > maxNameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// Store layout: "list/deny/<kind>/<identity>" and "list/allow/...". The
// identity of a named entry is name NUL value (neither may hold a NUL).
// The keys under "list/_" are not entries (gen.go).
//
// A value is one of three layouts, big-endian:
//
//	tag, expiry                                     9 bytes
//	tag, expiry, generation                        17 bytes
//	tag|0x80, expiry, generation, created, reason  25 bytes and the reason
//
// The expiry and the creation time are Unix milliseconds (0: never, and
// unknown), the generation the id of the bulk import that wrote the entry
// in many batches (0: none, gen.go). ASE writes the third layout only; the
// first two are what earlier versions wrote, still read (no creation time,
// no reason). The high bit of the first byte tells the layouts apart. The
// creation time and the reason are read for views and checks only: the
// in-memory sets keep what they kept before, the tag and the expiry.
const (
	Prefix      = "list/"
	denyPrefix  = "list/deny/"
	allowPrefix = "list/allow/"

	metaValueLen = 25   // the third layout without its reason
	metaFlag     = 0x80 // on the first byte: the third layout
)

// ListPrefix returns the store prefix of list l.
func ListPrefix(l List) string {
	if l == Allow {
		return allowPrefix
	}
	return denyPrefix
}

// StoreKey returns e's key in list l.
func (e Entry) StoreKey(l List) string {
	var b strings.Builder
	n := len(ListPrefix(l)) + len(e.Kind.String()) + 1 + len(e.Value)
	if e.Name != "" {
		n += len(e.Name) + 1
	}
	b.Grow(n) // exactly: the expiry heap keeps the keys of entries with a TTL
	b.WriteString(ListPrefix(l))
	b.WriteString(e.Kind.String())
	b.WriteByte('/')
	if e.Name != "" {
		b.WriteString(e.Name)
		b.WriteByte(0)
	}
	b.WriteString(e.Value)
	return b.String()
}

// storeValue encodes e's stored value (of no generation).
func (e Entry) storeValue() []byte {
	return e.appendValue(make([]byte, 0, e.valueSize()))
}

// valueSize is the length of e's stored value.
func (e Entry) valueSize() int { return metaValueLen + len(e.Reason) }

// appendValue appends e's stored value (of no generation) to dst.
func (e Entry) appendValue(dst []byte) []byte {
	var exp, created uint64
	if !e.Expires.IsZero() {
		exp = uint64(e.Expires.UnixMilli())
	}
	if !e.Created.IsZero() {
		created = uint64(e.Created.UnixMilli())
	}
	dst = binary.BigEndian.AppendUint64(append(dst, byte(e.Tag)|metaFlag), exp)
	dst = binary.BigEndian.AppendUint64(dst, 0)
	dst = binary.BigEndian.AppendUint64(dst, created)
	return append(dst, e.Reason...)
}

// storedValue is a stored value decoded.
type storedValue struct {
	tag     Tag
	exp     int64 // Unix ms; 0: never
	gen     uint64
	created int64 // Unix ms; 0: unknown
	reason  []byte
}

// decodeValue decodes any of the three layouts.
func decodeValue(v []byte) (storedValue, bool) {
	var sv storedValue
	switch {
	case len(v) >= metaValueLen && v[0]&metaFlag != 0:
		sv.gen = binary.BigEndian.Uint64(v[valueLen:])
		sv.created = int64(binary.BigEndian.Uint64(v[genValueLen:]))
		sv.reason = v[metaValueLen:]
	case len(v) == genValueLen && v[0]&metaFlag == 0:
		sv.gen = binary.BigEndian.Uint64(v[valueLen:])
	case len(v) == valueLen && v[0]&metaFlag == 0:
	default:
		return sv, false
	}
	sv.tag = Tag(v[0] &^ metaFlag)
	sv.exp = int64(binary.BigEndian.Uint64(v[1:]))
	return sv, sv.tag < numTags
}

// valueTag returns the tag of a stored value, and whether the value is
// well-formed.
func valueTag(v []byte) (Tag, bool) {
	sv, ok := decodeValue(v)
	return sv.tag, ok
}

// parseStored decodes a stored key and value back into an entry.
func parseStored(key string, value []byte) (List, Entry, error) {
	var l List
	var rest string
	switch {
	case strings.HasPrefix(key, denyPrefix):
		l, rest = Deny, key[len(denyPrefix):]
	case strings.HasPrefix(key, allowPrefix):
		l, rest = Allow, key[len(allowPrefix):]
	default:
		return 0, Entry{}, fmt.Errorf("lists: %q is not a list key", key)
	}
	kindName, ident, ok := strings.Cut(rest, "/")
	kind, known := parseKind(kindName)
	sv, valid := decodeValue(value)
	if !ok || !known || !valid {
		return 0, Entry{}, fmt.Errorf("lists: malformed stored entry %q", key)
	}
	e := Entry{Kind: kind, Value: ident, Tag: sv.tag, Reason: string(sv.reason)}
	if kind == Cookie || kind == APIKey {
		name, val, ok := strings.Cut(ident, "\x00")
		if !ok {
			return 0, Entry{}, fmt.Errorf("lists: malformed stored entry %q", key)
		}
		e.Name, e.Value = name, val
	}
	if kind == IP {
		p, err := parseIP(e.Value)
		if err != nil {
			return 0, Entry{}, fmt.Errorf("lists: malformed stored entry %q", key)
		}
		e.Prefix = p
	}
	if sv.exp != 0 {
		e.Expires = time.UnixMilli(sv.exp)
	}
	if sv.created != 0 {
		e.Created = time.UnixMilli(sv.created)
	}
	return l, e, nil
}
