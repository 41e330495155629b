package lists

import (
	"bytes"
	"fmt"
	"net/netip"
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

// maxFeedProblems is how many bad lines a refusal names.
const maxFeedProblems = 20

// ParseFeed reads a plain-text feed into deny- or allow-list entries, all
// created at now with d's TTL and reason. Every bad line is named by its
// number (the first 20 of them); a feed with no entries or with more than
// MaxBulk is refused.
func ParseFeed(body []byte, now time.Time, d Defaults) ([]Entry, error) {
	body = bytes.TrimPrefix(body, []byte("\xef\xbb\xbf"))
	var (
		out      []Entry
		problems []string
		bad, n   int // bad lines, entries
	)
	created := now.Truncate(time.Millisecond)
	var expires time.Time
	if d.TTL > 0 {
		expires = expiry(now, d.TTL)
	}
	for ln := 1; len(body) > 0; ln++ {
		line := body
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			line, body = body[:i], body[i+1:]
		} else {
			body = nil
		}
		v, msg := feedLine(line)
		switch {
		case msg != "":
			if bad++; bad <= maxFeedProblems {
				problems = append(problems, fmt.Sprintf("line %d: %s", ln, msg))
			}
		case v.IsValid():
			// Past a bad line or the limit, entries are only counted.
			if n++; bad == 0 && n <= MaxBulk {
				out = append(out, Entry{Kind: IP, Prefix: v, Value: formatPrefix(v), Created: created, Expires: expires, Reason: d.Reason})
			}
		}
	}
	switch {
	case bad > maxFeedProblems:
		problems = append(problems, fmt.Sprintf("and %d more lines", bad-maxFeedProblems))
		fallthrough
	case bad > 0:
		return nil, jsondoc.ValidationError{{Msg: strings.Join(problems, "; ")}}
	case n == 0:
		return nil, jsondoc.ValidationError{{Msg: "the feed has no entries (one IP address or CIDR range per line)"}}
	case n > MaxBulk:
		return nil, jsondoc.ValidationError{{Msg: fmt.Sprintf("a bulk import takes at most %d entries, got %d", MaxBulk, n)}}
	}
	return out, nil
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
