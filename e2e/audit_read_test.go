package e2e

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// auditPage is GET /audit's reply.
type auditPage struct {
	Entries []struct {
		Time   time.Time      `json:"time"`
		User   string         `json:"user"`
		Via    string         `json:"via"`
		Auth   string         `json:"auth"`
		Client string         `json:"client"`
		Action string         `json:"action"`
		Params map[string]any `json:"params"`
		Result string         `json:"result"`
	} `json:"entries"`
	Next    string `json:"next"`
	Skipped int    `json:"skipped"`
}

// said is how the tests compare entries: who, what, how it ended.
func (p auditPage) said() []string {
	var out []string
	for _, e := range p.Entries {
		out = append(out, e.User+" "+e.Action+" "+e.Result)
	}
	return out
}

// readAudit pages through GET /audit with query q and a page size,
// returning every entry said and the pages' sizes.
func readAudit(t *testing.T, i *Instance, cred map[string]string, q url.Values, limit int) ([]string, []int) {
	t.Helper()
	var all []string
	var pages []int
	var last time.Time
	for n := 0; ; n++ {
		if n > 100 {
			t.Fatal("paging does not end")
		}
		q.Set("limit", fmt.Sprint(limit))
		r := i.as("GET", "/v5/ase/audit?"+q.Encode(), "", cred)
		if r.Code != 200 {
			t.Fatalf("GET /v5/ase/audit?%s: got %d %s", q.Encode(), r.Code, r.Body)
		}
		var p auditPage
		decode(t, r, &p)
		if len(p.Entries) > limit {
			t.Fatalf("a page of %d entries, limit %d", len(p.Entries), limit)
		}
		for _, e := range p.Entries {
			if !last.IsZero() && e.Time.After(last) {
				t.Fatalf("entry at %s comes after one at %s: not newest first", e.Time, last)
			}
			last = e.Time
		}
		all = append(all, p.said()...)
		pages = append(pages, len(p.Entries))
		if p.Next == "" {
			return all, pages
		}
		q.Set("before", p.Next)
	}
}

