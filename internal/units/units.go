// Package units parses the vendor's textual quantities once into typed
// values: rates ("100/second"), sizes ("128mb") and durations ("200m").
//
// Each type prints back in a canonical form that its parser accepts, so a
// value read from the store or a file round-trips exactly.
package units

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Per is the time unit of a Rate.
type Per uint8

// The units of a Rate, as the vendor spells them.
const (
	PerSecond Per = iota
	PerMinute
	PerHour
)

var perNames = [...]string{PerSecond: "second", PerMinute: "minute", PerHour: "hour"}

// String returns the vendor's name of the unit.
func (p Per) String() string {
	if int(p) < len(perNames) {
		return perNames[p]
	}
	return "unknown"
}

// Duration returns the length of one unit.
func (p Per) Duration() time.Duration {
	switch p {
	case PerMinute:
		return time.Minute
	case PerHour:
		return time.Hour
	default:
		return time.Second
	}
}

// maxCount bounds the numerator of a rate and the number in a size or
// duration so that every derived value fits an int64 without overflow.
const maxCount = 1 << 40

// Rate is a threshold such as "100/second". A zero Count means "no limit",
// as in the vendor's "0/second".
type Rate struct {
	Count uint64
	Per   Per
}

// ErrSyntax is wrapped by every parse error of this package.
var ErrSyntax = errors.New("invalid syntax")

// ParseRate parses "N/second", "N/minute" or "N/hour".
func ParseRate(s string) (Rate, error) {
	num, unit, ok := strings.Cut(s, "/")
	if !ok {
		return Rate{}, fmt.Errorf("%w: %q is not of the form N/second, N/minute or N/hour", ErrSyntax, s)
	}
	n, err := parseCount(num)
	if err != nil {
		return Rate{}, fmt.Errorf("%w: %q: the count must be a whole number from 0 to %d", ErrSyntax, s, uint64(maxCount))
	}
	var per Per
	switch unit {
	case "second":
		per = PerSecond
	case "minute":
		per = PerMinute
	case "hour":
		per = PerHour
	default:
		return Rate{}, fmt.Errorf("%w: %q: the unit must be second, minute or hour", ErrSyntax, s)
	}
	return Rate{Count: n, Per: per}, nil
}

// MustRate is ParseRate for constants; it panics on a bad literal.
func MustRate(s string) Rate {
	r, err := ParseRate(s)
	if err != nil {
		panic(err)
	}
	return r
}

// IsZero reports whether the rate means "no limit".
func (r Rate) IsZero() bool { return r.Count == 0 }

// Interval returns the time between two events at this rate, or 0 for no
// limit.
func (r Rate) Interval() time.Duration {
	if r.Count == 0 {
		return 0
	}
	return r.Per.Duration() / time.Duration(r.Count)
}

// String returns the canonical "N/unit" form.
func (r Rate) String() string { return strconv.FormatUint(r.Count, 10) + "/" + r.Per.String() }

// MarshalText implements encoding.TextMarshaler.
func (r Rate) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (r *Rate) UnmarshalText(b []byte) error {
	v, err := ParseRate(string(b))
	if err != nil {
		return err
	}
	*r = v
	return nil
}

// Size is a number of bytes written like "128mb" or "128MB".
type Size int64

var sizeUnits = []struct {
	suffix string
	factor int64
}{
	{"gb", 1 << 30},
	{"mb", 1 << 20},
	{"kb", 1 << 10},
	{"b", 1},
}

// ParseSize parses a whole number followed by b, kb, mb or gb, in any case
// ("128mb", "128MB"). A bare number is bytes.
func ParseSize(s string) (Size, error) {
	lower := strings.ToLower(s)
	for _, u := range sizeUnits {
		if num, ok := strings.CutSuffix(lower, u.suffix); ok {
			n, err := parseCount(num)
			if err != nil || n > uint64(math.MaxInt64/u.factor) {
				return 0, fmt.Errorf("%w: %q is not a size such as 128mb (a whole number and b, kb, mb or gb)", ErrSyntax, s)
			}
			return Size(int64(n) * u.factor), nil
		}
	}
	n, err := parseCount(lower)
	if err != nil {
		return 0, fmt.Errorf("%w: %q is not a size such as 128mb (a whole number and b, kb, mb or gb)", ErrSyntax, s)
	}
	return Size(n), nil
}

// String returns the size in the largest unit that divides it exactly.
func (s Size) String() string {
	for _, u := range sizeUnits {
		if s != 0 && int64(s)%u.factor == 0 {
			return strconv.FormatInt(int64(s)/u.factor, 10) + u.suffix
		}
	}
	return "0b"
}

// MB formats the size in megabytes with two decimals, as the vendor's
// status output does ("128.00 MB").
func (s Size) MB() string { return strconv.FormatFloat(float64(s)/(1<<20), 'f', 2, 64) + " MB" }

// MarshalText implements encoding.TextMarshaler.
func (s Size) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *Size) UnmarshalText(b []byte) error {
	v, err := ParseSize(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// Duration is a length of time written like the vendor's "200m": a whole
// number followed by s, m, h or d. A bare number is seconds.
type Duration time.Duration

var durationUnits = []struct {
	suffix string
	factor time.Duration
}{
	{"d", 24 * time.Hour},
	{"h", time.Hour},
	{"m", time.Minute},
	{"s", time.Second},
}

// ParseDuration parses "200m", "30s", "2h", "1d" or a bare number of
// seconds.
func ParseDuration(s string) (Duration, error) {
	for _, u := range durationUnits {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			n, err := parseCount(num)
			if err != nil || n > maxDurationSeconds/uint64(u.factor/time.Second) {
				break
			}
			return Duration(time.Duration(n) * u.factor), nil
		}
	}
	n, err := parseCount(s)
	if err != nil || n > maxDurationSeconds {
		return 0, fmt.Errorf("%w: %q is not a duration such as 200m (a whole number and s, m, h or d)", ErrSyntax, s)
	}
	return Duration(time.Duration(n) * time.Second), nil
}

// maxDurationSeconds keeps every accepted duration far from time.Duration's
// limit (about 292 years): 100 years is already absurd for any timeout.
const maxDurationSeconds uint64 = 100 * 365 * 24 * 3600

// Std returns the duration as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// String returns the duration in the largest unit that divides it exactly.
func (d Duration) String() string {
	for _, u := range durationUnits {
		if d != 0 && time.Duration(d)%u.factor == 0 {
			return strconv.FormatInt(int64(time.Duration(d)/u.factor), 10) + u.suffix
		}
	}
	return "0s"
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// parseCount accepts only plain decimal digits (no sign, no spaces, no
// leading "+"), at most maxCount.
func parseCount(s string) (uint64, error) {
	if s == "" || len(s) > 13 {
		return 0, ErrSyntax
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, ErrSyntax
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n > maxCount {
		return 0, ErrSyntax
	}
	return n, nil
}
