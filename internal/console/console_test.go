package console

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func get(t *testing.T, method, path string) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	Handler().ServeHTTP(w, httptest.NewRequest(method, path, nil))
	return w
}

// TestFiles: the index loads every page's script, in order; every answer
// carries the policy headers; nothing outside ui/ is served; only GET and
// HEAD are answered.
func TestFiles(t *testing.T) {
	w := get(t, "GET", "/ui/")
	body := w.Body.String()
	if w.Code != 200 || !strings.Contains(w.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("index: %d %s", w.Code, w.Header())
	}
	over, apis := strings.Index(body, `src="pages/10-overview.js"`), strings.Index(body, `src="pages/20-apis.js"`)
	if over < 0 || apis < over || strings.Index(body, `src="app.js"`) > over || strings.Contains(body, "<!--pages-->") {
		t.Fatalf("the index does not load app.js, then the pages in order:\n%s", body)
	}
	for _, path := range []string{"/ui/", "/ui/app.js", "/ui/nothing", "/ui/../console.go"} {
		w := get(t, "GET", path)
		h := w.Header()
		if h.Get("Content-Security-Policy") != CSP || h.Get("X-Frame-Options") != "DENY" || h.Get("X-Content-Type-Options") != "nosniff" {
			t.Fatalf("%s: headers %v", path, h)
		}
	}
	if w := get(t, "GET", "/ui/app.js"); w.Code != 200 || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/javascript") {
		t.Fatalf("app.js: %d %s", w.Code, w.Header().Get("Content-Type"))
	}
	for _, path := range []string{"/ui/nothing", "/ui/../console.go", "/ui/%2e%2e/console.go"} {
		if w := get(t, "GET", path); w.Code != http.StatusNotFound {
			t.Fatalf("%s: %d", path, w.Code)
		}
	}
	if w := get(t, "POST", "/ui/"); w.Code != http.StatusMethodNotAllowed {
		t.Fatalf("POST: %d", w.Code)
	}
}
