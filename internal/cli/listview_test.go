package cli

import (
	"testing"
	"time"

	"github.com/ase-project/ase/internal/wire"
)

func TestFormatList(t *testing.T) {
	exp := time.Now().Add(4*time.Hour + 30*time.Second).UTC().Format(time.RFC3339)
	v := wire.ListView{Order: []string{"manual_blacklist", "decoy_blacklist"}, Sections: map[string][]wire.ListEntry{
		"manual_blacklist": {
			{Type: "cookie", Name: "SID", Value: "stolen", Tag: "manual", CreatedAt: "2026-12-01T10:00:00Z"},
			{Type: "ip", Value: "203.0.113.7", Tag: "manual", CreatedAt: "2026-12-01T10:00:03Z", ExpiresAt: exp, Reason: "port scan"},
			{Type: "ip", Value: "192.0.2.1", Tag: "manual"}, // stored by an earlier version
		},
	}}
	want := "manual blacklist : 3\n" +
		"  cookie SID stolen  tag manual  added 2026-12-01T10:00:00Z  expires never\n" +
		"  ip 203.0.113.7     tag manual  added 2026-12-01T10:00:03Z  expires " + exp + " (in 4h0m29s)  reason port scan\n" +
		"  ip 192.0.2.1       tag manual  added unknown               expires never\n" +
		"decoy blacklist : 0\n"
	got := formatList(v)
	// The time left is counted from now: a second may pass.
	if got != want && got != stringsReplace(want, "4h0m29s", "4h0m28s") {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}

func stringsReplace(s, old, new string) string {
	for i := 0; i+len(old) <= len(s); i++ {
		if s[i:i+len(old)] == old {
			return s[:i] + new + s[i+len(old):]
		}
	}
	return s
}

func TestFormatCheck(t *testing.T) {
	for _, tt := range []struct {
		name string
		r    wire.Check
		want string
	}{
		{"denied", wire.Check{Type: "ip", Value: "203.0.113.9", Verdict: wire.VerdictDenied, List: "blacklist", Firewall: "enabled",
			Blacklist: []wire.ListEntry{
				{Type: "ip", Value: "203.0.113.0/24", Tag: "manual", CreatedAt: "2026-12-01T10:00:01Z"},
				{Type: "ip", Value: "203.0.0.0/16", Tag: "decoy", CreatedAt: "2026-12-01T10:00:02Z", Reason: "requested a decoy path"},
			}},
			"ip 203.0.113.9 : denied by the blacklist\n" +
				"  blacklist : ip 203.0.113.0/24  tag manual  added 2026-12-01T10:00:01Z  expires never                                 <- decides\n" +
				"  blacklist : ip 203.0.0.0/16    tag decoy   added 2026-12-01T10:00:02Z  expires never  reason requested a decoy path\n"},
		{"allowed over the blacklist", wire.Check{Type: "cookie", Name: "SID", Value: "v", Verdict: wire.VerdictAllowed, List: "whitelist", Firewall: "disabled",
			Whitelist: []wire.ListEntry{{Type: "cookie", Name: "SID", Value: "v", Tag: "manual", CreatedAt: "2026-12-01T10:00:01Z", Reason: "ops"}},
			Blacklist: []wire.ListEntry{{Type: "cookie", Name: "SID", Value: "v", Tag: "manual", CreatedAt: "2026-12-01T10:00:01Z"}}},
			"cookie SID v : allowed by the whitelist (it wins over the blacklist)\n" +
				"  whitelist : cookie SID v  tag manual  added 2026-12-01T10:00:01Z  expires never  reason ops  <- decides\n" +
				"  blacklist : cookie SID v  tag manual  added 2026-12-01T10:00:01Z  expires never\n" +
				"note : the firewall is disabled: nothing is blocked until it is enabled\n"},
		{"not listed", wire.Check{Type: "username", Value: "bob", Verdict: wire.VerdictNotListed, Firewall: "enabled"},
			"username bob : not listed\n"},
	} {
		if got := formatCheck(tt.r); got != tt.want {
			t.Errorf("%s: got\n%s\nwant\n%s", tt.name, got, tt.want)
		}
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{"tok-04": "tok-04", "10.0.0.0/8": "10.0.0.0/8", "a b": "'a b'", "it's": `'it'\''s'`, "": "''"} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}
