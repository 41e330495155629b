package e2e

import (
	"fmt"
	"strings"
	"testing"
)

// millionFeed is a plain-text feed of n IPv4 addresses, one a line, with
// line bad (from 1; 0 for none) replaced by something that is not one.
func millionFeed(n, bad int) string {
	var b strings.Builder
	b.Grow(16 * n)
	for v := 1; v <= n; v++ {
		if v == bad {
			b.WriteString("198.51.100.1 and more\n")
			continue
		}
		fmt.Fprintf(&b, "%d.%d.%d.%d\n", 11+v%180, (v>>16)&255, (v>>8)&255, v&255)
	}
	return b.String()
}

// A bulk import is read as a stream and written in batches, and still
// applies all or nothing: a feed of a million addresses whose line 900,000
// is bad lists none of them and names the line; fixed, the same million
// are listed by that one call (a body of 14 MB) and are there after a
// restart; a million and one are refused. A JSON import names the
// problems of its first 20 bad entries and counts the others.
func TestBulkImportOfAMillion(t *testing.T) {
	i := startInstance(t, map[string]string{"attack_list_memory": "1GB"})
	text := map[string]string{"Content-Type": "text/plain"}
	const n = 1_000_000

	wantStatus(t, i.Do("POST", "/v5/ase/firewall/blacklist", millionFeed(n, 900_000), text), 403, "validation_error",
		`line 900000: "198.51.100.1 and more" is not an IP address or CIDR range (one per line; comments start with # or ;)`)
	if got := denyListed(i); got != 0 {
		t.Fatalf("a refused feed listed %d entries", got)
	}
	var s map[string]any
	decode(t, i.Do("GET", "/v5/ase/status", "", nil), &s)
	if !strings.Contains(s["attack_list_memory"].(string), "used 0.00 MB") {
		t.Fatalf("after a refused feed: %v", s["attack_list_memory"])
	}

	// The race detector's build takes minutes for a million: a fifth of
	// them are still 25 batches of a generation.
	ok := n
	if raceEnabled {
		ok = n / 5
	}
	wantStatus(t, i.Do("POST", "/v5/ase/firewall/blacklist", millionFeed(ok, 0), text), 200, "success",
		fmt.Sprintf("%d entries added to blacklist, 0 already listed", ok))
	if got := denyListed(i); got != ok {
		t.Fatalf("%d listed, want %d", got, ok)
	}
	decode(t, i.Do("GET", "/v5/ase/status", "", nil), &s)
	if strings.Contains(s["attack_list_memory"].(string), "used 0.00 MB") {
		t.Fatalf("status does not count them: %v", s["attack_list_memory"])
	}
	i.Restart()
	if got := denyListed(i); got != ok {
		t.Fatalf("%d listed after a restart, want %d", got, ok)
	}
	wantStatus(t, i.Do("POST", "/v5/ase/firewall/whitelist", millionFeed(n+1, 0), text), 403, "validation_error",
		fmt.Sprintf("a bulk import takes at most %d entries, got %d", n, n+1))

	// 30 entries, one in six good: 25 bad, 20 of them named.
	var body, want []string
	for k := 0; k < 30; k++ {
		if k%6 == 5 {
			body = append(body, fmt.Sprintf(`{"type": "ip", "value": "192.0.2.%d"}`, k))
			continue
		}
		body = append(body, fmt.Sprintf(`{"type": "ip", "value": "x%d"}`, k))
		if len(want) < 20 {
			want = append(want, fmt.Sprintf(`[%d].value: "x%d" is not an IP address or CIDR range`, k, k))
		}
	}
	want = append(want, "and 5 more entries with problems")
	wantStatus(t, i.Do("POST", "/v5/ase/firewall/whitelist", "["+strings.Join(body, ",")+"]", nil), 403, "validation_error", strings.Join(want, "; "))
}
