package admin

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ase-project/ase/internal/accounts"
	"github.com/ase-project/ase/internal/apidef"
	"github.com/ase-project/ase/internal/catalog"
	"github.com/ase-project/ase/internal/config"
	"github.com/ase-project/ase/internal/lists"
	"github.com/ase-project/ase/internal/lockout"
	"github.com/ase-project/ase/internal/sbauth"
	"github.com/ase-project/ase/internal/store"
)

// Two management handlers on one store are what two cluster nodes on one
// etcd look like: each has its own sessions, transactions' view, lists,
// catalog and accounts, and knows the other's only through the store.

// clock is a test clock shared by the nodes.
type clock struct{ ns atomic.Int64 }

func (c *clock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// hooked is a store whose Get of one key can be made to lag (a node whose
// watch has not delivered it yet), and whose next Commit can be preceded
// by another writer's.
type hooked struct {
	store.Store
	mu           sync.Mutex
	hideKey      string
	hide         int // Gets of hideKey still answered ErrNotFound
	beforeCommit func()
}

func (s *hooked) Get(ctx context.Context, key string) ([]byte, error) {
	s.mu.Lock()
	lag := key == s.hideKey && s.hide > 0
	if lag {
		s.hide--
	}
	s.mu.Unlock()
	if lag {
		return nil, store.ErrNotFound
	}
	return s.Store.Get(ctx, key)
}

func (s *hooked) Commit(ctx context.Context, b store.Batch) (int64, error) {
	s.mu.Lock()
	f := s.beforeCommit
	s.beforeCommit = nil
	s.mu.Unlock()
	if f != nil {
		f()
	}
	return s.Store.Commit(ctx, b)
}

type node struct {
	t  *testing.T
	h  *Handler
	st *hooked
}

const lifetime = 10 * time.Minute

func newNode(t *testing.T, base store.Store, clk *clock) *node {
	t.Helper()
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st := &hooked{Store: base}
	accts, err := accounts.Open(ctx, st, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(accts.Close)
	live, err := catalog.NewLive(ctx, st, catalog.Defaults{}, log)
	if err != nil {
		t.Fatal(err)
	}
	lst, err := lists.Open(ctx, st, lists.Options{Limit: 1 << 20, Log: log, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(lst.Close)
	sba, err := sbauth.Open(ctx, st, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sba.Close)
	h := New(Deps{
		Store: st, Live: live, Lists: lst, SidebandAuth: sba, Accounts: accts, Guard: lockout.New(), Log: log,
		Config: config.Default(), Sleep: func(context.Context, time.Duration) {},
		Sessions:    accounts.NewSessions(st, 20*time.Minute, clk.now, log),
		TxnLifetime: lifetime, Now: clk.now,
		Health: func(string, apidef.Server) string { return "Up" },
	})
	return &node{t: t, h: h, st: st}
}

// twoNodes returns two nodes on one embedded store, a user "ops" (admin)
// and a user "other" (write), made on node a.
func twoNodes(t *testing.T) (a, b *node, base *store.Bolt, clk *clock) {
	base, err := store.Open(filepath.Join(t.TempDir(), "ase.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { base.Close() })
	clk = &clock{}
	clk.ns.Store(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	a, b = newNode(t, base, clk), newNode(t, base, clk)
	a.want(201, "POST", "/api/configuration/aaa/local_database/users", `{"name": "ops", "password": "ops-password", "role": "admin"}`, adminKey)
	a.want(201, "POST", "/api/configuration/aaa/local_database/users", `{"name": "other", "password": "other-password", "role": "write"}`, adminKey)
	return a, b, base, clk
}

var adminKey = map[string]string{"x-ase-access-key": "admin", "x-ase-secret-key": "admin"}

func (n *node) do(method, path, body string, hdr map[string]string) (int, string) {
	n.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	r := httptest.NewRequest(method, path, rd)
	r.RemoteAddr = "127.0.0.1:4000"
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	} else if method == "POST" {
		r.Header.Set("Content-Length", "0")
	}
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	n.h.ServeHTTP(w, r)
	return w.Code, w.Body.String()
}

func (n *node) want(code int, method, path, body string, hdr map[string]string) string {
	n.t.Helper()
	got, reply := n.do(method, path, body, hdr)
	if got != code {
		n.t.Fatalf("%s %s: %d %s, want %d", method, path, got, reply, code)
	}
	return reply
}

// login returns a session credential of user.
func (n *node) login(user, password string) map[string]string {
	n.t.Helper()
	r := httptest.NewRequest("GET", "/api/authentication?login_method=local&type=password", nil)
	r.RemoteAddr = "127.0.0.1:4000"
	r.SetBasicAuth(user, password)
	w := httptest.NewRecorder()
	n.h.ServeHTTP(w, r)
	for _, c := range w.Result().Cookies() {
		if c.Name == "session_id" && w.Code == 200 {
			return map[string]string{"Cookie": "session_id=" + c.Value}
		}
	}
	n.t.Fatalf("login %s: %d %s", user, w.Code, w.Body)
	return nil
}

func apiBody(url string) string { return `{"api_metadata": {"url": "` + url + `"}}` }

func txnState(t *testing.T, n *node, cred map[string]string) (status string, changes int) {
	t.Helper()
	var st struct {
		Body struct {
			Status  string `json:"status"`
			Changes int    `json:"changes"`
		} `json:"body"`
	}
	if err := json.Unmarshal([]byte(n.want(200, "GET", "/api/transaction", "", cred)), &st); err != nil {
		t.Fatal(err)
	}
	return st.Body.Status, st.Body.Changes
}

func TestClusterSessions(t *testing.T) {
	a, b, base, _ := twoNodes(t)
	s := a.login("ops", "ops-password")
	// Logged in on A, the cookie works on B, on every path.
	b.want(200, "GET", "/v5/ase/api", "", s)
	b.want(200, "GET", "/api/configuration/aaa/local_database/users", "", s)
	b.want(200, "POST", "/v5/ase/api?api_id=fromb", apiBody("/fromb"), s)
	// The store holds no session ID.
	id := strings.TrimPrefix(s["Cookie"], "session_id=")
	base.Scan(context.Background(), "", func(k string, v []byte) error {
		if strings.Contains(k, id) || strings.Contains(string(v), id) {
			t.Fatalf("the session ID is in the store, at %s", k)
		}
		return nil
	})
	// Logout on B ends it on A.
	b.want(200, "DELETE", "/api/authentication", "", s)
	a.want(401, "GET", "/api/configuration/aaa/local_database/users", "", s)
	a.want(403, "GET", "/v5/ase/api", "", s)

	// A password changed on B ends the user's sessions on A at once.
	o := a.login("other", "other-password")
	a.want(200, "GET", "/v5/ase/api", "", o)
	b.want(200, "PUT", "/api/configuration/aaa/local_database/users/other", `{"password": "other-password-2"}`, adminKey)
	a.want(403, "GET", "/v5/ase/api", "", o)
	a.login("other", "other-password-2")
}

func TestClusterTransaction(t *testing.T) {
	a, b, _, _ := twoNodes(t)
	ops, other := a.login("ops", "ops-password"), b.login("other", "other-password")
	a.want(200, "POST", "/api/transaction", "", ops)

	// Every other writer on the other node gets 409: another session, the
	// access/secret-key headers; and nobody else can open one.
	for _, cred := range []map[string]string{other, adminKey} {
		reply := b.want(409, "POST", "/v5/ase/api?api_id=x", apiBody("/x"), cred)
		if !strings.Contains(reply, "transaction_in_progress") || !strings.Contains(reply, "user ops has a transaction open") {
			t.Fatalf("409 reply %s", reply)
		}
		b.want(409, "POST", "/v5/ase/firewall?status=disable", "", cred)
	}
	b.want(409, "POST", "/api/transaction", "", other)
	a.want(409, "POST", "/api/transaction", "", ops)

	// The owner stages on A, then continues on B, which sees what A
	// staged, and back on A.
	a.want(200, "POST", "/v5/ase/api?api_id=one", apiBody("/one"), ops)
	b.want(200, "POST", "/v5/ase/server?api_id=one", `{"server": {"host": "127.0.0.1", "port": 9}}`, ops)
	a.want(200, "POST", "/v5/ase/firewall/blacklist", `{"type": "ip", "value": "192.0.2.1"}`, ops)
	for _, n := range []*node{a, b} {
		if st, changes := txnState(t, n, ops); st != "open" || changes != 3 {
			t.Fatalf("status %s with %d changes", st, changes)
		}
		if reply := n.want(200, "GET", "/v5/ase/server?api_id=one", "", ops); !strings.Contains(reply, `"port": 9`) {
			t.Fatalf("the owner does not see its staged server: %s", reply)
		}
		n.want(404, "GET", "/v5/ase/api?api_id=one", "", adminKey)
		n.want(404, "GET", "/v5/ase/api?api_id=one", "", other)
		var ch struct{ Changes []struct{ Action string } }
		json.Unmarshal([]byte(n.want(200, "GET", "/api/transaction/changes", "", ops)), &ch)
		if len(ch.Changes) != 3 || ch.Changes[0].Action != "create_api" || ch.Changes[1].Action != "add_server" {
			t.Fatalf("changes %+v", ch.Changes)
		}
		json.Unmarshal([]byte(n.want(200, "GET", "/api/transaction/changes", "", other)), &ch)
		if len(ch.Changes) != 0 {
			t.Fatal("another session sees the staged changes")
		}
	}

	// Committed on B: everything applies, on both nodes.
	b.want(200, "PUT", "/api/transaction", `{"status": "commit", "message": "m"}`, ops)
	for _, n := range []*node{a, b} {
		if reply := n.want(200, "GET", "/v5/ase/server?api_id=one", "", adminKey); !strings.Contains(reply, `"port": 9`) {
			t.Fatalf("after commit: %s", reply)
		}
		n.want(200, "GET", "/v5/ase/firewall/blacklist?tag=manual", "", adminKey)
		if st, _ := txnState(t, n, other); st != "closed" {
			t.Fatalf("after commit the transaction is %s", st)
		}
	}
	if reply := a.want(200, "GET", "/v5/ase/firewall/blacklist?tag=manual", "", adminKey); !strings.Contains(reply, "192.0.2.1") {
		t.Fatalf("the staged entry was not committed: %s", reply)
	}
	b.want(200, "POST", "/v5/ase/api?api_id=x", apiBody("/x"), other)

	// Rolled back on A after staging on B: nothing applies.
	a.want(200, "POST", "/api/transaction", "", ops)
	b.want(200, "POST", "/v5/ase/api?api_id=gone", apiBody("/gone"), ops)
	a.want(200, "DELETE", "/api/transaction", "", ops)
	b.want(404, "GET", "/v5/ase/api?api_id=gone", "", ops)
	b.want(200, "POST", "/v5/ase/api?api_id=y", apiBody("/y"), other)
}

// Another writer changes what a staged change relied on (here the API a
// flow-control update read and rewrote): the commit fails with 409 and
// applies nothing, neither that change nor the others.
func TestClusterTransactionCommitConflict(t *testing.T) {
	a, b, base, _ := twoNodes(t)
	ctx := context.Background()
	a.want(200, "POST", "/v5/ase/api?api_id=shop", apiBody("/shop"), adminKey)
	ops := a.login("ops", "ops-password")
	a.want(200, "POST", "/api/transaction", "", ops)
	b.want(200, "POST", "/v5/ase/api?api_id=new", apiBody("/new"), ops)
	a.want(200, "POST", "/v5/ase/firewall/flowcontrol?api_id=shop", `{"flow_control": {"client_spike_threshold": "9/second"}}`, ops)
	// A writer that does not go through the management API (an api_dir
	// import at a node's start, say) rewrites the API meanwhile.
	raw, err := base.Get(ctx, catalog.APIPrefix+"shop")
	if err != nil {
		t.Fatal(err)
	}
	theirs := strings.Replace(string(raw), `"/shop"`, `"/shop2"`, 1)
	if _, err := base.Commit(ctx, store.Batch{Ops: []store.Op{store.Put(catalog.APIPrefix+"shop", []byte(theirs))}}); err != nil {
		t.Fatal(err)
	}
	reply := b.want(409, "PUT", "/api/transaction", `{"status": "commit"}`, ops)
	if !strings.Contains(reply, "nothing was applied") {
		t.Fatalf("commit reply %s", reply)
	}
	if got, _ := base.Get(ctx, catalog.APIPrefix+"shop"); string(got) != theirs {
		t.Fatalf("the other writer's change was lost: %s", got)
	}
	a.want(404, "GET", "/v5/ase/api?api_id=new", "", adminKey)
	// The transaction is over: writers go on.
	if st, _ := txnState(t, a, ops); st != "closed" {
		t.Fatalf("after a failed commit the transaction is %s", st)
	}
	b.want(200, "POST", "/v5/ase/api?api_id=after", apiBody("/after"), adminKey)
}

func TestClusterTransactionExpires(t *testing.T) {
	a, b, _, clk := twoNodes(t)
	ops, other := a.login("ops", "ops-password"), b.login("other", "other-password")
	a.want(200, "POST", "/api/transaction", "", ops)
	b.want(200, "POST", "/v5/ase/api?api_id=late", apiBody("/late"), ops)
	clk.advance(lifetime - time.Second)
	a.want(409, "POST", "/v5/ase/api?api_id=x", apiBody("/x"), other)
	clk.advance(time.Second)
	// Expired: rolled back, seen so on both nodes; writers go on.
	for _, n := range []*node{a, b} {
		if st, _ := txnState(t, n, ops); st != "closed" {
			t.Fatalf("an expired transaction is %s", st)
		}
		n.want(404, "GET", "/v5/ase/api?api_id=late", "", ops)
	}
	b.want(200, "POST", "/v5/ase/api?api_id=x", apiBody("/x"), other)
	a.want(404, "PUT", "/api/transaction", `{"status": "commit"}`, ops)
	// Rolled back by a writer that found it expired, on the other node.
	a.want(200, "POST", "/api/transaction", "", ops)
	a.want(200, "POST", "/v5/ase/api?api_id=late2", apiBody("/late2"), ops)
	clk.advance(lifetime)
	b.want(200, "POST", "/v5/ase/firewall/blacklist", `{"type": "ip", "value": "192.0.2.7"}`, adminKey)
	a.want(404, "GET", "/v5/ase/api?api_id=late2", "", adminKey)
	if st, _ := txnState(t, a, ops); st != "closed" {
		t.Fatalf("an expired transaction is %s", st)
	}
}

// Two nodes open at once: exactly one transaction opens, and each write
// either is staged (the owner's) or gets 409.
func TestClusterTransactionOpenRace(t *testing.T) {
	a, b, _, _ := twoNodes(t)
	sa, sb := a.login("ops", "ops-password"), b.login("other", "other-password")
	var wg sync.WaitGroup
	codes := make([]int, 2)
	for k, n := range []*node{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[k], _ = n.do("POST", "/api/transaction", "", []map[string]string{sa, sb}[k])
		}()
	}
	wg.Wait()
	if codes[0]+codes[1] != 200+409 {
		t.Fatalf("open codes %v, want one 200 and one 409", codes)
	}
	results := make(chan int, 20)
	for k := 0; k < 10; k++ {
		for i, n := range []*node{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, _ := n.do("POST", "/v5/ase/firewall/blacklist", `{"type": "ip", "value": "198.51.100.`+string(rune('0'+k))+`"}`, []map[string]string{sa, sb}[i])
				results <- c
			}()
		}
	}
	wg.Wait()
	close(results)
	count := map[int]int{}
	for c := range results {
		count[c]++
	}
	if count[200] != 10 || count[409] != 10 {
		t.Fatalf("codes %v, want 10 staged and 10 refused", count)
	}
}

// The owner's request reaches a node that does not see its transaction
// yet (its watch lags): the write is not made outside the transaction
// (the store refuses it on the transaction key) and is served again,
// staged. A change staged on another node between reading the
// transaction and writing it makes the same retry.
func TestClusterTransactionLaggingNode(t *testing.T) {
	a, b, base, _ := twoNodes(t)
	ops := a.login("ops", "ops-password")
	a.want(200, "POST", "/api/transaction", "", ops)
	b.st.mu.Lock()
	b.st.hideKey, b.st.hide = txnKey, 1
	b.st.mu.Unlock()
	b.want(200, "POST", "/v5/ase/api?api_id=lag", apiBody("/lag"), ops)
	if _, err := base.Get(context.Background(), catalog.APIPrefix+"lag"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a write of the owner went around its transaction: %v", err)
	}
	b.st.mu.Lock()
	b.st.beforeCommit = func() { a.want(200, "POST", "/v5/ase/api?api_id=froma", apiBody("/froma"), ops) }
	b.st.mu.Unlock()
	b.want(200, "POST", "/v5/ase/api?api_id=fromb", apiBody("/fromb"), ops)
	if st, changes := txnState(t, a, ops); st != "open" || changes != 3 {
		t.Fatalf("status %s with %d changes, want 3", st, changes)
	}
	a.want(200, "PUT", "/api/transaction", `{"status": "commit"}`, ops)
	for _, id := range []string{"lag", "froma", "fromb"} {
		b.want(200, "GET", "/v5/ase/api?api_id="+id, "", adminKey)
	}
}

// A transaction commits all or nothing: a change that would take its
// commit past the store's limits is refused when staged, and a commit
// past them (the limits lowered meanwhile) is refused with the
// transaction left open, nothing applied.
func TestClusterTransactionLimits(t *testing.T) {
	a, b, base, _ := twoNodes(t)
	ops := a.login("ops", "ops-password")
	a.want(200, "POST", "/api/transaction", "", ops)
	// 4 operations: the end of the transaction takes one, so 3 changes of
	// one operation each fit.
	base.SetLimits(store.Limits{MaxOps: 4})
	for i, n := range []*node{a, b, a} {
		n.want(200, "POST", "/v5/ase/firewall/blacklist", `{"type": "ip", "value": "192.0.2.`+string(rune('1'+i))+`"}`, ops)
	}
	reply := b.want(413, "POST", "/v5/ase/firewall/blacklist", `{"type": "ip", "value": "192.0.2.9"}`, ops)
	if !strings.Contains(reply, "5 operations (the limit is 4)") || !strings.Contains(reply, "keeps its 3 changes") {
		t.Fatalf("staging past the limits: %s", reply)
	}
	if st, changes := txnState(t, a, ops); st != "open" || changes != 3 {
		t.Fatalf("status %s with %d changes", st, changes)
	}
	base.SetLimits(store.Limits{MaxOps: 2})
	reply = a.want(413, "PUT", "/api/transaction", `{"status": "commit"}`, ops)
	if !strings.Contains(reply, "3 changes") || !strings.Contains(reply, "4 operations (the limit is 2)") || !strings.Contains(reply, "stays open") {
		t.Fatalf("commit past the limits: %s", reply)
	}
	if st, changes := txnState(t, b, ops); st != "open" || changes != 3 {
		t.Fatalf("after a refused commit: status %s with %d changes", st, changes)
	}
	if reply := b.want(200, "GET", "/v5/ase/firewall/blacklist?tag=manual", "", adminKey); strings.Contains(reply, "192.0.2.") {
		t.Fatalf("a refused commit applied something: %s", reply)
	}
	// Within the limits again, it commits whole.
	base.SetLimits(store.Limits{MaxOps: 4})
	b.want(200, "PUT", "/api/transaction", `{"status": "commit"}`, ops)
	if reply := a.want(200, "GET", "/v5/ase/firewall/blacklist?tag=manual", "", adminKey); strings.Count(reply, "192.0.2.") != 3 {
		t.Fatalf("after commit: %s", reply)
	}
	// Bytes count too.
	a.want(200, "POST", "/api/transaction", "", ops)
	base.SetLimits(store.Limits{MaxBytes: 700})
	reply = b.want(413, "POST", "/v5/ase/firewall/blacklist", `{"type": "token", "value": "`+strings.Repeat("t", 800)+`"}`, ops)
	if !strings.Contains(reply, "bytes (the limit is 700)") {
		t.Fatalf("staging past the byte limit: %s", reply)
	}
	a.want(200, "DELETE", "/api/transaction", "", ops)
}

func TestChangeEncoding(t *testing.T) {
	ch := stagedChange{Action: "create_api", Params: map[string]any{"api_id": "x"}, Time: time.Unix(5, 0).UTC()}
	b := store.Batch{
		Conds: []store.Cond{store.Absent("a"), store.Present("b"), store.Unchanged("c", []byte("v")), store.Unchanged("e", []byte{})},
		Ops:   []store.Op{store.Put("a", []byte("1")), store.Put("empty", []byte{}), store.Delete("b"), store.DeletePrefix("d/")},
	}
	rec, err := encodeChange(ch, b)
	if err != nil {
		t.Fatal(err)
	}
	gch, gb, err := decodeChange(rec)
	if err != nil {
		t.Fatal(err)
	}
	gj, _ := json.Marshal([]any{gch, gb})
	wj, _ := json.Marshal([]any{ch, b})
	if string(gj) != string(wj) || gb.Conds[0].Value != nil || gb.Conds[3].Value == nil || gb.Ops[1].Value == nil {
		t.Fatalf("decoded %s\nwant    %s", gj, wj)
	}
	for i := range rec {
		if _, _, err := decodeChange(rec[:i]); err == nil {
			t.Fatalf("a record cut at %d decodes", i)
		}
	}
}
