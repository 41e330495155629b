//go:build linux

// strace, and so these tests, are Linux's.

package powercut

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// helperEnv makes the test binary run helper instead of the tests.
const helperEnv = "POWERCUT_TEST_HELPER"

func TestMain(m *testing.M) {
	if dir := os.Getenv(helperEnv); dir != "" {
		if err := helper(dir); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// helper makes dir/sub/f with the writes and syncs TestReplay expects,
// writing "mark X\n" to stdout at each point it cuts at.
func helper(dir string) error {
	sub := filepath.Join(dir, "sub")
	if err := os.MkdirAll(sub, 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(sub, "f"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	syncDir := func(d string) error {
		df, err := os.Open(d)
		if err != nil {
			return err
		}
		defer df.Close()
		return df.Sync()
	}
	mark := func(s string) { os.Stdout.WriteString("mark " + s + "\n") }
	steps := []func() error{
		func() error { return syncDir(sub) },
		func() error { mark("A"); return syncDir(dir) },
		func() error { mark("B"); _, err := f.WriteAt([]byte("one"), 0); return err },
		func() error { mark("C"); return f.Sync() },
		func() error { mark("D"); _, err := f.WriteAt([]byte("TWO"), 1); return err },
		func() error { return f.Truncate(10) },
		func() error { mark("E"); return syscall.Fdatasync(int(f.Fd())) },
		func() error { mark("F"); return f.Close() },
	}
	for _, s := range steps {
		if err := s(); err != nil {
			return err
		}
	}
	return nil
}

// TestReplay runs helper under strace and checks, at each mark, what a
// power cut there leaves.
func TestReplay(t *testing.T) {
	strace, err := Strace("../../scripts/deps.sh")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if dir, err = filepath.EvalSymlinks(dir); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(t.TempDir(), "strace.log")
	cmd := Command(strace, logPath, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+dir)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	l := parseFile(t, logPath)
	marks := marks(t, l, "mark ")
	tests := []struct {
		mark   string
		exists bool
		data   string
	}{
		{"A", false, ""},   // sub/f synced into sub, but sub not into dir
		{"B", true, ""},    // both entries synced, nothing written
		{"C", true, ""},    // "one" written, not synced
		{"D", true, "one"}, // fsynced
		{"E", true, "one"}, // overwritten and grown, not synced
		{"F", true, "oTWO\x00\x00\x00\x00\x00\x00"}, // fdatasynced
	}
	for _, tt := range tests {
		cut, ok := marks[tt.mark]
		if !ok {
			t.Fatalf("no mark %s in the log", tt.mark)
		}
		data, exists, err := l.File(filepath.Join(dir, "sub", "f"), cut)
		if err != nil {
			t.Fatal(err)
		}
		if exists != tt.exists || string(data) != tt.data {
			t.Errorf("cut at mark %s: got exists=%v %q, want exists=%v %q", tt.mark, exists, data, tt.exists, tt.data)
		}
	}
}

// TestInterleavedThreads: a write that returns after a sync began is not
// covered by it, and a call that never returned did not happen.
func TestInterleavedThreads(t *testing.T) {
	log := strings.Join([]string{
		`7 openat(AT_FDCWD</d>, "\x2f\x64\x2f\x66", O_RDWR|O_CREAT|O_CLOEXEC, 0600) = 3</d/f>`,
		`7 pwrite64(3</d/f>, "\x61\x62", 2, 0) = 2`,
		`7 fsync(3</d/f>) = 0`,
		`8 openat(AT_FDCWD</d>, "\x2f\x64", O_RDONLY|O_CLOEXEC) = 4</d>`,
		`8 fsync(4</d>) = 0`,
		`7 pwrite64(3</d/f>, "\x63", 1, 2 <unfinished ...>`,
		`8 fdatasync(3</d/f> <unfinished ...>`,
		`7 <... pwrite64 resumed>) = 1`,
		`8 <... fdatasync resumed>) = 0`,
		`9 write(5<TCP:[127.0.0.1:80->127.0.0.1:5000]>, "\x6d\x31", 2) = 2`,
		`7 pwrite64(3</d/f>, "\x64", 1, 3) = 1`,
		`8 fsync(3</d/f> <unfinished ...>`,
		`9 write(1<pipe:[5]>, "\x6d\x32", 2) = 2`,
		`7 pwrite64(3</d/f>, "\x65", 1, 4 <unfinished ...>`,
		`8 <... fsync resumed> <unfinished ...>) = ?`,
		`7 <... pwrite64 resumed> <detached ...>`,
		`10 ???( <detached ...>`,
		`11 fdatasync(3</d/f> <detached ...>`,
		`7 +++ killed by SIGKILL +++`,
	}, "\n")
	l, err := Parse(strings.NewReader(log))
	if err != nil {
		t.Fatal(err)
	}
	m := marks(t, l, "m")
	for _, tt := range []struct{ mark, want string }{{"1", "ab"}, {"2", "ab"}} {
		data, exists, err := l.File("/d/f", m[tt.mark])
		if err != nil || !exists || string(data) != tt.want {
			t.Errorf("cut at m%s: got %q, %v, %v, want %q", tt.mark, data, exists, err, tt.want)
		}
	}
	// The directory's sync counts only for entries made before it.
	late := strings.Replace(log, `8 fsync(4</d>) = 0`, `8 fsync(4</d>) = -1 EIO (Input/output error)`, 1)
	if l, err = Parse(strings.NewReader(late)); err != nil {
		t.Fatal(err)
	}
	if _, exists, err := l.File("/d/f", len(strings.Split(log, "\n"))); exists || err != nil {
		t.Errorf("with the directory's fsync failed: got exists=%v, %v, want a file that does not exist", exists, err)
	}
}

// TestUnmodelled: a change File cannot replay is an error, not a guess.
func TestUnmodelled(t *testing.T) {
	for _, line := range []string{
		`7 write(3</d/f>, "\x61", 1) = 1`,
		`7 renameat2(AT_FDCWD</d>, "\x74\x6d\x70", AT_FDCWD</d>, "\x66", RENAME_NOREPLACE) = 0`,
		`7 fallocate(3</d/f>, 0, 0, 4096) = 0`,
	} {
		log := `7 openat(AT_FDCWD</d>, "\x66", O_RDWR|O_CREAT, 0600) = 3</d/f>` + "\n" + line + "\n"
		l, err := Parse(strings.NewReader(log))
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := l.File("/d/f", 2); err == nil || !strings.Contains(err.Error(), "not modelled") {
			t.Errorf("%s: got %v, want an error saying it is not modelled", line, err)
		}
	}
	_, err := Parse(strings.NewReader(`7 pwrite64(3</d/f>, "\x61"..., 4096, 0) = 4096` + "\n"))
	if err == nil || !strings.Contains(err.Error(), "-s") {
		t.Errorf("a string cut short: got %v, want an error", err)
	}
}

func parseFile(t *testing.T, path string) *Log {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	l, err := Parse(f)
	if err != nil {
		b, _ := os.ReadFile(path)
		t.Fatalf("%v; the log:\n%s", err, b)
	}
	return l
}

// marks returns the line where each write of "<prefix>X..." began, by X.
func marks(t *testing.T, l *Log, prefix string) map[string]int {
	t.Helper()
	ws, err := l.Writes()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, w := range ws {
		if s, ok := strings.CutPrefix(string(w.Data), prefix); ok {
			out[strings.TrimSpace(s)] = w.Call.Entry
		}
	}
	return out
}
