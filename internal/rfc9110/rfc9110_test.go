package rfc9110

import (
	"strings"
	"testing"
)

func TestIsToken(t *testing.T) {
	for _, s := range []string{"GET", "X-API-Key", "a!#$%&'*+-.^_`|~9Z"} {
		if !IsToken(s) || !IsToken([]byte(s)) {
			t.Errorf("%q is a token", s)
		}
	}
	for _, s := range []string{"", "bad header", "a:b", "é", "a\x00", "(x)", `"q"`, "a/b", "a,b"} {
		if IsToken(s) {
			t.Errorf("%q is not a token", s)
		}
	}
	// Exactly the RFC's tchar set, byte by byte.
	for c := 0; c < 256; c++ {
		want := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", byte(c)) >= 0
		if got := IsToken([]byte{byte(c)}); got != want {
			t.Errorf("byte %#x: got %v, want %v", c, got, want)
		}
	}
}
