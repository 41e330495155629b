package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// testEnv is an env with the given stdin and environment, no terminal.
func testEnv(stdin string, vars map[string]string) (*env, *bytes.Buffer, *bytes.Buffer) {
	var stdout, stderr bytes.Buffer
	return &env{
		stdin:  strings.NewReader(stdin),
		stdout: &stdout,
		stderr: &stderr,
		getenv: func(k string) string { return vars[k] },
		isTTY:  func() bool { return false },
	}, &stdout, &stderr
}

// refusingServer answers every request as the management API refuses
// one, in the shape of the path's family.
func refusingServer(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		if strings.HasPrefix(r.URL.Path, "/api/") {
			w.Write([]byte(`{"error": {"type": "PermissionDenied", "message": "refused by the test"}}`))
			return
		}
		w.Write([]byte(`{"status": "fail", "status_message": "refused by the test"}`))
	}))
	t.Cleanup(srv.Close)
	return srv
}

// sampleArgs fills a command's Use placeholders with values its own
// checks accept, so that the call reaches the server.
func sampleArgs(t *testing.T, cmd *cobra.Command) []string {
	file := filepath.Join(t.TempDir(), "shop.json")
	os.WriteFile(file, []byte(`{}`), 0o600)
	samples := map[string]string{
		"API_ID": "shop", "HOST:PORT": "127.0.0.1:9", "RATE": "5/second", "N": "3", "TYPE": "ip",
		"VALUE": "192.0.2.1", "IP": "192.0.2.1", "TOKEN": strings.Repeat("a", 32), "FILE": file,
		"ROLE": "read", "NAME": "n1", "KEY": "k1", "HEADER": "X-Secret",
	}
	var out []string
	for _, f := range strings.Fields(cmd.Use)[1:] {
		if strings.HasPrefix(f, "[") || strings.HasSuffix(f, "]") { // optional, also within [TYPE [NAME] VALUE]
			continue
		}
		v, ok := samples[f]
		if !ok {
			v = "x"
		}
		out = append(out, v)
	}
	// Flags a command needs to call the server at all.
	switch cmd.Name() {
	case "create_api_key":
		out = append(out, "--for", "bob")
	case "update_user":
		out = append(out, "--role", "read")
	case "delete_abs_attacklist":
		out = append(out, "--all")
	}
	return out
}

// TestJSONOnFailureEveryCommand: with -o json, every command that calls
// the management API prints the server's JSON refusal on stdout (and its
// message on stderr, exit 1).
func TestJSONOnFailureEveryCommand(t *testing.T) {
	srv := refusingServer(t)
	local := map[string]bool{"serve": true, "version": true}
	for _, cmd := range newRoot(&env{getenv: func(string) string { return "" }}).Commands() {
		if local[cmd.Name()] {
			continue
		}
		t.Run(cmd.Name(), func(t *testing.T) {
			args := append([]string{cmd.Name()}, sampleArgs(t, cmd)...)
			args = append(args, "-o", "json")
			// Enough lines for any prompt: secrets and new passwords.
			e, stdout, stderr := testEnv(strings.Repeat("long-enough-1\n", 4), map[string]string{"ASE_URL": srv.URL, "ASE_PASSWORD": "admin"})
			code := run(context.Background(), e, args)
			var got any
			if code != ExitFailure || json.Unmarshal(stdout.Bytes(), &got) != nil || !strings.Contains(stderr.String(), "refused by the test") {
				t.Fatalf("ase %s: exit %d, want %d with the server's JSON\nstdout %q\nstderr %q", strings.Join(args, " "), code, ExitFailure, stdout, stderr)
			}
			if !strings.Contains(stdout.String(), `"refused by the test"`) {
				t.Fatalf("stdout is not the server's reply: %s", stdout)
			}
		})
	}
}

// TestJSONOnFailureLocalErrors: without a reply from the server, stdout
// stays empty with -o json.
func TestJSONOnFailureLocalErrors(t *testing.T) {
	e, stdout, stderr := testEnv("", map[string]string{"ASE_URL": "http://127.0.0.1:1", "ASE_PASSWORD": "admin"})
	if code := run(context.Background(), e, []string{"status", "-o", "json"}); code != ExitFailure || stdout.Len() != 0 || !strings.Contains(stderr.String(), "cannot reach") {
		t.Fatalf("exit %d stdout %q stderr %q", code, stdout, stderr)
	}
}

func TestPlaceholders(t *testing.T) {
	for use, want := range map[string][]string{
		"list_api":                                  nil,
		"api_info API_ID":                           {"API_ID"},
		"view_blacklist [TAG]":                      {"TAG"},
		"add_blacklist TYPE [NAME] VALUE":           {"TYPE", "NAME"},
		"add_server API_ID HOST:PORT [SPIKE] [Q]":   {"API_ID", "HOST:PORT", "SPIKE", "Q"},
		"update_server_connection_quota A HOST:P N": {"A", "HOST:P", "N"},
	} {
		if got := placeholders(use); !reflect.DeepEqual(got, want) {
			t.Errorf("placeholders(%q) = %q, want %q", use, got, want)
		}
	}
}

// TestTagHelpFromTheTable: the view_ and clear_ commands' help lists the
// tags of the table completion offers, and nothing else.
func TestTagHelpFromTheTable(t *testing.T) {
	root := newRoot(&env{getenv: func(string) string { return "" }})
	for _, list := range []string{"blacklist", "whitelist"} {
		for _, verb := range []string{"view_", "clear_"} {
			cmd, _, err := root.Find([]string{verb + list})
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(cmd.Short, "("+tagHelp(list)+")") {
				t.Errorf("%s%s: help %q does not list %q", verb, list, cmd.Short, tagHelp(list))
			}
			got, _ := cmd.ValidArgsFunction(cmd, nil, "")
			if len(got) != len(listTags(list)) {
				t.Errorf("%s%s completes %q, want %q", verb, list, got, listTags(list))
			}
		}
	}
	if got := listTags("whitelist"); !reflect.DeepEqual(got, []string{"all"}) {
		t.Errorf("the whitelist's tags are %q; the server accepts only all", got)
	}
	if got := strings.Join(entryTypes(), " "); got != "ip token cookie api_key username" {
		t.Errorf("entry types %q", got)
	}
}

// TestFlagCompletion: flags that name a role, an entry type or the output
// format complete from the same tables as arguments.
func TestFlagCompletion(t *testing.T) {
	e := &env{getenv: func(string) string { return "" }}
	o := &options{}
	root := &cobra.Command{Use: "ase"}
	root.PersistentFlags().StringVarP(&o.output, "output", "o", "text", "")
	view := &cobra.Command{Use: "view_blacklist [TAG]", Run: func(*cobra.Command, []string) {}}
	view.Flags().String("type", "", "")
	user := &cobra.Command{Use: "update_user NAME", Run: func(*cobra.Command, []string) {}}
	user.Flags().String("role", "", "")
	root.AddCommand(view, user)
	addCompletions(root, e, o)
	for _, c := range []struct {
		cmd  *cobra.Command
		flag string
		want []string
	}{
		{view, "type", entryTypes()},
		{user, "role", roles},
		{view, "output", []string{"text", "json"}},
	} {
		f, ok := c.cmd.GetFlagCompletionFunc(c.flag)
		if !ok {
			t.Fatalf("%s --%s: no completion", c.cmd.Name(), c.flag)
		}
		got, _ := f(c.cmd, nil, "")
		if len(got) != len(c.want) {
			t.Errorf("%s --%s completes %q, want %q", c.cmd.Name(), c.flag, got, c.want)
		}
	}
}
