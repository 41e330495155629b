package admin

import (
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
)

func TestBasicAuth(t *testing.T) {
	enc := func(s string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(s)) }
	tests := []struct {
		header, user, password string
		ok                     bool
	}{
		{enc("alice:s3cret:with:colons"), "alice", "s3cret:with:colons", true},
		{"basic " + base64.StdEncoding.EncodeToString([]byte("bob:pw")), "bob", "pw", true},
		{enc(":pw"), "", "", false},
		{enc("alice:"), "", "", false},
		{enc("nocolon"), "", "", false},
		{"Basic !!!", "", "", false},
		{"Bearer x", "", "", false},
		{"", "", "", false},
		{enc("a\x00b:pw"), "", "", false},
	}
	for _, tt := range tests {
		u, p, err := basicAuth(tt.header)
		if (err == nil) != tt.ok || u != tt.user || p != tt.password {
			t.Errorf("basicAuth(%q) = %q, %q, %v", tt.header, u, p, err)
		}
	}
}

func FuzzBasicAuth(f *testing.F) {
	f.Add("Basic YWRtaW46YQ==")
	f.Add("basic Og==")
	f.Fuzz(func(t *testing.T, h string) {
		u, p, err := basicAuth(h)
		if err == nil && (u == "" || p == "" || strings.Contains(u, ":")) {
			t.Fatalf("accepted user %q password %q", u, p)
		}
	})
}

func FuzzSessionCookie(f *testing.F) {
	f.Add("session_id=0123abcd; theme=dark", "")
	f.Add("a=b", "abc")
	f.Fuzz(func(t *testing.T, cookie, header string) {
		r, _ := http.NewRequest("GET", "/", nil)
		r.Header.Set("Cookie", cookie)
		if header != "" {
			r.Header.Set("session_id", header)
		}
		sessionID(r) // must not panic
		apiKeyToken(header)
	})
}
