package admin

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ase-project/ase/internal/lockout"
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

// FuzzSessionCookie: the session a login sets (Set-Cookie, written by
// net/http) is the session read back from the Cookie a client returns,
// wherever it stands among other cookies, or from a session_id header;
// nothing is read that the request does not hold. The same for the token
// of "Authorization: apikey <token>".
func FuzzSessionCookie(f *testing.F) {
	f.Add("session_id=0123abcd; theme=dark", "")
	f.Add("a=b", "abc")
	f.Fuzz(func(t *testing.T, cookie, header string) {
		r, _ := http.NewRequest("GET", "/", nil)
		r.Header.Set("Cookie", cookie)
		if header != "" {
			r.Header.Set("session_id", header)
		}
		got := sessionID(r)
		switch {
		case header != "":
			if got != strings.TrimSpace(header) {
				t.Fatalf("session_id header %q: got session %q, want %q", header, got, strings.TrimSpace(header))
			}
		case !strings.Contains(cookie, "session_id"):
			if got != "" {
				t.Fatalf("Cookie %q names no session_id; got session %q", cookie, got)
			}
		case !strings.Contains(cookie, got):
			t.Fatalf("Cookie %q: got session %q, which it does not hold", cookie, got)
		}

		// Round trip: header as a session's ID, cookie as the client's
		// other cookies.
		id := header
		if id == "" || strings.ContainsFunc(id, func(r rune) bool { return r < 0x20 || r >= 0x7f || r == '"' || r == ';' || r == '\\' }) {
			return // net/http would not set it as it is
		}
		set := (&http.Cookie{Name: "session_id", Value: id}).String()
		if strings.Count(cookie, ";") >= 2998 {
			return // net/http reads no cookie of a header with over 3,000
		}
		others := &http.Request{Header: http.Header{"Cookie": {cookie}}}
		for _, c := range []string{set, set + "; " + cookie, cookie + "; " + set} {
			if c == cookie+"; "+set && len(others.CookiesNamed("session_id")) > 0 {
				continue // the first one counts
			}
			r, _ := http.NewRequest("GET", "/", nil)
			r.Header.Set("Cookie", c)
			if got := sessionID(r); got != id {
				t.Fatalf("Set-Cookie %q, then Cookie %q: got session %q, want %q", set, c, got, id)
			}
		}
		if id == strings.TrimSpace(id) {
			r, _ := http.NewRequest("GET", "/", nil)
			r.Header.Set("session_id", " "+id+"\t")
			if got := sessionID(r); got != id {
				t.Fatalf("session_id header %q: got session %q, want %q", " "+id+"\t", got, id)
			}
			for _, scheme := range []string{"apikey ", "ApiKey  "} {
				if tok, ok := apiKeyToken(scheme + id); !ok || tok != id {
					t.Fatalf("apiKeyToken(%q) = %q, %v, want %q", scheme+id, tok, ok, id)
				}
			}
		}
		if tok, ok := apiKeyToken(header); ok {
			h := strings.TrimSpace(header)
			if tok == "" || tok != strings.TrimSpace(tok) || !strings.HasSuffix(h, tok) || !strings.EqualFold(h[:len("apikey ")], "apikey ") {
				t.Fatalf("apiKeyToken(%q) = %q: not the token after the scheme", header, tok)
			}
		}
	})
}

// Guesses are counted before they are checked: with 200 at once, the
// first Limit hold every slot while they are checked, the others wait,
// and when those fail the others are refused unchecked.
func TestGuardedChecksAtMostLimit(t *testing.T) {
	h := New(Deps{Guard: lockout.New(), Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Sleep: func(context.Context, time.Duration) {}})
	const n, right = 200, 100
	entered := make(chan int, n)
	gate := make(chan struct{})
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := httptest.NewRequest("GET", "/v5/ase/api", nil)
			r.RemoteAddr = "127.0.0.1:4000"
			c := &call{ctx: context.Background(), h: h, r: r, route: &Route{}}
			errs[i] = h.guarded(c, "authorization failure", func() bool {
				entered <- i
				<-gate
				return i == right
			})
		}()
	}
	// Limit checks in progress at once, and no more: wait for them,
	// then let them end.
	for k := 0; k < lockout.DefaultLimit; k++ {
		<-entered
	}
	close(gate)
	wg.Wait()
	close(entered)
	checked := lockout.DefaultLimit + len(entered)
	failures, locked := 0, 0
	for i, err := range errs {
		var e *Error
		switch {
		case err == nil && i == right:
		case errors.As(err, &e) && e.Code == http.StatusForbidden:
			failures++
		case errors.As(err, &e) && e.Code == http.StatusTooManyRequests:
			locked++
		default:
			t.Fatalf("guess %d: %v", i, err)
		}
	}
	// The Limit-th failure is answered with the lock's 429.
	if wrong := checked - boolInt(errs[right] == nil); wrong != lockout.DefaultLimit || failures != lockout.DefaultLimit-1 {
		t.Fatalf("%d guesses checked (%d wrong, %d answered 403, %d 429); want %d wrong ones checked", checked, wrong, failures, locked, lockout.DefaultLimit)
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestDuplicateCredentials(t *testing.T) {
	tests := []struct {
		headers [][2]string
		refused bool
	}{
		{[][2]string{{"x-ase-access-key", "admin"}, {"x-ase-secret-key", "a"}}, false},
		{[][2]string{{"x-ase-secret-key", "a"}, {"X-Ase-Secret-Key", "b"}}, true},
		{[][2]string{{"x-ase-access-key", "admin"}, {"x-ase-access-key", "admin"}}, true},
		{[][2]string{{"Authorization", "apikey a"}, {"authorization", "apikey b"}}, true},
		{[][2]string{{"Cookie", "session_id=a; theme=dark"}}, false},
		{[][2]string{{"Cookie", "session_id=a; session_id=b"}}, true},
		{[][2]string{{"Cookie", "session_id=a"}, {"Cookie", "session_id=a"}}, true},
		{[][2]string{{"session_id", "a"}, {"Cookie", "session_id=a"}}, true},
		{[][2]string{{"session_id", "a"}, {"session_id", "b"}}, true},
		{[][2]string{{"session_id", "a"}, {"Cookie", "other=b"}, {"Authorization", "apikey x"}}, false},
	}
	for _, tt := range tests {
		for _, abs := range []bool{false, true} {
			r := httptest.NewRequest("GET", "/", nil)
			for _, h := range tt.headers {
				r.Header.Add(h[0], h[1])
			}
			err := duplicateCredential(&call{r: r, route: &Route{Abs: abs}})
			var e *Error
			if got := errors.As(err, &e); got != tt.refused || got && (e.Code != http.StatusBadRequest || !strings.Contains(e.Message, "more than once")) {
				t.Errorf("%v: got %v", tt.headers, err)
			}
		}
	}
}
