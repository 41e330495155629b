package e2e

import (
	"encoding/json"
	"reflect"
	"testing"
)

// Decoy subpaths are full paths under the API's url, as the vendor's docs
// write them ("decoy_subpaths": ["/shop/root", "/shop/admin"] for url
// /shop). A subpath outside the url is read relative to it (the form
// earlier ASE versions documented), and one that could be either is
// refused.

func TestDecoyFullPathsInline(t *testing.T) {
	a := newBackend(t, "a", false)
	i := startInstance(t, nil)
	decoy := func(subpaths string) string {
		return `"decoy_config": {"decoy_enabled": true, "decoy_subpaths": ` + subpaths + `, "response_code": 200, "response_def": "OK", "response_message": "decoy"}`
	}
	apis := map[string]string{
		"shop": apiDoc("/shop", servers(a)+`, `+decoy(`["/shop/root", "/shop/admin"]`)), // the vendor's example
		"blog": apiDoc("/blog", servers(a)+`, `+decoy(`["/admin", "/.git"]`)),           // relative
		"app":  apiDoc("/app", servers(a)+`, `+decoy(`["/app/admin", "/backup", "/apprentice"]`)),
		"root": apiDoc("/", servers(a)+`, `+decoy(`["/private"]`)), // both readings coincide
	}
	for id, doc := range apis {
		wantJSON(t, i.Do("POST", "/v5/ase/api?api_id="+id, doc, nil), 200, ok)
	}
	tests := []struct {
		path  string
		decoy bool
	}{
		{"/shop/admin", true},
		{"/shop/admin/users", true},
		{"/shop/root", true},
		{"/shop/root/.ssh/id_rsa?x=1", true},
		{"/shop/shop/admin", false}, // what the relative reading made of the vendor's form
		{"/shop/administrator", false},
		{"/shop/items", false},
		{"/shop", false},
		{"/blog/admin", true},
		{"/blog/.git/config", true},
		{"/blog/posts", false},
		{"/app/admin", true},
		{"/app/backup/db.sql", true},
		{"/app/apprentice", true}, // "/apprentice" is not below "/app": relative
		{"/app/app/admin", false},
		{"/app/backups", false},
		{"/private/key", true},
		{"/public", false},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			before := a.count()
			r := i.get("GET", tt.path, nil)
			forwarded := a.count() > before
			if tt.decoy {
				if r.Code != 200 || string(r.Body) != "decoy" || forwarded {
					t.Fatalf("got %d %q, forwarded=%v; want the decoy answer, not forwarded", r.Code, r.Body, forwarded)
				}
				return
			}
			if r.Code != 200 || r.Header.Get("X-Backend") != "a" || !forwarded {
				t.Fatalf("got %d %q, forwarded=%v; want the backend's answer", r.Code, r.Body, forwarded)
			}
		})
	}
	// The definition reads back as the operator wrote it.
	for id, want := range map[string][]string{"shop": {"/shop/root", "/shop/admin"}, "blog": {"/admin", "/.git"}, "app": {"/app/admin", "/backup", "/apprentice"}} {
		var v struct {
			Meta struct {
				Decoy struct {
					Subpaths []string `json:"decoy_subpaths"`
				} `json:"decoy_config"`
			} `json:"api_metadata"`
		}
		r := i.Do("GET", "/v5/ase/api?api_id="+id, "", nil)
		if err := json.Unmarshal(r.Body, &v); err != nil || !reflect.DeepEqual(v.Meta.Decoy.Subpaths, want) {
			t.Fatalf("api %s reads back decoy_subpaths %v (%v), want %v: %s", id, v.Meta.Decoy.Subpaths, err, want, r.Body)
		}
	}
}

