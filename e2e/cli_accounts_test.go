package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestCLIUsersAndAPIKeys manages users and API keys with the CLI: as the
// admin, as a local user (whose CLI logs in with a session), and the
// one-command read-only key for a metrics scraper.
func TestCLIUsersAndAPIKeys(t *testing.T) {
	i := startInstance(t, nil)
	mustRun := func(stdin, want string, args ...string) string {
		t.Helper()
		stdout, stderr, code := i.CLI(stdin, args...)
		if code != 0 || !regexp.MustCompile(want).MatchString(stdout) {
			t.Fatalf("ase %s: exit %d\nstdout %q\nstderr %q\nwant %s", strings.Join(args, " "), code, stdout, stderr, want)
		}
		return stdout
	}
	mustFail := func(stdin string, code int, want string, args ...string) {
		t.Helper()
		stdout, stderr, got := i.CLI(stdin, args...)
		if got != code || !regexp.MustCompile(want).MatchString(stderr) {
			t.Fatalf("ase %s: exit %d, want %d\nstdout %q\nstderr %q\nwant %s", strings.Join(args, " "), got, code, stdout, stderr, want)
		}
	}
	asAlice := func(args ...string) []string { return append(args, "-u", "alice", "-p", "alice-password") }

	// Users: the password is asked twice (stdin lines without a terminal);
	// the role is checked before anything is asked.
	mustRun("alice-password\nalice-password\n", `^user alice created with the write role\n$`, "create_user", "alice", "write")
	mustFail("", 2, `role must be admin, write or read`, "create_user", "bob", "superuser")
	mustFail("bob-password\nbob-passwor\n", 2, `the passwords do not match`, "create_user", "bob", "read")
	mustFail("short\nshort\n", 2, `at least 8 characters`, "create_user", "bob", "read")
	mustFail("alice-password\nalice-password\n", 1, `^ase: user already exists\n$`, "create_user", "alice", "read")
	mustRun("", `^users : 2\n  admin +admin +created \S+\n  alice +write +created \S+\n$`, "list_user")

	// A local user runs any command with -u/-p: the CLI logs in with a
	// session (only the built-in admin has the access-key headers).
	mustRun("", `^api count : 0\n$`, asAlice("list_api")...)
	mustFail("", 1, `Authenticating the user with the given credentials has failed`, "list_api", "-u", "alice", "-p", "wrong-password")
	// A write user cannot manage users: the server says so.
	mustFail("", 1, `user alice has the write role; this needs the admin role`, asAlice("list_user")...)

	// Her own API key, created through her session.
	out := mustRun("", `^api key grafana \(key [0-9a-f-]{36}\) created for user alice\ntoken : [A-Za-z0-9_-]{43}\nthe token is shown only this once\n$`, asAlice("create_api_key", "grafana")...)
	aliceKey := regexp.MustCompile(`key ([0-9a-f-]{36})`).FindStringSubmatch(out)[1]
	aliceToken := regexp.MustCompile(`token : (\S+)`).FindStringSubmatch(out)[1]
	if r := i.as("GET", "/v5/ase/status", "", map[string]string{"Authorization": "apikey " + aliceToken}); r.Code != 200 {
		t.Fatalf("the printed token does not work: %d %s", r.Code, r.Body)
	}
	// The built-in admin has no keys of its own: the CLI says how to make
	// one for a user instead.
	mustFail("", 2, `the built-in admin cannot have API keys: give --for USER`, "create_api_key", "mine")
	// An admin creates a key for another user (admin-only endpoint, audited).
	out = mustRun("", `^api key ci \(key [0-9a-f-]{36}\) created for user alice\ntoken : \S+\n`, "create_api_key", "ci", "--for", "alice")
	ciKey := regexp.MustCompile(`key ([0-9a-f-]{36})`).FindStringSubmatch(out)[1]
	mustFail("", 1, `user alice has the write role; this needs the admin role`, asAlice("create_api_key", "x", "--for", "alice")...)
	mustFail("", 1, `user does not exist`, "create_api_key", "x", "--for", "nobody")

	// Listing: admins see everyone's keys, never a token.
	list := mustRun("", `^api keys : 2\n  `+aliceKey+` +grafana +user alice +local +created \S+\n  `+ciKey+` +ci +user alice +local +created \S+\n$`, "list_api_key")
	if strings.Contains(list, aliceToken) {
		t.Fatal("list_api_key shows a token")
	}
	mustRun("", `^api key `+ciKey+` deleted\n$`, "delete_api_key", ciKey)
	mustFail("", 1, `API key does not exist`, "delete_api_key", ciKey)
	mustRun("", `^api keys : 1\n  `+aliceKey+` +grafana`, asAlice("list_api_key")...)

	// Changing a user: the role, the password (asked twice), or both.
	mustRun("", `^user alice now has the read role\n$`, "update_user", "alice", "--role", "read")
	mustRun("alice-password2\nalice-password2\n", `^the password of user alice is changed\n$`, "update_user", "alice", "--new-password")
	mustFail("", 2, `give --role ROLE, --new-password, or both`, "update_user", "alice")
	mustRun("", `^api count : 0\n$`, "list_api", "-u", "alice", "-p", "alice-password2")

	// The scraper's key in one command: a read user (created with a
	// password nobody knows) and its key; the token works on /metrics and
	// cannot change anything.
	out = mustRun("", `^user prometheus created with the read role \(its password is random and never shown: it uses only API keys\)\napi key prometheus \(key [0-9a-f-]{36}\) created for user prometheus\ntoken : \S+\nthe token is shown only this once; scrape /v5/ase/metrics with the header "Authorization: apikey <token>"\n$`, "create_scraper_key", "prometheus")
	scraper := map[string]string{"Authorization": "apikey " + regexp.MustCompile(`token : (\S+)`).FindStringSubmatch(out)[1]}
	if r := i.as("GET", "/v5/ase/metrics", "", scraper); r.Code != 200 || !strings.Contains(string(r.Body), "ase_config_changes_total") {
		t.Fatalf("scrape with the key: %d %.200s", r.Code, r.Body)
	}
	if r := i.as("POST", "/v5/ase/firewall?status=disable", "", scraper); r.Code != 403 {
		t.Fatalf("the scraper's key changed configuration: %d %s", r.Code, r.Body)
	}
	mustRun("", `(?m)^  prometheus +read +created `, "list_user")
	// Again (rotation): the user exists, a second key is made.
	mustRun("", `^user prometheus exists with the read role\napi key rotated \(key [0-9a-f-]{36}\) created for user prometheus\n`, "create_scraper_key", "prometheus", "--key-name", "rotated")
	mustRun("", `(?s)api keys : 3\n.*prometheus +user prometheus.*rotated +user prometheus`, "list_api_key")
	// A scraper key belongs to a read user, never to a writer.
	mustRun("writer-password\nwriter-password\n", `created`, "create_user", "writer", "write")
	mustFail("", 1, `user writer has the write role: a scraper key belongs to a read user`, "create_scraper_key", "writer")

	// -o json: the server's replies.
	stdout, _, code := i.CLI("", "create_scraper_key", "grafana-agent", "-o", "json")
	var created struct {
		UserCreated bool `json:"user_created"`
		User        struct {
			Key string `json:"key"`
		} `json:"user"`
		APIKey struct {
			Key  string `json:"key"`
			Body struct {
				Username, Token string
			} `json:"body"`
		} `json:"api_key"`
	}
	if err := json.Unmarshal([]byte(stdout), &created); code != 0 || err != nil || !created.UserCreated || created.User.Key != "grafana-agent" || created.APIKey.Body.Username != "grafana-agent" || created.APIKey.Body.Token == "" {
		t.Fatalf("create_scraper_key -o json: exit %d %v %q", code, err, stdout)
	}
	stdout, _, code = i.CLI("", "list_user", "-o", "json")
	if code != 0 || !strings.Contains(stdout, `"role": "read"`) || !strings.Contains(stdout, `"items"`) {
		t.Fatalf("list_user -o json: exit %d %q", code, stdout)
	}

	// Deleting a user.
	mustRun("", `^user alice deleted\n$`, "delete_user", "alice")
	mustFail("", 1, `user does not exist`, "delete_user", "alice")
	mustFail("", 1, `the built-in admin cannot be deleted`, "delete_user", "admin")

	// The audit log: who made which key for whom, through the CLI.
	audit, _ := os.ReadFile(filepath.Join(i.Conf["data_dir"], "logs", "audit.log"))
	var forOther, own bool
	for _, line := range strings.Split(string(audit), "\n") {
		if !strings.Contains(line, `"action":"create_api_key"`) || !strings.Contains(line, `"via":"cli"`) {
			continue
		}
		forOther = forOther || strings.Contains(line, `"user":"admin"`) && strings.Contains(line, `"username":"prometheus"`)
		own = own || strings.Contains(line, `"user":"alice"`) && strings.Contains(line, `"auth":"session"`)
	}
	if !forOther || !own {
		t.Fatalf("the audit log lacks the keys' creations (for another user %v, own %v):\n%s", forOther, own, audit)
	}
	for _, secret := range []string{aliceToken, "alice-password", "writer-password"} {
		if strings.Contains(string(audit), secret) || strings.Contains(i.Output(), secret) {
			t.Fatalf("a secret reached the logs: %q", secret)
		}
	}
}

