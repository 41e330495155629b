package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ase-project/ase/internal/admin"
)

// as sends a management request with only the given credentials (no
// access/secret key headers): session or API key.
func (i *Instance) as(method, path, body string, cred map[string]string) Reply {
	i.t.Helper()
	h := map[string]string{"x-ase-access-key": "", "x-ase-secret-key": ""}
	for k, v := range cred {
		h[k] = v
	}
	return i.Do(method, path, body, h)
}

// login logs user in with HTTP Basic and returns the session credential.
func (i *Instance) login(user, password string) map[string]string {
	i.t.Helper()
	req, _ := http.NewRequest("GET", i.MgmtURL+"/api/authentication?login_method=local&type=password", nil)
	req.SetBasicAuth(user, password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		i.t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		i.t.Fatalf("login %s: %d", user, resp.StatusCode)
	}
	for _, c := range resp.Cookies() {
		if c.Name == "session_id" {
			return map[string]string{"Cookie": "session_id=" + c.Value}
		}
	}
	i.t.Fatal("no session_id cookie")
	return nil
}

func (i *Instance) createUser(name, password, role string) {
	i.t.Helper()
	r := i.Do("POST", "/api/configuration/aaa/local_database/users", fmt.Sprintf(`{"name": %q, "password": %q, "role": %q}`, name, password, role), nil)
	if r.Code != 201 {
		i.t.Fatalf("create user %s: %d %s", name, r.Code, r.Body)
	}
}

func wantAPIError(t *testing.T, r Reply, code int, typ string) {
	t.Helper()
	var e struct {
		Error struct{ Type, Message string } `json:"error"`
	}
	if err := json.Unmarshal(r.Body, &e); err != nil || r.Code != code || e.Error.Type != typ || e.Error.Message == "" {
		t.Fatalf("got %d %s, want %d %s", r.Code, r.Body, code, typ)
	}
}

