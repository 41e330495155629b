package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

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
	confs, apis := 0, 0
	for _, doc := range docs {
		for n, block := range fencedBlocks(t, doc, "ini") {
			if _, err := config.Parse(doc, []byte(block), nil); err != nil {
				t.Errorf("%s: ini block %d: %v", doc, n+1, err)
			}
			confs++
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
	if confs < 3 || apis < 3 {
		t.Fatalf("only %d configuration and %d API examples found: the guides lost their examples", confs, apis)
	}
}