// TestCLIJSONOnFailure: with -o json the CLI prints the server's JSON
// reply when the server refuses, exactly as the server sent it, on every
// kind of endpoint, with exit code 1 and the message on stderr.
func TestCLIJSONOnFailure(t *testing.T) {
	i := startInstance(t, nil)
	i.createUser("reader", "reader-password", "read")
	cases := []struct {
		args  []string
		stdin string
		same  func() Reply // the same call made directly
	}{
		{[]string{"api_info", "nope"}, "", func() Reply { return i.Do("GET", "/v5/ase/api?api_id=nope", "", nil) }},
		{[]string{"delete_blacklist", "ip", "192.0.2.1"}, "", func() Reply {
			return i.Do("DELETE", "/v5/ase/firewall/blacklist", `{"type": "ip", "value": "192.0.2.1"}`, nil)
		}},
		{[]string{"view_whitelist", "manual"}, "", func() Reply { return i.Do("GET", "/v5/ase/firewall/whitelist?tag=manual", "", nil) }},
		{[]string{"delete_user", "nobody"}, "", func() Reply { return i.Do("DELETE", "/api/configuration/aaa/local_database/users/nobody", "", nil) }},
		{[]string{"delete_api_key", "nope"}, "", func() Reply { return i.Do("DELETE", "/api/configuration/aaa/local_database/api_keys/nope", "", nil) }},
		{[]string{"create_api_key", "k", "--for", "admin"}, "", func() Reply {
			return i.Do("POST", "/api/configuration/aaa/local_database/users/admin/api_keys", `{"name": "k"}`, nil)
		}},
		{[]string{"create_shared_secret", "gw"}, "short-secret\n", nil},
		{[]string{"update_password"}, "not-the-password\nanother-pass1\nanother-pass1\n", nil},
		{[]string{"enable_firewall", "-u", "reader", "-p", "reader-password"}, "", nil},
		{[]string{"list_api", "-u", "reader", "-p", "wrong-password"}, "", nil},
	}
	// A shared secret to collide with.
	if _, stderr, code := i.CLI("short-secret\n", "create_shared_secret", "gw"); code != 0 {
		t.Fatal(stderr)
	}
	for _, c := range cases {
		stdout, stderr, code := i.CLI(c.stdin, append(c.args, "-o", "json")...)
		var got map[string]any
		if code != 1 || json.Unmarshal([]byte(stdout), &got) != nil || len(got) == 0 || !strings.HasPrefix(stderr, "ase: ") {
			t.Fatalf("ase %s -o json: exit %d, want 1 with the server's JSON on stdout\nstdout %q\nstderr %q", strings.Join(c.args, " "), code, stdout, stderr)
		}
		if c.same == nil {
			continue
		}
		r := c.same()
		var want map[string]any
		decode(t, r, &want)
		if r.Code/100 == 2 || !jsonEqual(got, want) {
			t.Fatalf("ase %s -o json printed %s; the server answers %d %s", strings.Join(c.args, " "), stdout, r.Code, r.Body)
		}
	}
	// No reply at all (unreachable): nothing on stdout, the reason on stderr.
	stdout, stderr, code := i.CLIEnv([]string{"ASE_URL=http://127.0.0.1:1", "ASE_PASSWORD=admin"}, "", "status", "-o", "json")
	if code != 1 || stdout != "" || !strings.Contains(stderr, "cannot reach") {
		t.Fatalf("unreachable -o json: exit %d stdout %q stderr %q", code, stdout, stderr)
	}
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}
