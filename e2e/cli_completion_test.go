package e2e

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
)

// complete runs cobra's hidden __complete command as a shell does on TAB
// and returns the candidates (without their descriptions) and the
// directive line.
func complete(t *testing.T, i *Instance, env []string, args ...string) ([]string, string) {
	t.Helper()
	stdout, stderr, code := i.CLIEnv(env, "", append([]string{"__complete"}, args...)...)
	if code != 0 {
		t.Fatalf("ase __complete %s: exit %d\n%s%s", strings.Join(args, " "), code, stdout, stderr)
	}
	lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	var out []string
	for _, l := range lines[:len(lines)-1] {
		v, _, _ := strings.Cut(l, "\t")
		out = append(out, v)
	}
	return out, lines[len(lines)-1]
}

// TestCLICompletion: the shell completion scripts, and dynamic completion
// of API ids, servers, users, API keys, list entry types and tags from the
// running server.
func TestCLICompletion(t *testing.T) {
	i := startInstance(t, nil)
	env := []string{"ASE_URL=" + i.MgmtURL, "ASE_PASSWORD=" + i.Password}
	for _, shell := range []string{"bash", "zsh", "fish"} {
		stdout, _, code := i.CLI("", "completion", shell)
		if code != 0 || !strings.Contains(stdout, "__complete") {
			t.Fatalf("completion %s: exit %d %.200q", shell, code, stdout)
		}
	}
	for _, id := range []string{"shop", "chat"} {
		wantJSON(t, i.Do("POST", "/v5/ase/api?api_id="+id, apiDoc("/"+id, ""), nil), 200, ok)
	}
	wantJSON(t, i.Do("POST", "/v5/ase/server?api_id=shop", `{"server": {"host": "127.0.0.1", "port": 9}}`, nil), 200, ok)
	i.createUser("alice", "alice-password", "read")
	_, _, code := i.CLI("", "create_api_key", "ci", "--for", "alice")
	if code != 0 {
		t.Fatal("create_api_key failed")
	}

	cases := []struct {
		args []string
		want string // the candidates, one per line
	}{
		{[]string{"api_info", ""}, "chat shop"},
		{[]string{"api_info", "sh"}, "shop"},
		{[]string{"api_info", "shop", ""}, ""}, // one argument only
		{[]string{"delete_server", "shop", ""}, "127.0.0.1:9"},
		{[]string{"update_server_connection_quota", "shop", ""}, "127.0.0.1:9"},
		{[]string{"update_client_spike_threshold", ""}, "chat shop"},
		{[]string{"add_blacklist", ""}, "ip token cookie api_key username"},
		{[]string{"delete_whitelist", ""}, "ip token cookie api_key username"},
		{[]string{"view_blacklist", ""}, "all manual abs_generated invalid_content_type invalid_method invalid_protocol decoy"},
		{[]string{"clear_blacklist", ""}, "all manual abs_generated invalid_content_type invalid_method invalid_protocol decoy"},
		{[]string{"view_whitelist", ""}, "all"},
		{[]string{"clear_whitelist", ""}, "all"},
		{[]string{"delete_user", ""}, "admin alice"},
		{[]string{"update_user", ""}, "admin alice"},
		{[]string{"create_user", "bob", ""}, "admin write read"},
		{[]string{"update_user", "alice", "--role", ""}, "admin write read"},
		{[]string{"create_api_key", "k", "--for", ""}, "admin alice"},
	}
	for _, c := range cases {
		got, directive := complete(t, i, env, c.args...)
		if strings.Join(got, " ") != c.want || directive != ":4" {
			t.Fatalf("complete %q: got %q %s, want %q :4", c.args, got, directive, c.want)
		}
	}
	// API keys by id, described by name and user.
	stdout, _, _ := i.CLIEnv(env, "", "__complete", "delete_api_key", "")
	if !regexp.MustCompile(`^[0-9a-f-]{36}\tci \(alice\)\n:4\n`).MatchString(stdout) {
		t.Fatalf("complete delete_api_key: %q", stdout)
	}
	// Files for add_api: JSON files and folders.
	if _, d := complete(t, i, env, "add_api", ""); d != ":8" {
		t.Fatalf("complete add_api: directive %s, want :8 (file extensions)", d)
	}
	// Credentials from the flags too; none at all (or a server that cannot
	// be reached): no candidates, no prompt, no error.
	if got, _ := complete(t, i, nil, "api_info", "--url", i.MgmtURL, "-p", i.Password, ""); strings.Join(got, " ") != "chat shop" {
		t.Fatalf("complete with flags: %q", got)
	}
	if got, d := complete(t, i, []string{"ASE_URL=" + i.MgmtURL}, "api_info", ""); len(got) != 0 || d != ":4" {
		t.Fatalf("complete without a password: %q %s", got, d)
	}
	if got, d := complete(t, i, []string{"ASE_URL=http://127.0.0.1:1", "ASE_PASSWORD=admin"}, "api_info", ""); len(got) != 0 || d != ":4" {
		t.Fatalf("complete with the server down: %q %s", got, d)
	}
	// A local user completes through a session.
	if got, _ := complete(t, i, []string{"ASE_URL=" + i.MgmtURL, "ASE_USER=alice", "ASE_PASSWORD=alice-password"}, "api_info", ""); strings.Join(got, " ") != "chat shop" {
		t.Fatalf("complete as alice: %q", got)
	}
}

