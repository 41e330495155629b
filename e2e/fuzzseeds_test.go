package e2e

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestEveryFuzzTargetHasSeeds keeps the README's promise of seed corpora
// under each package's testdata/fuzz: every fuzz target in the module is
// named in the README and has a directory testdata/fuzz/<Name> beside its
// test file, holding at least one seed in the format go test reads ("go
// test fuzz v1"). Plain go test
// runs those seeds, so each target's edge cases and past findings are
// checked on every run, not only while fuzzing.
func TestEveryFuzzTargetHasSeeds(t *testing.T) {
	const root = ".."
	found := map[string]string{} // "dir Name" -> test file
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (strings.HasPrefix(name, ".") || name == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		for _, decl := range f.Decls {
			if fn, ok := decl.(*ast.FuncDecl); ok && isFuzzTarget(fn) {
				found[filepath.Dir(path)+" "+fn.Name.Name] = path
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if found[filepath.Join(root, "internal", "h1")+" FuzzParseRequest"] == "" {
		t.Fatalf("the walk did not find h1's FuzzParseRequest; found %d targets", len(found))
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for key, file := range found {
		dir, name, _ := strings.Cut(key, " ")
		if !strings.Contains(string(readme), "`"+name+"`") {
			t.Errorf("%s (%s) is not among the README's fuzz targets", name, file)
		}
		corpus := filepath.Join(dir, "testdata", "fuzz", name)
		entries, err := os.ReadDir(corpus)
		if err != nil || len(entries) == 0 {
			t.Errorf("%s (%s) has no seed corpus: %s is missing or empty", name, file, corpus)
			continue
		}
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join(corpus, e.Name()))
			if err != nil || !strings.HasPrefix(string(b), "go test fuzz v1\n") {
				t.Errorf("%s: seed %s is not in the go test fuzz v1 format (%v)", name, filepath.Join(corpus, e.Name()), err)
			}
		}
	}
	t.Logf("%d fuzz targets, each with its seeds", len(found))
}

// isFuzzTarget reports whether fn is func FuzzXxx(f *testing.F).
func isFuzzTarget(fn *ast.FuncDecl) bool {
	if fn.Recv != nil || !strings.HasPrefix(fn.Name.Name, "Fuzz") || len(fn.Type.Params.List) != 1 || len(fn.Type.Params.List[0].Names) > 1 {
		return false
	}
	star, ok := fn.Type.Params.List[0].Type.(*ast.StarExpr)
	if !ok {
		return false
	}
	sel, ok := star.X.(*ast.SelectorExpr)
	if !ok || sel.Sel.Name != "F" {
		return false
	}
	pkg, ok := sel.X.(*ast.Ident)
	return ok && pkg.Name == "testing"
}
