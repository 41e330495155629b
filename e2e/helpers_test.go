package e2e

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
)

// seed reads one of the vendor's example documents kept with apidef.
func seed(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile("../internal/apidef/testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// wantJSON checks a reply's code and that its body equals want as JSON.
func wantJSON(t testing.TB, r Reply, code int, want string) {
	t.Helper()
	if r.Code != code {
		t.Fatalf("got HTTP %d, want %d; body %s", r.Code, code, r.Body)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("got Content-Type %q, want application/json", ct)
	}
	var got, exp any
	if err := json.Unmarshal(r.Body, &got); err != nil {
		t.Fatalf("reply is not JSON: %v: %s", err, r.Body)
	}
	if err := json.Unmarshal([]byte(want), &exp); err != nil {
		t.Fatalf("bad expectation %s: %v", want, err)
	}
	if !reflect.DeepEqual(got, exp) {
		t.Fatalf("got %s\nwant %s", r.Body, want)
	}
}

// wantStatus checks a {"status", "status_message"} reply. A message
// ending in "*" is matched as a prefix.
func wantStatus(t testing.TB, r Reply, code int, status, message string) {
	t.Helper()
	if r.Code != code {
		t.Fatalf("got HTTP %d, want %d; body %s", r.Code, code, r.Body)
	}
	var s struct {
		Status  string `json:"status"`
		Message string `json:"status_message"`
	}
	if err := json.Unmarshal(r.Body, &s); err != nil {
		t.Fatalf("reply is not JSON: %v: %s", err, r.Body)
	}
	if s.Status != status {
		t.Fatalf("got status %q, want %q; body %s", s.Status, status, r.Body)
	}
	if p, ok := strings.CutSuffix(message, "*"); ok {
		if !strings.HasPrefix(s.Message, p) {
			t.Fatalf("got message %q, want prefix %q", s.Message, p)
		}
	} else if s.Message != message {
		t.Fatalf("got message %q, want %q", s.Message, message)
	}
}

// decode unmarshals a reply body.
func decode(t testing.TB, r Reply, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("reply is not JSON: %v: %s", err, r.Body)
	}
}

// apiDoc returns a minimal API definition with the given url and extra
// metadata fields (a JSON fragment without braces).
func apiDoc(url, extra string) string {
	if extra != "" {
		extra = ", " + extra
	}
	return `{"api_metadata": {"url": "` + url + `"` + extra + `}}`
}
