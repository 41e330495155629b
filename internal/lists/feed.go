package lists

import (
	"bytes"
	"fmt"
	"iter"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/ase-project/ase/internal/jsondoc"
)

// Plain-text threat feeds: one IP address or CIDR range per line, as
// FireHOL, Spamhaus DROP, Emerging Threats and most providers publish
// them. A comment starts with # or ; (Spamhaus' DROP uses ;) and runs to
// the end of the line, alone or after the value; blank lines, spaces
// around the value, CRLF line ends and a UTF-8 byte order mark are
// allowed. Anything else on a line refuses the whole feed, so that a file
// in another format is never half-read.

// ParseFeed reads a plain-text feed into deny- or allow-list entries, all
// created at now with d's TTL and reason (ParseBulk, then every entry).
func ParseFeed(body []byte, now time.Time, d Defaults) ([]Entry, error) {
	b, err := ParseBulk(body, true, now, d)
	if err != nil {
		return nil, err
	}
	return slices.Collect(b.All()), nil
}

// lines calls fn with each line of body and its number, until fn returns
// false.
func lines(body []byte, fn func(ln int, line []byte) bool) {
	for ln := 1; len(body) > 0; ln++ {
		line := body
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			line, body = body[:i], body[i+1:]
		} else {
			body = nil
		}
		if !fn(ln, line) {
			return
		}
	}
}

// checkFeed checks b's feed (its byte order mark taken off) and counts its
// entries. Every bad line is named by its number (the first 20 of them);
// a feed with no entries or with more than MaxBulk is refused.
func checkFeed(b *Bulk) error {
	var problems []string
	bad := 0
	e := Entry{Kind: IP, Reason: b.d.Reason}
	if b.d.TTL > 0 {
		e.Expires = expiry(b.now, b.d.TTL)
	}
	var buf []byte
	lines(b.body, func(ln int, line []byte) bool {
		v, msg := feedLine(line)
		switch {
		case msg != "":
			if bad++; bad <= maxProblems {
				problems = append(problems, fmt.Sprintf("line %d: %s", ln, msg))
			}
		case v.IsValid() && bad == 0:
			// What the entry takes, without making its value.
			buf = appendPrefix(buf[:0], v)
			e.Prefix = v
			b.count(&e)
			b.size += 2 * len(buf)
		}
		return true
	})
	switch {
	case bad > maxProblems:
		problems = append(problems, fmt.Sprintf("and %d more lines", bad-maxProblems))
		fallthrough
	case bad > 0:
		return jsondoc.ValidationError{{Msg: strings.Join(problems, "; ")}}
	case b.n == 0:
		return jsondoc.ValidationError{{Msg: "the feed has no entries (one IP address or CIDR range per line)"}}
	case b.n > MaxBulk:
		return tooMany(b.n)
	}
	return nil
}

// feedEntries decodes the entries of a checked feed.
func feedEntries(body []byte, now time.Time, d Defaults) iter.Seq[Entry] {
	created := now.Truncate(time.Millisecond)
	var expires time.Time
	if d.TTL > 0 {
		expires = expiry(now, d.TTL)
	}
	return func(yield func(Entry) bool) {
		lines(body, func(_ int, line []byte) bool {
			v, _ := feedLine(line)
			return !v.IsValid() || yield(Entry{Kind: IP, Prefix: v, Value: formatPrefix(v), Created: created, Expires: expires, Reason: d.Reason})
		})
	}
}

// feedLine reads one line: its range (invalid for a blank or comment
// line), or what is wrong with it.
func feedLine(line []byte) (p netip.Prefix, problem string) {
	if i := bytes.IndexAny(line, "#;"); i >= 0 {
		line = line[:i]
	}
	s := strings.Trim(string(line), " \t\r")
	if s == "" {
		return netip.Prefix{}, ""
	}
	if strings.ContainsAny(s, " \t\r") {
		return netip.Prefix{}, fmt.Sprintf("%s is not an IP address or CIDR range (one per line; comments start with # or ;)", quoteLine(s))
	}
	p, err := parseIP(s)
	if err != nil {
		return netip.Prefix{}, fmt.Sprintf("%s is not an IP address or CIDR range", quoteLine(s))
	}
	return p, ""
}

// quoteLine quotes a bad line for a message, cut short when long.
func quoteLine(s string) string {
	const max = 64
	if len(s) > max {
		return fmt.Sprintf("%q...", s[:max])
	}
	return fmt.Sprintf("%q", s)
}
