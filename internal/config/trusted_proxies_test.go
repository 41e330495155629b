package config

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestTrustedProxies(t *testing.T) {
	tests := []struct{ in, want, err string }{
		{"", "", ""},
		{"  ", "", ""},
		{"10.0.0.0/8", "10.0.0.0/8", ""},
		{" 127.0.0.1 , ::1,2001:db8::/32", "127.0.0.1/32,::1/128,2001:db8::/32", ""},
		{"::ffff:192.0.2.0/120,::ffff:198.51.100.7", "192.0.2.0/24,198.51.100.7/32", ""},
		{"0.0.0.0/0", "0.0.0.0/0", ""},
		{"10.0.0.1/8", "", `"10.0.0.1/8" has bits set past its length (10.0.0.0/8 or 10.0.0.1/32?)`},
		{"10.0.0.0/33", "", `"10.0.0.0/33" is not an IP address or CIDR range`},
		{"10.0.0.0/8,", "", "has an empty entry"},
		{"fe80::1%eth0", "", `"fe80::1%eth0" is not an IP address or CIDR range`},
		{"fe80::%eth0/64", "", `"fe80::%eth0/64" is not an IP address or CIDR range`},
		{"example.com", "", `"example.com" is not an IP address or CIDR range`},
	}
	for _, tt := range tests {
		c, err := Parse("ase.conf", []byte("trusted_proxies="+tt.in+"\n"), func(string) (string, bool) { return "", false })
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) || !strings.Contains(err.Error(), "trusted_proxies") {
				t.Errorf("%q: got %v, want an error with %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tt.in, err)
			continue
		}
		if got := lookup("trusted_proxies").get(c); got != tt.want {
			t.Errorf("%q: got %q, want %q", tt.in, got, tt.want)
		}
	}
}

// FuzzTrustedProxies: what parseProxies accepts is a list of masked,
// unmapped ranges, one per entry, each holding its entry's address, and
// its written form reads back the same.
func FuzzTrustedProxies(f *testing.F) {
	for _, s := range []string{"10.0.0.0/8", "127.0.0.1, ::1", "::ffff:10.0.0.0/104", "10.0.0.1/8", "1.2.3.4/0", ",", "::/0,0.0.0.0/0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		ps, err := parseProxies(v)
		if err != nil {
			return
		}
		entries := strings.Split(v, ",")
		if strings.TrimSpace(v) == "" {
			entries = nil
		}
		if len(ps) != len(entries) {
			t.Fatalf("%q: %d ranges for %d entries", v, len(ps), len(entries))
		}
		for i, p := range ps {
			if !p.IsValid() || p != p.Masked() || p.Addr().Is4In6() || p.Addr().Zone() != "" {
				t.Fatalf("%q: range %v is not canonical", v, p)
			}
			e := strings.TrimSpace(entries[i])
			a, err := netip.ParseAddr(strings.Split(e, "/")[0])
			if err != nil || !p.Contains(a.Unmap()) {
				t.Fatalf("%q: range %v does not hold its entry %q", v, p, e)
			}
		}
		s := make([]string, len(ps))
		for i, p := range ps {
			s[i] = p.String()
		}
		again, err := parseProxies(strings.Join(s, ","))
		if err != nil || !slices.Equal(again, ps) {
			t.Fatalf("%q: written %q, read back %v, %v", v, s, again, err)
		}
	})
}
