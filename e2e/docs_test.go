package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v2"

	"github.com/ase-project/ase/internal/apidef"
	"github.com/ase-project/ase/internal/config"
)

// fencedBlocks returns the bodies of the ```lang blocks of a Markdown file.
func fencedBlocks(t *testing.T, path, lang string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile("(?s)```" + regexp.QuoteMeta(lang) + "\n(.*?)```")
	var out []string
	for _, m := range re.FindAllStringSubmatch(string(b), -1) {
		out = append(out, m[1])
	}
	return out
}

// TestDocsExamplesAreValid keeps the guides true: every ase.conf example
// (```ini) parses, and every API definition example (```json with
// api_metadata) passes validation, so a reader who copies one gets a
// working file.
func TestDocsExamplesAreValid(t *testing.T) {
	docs, err := filepath.Glob("../docs/*.md")
	if err != nil || len(docs) == 0 {
		t.Fatalf("no guides: %v", err)
	}
	docs = append(docs, "../README.md")
	confs, apis, yamls := 0, 0, 0
	for _, doc := range docs {
		for n, block := range fencedBlocks(t, doc, "ini") {
			if _, err := config.Parse(doc, []byte(block), nil); err != nil {
				t.Errorf("%s: ini block %d: %v", doc, n+1, err)
			}
			confs++
		}
		// Gateway configurations (Traefik, Envoy, Kong, Prometheus) are at
		// least well-formed YAML.
		for n, block := range fencedBlocks(t, doc, "yaml") {
			var v map[string]any
			if err := yaml.Unmarshal([]byte(block), &v); err != nil || len(v) == 0 {
				t.Errorf("%s: yaml block %d: %v", doc, n+1, err)
			}
			yamls++
		}
		for n, block := range fencedBlocks(t, doc, "json") {
			if !strings.Contains(block, `"api_metadata"`) {
				continue
			}
			if _, err := apidef.Decode("example", []byte(block)); err != nil {
				t.Errorf("%s: json block %d: %v", doc, n+1, err)
			}
			apis++
		}
	}
	if confs < 3 || apis < 3 || yamls < 4 {
		t.Fatalf("only %d configuration, %d API and %d YAML examples found: the guides lost their examples", confs, apis, yamls)
	}
}

// TestSystemdUnitStartsASE: the unit's ExecStart is a command line this
// binary accepts (checked with --check on a configuration of ours), and the
// data directory it sets is the one it makes writable.
func TestSystemdUnitStartsASE(t *testing.T) {
	b, err := os.ReadFile("../docs/ase.service")
	if err != nil {
		t.Fatal(err)
	}
	unit := string(b)
	m := regexp.MustCompile(`(?m)^ExecStart=/usr/local/bin/ase (.*)$`).FindStringSubmatch(unit)
	if m == nil {
		t.Fatal("no ExecStart=/usr/local/bin/ase line")
	}
	if !strings.Contains(unit, "\nStateDirectory=ase\n") || !strings.Contains(unit, "\nEnvironment=ASE_DATA_DIR=/var/lib/ase\n") {
		t.Fatal("the data directory and the writable state directory differ")
	}
	i := newInstance(t, nil)
	i.writeConf()
	args := strings.Fields(strings.Replace(m[1], "/etc/ase/ase.conf", i.ConfPath, 1))
	stdout, stderr, code := i.CLIEnv([]string{"ASE_DATA_DIR=" + filepath.Join(i.Dir, "state")}, "", append(args, "--check")...)
	if code != 0 || !strings.Contains(stdout, "data_dir="+filepath.Join(i.Dir, "state")+"\n") {
		t.Fatalf("ase %v --check: %d %q %q", args, code, stdout, stderr)
	}
}
