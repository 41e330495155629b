package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Issue 16, point 7: TTLs with units, and threat feeds in plain text.

// expiresIn returns the entry's expiry minus its creation.
func expiresIn(t *testing.T, e viewEntry) time.Duration {
	t.Helper()
	if e.ExpiresAt == "" {
		return 0
	}
	return mustTime(t, e.ExpiresAt).Sub(mustTime(t, e.CreatedAt))
}

// entryByValue returns the entries of a view by value.
func entryByValue(t *testing.T, i *Instance, list string) map[string]viewEntry {
	t.Helper()
	sections, _ := viewPage(t, i.Do("GET", "/v5/ase/firewall/"+list, "", nil))
	out := map[string]viewEntry{}
	for _, es := range sections {
		for _, e := range es {
			out[e.Value] = e
		}
	}
	return out
}

func TestListTTLUnits(t *testing.T) {
	i := startInstance(t, nil)
	for _, tt := range []struct {
		ttl  string // as JSON
		want time.Duration
	}{
		{`3600`, time.Hour},
		{`"3600"`, time.Hour},
		{`"4h"`, 4 * time.Hour},
		{`"90m"`, 90 * time.Minute},
		{`"1h30m"`, 90 * time.Minute},
		{`"45s"`, 45 * time.Second},
		{`"7d"`, 7 * 24 * time.Hour},
	} {
		v := fmt.Sprintf("token-%x", tt.ttl)
		wantStatus(t, i.Do("POST", "/v5/ase/firewall/blacklist", `{"type": "token", "value": "`+v+`", "ttl": `+tt.ttl+`}`, nil), 200, "success", "token "+v+" added to blacklist")
		if got := expiresIn(t, entryByValue(t, i, "blacklist")[v]); got != tt.want {
			t.Fatalf("ttl %s: expires %v after it was added, want %v", tt.ttl, got, tt.want)
		}
	}
	for _, tt := range []struct{ ttl, msg string }{
		{`"4x"`, `ttl: must be seconds or a duration such as "4h", "90m" or "7d", got "4x"`},
		{`"1.5h"`, `ttl: must be seconds or a duration such as "4h", "90m" or "7d", got "1.5h"`},
		{`""`, `ttl: must be seconds or a duration such as "4h", "90m" or "7d", got ""`},
		{`0`, `ttl: must be from 1 second to 10 years, got 0`},
		{`"0s"`, `ttl: must be from 1 second to 10 years, got "0s"`},
		{`"3651d"`, `ttl: must be from 1 second to 10 years, got "3651d"`},
		{`1.5`, `ttl: must be seconds or a duration such as "4h", "90m" or "7d", got 1.5`},
		{`true`, `ttl: must be seconds or a duration such as "4h", "90m" or "7d", got a boolean`},
	} {
		wantStatus(t, i.Do("POST", "/v5/ase/firewall/blacklist", `{"type": "ip", "value": "192.0.2.9", "ttl": `+tt.ttl+`}`, nil), 403, "validation_error", tt.msg)
	}
	// In a bulk import, each entry is named.
	wantStatus(t, i.Do("POST", "/v5/ase/firewall/blacklist", `[{"type": "ip", "value": "192.0.2.9", "ttl": "2h"}, {"type": "ip", "value": "192.0.2.10", "ttl": "2y"}]`, nil), 403, "validation_error", `[1].ttl: must be seconds or a duration such as "4h", "90m" or "7d", got "2y"`)

	// The CLI passes --ttl as given.
	for _, tt := range []struct {
		ttl  string
		want time.Duration
	}{{"4h", 4 * time.Hour}, {"90m", 90 * time.Minute}, {"3600", time.Hour}} {
		v := "198.51.100." + fmt.Sprint(len(tt.ttl)+int(tt.want/time.Minute)%200)
		out, stderr, code := i.CLI("", "add_blacklist", "ip", v, "--ttl", tt.ttl, "--reason", "cli test")
		if code != 0 || out != "ip "+v+" added to blacklist\n" {
			t.Fatalf("add_blacklist --ttl %s: exit %d %s%s", tt.ttl, code, out, stderr)
		}
		e := entryByValue(t, i, "blacklist")[v]
		if got := expiresIn(t, e); got != tt.want || e.Reason != "cli test" {
			t.Fatalf("--ttl %s: expires %v after it was added (want %v), reason %q", tt.ttl, got, tt.want, e.Reason)
		}
	}
	if _, stderr, code := i.CLI("", "add_blacklist", "ip", "198.51.100.99", "--ttl", "soon"); code != 1 || !strings.Contains(stderr, `ttl: must be seconds or a duration`) {
		t.Fatalf("--ttl soon: exit %d %s", code, stderr)
	}
}

