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

// A batch of lines (the access log writes in batches) is split at line
// ends so no file passes MaxSize, and a line longer than MaxSize gets a
// file of its own, whole.
func TestBatchesSplitAtLineEnds(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.log")
	f, err := Open(path, 100, 10, false)
	if err != nil {
		t.Fatal(err)
	}
	line := strings.Repeat("y", 29) + "\n" // 30 bytes: three fit in 100
	long := strings.Repeat("z", 149) + "\n"
	batch := strings.Repeat(line, 5) + long + strings.Repeat(line, 2)
	if n, err := f.Write([]byte(batch)); err != nil || n != len(batch) {
		t.Fatalf("wrote %d of %d: %v", n, len(batch), err)
	}
	f.Close()
	var got []string
	for _, name := range []string{"a.log.3", "a.log.2", "a.log.1", "a.log"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(b))
	}
	want := []string{strings.Repeat(line, 3), strings.Repeat(line, 2), long, strings.Repeat(line, 2)}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("got files %q\nwant %q", got, want)
	}
}