func TestLoginAndSessions(t *testing.T) {
	i := newInstance(t, map[string]string{"session_timeout": "1h"})
	clock := withTestClock(t, i)
	i.Start()
	i.createUser("alice", "alice-password", "write")

	wantJSON(t, i.as("GET", "/api/authentication/login_methods", "", nil), 200, `{"login_methods": [{"name": "local", "type": "password"}]}`)
	wantAPIError(t, i.as("GET", "/api/authentication?login_method=local&type=password", "", nil), 400, "InvalidAuthenticationRequest")
	wantAPIError(t, i.as("GET", "/api/authentication", "", map[string]string{"Authorization": "Basic bm90IGJhc2U2NA"}), 400, "InvalidAuthenticationRequest")
	req, _ := http.NewRequest("GET", i.MgmtURL+"/api/authentication?login_method=local&type=password", nil)
	req.SetBasicAuth("alice", "wrong-password")
	resp, _ := http.DefaultClient.Do(req)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	wantAPIError(t, Reply{Code: resp.StatusCode, Body: body}, 401, "AuthenticationFailure")
	wantAPIError(t, i.as("POST", "/api/authentication", "", nil), 405, "MethodNotAllowed")

	// Success: meta, and a session cookie with the right attributes.
	req, _ = http.NewRequest("GET", i.MgmtURL+"/api/authentication?login_method=local&type=password", nil)
	req.SetBasicAuth("alice", "alice-password")
	resp, _ = http.DefaultClient.Do(req)
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"transaction": "/api/transaction"`) {
		t.Fatalf("login: %d %s", resp.StatusCode, body)
	}
	setCookie := resp.Header.Get("Set-Cookie")
	if !strings.Contains(setCookie, "HttpOnly") || !strings.Contains(setCookie, "SameSite=Strict") || strings.Contains(setCookie, "Secure") {
		t.Fatalf("Set-Cookie %q: want HttpOnly, SameSite=Strict, and no Secure over plain HTTP", setCookie)
	}
	id := resp.Cookies()[0].Value
	if len(id) < 40 {
		t.Fatalf("session id %q is shorter than 160 bits", id)
	}
	// The session works on every management prefix, as a cookie or a
	// header.
	cookie := map[string]string{"Cookie": "session_id=" + id}
	header := map[string]string{"session_id": id}
	for _, p := range []string{"/v4/ase/api", "/v5/ase/api"} {
		if r := i.as("GET", p, "", cookie); r.Code != 200 {
			t.Fatalf("%s with the cookie: %d", p, r.Code)
		}
		if r := i.as("GET", p, "", header); r.Code != 200 {
			t.Fatalf("%s with the header: %d", p, r.Code)
		}
	}
	if r := i.as("GET", "/api/configuration/aaa/local_database/api_keys", "", cookie); r.Code != 200 {
		t.Fatalf("/api with the session: %d %s", r.Code, r.Body)
	}
	// A write as alice is audited as alice.
	wantJSON(t, i.as("POST", "/v5/ase/api?api_id=mine", apiDoc("/mine", ""), cookie), 200, ok)

	// Idle timeout, counted from the last request, not from the login:
	// alive 100 minutes after the login with a request 50 minutes in,
	// ended 61 minutes after the last request.
	for _, after := range []time.Duration{50 * time.Minute, 50 * time.Minute} {
		clock.Advance(after)
		if r := i.as("GET", "/v5/ase/api", "", cookie); r.Code != 200 {
			t.Fatalf("the session ended %v after the last request, before its idle timeout (1h): %d", after, r.Code)
		}
	}
	clock.Advance(61 * time.Minute)
	wantStatus(t, i.as("GET", "/v5/ase/api", "", cookie), 403, "fail", "authorization failure")
	wantAPIError(t, i.as("GET", "/api/configuration/aaa/local_database/api_keys", "", cookie), 401, "AuthenticationFailure")

	// Logout ends a session at once.
	s := i.login("alice", "alice-password")
	if r := i.as("DELETE", "/api/authentication", "", s); r.Code != 200 {
		t.Fatalf("logout: %d %s", r.Code, r.Body)
	}
	if r := i.as("GET", "/v5/ase/api", "", s); r.Code != 403 {
		t.Fatalf("a logged-out session still works: %d", r.Code)
	}

	audit, _ := os.ReadFile(filepath.Join(i.Conf["data_dir"], "logs", "audit.log"))
	if !strings.Contains(string(audit), `"user":"alice","via":"rest_api","auth":"session"`) {
		t.Fatalf("the audit log does not name alice: %s", audit)
	}
	if strings.Contains(string(audit), "alice-password") || strings.Contains(i.Output(), "alice-password") {
		t.Fatal("a password was logged")
	}
}

// writeRoutes returns every route that changes configuration, with its
// path parameters filled in.
func writeRoutes() []admin.Route {
	var out []admin.Route
	for _, rt := range admin.RouteTable() {
		if rt.Write() {
			rt.Path = strings.NewReplacer("{name}", "someone", "{key}", "some-key").Replace(rt.Path)
			out = append(out, rt)
		}
	}
	return out
}

func TestRolesAndAPIKeysOnEveryWriteRoute(t *testing.T) {
	i := startInstance(t, nil)
	i.createUser("reader", "reader-password", "read")
	i.createUser("writer", "writer-password", "write")
	wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=shop", apiDoc("/shop", ""), nil), 200, ok)
	reader := i.login("reader", "reader-password")

	// A read user's API key (created while logged in: the token shows
	// once).
	r := i.as("POST", "/api/configuration/aaa/local_database/api_keys", `{"name": "monitoring"}`, reader)
	var created struct {
		Key  string `json:"key"`
		Body struct {
			Name, Username, LoginMethod, Token string
		} `json:"body"`
		Meta struct{ Href string } `json:"meta"`
	}
	decode(t, r, &created)
	if r.Code != 201 || created.Body.Token == "" || created.Body.Username != "reader" || created.Meta.Href == "" {
		t.Fatalf("create key: %d %s", r.Code, r.Body)
	}
	var keyFields map[string]any
	json.Unmarshal(r.Body, &keyFields)
	if keyFields["body"].(map[string]any)["login_method"] != "local" {
		t.Fatalf("login_method: %s", r.Body)
	}
	apikey := map[string]string{"Authorization": "apikey " + created.Body.Token}
	// The token is never shown again.
	list := i.as("GET", "/api/configuration/aaa/local_database/api_keys", "", reader)
	if list.Code != 200 || strings.Contains(string(list.Body), created.Body.Token) || !strings.Contains(string(list.Body), created.Key) {
		t.Fatalf("list: %d %s", list.Code, list.Body)
	}

	// Both can read everything, except a sideband token whole: a gateway's
	// credential is not given to a read-only one (the first 6 characters
	// name it).
	const token = "0123456789abcdef0123456789abcdef"
	if r := i.Do("PUT", "/v5/ase/sideband/token", `{"token": "`+token+`"}`, nil); r.Code != 200 {
		t.Fatalf("importing a token: %d %s", r.Code, r.Body)
	}
	if r := i.Do("GET", "/v5/ase/sideband/token", "", nil); !strings.Contains(string(r.Body), `"`+token+`"`) {
		t.Fatalf("the admin's token list: %s", r.Body)
	}
	for _, cred := range []map[string]string{reader, apikey} {
		for _, p := range []string{"/v5/ase/api", "/v4/ase/api?api_id=shop", "/v5/ase/firewall/blacklist", "/v5/ase/status", "/v5/ase/sideband/token"} {
			if r := i.as("GET", p, "", cred); r.Code != 200 {
				t.Fatalf("GET %s with %v: %d %s", p, cred, r.Code, r.Body)
			}
		}
		if r := i.as("GET", "/v5/ase/sideband/token", "", cred); strings.Contains(string(r.Body), token) || !strings.Contains(string(r.Body), `"012345..."`) {
			t.Fatalf("a read-only credential's token list: %s", r.Body)
		}
	}
	// Neither can change anything, on any write route of the table.
	routes := writeRoutes()
	if len(routes) < 25 {
		t.Fatalf("only %d write routes found", len(routes))
	}
	for _, rt := range routes {
		for _, p := range rt.FullPaths() {
			r := i.as(rt.Method, p, `{}`, apikey)
			if r.Code != 403 || !strings.Contains(string(r.Body), "API keys are read-only") {
				t.Fatalf("API key on %s %s: %d %s", rt.Method, p, r.Code, r.Body)
			}
			if rt.AnyRole {
				continue // their own API keys: any logged-in user
			}
			r = i.as(rt.Method, p, `{}`, reader)
			if r.Code != 403 || !strings.Contains(string(r.Body), "read role") && !strings.Contains(string(r.Body), "needs the admin role") {
				t.Fatalf("read user on %s %s: %d %s", rt.Method, p, r.Code, r.Body)
			}
		}
	}
	// Nothing changed.
	wantJSON(t, i.Do("GET", "/v5/ase/api", "", nil), 200, `{"api_count": "1", "api": [{"api_id": "shop", "status": "loaded"}]}`)

	// A write user writes, but cannot manage users.
	writer := i.login("writer", "writer-password")
	wantJSON(t, i.as("POST", "/v5/ase/api?api_id=w", apiDoc("/w", ""), writer), 200, ok)
	wantAPIError(t, i.as("GET", "/api/configuration/aaa/local_database/users", "", writer), 403, "PermissionDenied")

	// The built-in admin cannot be deleted, nor have API keys.
	wantAPIError(t, i.Do("DELETE", "/api/configuration/aaa/local_database/users/admin", "", nil), 403, "PermissionDenied")
	admin := i.login("admin", "admin")
	wantAPIError(t, i.as("POST", "/api/configuration/aaa/local_database/api_keys", `{"name": "x"}`, admin), 403, "PermissionDenied")
	// Admins see everyone's keys; a user only their own.
	if r := i.as("GET", "/api/configuration/aaa/local_database/api_keys", "", admin); !strings.Contains(string(r.Body), created.Key) {
		t.Fatalf("admin list: %s", r.Body)
	}
	if r := i.as("GET", "/api/configuration/aaa/local_database/api_keys", "", writer); strings.Contains(string(r.Body), created.Key) {
		t.Fatalf("a user sees another's key: %s", r.Body)
	}
	wantAPIError(t, i.as("DELETE", "/api/configuration/aaa/local_database/api_keys/"+created.Key, "", writer), 404, "NotFound")
	// Deleting the key ends it.
	if r := i.as("DELETE", "/api/configuration/aaa/local_database/api_keys/"+created.Key, "", reader); r.Code != 200 {
		t.Fatalf("delete own key: %d %s", r.Code, r.Body)
	}
	if r := i.as("GET", "/v5/ase/api", "", apikey); r.Code != 403 {
		t.Fatalf("a deleted key still works: %d", r.Code)
	}
	// Users: read, change the role, delete (which ends their sessions).
	wantJSON(t, i.Do("PUT", "/api/configuration/aaa/local_database/users/reader", `{"role": "write"}`, nil), 200,
		`{"key": "reader", "meta": {"href": "/api/configuration/aaa/local_database/users/reader"}}`)
	wantJSON(t, i.as("POST", "/v5/ase/api?api_id=r", apiDoc("/r", ""), reader), 200, ok)
	wantAPIError(t, i.Do("POST", "/api/configuration/aaa/local_database/users", `{"name": "reader", "password": "whatever1", "role": "read"}`, nil), 409, "ObjectExists")
	wantAPIError(t, i.Do("POST", "/api/configuration/aaa/local_database/users", `{"name": "x", "password": "whatever1", "role": "boss"}`, nil), 400, "InvalidRequest")
	if r := i.Do("DELETE", "/api/configuration/aaa/local_database/users/reader", "", nil); r.Code != 200 {
		t.Fatalf("delete user: %d %s", r.Code, r.Body)
	}
	if r := i.as("GET", "/v5/ase/api", "", reader); r.Code != 403 {
		t.Fatalf("a deleted user's session still works: %d", r.Code)
	}
	wantAPIError(t, i.Do("GET", "/api/configuration/aaa/local_database/users/reader", "", nil), 404, "NotFound")
}

func TestTransactions(t *testing.T) {
	i := startInstance(t, map[string]string{"attack_list_memory": "1MB"})
	i.createUser("ops", "ops-password", "admin")
	i.createUser("other", "other-password", "write")
	ops := i.login("ops", "ops-password")
	other := i.login("other", "other-password")

	// 411 without a body or Content-Length.
	c, _ := net.Dial("tcp", strings.TrimPrefix(i.MgmtURL, "http://"))
	fmt.Fprintf(c, "POST /api/transaction HTTP/1.1\r\nHost: x\r\n%s: %s\r\n\r\n", "Cookie", ops["Cookie"])
	line := make([]byte, 64)
	n, _ := c.Read(line)
	c.Close()
	if !strings.HasPrefix(string(line[:n]), "HTTP/1.1 411") {
		t.Fatalf("got %q", line[:n])
	}
	if r := i.as("POST", "/api/transaction", "{}", ops); r.Code != 200 || !strings.Contains(string(r.Body), `"status": "open"`) {
		t.Fatalf("open: %d %s", r.Code, r.Body)
	}
	wantAPIError(t, i.as("POST", "/api/transaction", "{}", other), 409, "TransactionInProgress")

	// Stage changes of every kind.
	staged := []struct{ method, path, body string }{
		{"POST", "/v5/ase/api?api_id=staged", apiDoc("/staged", `"servers": [{"host": "127.0.0.1", "port": 9}]`)},
		{"POST", "/v5/ase/server?api_id=staged", `{"server": {"host": "127.0.0.1", "port": 10}}`},
		{"POST", "/v5/ase/firewall/flowcontrol?api_id=staged", `{"flow_control": {"client_spike_threshold": "9/second"}}`},
		{"POST", "/v5/ase/firewall/blacklist", `{"type": "ip", "value": "192.0.2.99"}`},
		{"PUT", "/v5/ase/sideband/token", `{"token": "0123456789abcdef0123456789abcdef"}`},
		{"POST", "/v5/ase/sideband/secret", `{"name": "s", "secret": "staged-secret"}`},
		{"POST", "/api/configuration/aaa/local_database/users", `{"name": "newbie", "password": "newbie-password", "role": "read"}`},
	}
	for _, s := range staged {
		if r := i.as(s.method, s.path, s.body, ops); r.Code/100 != 2 {
			t.Fatalf("%s %s: %d %s", s.method, s.path, r.Code, r.Body)
		}
	}
	// Visible to its session only.
	if r := i.as("GET", "/v5/ase/api?api_id=staged", "", ops); r.Code != 200 {
		t.Fatalf("the session does not see its staged API: %d", r.Code)
	}
	wantStatus(t, i.as("GET", "/v5/ase/api?api_id=staged", "", other), 404, "api_not_found", "api staged does not exist")
	wantStatus(t, i.Do("GET", "/v5/ase/api?api_id=staged", "", nil), 404, "api_not_found", "api staged does not exist")
	// Other writers wait: another session, and the access/secret headers.
	wantStatus(t, i.as("POST", "/v5/ase/api?api_id=x", apiDoc("/x", ""), other), 409, "transaction_in_progress", "user ops has a transaction open; retry when it ends")
	wantStatus(t, i.Do("POST", "/v5/ase/firewall?status=disable", "", nil), 409, "transaction_in_progress", "*")

	var st struct {
		Body struct {
			Status           string `json:"status"`
			RemainingSeconds int    `json:"remaining_seconds"`
			Changes          int    `json:"changes"`
		} `json:"body"`
	}
	decode(t, i.as("GET", "/api/transaction", "", ops), &st)
	if st.Body.Status != "open" || st.Body.RemainingSeconds < 60 || st.Body.Changes != len(staged) {
		t.Fatalf("status %+v", st.Body)
	}
	var ch struct {
		Changes []struct{ Action string } `json:"changes"`
	}
	decode(t, i.as("GET", "/api/transaction/changes", "", ops), &ch)
	if len(ch.Changes) != len(staged) || ch.Changes[0].Action != "create_api" || ch.Changes[6].Action != "create_user" {
		t.Fatalf("changes %+v", ch.Changes)
	}
	decode(t, i.as("GET", "/api/transaction/changes", "", other), &ch)
	if len(ch.Changes) != 0 {
		t.Fatal("another session sees the staged changes")
	}

	// Commit: all of it applies at once.
	if r := i.as("PUT", "/api/transaction", `{"status": "commit", "message": "add staged"}`, ops); r.Code != 200 {
		t.Fatalf("commit: %d %s", r.Code, r.Body)
	}
	wantJSON(t, i.Do("GET", "/v5/ase/server?api_id=staged", "", nil), 200, `{"api_id": "staged", "server_count": 2, "server": [
		{"host": "127.0.0.1", "port": 9, "server_spike_threshold": "0/second", "server_connection_quota": 0, "health_status": "Up"},
		{"host": "127.0.0.1", "port": 10, "server_spike_threshold": "0/second", "server_connection_quota": 0, "health_status": "Up"}]}`)
	for _, p := range []string{"/v5/ase/firewall/blacklist?tag=manual", "/v5/ase/sideband/token", "/v5/ase/sideband/secret"} {
		if r := i.Do("GET", p, "", nil); strings.Count(string(r.Body), "192.0.2.99")+strings.Count(string(r.Body), "0123456789abcdef0123456789abcdef")+strings.Count(string(r.Body), `"name": "s"`) != 1 {
			t.Fatalf("%s after commit: %s", p, r.Body)
		}
	}
	i.login("newbie", "newbie-password")
	wantStatus(t, i.as("POST", "/v5/ase/api?api_id=x", apiDoc("/x", ""), other), 200, "success", "success")

	// Rollback: nothing applies.
	i.as("POST", "/api/transaction", "{}", ops)
	i.as("POST", "/v5/ase/api?api_id=gone", apiDoc("/gone", ""), ops)
	if r := i.as("DELETE", "/api/transaction", "", ops); r.Code != 200 {
		t.Fatalf("rollback: %d", r.Code)
	}
	wantStatus(t, i.Do("GET", "/v5/ase/api?api_id=gone", "", nil), 404, "api_not_found", "api gone does not exist")

	// A commit that fails half-way applies nothing: each bulk import fits
	// the 1 MB list budget alone, not together.
	i.as("POST", "/api/transaction", "{}", ops)
	i.as("POST", "/v5/ase/api?api_id=half", apiDoc("/half", ""), ops)
	for part := 0; part < 2; part++ {
		var feed []string
		for n := 0; n < 40000; n++ {
			feed = append(feed, fmt.Sprintf(`{"type": "ip", "value": "10.%d.%d.%d"}`, part, n/256, n%256))
		}
		if r := i.as("POST", "/v5/ase/firewall/blacklist", "["+strings.Join(feed, ",")+"]", ops); r.Code != 200 {
			t.Fatalf("staging part %d: %d %s", part, r.Code, r.Body)
		}
	}
	r := i.as("PUT", "/api/transaction", `{"status": "commit", "message": "too much"}`, ops)
	if r.Code != 507 || !strings.Contains(string(r.Body), "attack list memory is full") {
		t.Fatalf("commit past the budget: %d %s", r.Code, r.Body)
	}
	wantStatus(t, i.Do("GET", "/v5/ase/api?api_id=half", "", nil), 404, "api_not_found", "api half does not exist")
	var view map[string][]any
	decode(t, i.Do("GET", "/v5/ase/firewall/blacklist?tag=manual", "", nil), &view)
	if len(view["manual_blacklist"]) != 1 {
		t.Fatalf("%d entries after a failed commit, want the 1 from before", len(view["manual_blacklist"]))
	}
	decode(t, i.as("GET", "/api/transaction", "", ops), &st)
	if st.Body.Status != "closed" {
		t.Fatalf("after a failed commit the transaction is %s", st.Body.Status)
	}

	// The audit log names the user behind the commit.
	audit, _ := os.ReadFile(filepath.Join(i.Conf["data_dir"], "logs", "audit.log"))
	if !strings.Contains(string(audit), `"user":"ops","via":"rest_api","auth":"session","client":"127.0.0.1","action":"commit_transaction"`) ||
		!strings.Contains(string(audit), `"result":"staged"`) {
		t.Fatalf("audit: %s", audit)
	}
	if strings.Contains(string(audit), "staged-secret") || strings.Contains(string(audit), "newbie-password") {
		t.Fatal("a secret reached the audit log")
	}
}

func TestTransactionExpiresAndSessionsRace(t *testing.T) {
	i := newInstance(t, map[string]string{"session_timeout": "1h"})
	clock := withTestClock(t, i)
	i.Start()
	i.createUser("a", "a-password", "write")
	i.createUser("b", "b-password", "write")
	a, b := i.login("a", "a-password"), i.login("b", "b-password")
	if r := i.as("POST", "/api/transaction", "{}", a); r.Code != 200 {
		t.Fatalf("open: %d %s", r.Code, r.Body)
	}
	if r := i.as("POST", "/v5/ase/api?api_id=late", apiDoc("/late", ""), a); r.Code != 200 {
		t.Fatalf("staged write: %d %s", r.Code, r.Body)
	}
	// Kept alive by b's requests, a's transaction runs out on its own,
	// an hour (session_timeout) after it opened.
	clock.Advance(40 * time.Minute)
	if r := i.as("POST", "/v5/ase/api?api_id=b", apiDoc("/b", ""), b); r.Code != 409 {
		t.Fatalf("a write beside a's open transaction: %d %s, want 409", r.Code, r.Body)
	}
	clock.Advance(30 * time.Minute)
	if r := i.as("POST", "/v5/ase/api?api_id=b", apiDoc("/b", ""), b); r.Code != 200 {
		t.Fatalf("a write once a's transaction ran out: %d %s", r.Code, r.Body)
	}
	wantStatus(t, i.Do("GET", "/v5/ase/api?api_id=late", "", nil), 404, "api_not_found", "api late does not exist")

	// Two sessions race to open a transaction and to write: exactly one
	// transaction opens; every write either lands or gets 409.
	a, b = i.login("a", "a-password"), i.login("b", "b-password")
	var wg sync.WaitGroup
	codes := make([]int, 2)
	for k, s := range []map[string]string{a, b} {
		wg.Add(1)
		go func(k int, s map[string]string) {
			defer wg.Done()
			codes[k] = i.as("POST", "/api/transaction", "{}", s).Code
		}(k, s)
	}
	wg.Wait()
	if !(codes[0] == 200 && codes[1] == 409 || codes[0] == 409 && codes[1] == 200) {
		t.Fatalf("open codes %v, want one 200 and one 409", codes)
	}
	winner, loser := a, b
	if codes[1] == 200 {
		winner, loser = b, a
	}
	results := make(chan int, 40)
	for n := 0; n < 20; n++ {
		wg.Add(2)
		go func(n int) {
			defer wg.Done()
			results <- i.as("POST", "/v5/ase/firewall/blacklist", fmt.Sprintf(`{"type": "ip", "value": "198.51.100.%d"}`, n), winner).Code
		}(n)
		go func(n int) {
			defer wg.Done()
			results <- i.as("POST", "/v5/ase/firewall/whitelist", fmt.Sprintf(`{"type": "ip", "value": "203.0.113.%d"}`, n), loser).Code
		}(n)
	}
	wg.Wait()
	close(results)
	count := map[int]int{}
	for c := range results {
		count[c]++
	}
	if count[200] != 20 || count[409] != 20 {
		t.Fatalf("codes %v, want 20 staged and 20 refused", count)
	}
	if r := i.as("PUT", "/api/transaction", `{"status": "commit"}`, winner); r.Code != 200 {
		t.Fatalf("commit: %d %s", r.Code, r.Body)
	}
	var view map[string][]any
	decode(t, i.Do("GET", "/v5/ase/firewall/blacklist?tag=manual", "", nil), &view)
	if len(view["manual_blacklist"]) != 20 {
		t.Fatalf("%d entries committed, want 20", len(view["manual_blacklist"]))
	}
}

// testPKI makes a CA, a server certificate for 127.0.0.1 and a client
// certificate with the given common name, as PEM files in dir.
func testPKI(t *testing.T, dir, clientCN string) (caFile, certFile, keyFile string, client tls.Certificate) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, _ := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	ca, _ := x509.ParseCertificate(caDER)
	issue := func(serial int64, cn string, usage x509.ExtKeyUsage) ([]byte, *ecdsa.PrivateKey) {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn}, NotBefore: time.Now().Add(-time.Hour),
			NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
		der, _ := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		return der, k
	}
	write := func(name string, typ string, b []byte) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600)
		return p
	}
	caFile = write("ca.pem", "CERTIFICATE", caDER)
	srvDER, srvKey := issue(2, "127.0.0.1", x509.ExtKeyUsageServerAuth)
	certFile = write("server.pem", "CERTIFICATE", srvDER)
	kb, _ := x509.MarshalECPrivateKey(srvKey)
	keyFile = write("server.key", "EC PRIVATE KEY", kb)
	cliDER, cliKey := issue(3, clientCN, x509.ExtKeyUsageClientAuth)
	client = tls.Certificate{Certificate: [][]byte{cliDER}, PrivateKey: cliKey}
	return
}

func TestX509Login(t *testing.T) {
	dir := t.TempDir()
	caFile, certFile, keyFile, aliceCert := testPKI(t, dir, "alice")
	_, _, _, mallory := testPKI(t, t.TempDir(), "alice") // same name, another CA
	i := newInstance(t, map[string]string{"client_ca_file": caFile, "management_tls_cert_file": certFile, "management_tls_key_file": keyFile})
	i.MgmtURL = "https://127.0.0.1:" + i.Conf["management_port"]
	pool := x509.NewCertPool()
	pem, _ := os.ReadFile(caFile)
	pool.AppendCertsFromPEM(pem)
	clientWith := func(certs ...tls.Certificate) *http.Client {
		return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: certs}}}
	}
	old := http.DefaultClient
	http.DefaultClient = clientWith()
	defer func() { http.DefaultClient = old }()
	i.Start()
	i.createUser("alice", "alice-password", "write")

	wantJSON(t, i.as("GET", "/api/authentication/login_methods", "", nil), 200,
		`{"login_methods": [{"name": "local", "type": "password"}, {"name": "x509", "type": "x509"}]}`)
	get := func(c *http.Client, url string, cookie string) (int, http.Header, string) {
		req, _ := http.NewRequest("GET", url, nil)
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, resp.Header, string(b)
	}
	code, hdr, body := get(clientWith(aliceCert), i.MgmtURL+"/api/authentication?login_method=x509&type=x509", "")
	if code != 200 || !strings.Contains(hdr.Get("Set-Cookie"), "Secure") {
		t.Fatalf("x509 login: %d %s %v", code, body, hdr)
	}
	cookie := strings.Split(hdr.Get("Set-Cookie"), ";")[0]
	if code, _, body := get(clientWith(), i.MgmtURL+"/v5/ase/status", cookie); code != 200 {
		t.Fatalf("with the x509 session: %d %s", code, body)
	}
	// A certificate from another CA fails the handshake's verification;
	// none at all is an invalid request.
	if _, err := clientWith(mallory).Get(i.MgmtURL + "/api/authentication?type=x509"); err == nil {
		t.Fatal("a certificate from an unknown CA was accepted")
	}
	code, _, body = get(clientWith(), i.MgmtURL+"/api/authentication?type=x509", "")
	if code != 400 || !strings.Contains(body, "InvalidAuthenticationRequest") {
		t.Fatalf("no certificate: %d %s", code, body)
	}
	_ = strconv.Itoa
}