// spamhausStyle is a feed as threat-intelligence providers publish them:
// comments with # or ;, blank lines, comments after a value, CRLF.
const spamhausStyle = "; Spamhaus DROP-like list\r\n# Last-Modified: today\r\n\r\n203.0.113.0/24 ; SBL001\r\n198.51.100.7\t# a scanner\r\n  2001:db8::/32  \r\n203.0.113.0/24\r\n10.1.2.3/8\r\n"

func TestThreatFeedPlainText(t *testing.T) {
	i := startInstance(t, nil)
	text := map[string]string{"Content-Type": "text/plain"}

	// Repeats inside the feed are skipped and counted; 10.1.2.3/8 is the
	// range 10.0.0.0/8.
	wantStatus(t, i.Do("POST", "/v5/ase/firewall/blacklist?ttl=24h&reason=DROP+list", spamhausStyle, text), 200, "success", "4 entries added to blacklist, 1 already listed")
	got := entryByValue(t, i, "blacklist")
	for _, v := range []string{"203.0.113.0/24", "198.51.100.7", "2001:db8::/32", "10.0.0.0/8"} {
		e, ok := got[v]
		if !ok || e.Tag != "manual" || e.Reason != "DROP list" || expiresIn(t, e) != 24*time.Hour || e.Type != "ip" {
			t.Fatalf("feed entry %s: %+v (listed %v)", v, e, ok)
		}
	}
	if len(got) != 4 {
		t.Fatalf("listed %v", got)
	}
	// Re-importing is harmless.
	wantStatus(t, i.Do("POST", "/v5/ase/firewall/blacklist", spamhausStyle, map[string]string{"Content-Type": "text/plain; charset=utf-8"}), 200, "success", "0 entries added to blacklist, 5 already listed")

	// All or nothing: one bad line and nothing is added; every bad line is
	// named by its number.
	bad := "192.0.2.1\n192.0.2.2 # fine\nnot-an-address\n192.0.2.3 extra words\n\n192.0.2.300/24\n"
	wantStatus(t, i.Do("POST", "/v5/ase/firewall/blacklist", bad, text), 403, "validation_error",
		`line 3: "not-an-address" is not an IP address or CIDR range; line 4: "192.0.2.3 extra words" is not an IP address or CIDR range (one per line; comments start with # or ;); line 6: "192.0.2.300/24" is not an IP address or CIDR range`)
	if _, listed := entryByValue(t, i, "blacklist")["192.0.2.1"]; listed {
		t.Fatal("a refused feed listed its first line")
	}
	wantStatus(t, i.Do("POST", "/v5/ase/firewall/blacklist", "# nothing here\n\n", text), 403, "validation_error", "the feed has no entries*")
	wantStatus(t, i.Do("POST", "/v5/ase/firewall/blacklist?ttl=forever", "192.0.2.1\n", text), 403, "validation_error", `query parameter ttl: must be seconds or a duration such as "4h", "90m" or "7d", got "forever"`)
	// JSON sent as text is refused as the vendor refuses it.
	wantStatus(t, i.Do("POST", "/v5/ase/firewall/blacklist", `{"type": "ip", "value": "1.2.3.4"}`, text), 403, "fail", "content-type header missing")
	// A deletion takes one JSON entry, never a feed.
	wantStatus(t, i.Do("DELETE", "/v5/ase/firewall/blacklist", "192.0.2.1\n", text), 403, "fail", "content-type header missing")

	// The allow list takes feeds too.
	wantStatus(t, i.Do("POST", "/v5/ase/firewall/whitelist", "192.0.2.50\n192.0.2.51\n", text), 200, "success", "2 entries added to whitelist, 0 already listed")

	// A JSON import takes ttl and reason as defaults for its entries.
	wantStatus(t, i.Do("POST", "/v5/ase/firewall/blacklist?ttl=90m&reason=json+feed", `[{"type": "token", "value": "t-default"}, {"type": "token", "value": "t-own", "ttl": 60, "reason": "own"}]`, nil), 200, "success", "2 entries added to blacklist, 0 already listed")
	got = entryByValue(t, i, "blacklist")
	if e := got["t-default"]; expiresIn(t, e) != 90*time.Minute || e.Reason != "json feed" {
		t.Fatalf("defaults: %+v", e)
	}
	if e := got["t-own"]; expiresIn(t, e) != time.Minute || e.Reason != "own" {
		t.Fatalf("own values: %+v", e)
	}

	// The CLI: --file takes a plain-text feed or a JSON array, with --ttl
	// and --reason.
	txt := filepath.Join(i.Dir, "feed.txt")
	os.WriteFile(txt, []byte("# my feed\n198.51.100.20\n198.51.100.21\n198.51.100.0/30\n"), 0o600)
	out, stderr, code := i.CLI("", "add_blacklist", "--file", txt, "--ttl", "4h", "--reason", "local feed")
	if code != 0 || out != "3 entries added to blacklist, 0 already listed\n" {
		t.Fatalf("add_blacklist --file feed.txt: exit %d %s%s", code, out, stderr)
	}
	if e := entryByValue(t, i, "blacklist")["198.51.100.0/30"]; expiresIn(t, e) != 4*time.Hour || e.Reason != "local feed" {
		t.Fatalf("CLI feed entry: %+v", e)
	}
	js := filepath.Join(i.Dir, "feed.json")
	os.WriteFile(js, []byte(`[{"type": "ip", "value": "198.51.100.30"}]`), 0o600)
	if out, stderr, code := i.CLI("", "add_whitelist", "--file", js, "--ttl", "1h"); code != 0 || out != "1 entries added to whitelist, 0 already listed\n" {
		t.Fatalf("add_whitelist --file feed.json: exit %d %s%s", code, out, stderr)
	}
	if e := entryByValue(t, i, "whitelist")["198.51.100.30"]; expiresIn(t, e) != time.Hour {
		t.Fatalf("CLI JSON feed entry: %+v", e)
	}
	os.WriteFile(txt, []byte("198.51.100.40\nbogus\n"), 0o600)
	if _, stderr, code := i.CLI("", "add_blacklist", "--file", txt); code != 1 || !strings.Contains(stderr, `line 2: "bogus" is not an IP address or CIDR range`) {
		t.Fatalf("a bad feed: exit %d %s", code, stderr)
	}
	if _, stderr, code := i.CLI("", "add_blacklist", "--file", txt, "ip", "1.2.3.4"); code != 2 || !regexp.MustCompile(`either --file or an entry`).MatchString(stderr) {
		t.Fatalf("--file and an entry: exit %d %s", code, stderr)
	}

	// Everything survives a restart.
	i.Restart()
	if e := entryByValue(t, i, "blacklist")["2001:db8::/32"]; e.Reason != "DROP list" || expiresIn(t, e) != 24*time.Hour {
		t.Fatalf("after a restart: %+v", e)
	}
}

