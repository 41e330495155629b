package lists

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
)

func TestParseTTL(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int64
		err  string
	}{
		{"3600", 3600, ""},
		{"1", 1, ""},
		{"45s", 45, ""},
		{"90m", 5400, ""},
		{"4h", 14400, ""},
		{"1h30m", 5400, ""},
		{"7d", 7 * 86400, ""},
		{"1d2h3m4s", 86400 + 7200 + 180 + 4, ""},
		{"0h30m", 1800, ""},
		{"3650d", maxTTL, ""},
		{"315360000", maxTTL, ""},
		{"", 0, "must be seconds or a duration"},
		{"0", 0, "must be from 1 second to 10 years"},
		{"0s", 0, "must be from 1 second to 10 years"},
		{"3651d", 0, "must be from 1 second to 10 years"},
		{"315360001", 0, "must be from 1 second to 10 years"},
		{"99999999999999999999", 0, "must be from 1 second to 10 years"},
		{"99999999999999999999d", 0, "must be from 1 second to 10 years"},
		{"4H", 0, "must be seconds or a duration"},
		{"1.5h", 0, "must be seconds or a duration"},
		{"30m1h", 0, "must be seconds or a duration"}, // largest unit first
		{"1h1h", 0, "must be seconds or a duration"},
		{"h", 0, "must be seconds or a duration"},
		{"4", 4, ""},
		{"4 h", 0, "must be seconds or a duration"},
		{"-5", 0, "must be seconds or a duration"},
		{"+5", 0, "must be seconds or a duration"},
		{"2w", 0, "must be seconds or a duration"},
		{"1ms", 0, "must be seconds or a duration"},
	} {
		got, err := ParseTTL(tt.in)
		if tt.err == "" && (err != nil || got != tt.want) || tt.err != "" && (err == nil || !strings.HasPrefix(err.Error(), tt.err)) {
			t.Errorf("ParseTTL(%q) = %d, %v; want %d, %q", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestTTLJSON(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int64
		err  string
	}{
		{`3600`, 3600, ""},
		{`"3600"`, 3600, ""},
		{`"4h"`, 14400, ""},
		{`0`, 0, "must be from 1 second to 10 years, got 0"},
		{`1.5`, 0, `must be seconds or a duration such as "4h", "90m" or "7d", got 1.5`},
		{`1e3`, 0, `must be seconds or a duration such as "4h", "90m" or "7d", got 1e3`},
		{`true`, 0, "got a boolean"},
		{`{}`, 0, "got an object"},
		{`[1]`, 0, "got an array"},
		{`"4x"`, 0, `got "4x"`},
	} {
		got, err := ttlJSON(json.RawMessage(tt.in))
		if tt.err == "" && (err != nil || got != tt.want) || tt.err != "" && (err == nil || !strings.HasSuffix(err.Error(), tt.err) && !strings.HasPrefix(err.Error(), tt.err)) {
			t.Errorf("ttlJSON(%s) = %d, %v; want %d, %q", tt.in, got, err, tt.want, tt.err)
		}
	}
}

// FuzzParseTTL: an accepted TTL is from 1 second to 10 years, whole
// seconds read as themselves, and FormatTTL writes it back in a form that
// reads the same; a refusal quotes what was given.
func FuzzParseTTL(f *testing.F) {
	for _, s := range []string{"3600", "4h", "90m", "1h30m", "7d", "1d2h3m4s", "0s", "", "4H", "1.5h", "3651d", "99999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseTTL(s)
		if err != nil {
			if !strings.Contains(err.Error(), strconv.Quote(s)) {
				t.Fatalf("ParseTTL(%q): the error does not quote the input: %v", s, err)
			}
			return
		}
		if n < 1 || n > maxTTL {
			t.Fatalf("ParseTTL(%q) = %d, out of range", s, n)
		}
		if strings.Trim(s, "0123456789") == "" {
			if v, _ := strconv.ParseInt(s, 10, 64); v != n {
				t.Fatalf("ParseTTL(%q) = %d, not the number of seconds", s, n)
			}
		}
		if back, err := ParseTTL(FormatTTL(n)); err != nil || back != n {
			t.Fatalf("ParseTTL(%q) = %d; FormatTTL gives %q, which reads %d, %v", s, n, FormatTTL(n), back, err)
		}
	})
}
