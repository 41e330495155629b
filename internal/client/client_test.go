package client

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

func TestReplyError(t *testing.T) {
	for _, c := range []struct {
		name, body               string
		status, typ, msg, detail string
		keepsBody                bool
	}{
		{"vendor", `{"status": "api_not_found", "status_message": "api x does not exist"}`, "api_not_found", "", "api x does not exist", "", true},
		{"vendor with detail", `{"status": "validation_error", "status_message": "bad", "detail": "field"}`, "validation_error", "", "bad", "field", true},
		{"api", `{"error": {"type": "NotFound", "message": "user does not exist"}}`, "fail", "NotFound", "user does not exist", "", true},
		{"not json", `<html>proxy error</html>`, "fail", "", "HTTP 502: <html>proxy error</html>", "", false},
		{"json without a message", `{"x": 1}`, "fail", "", `HTTP 502: {"x": 1}`, "", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := replyError(502, []byte(c.body))
			if e.Status != c.status || e.Type != c.typ || e.Message != c.msg || e.Detail != c.detail || (e.Body != nil) != c.keepsBody {
				t.Fatalf("got %+v", e)
			}
		})
	}
}

// TestSession: a session client logs in once at its first call, then
// sends the session, never the access/secret key headers, and Logout ends
// it.
func TestSession(t *testing.T) {
	var mu sync.Mutex
	var calls []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.Header.Get("x-ase-access-key") != "" || r.Header.Get("x-ase-secret-key") != "" {
			t.Errorf("%s %s sent the access/secret key headers", r.Method, r.URL.Path)
		}
		switch {
		case r.Method == "GET" && r.URL.Path == "/api/authentication":
			if u, p, ok := r.BasicAuth(); !ok || u != "alice" || p != "pw-alice-1" {
				w.WriteHeader(401)
				w.Write([]byte(`{"error": {"type": "AuthenticationFailure", "message": "no"}}`))
				return
			}
			http.SetCookie(w, &http.Cookie{Name: "session_id", Value: "s1"})
			calls = append(calls, "login")
		case r.Header.Get("session_id") != "s1":
			t.Errorf("%s %s without the session", r.Method, r.URL.Path)
		default:
			calls = append(calls, r.Method+" "+r.URL.Path)
		}
		w.Write([]byte(`{"api_count": "0", "api": [], "items": [], "meta": {}}`))
	}))
	defer srv.Close()
	ctx := context.Background()

	c := New(srv.URL, "alice", "pw-alice-1")
	c.Session = true
	if _, err := c.ListAPIs(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ListUsers(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Logout(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Logout(ctx); err != nil { // nothing left to end
		t.Fatal(err)
	}
	want := []string{"login", "GET /v5/ase/api", "GET /api/configuration/aaa/local_database/users", "DELETE /api/authentication"}
	if len(calls) != len(want) {
		t.Fatalf("got %q, want %q", calls, want)
	}
	for i := range want {
		if calls[i] != want[i] {
			t.Fatalf("got %q, want %q", calls, want)
		}
	}

	bad := New(srv.URL, "alice", "wrong-password")
	bad.Session = true
	_, err := bad.ListAPIs(ctx)
	var ce *Error
	if !errors.As(err, &ce) || ce.Code != 401 || ce.Type != "AuthenticationFailure" {
		t.Fatalf("a failed login: got %v", err)
	}
}
