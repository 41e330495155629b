package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// etcdServer runs a real etcd (scripts/deps.sh installs it) for the
// cluster store's tests, killed at cleanup.
func etcdServer(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("etcd")
	if err != nil {
		t.Fatal("the etcd binary is missing: run scripts/deps.sh (it installs Debian's etcd-server)")
	}
	port := func() int {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().(*net.TCPAddr).Port
	}
	cp, pp := port(), port()
	client := "http://127.0.0.1:" + strconv.Itoa(cp)
	peer := "http://127.0.0.1:" + strconv.Itoa(pp)
	cmd := exec.Command(bin, "--name", "store-test", "--data-dir", filepath.Join(t.TempDir(), "etcd"),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", "store-test="+peer)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(client + "/health")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if bytes.Contains(b, []byte(`"true"`)) {
				return client
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("etcd did not start:\n%s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func openEtcdTest(t *testing.T, endpoint, prefix string) *Etcd {
	t.Helper()
	e, err := OpenEtcd(context.Background(), EtcdOptions{Endpoints: []string{endpoint}, Prefix: prefix, MirrorPath: filepath.Join(t.TempDir(), "mirror.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func TestEtcdStoreContract(t *testing.T) {
	ep := etcdServer(t)
	ctx := context.Background()
	a := openEtcdTest(t, ep, "/ase/t/")
	b := openEtcdTest(t, ep, "/ase/t/")
	other := openEtcdTest(t, ep, "/ase/other/")

	// A commit is in the committing node's mirror (and given to its
	// subscribers) when Commit returns; the other node follows.
	var got []Event
	stop, err := a.Subscribe(ctx, "k/", nil, func(ev Event) { got = append(got, ev) })
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if _, err := a.Commit(ctx, Batch{Conds: []Cond{Absent("k/1")}, Ops: []Op{Put("k/1", []byte("v1")), Put("k/2", []byte("v2"))}}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || len(got[0].Changes) != 2 {
		t.Fatalf("subscriber got %+v when Commit returned", got)
	}
	if v, err := a.Get(ctx, "k/1"); err != nil || string(v) != "v1" {
		t.Fatalf("read back %q %v", v, err)
	}
	waitFor(t, func() bool { v, _ := b.Get(ctx, "k/2"); return string(v) == "v2" })
	if _, err := other.Get(ctx, "k/1"); !errors.Is(err, ErrNotFound) {
		t.Fatal("another cluster's prefix sees the keys")
	}

	// Conditions: the failed one is named.
	var ce *ConflictError
	_, err = b.Commit(ctx, Batch{Conds: []Cond{Present("k/1"), Unchanged("k/2", []byte("stale"))}, Ops: []Op{Put("k/3", nil)}})
	if !errors.As(err, &ce) || ce.Cond.Key != "k/2" {
		t.Fatalf("a stale condition: %v", err)
	}
	if _, err := b.Commit(ctx, Batch{Conds: []Cond{Absent("k/1")}}); !errors.As(err, &ce) || ce.Cond.Key != "k/1" {
		t.Fatalf("an absent condition on a present key: %v", err)
	}
	if _, err := b.Commit(ctx, Batch{Conds: []Cond{Unchanged("k/9", []byte(""))}}); !errors.As(err, &ce) {
		t.Fatalf("unchanged on an absent key: %v", err)
	}

	// One batch may touch a key twice and write under a prefix it
	// deletes, as on the embedded store.
	if _, err := b.Commit(ctx, Batch{Ops: []Op{Put("k/4", []byte("x")), Put("k/4", []byte("y")), DeletePrefix("k/"), Put("k/5", []byte("z")), Delete("k/5"), Put("k/5", []byte("w"))}}); err != nil {
		t.Fatalf("a batch that etcd must get reduced: %v", err)
	}
	var keys []string
	b.Scan(ctx, "k/", func(k string, v []byte) error { keys = append(keys, k+"="+string(v)); return nil })
	if fmt.Sprint(keys) != "[k/5=w]" {
		t.Fatalf("after the reduced batch: %v", keys)
	}
	waitFor(t, func() bool {
		var ka []string
		a.Scan(ctx, "k/", func(k string, v []byte) error { ka = append(ka, k+"="+string(v)); return nil })
		return fmt.Sprint(ka) == "[k/5=w]"
	})

	// Limits.
	var tl *TooLargeError
	ops := make([]Op, 129)
	for i := range ops {
		ops[i] = Put(fmt.Sprintf("big/%d", i), nil)
	}
	if _, err := a.Commit(ctx, Batch{Ops: ops}); !errors.As(err, &tl) {
		t.Fatalf("129 operations: %v", err)
	}
	for _, part := range a.Limits().Split(ops) {
		if _, err := a.Commit(ctx, part); err != nil {
			t.Fatal(err)
		}
	}
}

// The mirror resynchronises when the revisions it would resume from were
// compacted: it ends with exactly etcd's state, deletions included.
func TestEtcdMirrorResyncs(t *testing.T) {
	ep := etcdServer(t)
	ctx := context.Background()
	dir := t.TempDir()
	open := func() *Etcd {
		e, err := OpenEtcd(ctx, EtcdOptions{Endpoints: []string{ep}, Prefix: "/ase/r/", MirrorPath: filepath.Join(dir, "mirror.db")})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	e := open()
	for i := range 50 {
		if _, err := e.Commit(ctx, Batch{Ops: []Op{Put(fmt.Sprintf("x/%02d", i), []byte("1"))}}); err != nil {
			t.Fatal(err)
		}
	}
	e.Close()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{ep}})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	// While it is away: deletions, changes, additions, then compaction.
	cli.Delete(ctx, "/ase/r/x/0", clientv3.WithPrefix())
	cli.Put(ctx, "/ase/r/x/20", "2")
	cli.Put(ctx, "/ase/r/y", "new")
	resp, _ := cli.Get(ctx, "z")
	cli.Compact(ctx, resp.Header.Revision, clientv3.WithCompactPhysical())
	e = open()
	defer e.Close()
	var want, got []string
	r, _ := cli.Get(ctx, "/ase/r/", clientv3.WithPrefix())
	for _, kv := range r.Kvs {
		want = append(want, string(kv.Key[len("/ase/r/"):])+"="+string(kv.Value))
	}
	e.Scan(ctx, "", func(k string, v []byte) error { got = append(got, k+"="+string(v)); return nil })
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("mirror %v\netcd   %v", got, want)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("never happened")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