// TestCLIListTagsAgree: the tags the CLI offers for each list (in its help
// and in completion) are exactly those the server accepts.
func TestCLIListTagsAgree(t *testing.T) {
	i := startInstance(t, nil)
	env := []string{"ASE_URL=" + i.MgmtURL, "ASE_PASSWORD=" + i.Password}
	everyTag := []string{"all", "manual", "abs_generated", "invalid_content_type", "invalid_method", "invalid_protocol", "decoy", "whitelist", "nope"}
	for _, list := range []string{"blacklist", "whitelist"} {
		offered, _ := complete(t, i, env, "view_"+list, "")
		if len(offered) == 0 {
			t.Fatalf("no tags offered for view_%s", list)
		}
		for _, cmd := range []string{"view_", "clear_"} {
			got, _ := complete(t, i, env, cmd+list, "")
			if strings.Join(got, " ") != strings.Join(offered, " ") {
				t.Fatalf("%s%s offers %q, view_%s %q", cmd, list, got, list, offered)
			}
			help, _, _ := i.CLI("", "help", cmd+list)
			m := regexp.MustCompile(`TAG: ([a-z_, ]+)\)`).FindStringSubmatch(help)
			if m == nil || m[1] != strings.Join(offered, ", ") {
				t.Fatalf("help %s%s lists %q, want %q:\n%s", cmd, list, m, strings.Join(offered, ", "), help)
			}
		}
		for _, tag := range everyTag {
			isOffered := strings.Contains(" "+strings.Join(offered, " ")+" ", " "+tag+" ")
			r := i.Do("GET", "/v5/ase/firewall/"+list+"?tag="+tag, "", nil)
			if accepted := r.Code == 200; accepted != isOffered {
				t.Fatalf("%s tag %s: offered %v, server answers %d %s", list, tag, isOffered, r.Code, r.Body)
			}
			stdout, stderr, code := i.CLI("", "view_"+list, tag)
			if (code == 0) != isOffered {
				t.Fatalf("view_%s %s: exit %d, offered %v\n%s%s", list, tag, code, isOffered, stdout, stderr)
			}
		}
	}
	// The entry types offered are the ones the server takes.
	types, _ := complete(t, i, env, "add_blacklist", "")
	for _, typ := range types {
		body := fmt.Sprintf(`{"type": %q, "value": "v1"}`, typ)
		if typ == "ip" {
			body = `{"type": "ip", "value": "192.0.2.9"}`
		}
		if typ == "cookie" || typ == "api_key" {
			body = fmt.Sprintf(`{"type": %q, "name": "n", "value": "v1"}`, typ)
		}
		if r := i.Do("POST", "/v5/ase/firewall/blacklist", body, nil); r.Code != 200 {
			t.Fatalf("type %s offered but refused: %d %s", typ, r.Code, r.Body)
		}
	}
}
