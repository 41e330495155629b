package e2e

import (
	"encoding/json"
	"sort"
	"strings"
	"testing"

	"github.com/ase-project/ase/internal/admin"
)

// TestOpenAPIMatchesRouteTable checks the served description against the
// route table both ways: every route is described, and nothing else is.
func TestOpenAPIMatchesRouteTable(t *testing.T) {
	i := startInstance(t, nil)
	r := i.as("GET", "/v5/ase/openapi.json", "", nil) // no credentials needed
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if r.Code != 200 {
		t.Fatalf("got %d", r.Code)
	}
	decode(t, r, &doc)
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi %q", doc.OpenAPI)
	}
	var described, routes []string
	for p, ops := range doc.Paths {
		for m := range ops {
			described = append(described, strings.ToUpper(m)+" "+p)
		}
	}
	for _, rt := range admin.RouteTable() {
		for _, p := range rt.FullPaths() {
			routes = append(routes, rt.Method+" "+p)
		}
	}
	sort.Strings(described)
	sort.Strings(routes)
	if strings.Join(described, "\n") != strings.Join(routes, "\n") {
		t.Fatalf("the description and the route table differ:\ndescribed %v\nroutes    %v", described, routes)
	}
	// And each described operation answers: not a 404 "no such endpoint".
	for _, d := range described {
		method, path, _ := strings.Cut(d, " ")
		path = strings.NewReplacer("{name}", "nobody", "{key}", "nokey").Replace(path)
		if r := i.Do(method, path, "", nil); r.Code == 404 && strings.Contains(string(r.Body), "no such endpoint") {
			t.Fatalf("%s is described but not served", d)
		}
	}
}
