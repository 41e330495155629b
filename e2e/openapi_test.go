package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
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
		OpenAPI string `json:"openapi"`
		Paths   map[string]map[string]struct {
			Responses map[string]json.RawMessage `json:"responses"`
		} `json:"paths"`
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
	// Each described operation answers (not a 404 "no such endpoint"),
	// and what it answers is documented: with the admin's credentials and
	// nothing else, for an API that does not exist, and with no
	// credentials at all.
	for _, d := range described {
		method, path, _ := strings.Cut(d, " ")
		responses := doc.Paths[path][strings.ToLower(method)].Responses
		path = strings.NewReplacer("{name}", "nobody", "{key}", "nokey").Replace(path)
		tries := []struct {
			what string
			r    Reply
		}{
			{"as admin", i.Do(method, path, "", nil)},
			{"as admin, api_id=nosuch", i.Do(method, path+"?api_id=nosuch", "", nil)},
			{"without credentials", i.as(method, path, "", nil)},
		}
		for _, try := range tries {
			if try.r.Code == 404 && strings.Contains(string(try.r.Body), "no such endpoint") {
				t.Fatalf("%s is described but not served", d)
			}
			if _, documented := responses[strconv.Itoa(try.r.Code)]; !documented && try.r.Code/100 != 2 {
				t.Errorf("%s %s: answered %d %s, which its description does not list", d, try.what, try.r.Code, try.r.Body)
			}
		}
	}
}

// redoclyBinary finds the Redocly CLI that scripts/deps.sh installs,
// installing it through that script when it is missing: the test never
// skips.
func redoclyBinary(t *testing.T) string {
	t.Helper()
	cache, err := os.UserCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(cache, "ase-test-tools", "redocly", "node_modules", ".bin", "redocly")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	cmd := exec.Command("../scripts/deps.sh")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("the Redocly CLI is missing and installing it failed: %v", err)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("the Redocly CLI is still missing after scripts/deps.sh: %v", err)
	}
	return bin
}

// TestOpenAPIPassesStrictLint runs the served description through a real
// linter, Redocly's, with its strictest built-in ruleset
// (recommended-strict: every rule an error), as a user generating a
// client from it would. Only info-license is skipped: the project states
// no license, and the description will not invent one.
func TestOpenAPIPassesStrictLint(t *testing.T) {
	redocly := redoclyBinary(t)
	i := startInstance(t, nil)
	r := i.as("GET", "/v5/ase/openapi.json", "", nil)
	if r.Code != 200 {
		t.Fatalf("got %d", r.Code)
	}
	dir := t.TempDir() // no redocly.yaml here: only the ruleset named below
	file := filepath.Join(dir, "openapi.json")
	if err := os.WriteFile(file, r.Body, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(redocly, "lint", "--extends=recommended-strict", "--skip-rule=info-license", "--max-problems=1000", "--format=stylish", file)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "REDOCLY_TELEMETRY=off", "REDOCLY_SUPPRESS_UPDATE_NOTICE=true", "NO_COLOR=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("redocly lint --extends=recommended-strict: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "valid") {
		t.Fatalf("redocly lint said nothing of validity:\n%s", out.String())
	}
}
