package cli

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ase-project/ase/internal/accounts"
	"github.com/ase-project/ase/internal/client"
	"github.com/ase-project/ase/internal/lists"
)

// listTags are the tags a list's view_ and clear_ commands accept, as the
// server checks them (internal/admin's parseTag): "all", plus for the deny
// list each of lists.Tags(); the allow list has no other tag. Help texts
// and completion read this table, and e2e's TestCLIListTagsAgree holds it
// to what the server accepts.
func listTags(list string) []string {
	out := []string{"all"}
	if list == "blacklist" {
		for _, t := range lists.Tags() {
			out = append(out, t.String())
		}
	}
	return out
}

// tagHelp is the TAG part of a view_ or clear_ command's help.
func tagHelp(list string) string { return "TAG: " + strings.Join(listTags(list), ", ") }

// entryTypes are the types of list entries, as the server names them.
func entryTypes() []string {
	var out []string
	for k := lists.IP; k <= lists.Username; k++ {
		out = append(out, k.String())
	}
	return out
}

// completionTimeout bounds each call completion makes: a shell waiting on
// TAB for a server that does not answer is worse than no candidates.
const completionTimeout = 3 * time.Second

// addCompletions gives every command its argument completion, chosen by
// the placeholders its Use line names: API_ID, HOST:PORT (the servers of
// the API before it), TYPE, TAG, ROLE, KEY, TOKEN, FILE, and NAME for
// users and shared secrets. Existing things are offered only to commands
// that act on existing things (not add_ or create_). Candidates from the
// server are read with the command line's or the environment's
// credentials, never prompting; without them, or without an answer, there
// are none. Flags: -o, --role, --type (entry types), --for (users).
func addCompletions(root *cobra.Command, e *env, o *options) {
	for _, cmd := range root.Commands() {
		if cmd.ValidArgsFunction == nil {
			cmd.ValidArgsFunction = argCompleter(cmd, e, o)
		}
	}
	static := func(vals ...string) cobra.CompletionFunc {
		return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
			return filter(vals, toComplete), cobra.ShellCompDirectiveNoFileComp
		}
	}
	root.RegisterFlagCompletionFunc("output", static("text", "json"))
	for _, cmd := range root.Commands() {
		if cmd.Flags().Lookup("role") != nil {
			cmd.RegisterFlagCompletionFunc("role", static(roles...))
		}
		if cmd.Flags().Lookup("type") != nil {
			cmd.RegisterFlagCompletionFunc("type", static(entryTypes()...))
		}
		if cmd.Flags().Lookup("for") != nil {
			cmd.RegisterFlagCompletionFunc("for", func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
				return fromServer(cmd, e, o, toComplete, users)
			})
		}
	}
}

// placeholders reads the argument names of a Use line; it stops at the
// first optional one followed by another, after which positions are
// ambiguous (TYPE [NAME] VALUE).
func placeholders(use string) []string {
	fields := strings.Fields(use)
	var out []string
	for i, f := range fields[1:] {
		optional := strings.HasPrefix(f, "[")
		out = append(out, strings.Trim(f, "[]"))
		if optional && i+2 < len(fields) && !strings.HasPrefix(fields[i+2], "[") {
			break
		}
	}
	return out
}

func argCompleter(cmd *cobra.Command, e *env, o *options) cobra.CompletionFunc {
	name, names := cmd.Name(), placeholders(cmd.Use)
	creates := strings.HasPrefix(name, "add_") || strings.HasPrefix(name, "create_") || strings.HasPrefix(name, "import_")
	list := ""
	if _, l, ok := strings.Cut(name, "_"); ok && (l == "blacklist" || l == "whitelist") {
		list = l
	}
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		none := cobra.ShellCompDirectiveNoFileComp
		if len(args) >= len(names) {
			return nil, none
		}
		switch ph := names[len(args)]; {
		case ph == "API_ID":
			return fromServer(cmd, e, o, toComplete, apiIDs)
		case ph == "HOST:PORT" && !creates && len(args) == 1:
			return fromServer(cmd, e, o, toComplete, servers(args[0]))
		case ph == "TYPE" && list != "":
			return filter(entryTypes(), toComplete), none
		case ph == "TAG" && list != "":
			return filter(listTags(list), toComplete), none
		case ph == "ROLE":
			return filter(roles, toComplete), none
		case ph == "FILE":
			return []cobra.Completion{"json"}, cobra.ShellCompDirectiveFilterFileExt
		case ph == "KEY" && !creates:
			return fromServer(cmd, e, o, toComplete, apiKeys)
		case ph == "TOKEN" && !creates:
			return fromServer(cmd, e, o, toComplete, sidebandTokens)
		case ph == "NAME" && !creates && strings.HasSuffix(name, "_user"):
			return fromServer(cmd, e, o, toComplete, users)
		case ph == "NAME" && !creates && strings.HasSuffix(name, "_shared_secret"):
			return fromServer(cmd, e, o, toComplete, sharedSecrets)
		}
		return nil, none
	}
}

