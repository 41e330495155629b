package lists

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseFeed(t *testing.T) {
	now := time.UnixMilli(1_800_000_000_123)
	for _, tt := range []struct {
		name, body string
		want       []string // entries' values, or
		err        string
	}{
		{"plain", "1.2.3.4\n10.0.0.0/8\n2001:db8::/32\n", []string{"1.2.3.4", "10.0.0.0/8", "2001:db8::/32"}, ""},
		{"comments and blanks", "# a feed\n\n; another comment\n1.2.3.4 # trailing\n5.6.7.8;SBL1\n  \t\n", []string{"1.2.3.4", "5.6.7.8"}, ""},
		{"crlf, bom, spaces, no final newline", "\xef\xbb\xbf 1.2.3.4 \r\n\t5.6.7.8", []string{"1.2.3.4", "5.6.7.8"}, ""},
		{"canonical forms", "10.1.2.3/8\n1.2.3.4/32\n::ffff:1.2.3.4\n", []string{"10.0.0.0/8", "1.2.3.4", "1.2.3.4"}, ""},
		{"a bad line", "1.2.3.4\nfoo\n", nil, `line 2: "foo" is not an IP address or CIDR range`},
		{"two values on a line", "1.2.3.4 5.6.7.8\n", nil, `line 1: "1.2.3.4 5.6.7.8" is not an IP address or CIDR range (one per line; comments start with # or ;)`},
		{"every bad line", "x\n1.1.1.1\ny\n", nil, `line 1: "x" is not an IP address or CIDR range; line 3: "y" is not an IP address or CIDR range`},
		{"a zone", "fe80::1%eth0\n", nil, `line 1: "fe80::1%eth0" is not an IP address or CIDR range`},
		{"json", `[{"type": "ip", "value": "1.2.3.4"}]`, nil, `line 1: "[{\"type\": \"ip\", \"value\": \"1.2.3.4\"}]" is not`},
		{"empty", "", nil, "the feed has no entries"},
		{"only comments", "# x\n;y\n\n", nil, "the feed has no entries"},
		{"a long bad line", strings.Repeat("a", 100), nil, `line 1: "` + strings.Repeat("a", 64) + `"... is not`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			es, err := ParseFeed([]byte(tt.body), now, Defaults{TTL: 60, Reason: "feed"})
			if tt.err != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.err) || es != nil {
					t.Fatalf("got %v, %v; want the error %q", es, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range es {
				got = append(got, e.Value)
				if e.Kind != IP || e.Reason != "feed" || !e.Expires.Equal(now.Add(time.Minute).Truncate(time.Millisecond)) || !e.Created.Equal(now) {
					t.Fatalf("entry %+v", e)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
	// Bounds: many bad lines are named up to 20; more than MaxBulk
	// entries are refused.
	many := strings.Repeat("bad\n", 25)
	if _, err := ParseFeed([]byte(many), now, Defaults{}); err == nil || strings.Count(err.Error(), "line ") != 20 || !strings.HasSuffix(err.Error(), "; and 5 more lines") {
		t.Fatalf("25 bad lines: %v", err)
	}
	var big bytes.Buffer
	for i := 0; i <= MaxBulk; i++ {
		fmt.Fprintf(&big, "10.%d.%d.%d\n", i>>16, (i>>8)&255, i&255)
	}
	if _, err := ParseFeed(big.Bytes(), now, Defaults{}); err == nil || err.Error() != fmt.Sprintf("a bulk import takes at most %d entries, got %d", MaxBulk, MaxBulk+1) {
		t.Fatalf("%d entries: %v", MaxBulk+1, err)
	}
}

var lineRef = regexp.MustCompile(`(?:^|; )line (\d+): `)

// FuzzParseFeed: every entry of an accepted feed is a valid IP entry, one
// per line holding a value; a refused feed names its bad lines, each truly
// bad, the first of them always, or says it has no entries (none of its
// lines holds a value).
func FuzzParseFeed(f *testing.F) {
	for _, s := range []string{
		"1.2.3.4\n10.0.0.0/8\n",
		"# c\n\n203.0.113.0/24 ; SBL1\r\n2001:db8::/32\t# x\n",
		"\xef\xbb\xbf1.2.3.4",
		"1.2.3.4\nnope\n",
		"1.2.3.4 5.6.7.8",
		"::ffff:1.2.3.4/120\n",
		"",
		"#only\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		es, err := ParseFeed(body, time.Unix(1000, 0), Defaults{})
		lines := strings.Split(string(bytes.TrimPrefix(body, []byte("\xef\xbb\xbf"))), "\n")
		var values, bad []int // line numbers
		for i, l := range lines {
			p, msg := feedLine([]byte(l))
			switch {
			case msg != "":
				bad = append(bad, i+1)
			case p.IsValid():
				values = append(values, i+1)
			}
		}
		if err == nil {
			if len(es) != len(values) || len(bad) != 0 {
				t.Fatalf("accepted %d entries from %d lines with values and %d bad lines", len(es), len(values), len(bad))
			}
			for i, e := range es {
				p, perr := parseIP(e.Value)
				if e.Kind != IP || perr != nil || p != e.Prefix || formatPrefix(e.Prefix) != e.Value || e.Prefix != e.Prefix.Masked() {
					t.Fatalf("line %d gave an invalid entry %+v (%v)", values[i], e, perr)
				}
			}
			return
		}
		if es != nil {
			t.Fatal("entries with an error")
		}
		msg := err.Error()
		named := lineRef.FindAllStringSubmatch(msg, -1)
		switch {
		case len(bad) > 0:
			if len(named) == 0 || named[0][1] != strconv.Itoa(bad[0]) {
				t.Fatalf("refused without naming its first bad line %d: %s", bad[0], msg)
			}
			for _, m := range named {
				n, _ := strconv.Atoi(m[1])
				if p, problem := feedLine([]byte(lines[n-1])); problem == "" {
					t.Fatalf("line %d named, but it is fine (%v): %s", n, p, msg)
				}
			}
		case len(values) == 0:
			if !strings.HasPrefix(msg, "the feed has no entries") {
				t.Fatalf("no entries, but: %s", msg)
			}
		case len(values) <= MaxBulk:
			t.Fatalf("refused a good feed: %s", msg)
		}
	})
}
