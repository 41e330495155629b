//go:build linux

// strace, and so these tests, are Linux's.

package logfile

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/ase-project/ase/internal/powercut"
)

// powerCutEnv makes the test binary run powerCutHelper instead of the
// tests: a synced log file, in a process of its own under strace.
const powerCutEnv = "ASE_LOGFILE_POWERCUT_HELPER"

func TestMain(m *testing.M) {
	if path := os.Getenv(powerCutEnv); path != "" {
		if err := powerCutHelper(path); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

const powerCutLines = 5

func powerCutLine(i int) string { return fmt.Sprintf(`{"line": %d}`+"\n", i) }

// powerCutHelper opens a synced log at path (its directory not made yet),
// writes powerCutLines lines and "ack N" to stdout as each Write returns:
// the moment the audit log's caller answers its client.
func powerCutHelper(path string) error {
	l, err := Open(path, 1<<20, 3, true)
	if err != nil {
		return err
	}
	for i := 1; i <= powerCutLines; i++ {
		if _, err := l.Write([]byte(powerCutLine(i))); err != nil {
			return err
		}
		fmt.Fprintf(os.Stdout, "ack %d\n", i)
	}
	return l.Close()
}

// TestSyncedLinesSurvivePowerCut: a power cut replayed at each
// acknowledgement leaves the file with every line written so far (the
// audit log's "fsynced before the reply"), its new directory included.
func TestSyncedLinesSurvivePowerCut(t *testing.T) {
	strace, err := powercut.Strace("../../scripts/deps.sh")
	if err != nil {
		t.Fatal(err)
	}
	dir, err := filepath.EvalSymlinks(t.TempDir()) // strace logs real paths
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "data", "logs", "audit.log")
	logPath := filepath.Join(dir, "strace.log")
	cmd := powercut.Command(strace, logPath, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), powerCutEnv+"="+path)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("the log under strace: %v\n%s", err, out.String())
	}
	l, err := powercut.ParseFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	acks, err := l.Acks("ack ") // where each acknowledgement began
	if err != nil {
		t.Fatal(err)
	}
	if len(acks) != powerCutLines {
		t.Fatalf("got %d acknowledgements in the log, want %d", len(acks), powerCutLines)
	}
	want := ""
	for i, at := range acks {
		want += powerCutLine(i + 1)
		data, exists, err := l.File(path, at)
		if err != nil {
			t.Fatal(err)
		}
		if !exists {
			t.Fatalf("power cut at line %d's acknowledgement: %s would not exist (its directory entry, or its directory's, was never synced)", i+1, path)
		}
		if string(data) != want {
			t.Fatalf("power cut at line %d's acknowledgement: the file holds %q, want %q", i+1, data, want)
		}
	}
}
