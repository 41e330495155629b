package logfile

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "logs", "access.log")
	f, err := Open(path, 100, 2, false)
	if err != nil {
		t.Fatal(err)
	}
	line := strings.Repeat("x", 39) + "\n" // 40 bytes: two fit in 100, three do not
	for i := 0; i < 7; i++ {
		if _, err := fmt.Fprint(f, line); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	sizes := map[string]int64{}
	for _, name := range []string{"access.log", "access.log.1", "access.log.2", "access.log.3"} {
		st, err := os.Stat(filepath.Join(dir, "logs", name))
		if err == nil {
			sizes[name] = st.Size()
		}
	}
	want := map[string]int64{"access.log": 40, "access.log.1": 80, "access.log.2": 80}
	if fmt.Sprint(sizes) != fmt.Sprint(want) {
		t.Fatalf("got files %v, want %v", sizes, want)
	}
	if _, err := f.Write([]byte("late\n")); err == nil {
		t.Fatal("write after Close succeeded")
	}
}

func TestAppendsToExisting(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.log")
	os.WriteFile(path, []byte("old\n"), 0o600)
	f, err := Open(path, 1<<20, 3, true)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("new\n"))
	f.Close()
	if b, _ := os.ReadFile(path); string(b) != "old\nnew\n" {
		t.Fatalf("got %q", b)
	}
}
