package lists

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/ase-project/ase/internal/jsondoc"
)

// ttlSyntax is what a TTL must look like, for error messages.
const ttlSyntax = `must be seconds or a duration such as "4h", "90m" or "7d"`

// ttlUnits are the units a TTL may use, largest first, in seconds.
var ttlUnits = []struct {
	unit byte
	secs int64
}{{'d', 24 * 3600}, {'h', 3600}, {'m', 60}, {'s', 1}}

// ParseTTL reads a time to live and returns it in seconds: whole seconds
// ("3600"), or whole numbers of days, hours, minutes and seconds, largest
// unit first, each at most once ("7d", "4h", "90m", "1h30m", "45s"). A day
// is 24 hours. The result is from 1 second to 10 years. Units are lower
// case and there are no fractions or spaces, so a TTL reads one way only.
func ParseTTL(s string) (int64, error) {
	if s != "" && strings.Trim(s, "0123456789") == "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 1 || n > maxTTL {
			return 0, fmt.Errorf("must be from 1 second to 10 years, got %q", s)
		}
		return n, nil
	}
	if s == "" {
		return 0, fmt.Errorf("%s, got %q", ttlSyntax, s)
	}
	total, rest, next := int64(0), s, 0
	for rest != "" {
		digits := len(rest) - len(strings.TrimLeft(rest, "0123456789"))
		if digits == 0 || digits == len(rest) {
			return 0, fmt.Errorf("%s, got %q", ttlSyntax, s)
		}
		unit := next
		for unit < len(ttlUnits) && ttlUnits[unit].unit != rest[digits] {
			unit++
		}
		if unit == len(ttlUnits) {
			return 0, fmt.Errorf("%s, got %q", ttlSyntax, s)
		}
		n, err := strconv.ParseInt(rest[:digits], 10, 64)
		if err != nil || n > maxTTL {
			return 0, fmt.Errorf("must be from 1 second to 10 years, got %q", s)
		}
		// Bounded by maxTTL at each step: no overflow.
		if total += n * ttlUnits[unit].secs; total > maxTTL {
			return 0, fmt.Errorf("must be from 1 second to 10 years, got %q", s)
		}
		rest, next = rest[digits+1:], unit+1
	}
	if total < 1 {
		return 0, fmt.Errorf("must be from 1 second to 10 years, got %q", s)
	}
	return total, nil
}

// FormatTTL writes seconds the way ParseTTL reads them, in the largest
// units that are exact: 5400 is "1h30m".
func FormatTTL(secs int64) string {
	if secs <= 0 {
		return "0s"
	}
	var b strings.Builder
	for _, u := range ttlUnits {
		if n := secs / u.secs; n > 0 {
			b.WriteString(strconv.FormatInt(n, 10))
			b.WriteByte(u.unit)
			secs -= n * u.secs
		}
	}
	return b.String()
}

// ttlJSON reads a TTL given in JSON: a whole number of seconds, or a
// string ParseTTL reads.
func ttlJSON(raw json.RawMessage) (int64, error) {
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, fmt.Errorf("%s, got %s", ttlSyntax, raw)
		}
		return ParseTTL(s)
	}
	var v any
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return 0, fmt.Errorf("%s, got %s", ttlSyntax, raw)
	}
	num, ok := v.(json.Number)
	if _, isObj := v.(map[string]any); isObj {
		return 0, fmt.Errorf("%s, got an object", ttlSyntax)
	}
	if !ok {
		return 0, fmt.Errorf("%s, got %s", ttlSyntax, jsondoc.TypeName(v))
	}
	if strings.Trim(string(num), "0123456789") != "" {
		return 0, fmt.Errorf("%s, got %s", ttlSyntax, num)
	}
	n, err := strconv.ParseInt(string(num), 10, 64)
	if err != nil || n < 1 || n > maxTTL {
		return 0, fmt.Errorf("must be from 1 second to 10 years, got %s", num)
	}
	return n, nil
}