// A plain-text feed of 20,000 lines on a store bounded as etcd is: one
// import in many batches (a generation), all or nothing.
func TestThreatFeedWithStoreLimits(t *testing.T) {
	i := limitedInstance(t, nil)
	text := map[string]string{"Content-Type": "text/plain"}
	var sb strings.Builder
	sb.WriteString("# generated\n")
	for n := 0; n < 20_000; n++ {
		fmt.Fprintf(&sb, "10.%d.%d.0/24\n", n/256, n%256)
	}
	good := sb.String()
	// A bad last line: nothing of the 20,000 before it is listed.
	wantStatus(t, i.Do("POST", "/v5/ase/firewall/blacklist?ttl=1h", good+"10.300.0.0/24\n", text), 403, "validation_error", `line 20002: "10.300.0.0/24" is not an IP address or CIDR range`)
	if n := manualCount(t, i, "blacklist"); n != 0 {
		t.Fatalf("a refused feed listed %d entries", n)
	}
	wantStatus(t, i.Do("POST", "/v5/ase/firewall/blacklist?ttl=1h&reason=big", good, text), 200, "success", "20000 entries added to blacklist, 0 already listed")
	if n := manualCount(t, i, "blacklist"); n != 20_000 {
		t.Fatalf("listed %d", n)
	}
	e := entryByValue(t, i, "blacklist")["10.78.31.0/24"]
	if e.Reason != "big" || expiresIn(t, e) != time.Hour {
		t.Fatalf("entry of a generation: %+v", e)
	}
	if c := checkCall(t, i, "type=ip&value=10.78.31.200"); c.Verdict != "denied" || c.Entry == nil || c.Entry.Value != "10.78.31.0/24" || c.Entry.Reason != "big" {
		t.Fatalf("check: %+v", c)
	}
	i.Restart()
	if n := manualCount(t, i, "blacklist"); n != 20_000 {
		t.Fatalf("listed %d after a restart", n)
	}
}
