package engine

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/ase-project/ase/internal/apidef"
)

func TestClientIP(t *testing.T) {
	peer := netip.MustParseAddr("10.0.0.1")
	tests := []struct {
		name, xReal, xff string
		trust            bool
		want             string
	}{
		{"untrusted ignores headers", "1.1.1.1", "2.2.2.2", false, "10.0.0.1"},
		{"x-real-ip first", "1.1.1.1", "2.2.2.2", true, "1.1.1.1"},
		{"right-most xff", "", "6.6.6.6, 3.3.3.3", true, "3.3.3.3"},
		{"xff with port", "", "3.3.3.3:4444", true, "3.3.3.3"},
		{"xff v6 with port", "", "[2001:db8::1]:80", true, "2001:db8::1"},
		{"mapped", "::ffff:4.4.4.4", "", true, "4.4.4.4"},
		{"garbage falls back", "x", "y, z", true, "10.0.0.1"},
		{"garbage x-real-ip uses xff", "nope", "5.5.5.5", true, "5.5.5.5"},
		{"empty", "", "", true, "10.0.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ClientIP(peer, tt.xReal, tt.xff, tt.trust); got.String() != tt.want {
				t.Fatalf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestBearerToken(t *testing.T) {
	for in, want := range map[string]string{
		"Bearer abc":     "abc",
		"bearer  abc ":   "abc",
		"BEARER x.y.z":   "x.y.z",
		"Basic dXNlcg==": "",
		"Bearer":         "",
		"Bearer ":        "",
		"":               "",
		"Bearerabc":      "",
	} {
		if got := BearerToken(in); got != want {
			t.Errorf("BearerToken(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCookieValue(t *testing.T) {
	tests := []struct{ header, name, want string }{
		{"JSESSIONID=abc", "JSESSIONID", "abc"},
		{"a=1; JSESSIONID=abc; b=2", "JSESSIONID", "abc"},
		{"a=1;JSESSIONID = \"abc\" ", "JSESSIONID", "abc"},
		{"XJSESSIONID=no; JSESSIONID=yes", "JSESSIONID", "yes"},
		{"jsessionid=no", "JSESSIONID", ""},
		{"JSESSIONID", "JSESSIONID", ""},
		{"a=1; JSESSIONID=first; JSESSIONID=second", "JSESSIONID", "first"},
		{"", "JSESSIONID", ""},
	}
	for _, tt := range tests {
		if got := CookieValue(tt.header, tt.name); got != tt.want {
			t.Errorf("CookieValue(%q, %q) = %q, want %q", tt.header, tt.name, got, tt.want)
		}
	}
}

func TestQueryValue(t *testing.T) {
	tests := []struct{ q, name, want string }{
		{"apikey=k1", "apikey", "k1"},
		{"a=1&apikey=k%2F1&apikey=k2", "apikey", "k/1"},
		{"api%6Bey=k3", "apikey", "k3"},
		{"apikey=a+b", "apikey", "a b"},
		{"apikey=%zz", "apikey", ""},
		{"apikeys=x", "apikey", ""},
		{"apikey", "apikey", ""},
	}
	for _, tt := range tests {
		if got := QueryValue(tt.q, tt.name); got != tt.want {
			t.Errorf("QueryValue(%q, %q) = %q, want %q", tt.q, tt.name, got, tt.want)
		}
	}
}

func TestIdentify(t *testing.T) {
	api, err := apidef.Decode("a", []byte(`{"api_metadata": {"url": "/", "cookie": "SID", "oauth2_access_token": true, "apikey_header": "X-API-Key", "apikey_qs": "key"}}`))
	if err != nil {
		t.Fatal(err)
	}
	raw := &Raw{Peer: netip.MustParseAddr("10.0.0.1"), XForwardedFor: "1.1.1.1, 9.9.9.9", Cookie: "SID=s1", Authorization: "Bearer t1", APIKeyHeader: "k1", RawQuery: "key=k2", Username: "bob"}
	id := Identify(api, raw, true)
	if id.IP.String() != "9.9.9.9" || id.Cookie != "s1" || id.CookieName != "SID" || id.Token != "t1" || id.APIKey != "k1" || id.APIKeyName != "x-api-key" || id.Username != "bob" {
		t.Fatalf("got %+v", id)
	}
	raw.APIKeyHeader = ""
	id = Identify(api, raw, false)
	if id.IP.String() != "10.0.0.1" || id.APIKey != "k2" || id.APIKeyName != "key" {
		t.Fatalf("got %+v", id)
	}
	noTokens, _ := apidef.Decode("b", []byte(`{"api_metadata": {"url": "/"}}`))
	if id := Identify(noTokens, raw, false); id.Token != "" || id.Cookie != "" || id.APIKey != "" {
		t.Fatalf("identities extracted for an API that uses none: %+v", id)
	}
}

func TestIdentifyDoesNotAllocate(t *testing.T) {
	api, _ := apidef.Decode("a", []byte(`{"api_metadata": {"url": "/", "cookie": "SID", "oauth2_access_token": true, "apikey_header": "X-API-Key"}}`))
	raw := &Raw{Peer: netip.MustParseAddr("10.0.0.1"), XForwardedFor: "1.1.1.1", Cookie: "a=b; SID=s1", Authorization: "Bearer t1", APIKeyHeader: "k1"}
	if n := testing.AllocsPerRun(100, func() { Identify(api, raw, true) }); n != 0 {
		t.Fatalf("Identify allocates %v times", n)
	}
}

func FuzzCookieValue(f *testing.F) {
	f.Add("a=1; JSESSIONID=\"abc\"; b=2", "JSESSIONID")
	f.Add(";;=;", "")
	f.Fuzz(func(t *testing.T, header, name string) {
		v := CookieValue(header, name)
		if v != "" && !strings.Contains(header, v) {
			t.Fatalf("value %q is not in the header %q", v, header)
		}
		if strings.ContainsRune(v, ';') {
			t.Fatalf("value %q spans cookies", v)
		}
	})
}

func FuzzBearerToken(f *testing.F) {
	f.Add("Bearer abc")
	f.Add("bEaReR \t x")
	f.Fuzz(func(t *testing.T, auth string) {
		tok := BearerToken(auth)
		if tok != "" && (!strings.Contains(auth, tok) || tok != strings.TrimSpace(tok)) {
			t.Fatalf("token %q not a trimmed part of %q", tok, auth)
		}
	})
}

func FuzzClientIP(f *testing.F) {
	f.Add("1.1.1.1", "2.2.2.2, 3.3.3.3:80", true)
	f.Add("", "[::1]:8080", true)
	f.Fuzz(func(t *testing.T, xReal, xff string, trust bool) {
		peer := netip.MustParseAddr("10.0.0.1")
		got := ClientIP(peer, xReal, xff, trust)
		if !got.IsValid() || got.Is4In6() {
			t.Fatalf("got %v", got)
		}
		if !trust && got != peer {
			t.Fatalf("untrusted headers changed the client to %v", got)
		}
	})
}

func FuzzQueryValue(f *testing.F) {
	f.Add("a=1&apikey=k%2F1", "apikey")
	f.Fuzz(func(t *testing.T, q, name string) {
		QueryValue(q, name) // must not panic
	})
}
