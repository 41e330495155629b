// Package console is the operator's console: a page application served by
// ASE itself on the management port under /ui/, from files embedded in the
// binary (no separate server, no build step). It reads and changes
// everything through the management API that exists, with the operator's
// session (the session_id cookie of GET /api/authentication): it adds no
// second write path, and a read user's changes are refused by the API as
// they would be from any client.
//
// Safe by default: every answer carries a Content-Security-Policy that
// allows only the console's own files (no inline script or style, no
// other origin, no framing), X-Frame-Options DENY, nosniff and no
// referrer; changes from another site's page are refused by the
// management API itself (admin.crossSite).
package console

import (
	"embed"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"sort"
	"strings"
)

//go:embed ui
var files embed.FS

// Prefix is where the console is served.
const Prefix = "/ui/"

// CSP is the console's Content-Security-Policy.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// Handler serves the console's files.
func Handler() http.Handler {
	ui, err := fs.Sub(files, "ui")
	if err != nil {
		panic(err)
	}
	index := indexPage(ui)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", CSP)
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cache-Control", "no-cache")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			http.Error(w, "the console's files are read with GET", http.StatusMethodNotAllowed)
			return
		}
		name := strings.TrimPrefix(r.URL.Path, strings.TrimSuffix(Prefix, "/"))
		name = strings.TrimPrefix(path.Clean("/"+name), "/")
		if name == "" {
			name = "index.html"
		}
		b, err := fs.ReadFile(ui, name)
		if name == "index.html" {
			b = index
		}
		if err != nil {
			http.Error(w, "no such file in the console: "+name, http.StatusNotFound)
			return
		}
		ct := mime.TypeByExtension(path.Ext(name))
		if ct == "" {
			ct = "application/octet-stream"
		}
		h.Set("Content-Type", ct)
		w.Write(b)
	})
}

// indexPage is index.html with a script tag for each page of ui/pages, in
// the order of their names: a page is added by adding its file.
func indexPage(ui fs.FS) []byte {
	b, err := fs.ReadFile(ui, "index.html")
	if err != nil {
		panic(err)
	}
	names, err := fs.Glob(ui, "pages/*.js")
	if err != nil {
		panic(err)
	}
	sort.Strings(names)
	var tags strings.Builder
	for _, n := range names {
		fmt.Fprintf(&tags, "<script src=%q defer></script>\n", n)
	}
	return []byte(strings.Replace(string(b), "<!--pages-->", tags.String(), 1))
}