func TestDecoyFullPathsSideband(t *testing.T) {
	i := startInstance(t, map[string]string{"mode": "sideband"})
	wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=shop", apiDoc("/shop",
		`"decoy_config": {"decoy_enabled": true, "decoy_subpaths": ["/shop/root", "/shop/admin"], "response_code": 200, "response_message": "decoy"}`), nil), 200, ok)
	wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=blog", apiDoc("/blog",
		`"decoy_config": {"decoy_enabled": true, "decoy_subpaths": ["/admin"], "response_code": 200, "response_message": "decoy"}`), nil), 200, ok)
	tests := []struct {
		url, api string
		decoy    bool
	}{
		{"/shop/admin", "shop", true},
		{"http://shop.example.com/shop/root/x?y=1", "shop", true},
		{"/shop/shop/admin", "shop", false},
		{"/shop/items", "shop", false},
		{"/blog/admin/x", "blog", true},
		{"/blog/blog/admin", "blog", false},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			r := i.Data("POST", "/ase/request", aseCall("198.51.100.1", "GET", tt.url, ``), nil)
			if tt.decoy {
				wantJSON(t, r, 403, `{"decision": "block", "api_id": "`+tt.api+`", "reason": "decoy", "response": {"response_code": "200", "response_status": "OK", "headers": [{"content-type": "text/plain"}], "body": "decoy"}}`)
			} else {
				wantJSON(t, r, 200, `{"decision": "allow", "api_id": "`+tt.api+`"}`)
			}
		})
	}
	// The Authorize protocol and forward-auth decide the same way.
	wantJSON(t, i.Data("POST", "/sideband/request", `{"source_ip": "198.51.100.2", "method": "GET", "url": "/shop/admin", "body": ""}`, nil), 200,
		`{"response": {"response_code": "200", "response_status": "OK", "headers": [{"content-type": "text/plain"}], "body": "decoy"}}`)
	if r := i.Data("GET", "/ase/authz", "", map[string]string{"X-Original-URI": "/shop/root", "X-Real-IP": "198.51.100.3"}); r.Code != 403 || r.Header.Get("X-ASE-Reason") != "decoy" {
		t.Fatalf("forward-auth /shop/root: got %d reason %q", r.Code, r.Header.Get("X-ASE-Reason"))
	}
	if r := i.Data("GET", "/ase/authz", "", map[string]string{"X-Original-URI": "/shop/shop/root", "X-Real-IP": "198.51.100.3"}); r.Code != 200 {
		t.Fatalf("forward-auth /shop/shop/root: got %d reason %q", r.Code, r.Header.Get("X-ASE-Reason"))
	}
}

func TestDecoyAmbiguousSubpathsRefused(t *testing.T) {
	i := startInstance(t, nil)
	const field = "api_metadata.decoy_config.decoy_subpaths"
	tests := []struct {
		name, url, subpaths, message string
	}{
		{"the url itself", "/shop", `["/shop"]`,
			field + `[0]: "/shop" is ambiguous under url "/shop": as a full path it covers the whole API, relative to the url it is "/shop/shop"; write "/shop/shop" for that path, or leave decoy_subpaths empty to make the whole API a decoy`},
		{"the url with a slash", "/shop", `["/admin", "/shop/"]`,
			field + `[1]: "/shop" is ambiguous under url "/shop": as a full path it covers the whole API, relative to the url it is "/shop/shop"; write "/shop/shop" for that path, or leave decoy_subpaths empty to make the whole API a decoy`},
		{"above the url", "/api/v1", `["/api"]`,
			field + `[0]: "/api" is ambiguous under url "/api/v1": as a full path it covers the whole API, relative to the url it is "/api/v1/api"; write "/api/v1/api" for that path, or leave decoy_subpaths empty to make the whole API a decoy`},
		{"no leading slash", "/shop", `["shop/admin"]`,
			field + `[0]: must be a path starting with /, got "shop/admin"; write the full path it stands for: "/shop/admin" or "/shop/shop/admin"`},
		{"no leading slash, relative", "/shop", `["admin"]`,
			field + `[0]: must be a path starting with /, got "admin"; write the full path it stands for: "/shop/admin"`},
		{"both forms of one path", "/shop", `["/admin", "/shop/admin"]`,
			field + `[1]: "/shop/admin" is the path decoy_subpaths[0] already names`},
		{"the root", "/", `["/"]`,
			field + `[0]: must name a sub-path such as /admin (an empty list makes the whole API a decoy)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := apiDoc(tt.url, `"decoy_config": {"decoy_enabled": true, "decoy_subpaths": `+tt.subpaths+`}`)
			wantStatus(t, i.Do("POST", "/v5/ase/api?api_id=a", doc, nil), 403, "validation_error", tt.message)
		})
	}
	wantJSON(t, i.Do("GET", "/v5/ase/api", "", nil), 200, `{"api_count": "0", "api": []}`)
	// An update is checked the same way, and leaves the API as it was.
	wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=a", apiDoc("/shop", `"decoy_config": {"decoy_subpaths": ["/shop/admin"]}`), nil), 200, ok)
	wantStatus(t, i.Do("PUT", "/v5/ase/api?api_id=a", apiDoc("/shop", `"decoy_config": {"decoy_subpaths": ["/shop"]}`), nil), 403, "validation_error", field+`[0]: "/shop" is ambiguous*`)
}
