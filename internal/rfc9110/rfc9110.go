// Package rfc9110 holds the pieces of HTTP grammar that every parser of
// outside input checks: tokens (header names, cookie names, methods) and
// comma-separated lists of them (Connection values).
package rfc9110

import "bytes"

// tchar marks the bytes a token may contain (RFC 9110 section 5.6.2).
var tchar = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// IsToken reports whether s is a non-empty token. Callers bound its length
// themselves.
func IsToken[S ~string | ~[]byte](s S) bool {
	if len(s) == 0 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !tchar[s[i]] {
			return false
		}
	}
	return true
}

// NextItem splits the first item, trimmed of white space, off a
// comma-separated list.
func NextItem(list []byte) (item, rest []byte) {
	item = list
	if i := bytes.IndexByte(list, ','); i >= 0 {
		item, rest = list[:i], list[i+1:]
	}
	return bytes.TrimSpace(item), rest
}

// HasToken reports whether the comma-separated list names token, in any
// case, without allocating. An empty token is never named.
func HasToken(list, token []byte) bool {
	if len(token) == 0 {
		return false
	}
	for len(list) > 0 {
		var item []byte
		if item, list = NextItem(list); bytes.EqualFold(item, token) {
			return true
		}
	}
	return false
}