// filter keeps the candidates that start with what was typed.
func filter(vals []string, prefix string) []cobra.Completion {
	var out []cobra.Completion
	for _, v := range vals {
		if strings.HasPrefix(v, prefix) {
			out = append(out, v)
		}
	}
	return out
}

// source reads candidates from the server: values and their descriptions.
type source func(ctx context.Context, c *client.Client) (vals, descs []string, err error)

func fromServer(cmd *cobra.Command, e *env, o *options, toComplete string, src source) ([]cobra.Completion, cobra.ShellCompDirective) {
	none := cobra.ShellCompDirectiveNoFileComp
	c := o.completionClient(e)
	if c == nil {
		return nil, none
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), completionTimeout)
	defer cancel()
	defer logout(ctx, c)
	vals, descs, err := src(ctx, c)
	if err != nil {
		cobra.CompDebugln("ase: "+err.Error(), false)
		return nil, none
	}
	var out []cobra.Completion
	for i, v := range vals {
		if strings.HasPrefix(v, toComplete) {
			out = append(out, cobra.CompletionWithDesc(v, descs[i]))
		}
	}
	return out, none
}

// completionClient is the management client for completion: the same
// URL and user as a command, but never a prompt (the shell owns the
// terminal) and a short timeout. Without a password it is nil.
func (o *options) completionClient(e *env) *client.Client {
	pw := firstNonEmpty(o.password, e.getenv("ASE_PASSWORD"))
	if pw == "" || pw == promptMarker {
		return nil
	}
	url := firstNonEmpty(o.url, e.getenv("ASE_URL"), client.DefaultURL)
	user := o.userName(e)
	c := client.New(strings.TrimSuffix(url, "/"), user, pw)
	c.UserAgent = "ase-cli/" + Version
	c.HTTP = &http.Client{Timeout: completionTimeout}
	c.Session = user != accounts.Admin
	return c
}

func apiIDs(ctx context.Context, c *client.Client) ([]string, []string, error) {
	l, err := c.ListAPIs(ctx)
	var vals, descs []string
	for _, a := range l.API {
		vals, descs = append(vals, a.APIID), append(descs, a.Status)
	}
	return vals, descs, err
}

func servers(id string) source {
	return func(ctx context.Context, c *client.Client) ([]string, []string, error) {
		l, err := c.ListServers(ctx, id)
		var vals, descs []string
		for _, s := range l.Server {
			host := s.Host
			if strings.Contains(host, ":") {
				host = "[" + host + "]"
			}
			vals, descs = append(vals, host+":"+strconv.Itoa(s.Port)), append(descs, s.HealthStatus)
		}
		return vals, descs, err
	}
}

func users(ctx context.Context, c *client.Client) ([]string, []string, error) {
	l, err := c.ListUsers(ctx)
	var vals, descs []string
	for _, u := range l.Items {
		vals, descs = append(vals, u.Body.Name), append(descs, u.Body.Role)
	}
	return vals, descs, err
}

func apiKeys(ctx context.Context, c *client.Client) ([]string, []string, error) {
	l, err := c.ListAPIKeys(ctx)
	var vals, descs []string
	for _, k := range l.Items {
		vals, descs = append(vals, k.Key), append(descs, k.Body.Name+" ("+k.Body.Username+")")
	}
	return vals, descs, err
}

func sidebandTokens(ctx context.Context, c *client.Client) ([]string, []string, error) {
	l, err := c.ListSidebandTokens(ctx)
	var vals, descs []string
	for _, t := range l.Tokens {
		vals, descs = append(vals, t.Token), append(descs, "created "+t.CreatedAt)
	}
	return vals, descs, err
}

func sharedSecrets(ctx context.Context, c *client.Client) ([]string, []string, error) {
	l, err := c.ListSharedSecrets(ctx)
	var vals, descs []string
	for _, s := range l.Secrets {
		state := "inactive"
		if s.Active {
			state = "active"
		}
		vals, descs = append(vals, s.Name), append(descs, state)
	}
	return vals, descs, err
}