// TestAuditRead makes changes through the API as several users, then
// reads them back from GET /audit: newest first, filtered by user and by
// action, paged with the before cursor across rotated files, by every
// role and an API key; the limits and bad cursors are refused, and a
// server that keeps no audit file says so.
func TestAuditRead(t *testing.T) {
	// Small files: the entries below are spread over several rotated
	// files, which paging goes through.
	i := startInstance(t, map[string]string{"log_max_size": "1kb", "log_max_files": "50"})
	var want []string // oldest first
	i.createUser("alice", "alice-password", "write")
	i.createUser("bob", "bob-password1", "write")
	i.createUser("reader", "reader-password", "read")
	want = append(want, "admin create_user success", "admin create_user success", "admin create_user success")
	alice, bob, reader := i.login("alice", "alice-password"), i.login("bob", "bob-password1"), i.login("reader", "reader-password")
	change := func(who string, cred map[string]string, method, path, body string, code int, action, result string) {
		t.Helper()
		if r := i.as(method, path, body, cred); r.Code != code {
			t.Fatalf("%s %s as %s: got %d %s, want %d", method, path, who, r.Code, r.Body, code)
		}
		want = append(want, who+" "+action+" "+result)
	}
	for n := range 3 {
		change("alice", alice, "POST", fmt.Sprintf("/v5/ase/api?api_id=a%d", n), apiDoc(fmt.Sprintf("/a%d", n), ""), 200, "create_api", "success")
		change("bob", bob, "POST", fmt.Sprintf("/v5/ase/api?api_id=b%d", n), apiDoc(fmt.Sprintf("/b%d", n), ""), 200, "create_api", "success")
		change("alice", alice, "POST", fmt.Sprintf("/v5/ase/server?api_id=a%d", n), `{"server": {"host": "127.0.0.1", "port": 9001}}`, 200, "add_server", "success")
	}
	change("bob", bob, "POST", "/v5/ase/firewall/flowcontrol?api_id=b1", `{"flow_control": {"client_spike_threshold": "10/second"}}`, 200, "update_flow_control", "success")
	change("bob", bob, "DELETE", "/v5/ase/api?api_id=b2", "", 200, "delete_api", "success")
	change("alice", alice, "POST", "/v5/ase/api?api_id=a0", apiDoc("/a0", ""), 403, "create_api", "api_already_exists")
	change("reader", reader, "POST", "/v5/ase/api?api_id=r", apiDoc("/r", ""), 403, "create_api", "permission_denied")
	slices.Reverse(want) // newest first

	logs := filepath.Join(i.Conf["data_dir"], "logs")
	if _, err := os.Stat(filepath.Join(logs, "audit.log.2")); err != nil {
		t.Fatalf("the audit log was not rotated, so paging across files is not tested: %v", err)
	}

	t.Run("everything, newest first, by every role", func(t *testing.T) {
		for who, cred := range map[string]map[string]string{
			"admin (access keys)": {"x-ase-access-key": "admin", "x-ase-secret-key": i.Password},
			"alice (write)":       alice,
			"reader (read)":       reader,
		} {
			got, pages := readAudit(t, i, cred, url.Values{}, 1000)
			if !slices.Equal(got, want) || len(pages) != 1 {
				t.Fatalf("as %s: got %q in pages %v\nwant %q", who, got, pages, want)
			}
		}
		// An API key reads it too (a SIEM collector's read-only key).
		r := i.as("POST", "/api/configuration/aaa/local_database/api_keys", `{"name": "siem"}`, reader)
		var key struct {
			Body struct{ Token string } `json:"body"`
		}
		decode(t, r, &key)
		if key.Body.Token == "" {
			t.Fatalf("no API key: %d %s", r.Code, r.Body)
		}
		got, _ := readAudit(t, i, map[string]string{"Authorization": "apikey " + key.Body.Token}, url.Values{}, 1000)
		if !slices.Equal(got[1:], want) || got[0] != "reader create_api_key success" {
			t.Fatalf("with an API key: got %q\nwant the key's creation, then %q", got, want)
		}
		want = got
		// The same under /v4/ase; the default page is 100.
		r = i.as("GET", "/v4/ase/audit", "", reader)
		var p auditPage
		decode(t, r, &p)
		if r.Code != 200 || !slices.Equal(p.said(), want) || p.Next != "" || p.Skipped != 0 {
			t.Fatalf("GET /v4/ase/audit: got %d %q next %q skipped %d", r.Code, p.said(), p.Next, p.Skipped)
		}
		// Entries are the log's lines, whole.
		e := p.Entries[len(p.Entries)-4] // alice's first create_api
		if e.User != "alice" || e.Via != "rest_api" || e.Auth != "session" || e.Client != "127.0.0.1" || e.Params["api_id"] != "a0" || e.Params["definition"] == nil {
			t.Fatalf("got entry %+v", e)
		}
	})

	filter := func(keep func(string) bool) []string {
		var out []string
		for _, s := range want {
			if keep(s) {
				out = append(out, s)
			}
		}
		return out
	}
	for _, tt := range []struct {
		name  string
		q     url.Values
		limit int
		keep  func(string) bool
	}{
		{"paged by 2", url.Values{}, 2, func(string) bool { return true }},
		{"paged by 1", url.Values{}, 1, func(string) bool { return true }},
		{"user", url.Values{"user": {"alice"}}, 2, func(s string) bool { return strings.HasPrefix(s, "alice ") }},
		{"action", url.Values{"action": {"create_api"}}, 3, func(s string) bool { return strings.Contains(s, " create_api ") }},
		{"user and action", url.Values{"user": {"bob"}, "action": {"create_api"}}, 2, func(s string) bool { return strings.HasPrefix(s, "bob create_api ") }},
		{"nobody", url.Values{"user": {"mallory"}}, 5, func(string) bool { return false }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, pages := readAudit(t, i, reader, tt.q, tt.limit)
			exp := filter(tt.keep)
			if !slices.Equal(got, exp) {
				t.Fatalf("got %q\nwant %q", got, exp)
			}
			if wantPages := max(1, (len(exp)+tt.limit-1)/tt.limit); len(pages) != wantPages {
				t.Fatalf("%d entries in pages %v: want %d full pages, and no empty one after them", len(exp), pages, wantPages)
			}
		})
	}

	t.Run("refused queries", func(t *testing.T) {
		for q, msg := range map[string]string{
			"limit=0":                    `query parameter limit contains invalid value "0"*`,
			"limit=1001":                 `query parameter limit contains invalid value "1001"*`,
			"limit=ten":                  `query parameter limit contains invalid value "ten"*`,
			"before=x":                   `query parameter before contains invalid value "x"*`,
			"before=0123456789abcdef-01": `query parameter before contains invalid value*`,
		} {
			wantStatus(t, i.as("GET", "/v5/ase/audit?"+q, "", reader), 403, "invalid_value", msg)
		}
		wantStatus(t, i.as("GET", "/v5/ase/audit?users=alice", "", reader), 403, "validation_error", `unknown query parameter "users"*`)
		wantStatus(t, i.as("GET", "/v5/ase/audit", "", nil), 403, "fail", "x-ase-access-key header missing")
		// A well-formed cursor of no file of this log.
		wantStatus(t, i.as("GET", "/v5/ase/audit?before=0123456789abcdef-100", "", reader), 404, "fail", "the audit log file of this cursor is no longer kept*")
	})

	t.Run("damaged lines are skipped and counted", func(t *testing.T) {
		f, err := os.OpenFile(filepath.Join(logs, "audit.log"), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		// A line cut by a crash, and one being written (no newline yet).
		f.WriteString(`{"time":"2026-12-01T08:00:00Z","user":"ali` + "\n" + `{"time":"2026-12-01T08:00:01Z","user":"x","act`)
		f.Close()
		r := i.as("GET", "/v5/ase/audit?limit=3", "", reader)
		var p auditPage
		decode(t, r, &p)
		if r.Code != 200 || !slices.Equal(p.said(), want[:3]) || p.Skipped != 1 || p.Next == "" {
			t.Fatalf("got %d %q, skipped %d, next %q; want %q, 1 skipped", r.Code, p.said(), p.Skipped, p.Next, want[:3])
		}
	})

	t.Run("no audit file", func(t *testing.T) {
		for conf, msg := range map[string]string{
			"enable_audit":     "the audit log is not kept: enable_audit=false",
			"audit_log_stdout": "the audit log is not kept in a file: audit_log_stdout=true*",
		} {
			v := "false"
			if conf == "audit_log_stdout" {
				v = "true"
			}
			j := startInstance(t, map[string]string{conf: v})
			wantStatus(t, j.Do("GET", "/v5/ase/audit", "", nil), 404, "fail", msg)
			j.Stop()
		}
	})
}
