//go:build linux

// strace, and so these tests, are Linux's.

package store

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/ase-project/ase/internal/powercut"
)

// powerCutEnv makes the test binary run powerCutHelper instead of the
// tests: the store under strace, in a process of its own.
const powerCutEnv = "ASE_STORE_POWERCUT_HELPER"

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

// powerCutBatches are the commits of TestAcknowledgedCommitsSurvivePowerCut:
// small and large values (a large one spills over pages and grows the
// file), overwrites, deletes and a prefix delete.
func powerCutBatches() []Batch {
	big := bytes.Repeat([]byte("0123456789abcdef"), 8<<10) // 128 KiB
	return []Batch{
		{Ops: []Op{Put("apis/a", []byte("1"))}},
		{Ops: []Op{Put("apis/b", []byte("2")), Put("lists/x", []byte("3"))}},
		{Ops: []Op{Put("big", big)}},
		{Ops: []Op{Put("apis/a", []byte("1b")), Delete("apis/b")}},
		{Ops: []Op{Put("big", big[:1000]), Put("apis/c", []byte("4"))}},
		{Ops: []Op{DeletePrefix("apis/")}},
		{Ops: []Op{Put("apis/d", []byte("5"))}},
	}
}

// powerCutHelper opens a store at path (its directory not made yet),
// commits powerCutBatches and writes "ack N" to stdout as each commit
// returns: the moment the caller would tell its client.
func powerCutHelper(path string) error {
	s, err := Open(path)
	if err != nil {
		return err
	}
	for i, b := range powerCutBatches() {
		if _, err := s.Commit(context.Background(), b); err != nil {
			return err
		}
		fmt.Fprintf(os.Stdout, "ack %d\n", i+1)
	}
	return s.Close()
}

// TestAcknowledgedCommitsSurvivePowerCut runs a store under strace and
// cuts the power, in replay, as each commit is acknowledged: the file the
// disk would hold then must exist and open with exactly the commits
// acknowledged so far. A kill -9 cannot show this: the page cache
// survives it, a power cut does not.
func TestAcknowledgedCommitsSurvivePowerCut(t *testing.T) {
	strace, err := powercut.Strace("../../scripts/deps.sh")
	if err != nil {
		t.Fatal(err)
	}
	dir, err := filepath.EvalSymlinks(t.TempDir()) // strace logs real paths
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "data", "ase.db")
	logPath := filepath.Join(dir, "strace.log")
	cmd := powercut.Command(strace, logPath, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), powerCutEnv+"="+path)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("the store under strace: %v\n%s", err, out.String())
	}
	l, err := powercut.ParseFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	acks, err := l.Acks("ack ") // where each acknowledgement began
	if err != nil {
		t.Fatal(err)
	}
	batches := powerCutBatches()
	if len(acks) != len(batches) {
		t.Fatalf("got %d acknowledgements in the log, want %d", len(acks), len(batches))
	}

	want := map[string]string{}
	for i, b := range batches {
		apply(want, b)
		data, exists, err := l.File(path, acks[i])
		if err != nil {
			t.Fatal(err)
		}
		if !exists {
			t.Fatalf("power cut at commit %d's acknowledgement: %s would not exist (its directory entry, or its directory's, was never synced)", i+1, path)
		}
		image := filepath.Join(t.TempDir(), "ase.db")
		if err := os.WriteFile(image, data, 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := contents(image)
		if err != nil {
			t.Fatalf("power cut at commit %d's acknowledgement: the file left does not open: %v", i+1, err)
		}
		if diff := diffKV(got, want); diff != "" {
			t.Fatalf("power cut at commit %d's acknowledgement: the store reopens with %s", i+1, diff)
		}
	}
}

// apply does b's operations on kv.
func apply(kv map[string]string, b Batch) {
	for _, op := range b.Ops {
		switch op.Kind {
		case OpPut:
			kv[op.Key] = string(op.Value)
		case OpDelete:
			delete(kv, op.Key)
		case OpDeletePrefix:
			for k := range kv {
				if strings.HasPrefix(k, op.Key) {
					delete(kv, k)
				}
			}
		}
	}
}

// contents opens the store file at path, checks it and reads it whole.
func contents(path string) (map[string]string, error) {
	s, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	if err := s.Check(); err != nil {
		return nil, err
	}
	kv := map[string]string{}
	err = s.Scan(context.Background(), "", func(k string, v []byte) error {
		kv[k] = string(v)
		return nil
	})
	return kv, err
}

// diffKV describes how got differs from want ("" when equal), by key.
func diffKV(got, want map[string]string) string {
	var d []string
	for k, v := range want {
		if g, ok := got[k]; !ok {
			d = append(d, k+" missing")
		} else if g != v {
			d = append(d, fmt.Sprintf("%s of %d bytes, want %d bytes", k, len(g), len(v)))
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			d = append(d, k+" present")
		}
	}
	sort.Strings(d)
	return strings.Join(d, ", ")
}
