package cli

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ase-project/ase/internal/client"
	"github.com/ase-project/ase/internal/wire"
)

// Viewing, paging, importing feeds and checking: the list commands
// beyond the vendor's.

// addFile imports a file into list: a JSON array of entries, or a
// plain-text feed (one IP address or CIDR range per line). The server
// reads either; what tells them apart is the first character that is not
// a space, as for the server's own check of text bodies.
func addFile(cmd *cobra.Command, c *client.Client, list, file, ttl, reason string) (any, string, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, "", err
	}
	t := bytes.TrimLeft(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")), " \t\r\n")
	text := len(t) == 0 || t[0] != '[' && t[0] != '{'
	s, err := c.ImportList(cmd.Context(), list, data, text, ttl, reason)
	return s, s.Message, err
}

// viewFlags are view_'s filters and paging.
type viewFlags struct {
	typ, value, cursor string
	limit              int
}

// withViewFlags gives a view_ command its flags.
func withViewFlags(vf *viewFlags, cmd *cobra.Command) *cobra.Command {
	cmd.Long = cmd.Short + `.

Each entry shows its tag (where it comes from: manual for an operator's,
decoy, invalid_method, ... for a detection's), when it was added, when it
expires and its reason. --type and --value filter (--value matches part of
the value); --limit shows one page and prints the command for the next.`
	f := cmd.Flags()
	f.StringVar(&vf.typ, "type", "", "only entries of this type: ip, token, cookie, api_key or username")
	f.StringVar(&vf.value, "value", "", "only entries whose value contains this text")
	f.IntVar(&vf.limit, "limit", 0, "show one page of at most this many entries (1 to 10000)")
	f.StringVar(&vf.cursor, "cursor", "", "show the page after this cursor (printed with the previous page)")
	return cmd
}

// viewList runs view_blacklist or view_whitelist.
func viewList(cmd *cobra.Command, c *client.Client, list string, args []string, vf *viewFlags) (any, string, error) {
	q := client.ListQuery{Tag: "all", Type: vf.typ, Value: vf.value, Limit: vf.limit, Cursor: vf.cursor, SendLimit: cmd.Flags().Changed("limit")}
	if len(args) == 1 {
		q.Tag = args[0]
	}
	v, err := c.ViewList(cmd.Context(), list, q)
	if err != nil {
		return v, "", err
	}
	text := formatList(v)
	if v.NextCursor != "" {
		next := []string{"ase", cmd.Name()}
		next = append(next, args...)
		for _, fl := range []struct{ name, val string }{{"type", vf.typ}, {"value", vf.value}, {"limit", strconv.Itoa(vf.limit)}} {
			if cmd.Flags().Changed(fl.name) {
				next = append(next, "--"+fl.name, shellQuote(fl.val))
			}
		}
		text += "next page: " + strings.Join(append(next, "--cursor", v.NextCursor), " ") + "\n"
	}
	return v, text, nil
}

// formatList prints a view one section after the other, an entry a line.
func formatList(v wire.ListView) string {
	var b strings.Builder
	for _, k := range v.Order {
		es := v.Sections[k]
		fmt.Fprintf(&b, "%s : %d\n", strings.ReplaceAll(k, "_", " "), len(es))
		var rows [][]string
		for _, e := range es {
			rows = append(rows, append([]string{"  " + describeEntry(e)}, entryDetails(e)...))
		}
		b.WriteString(table(rows))
	}
	return b.String()
}

// describeEntry is the vendor's wording of an entry: "cookie SID abc".
func describeEntry(e wire.ListEntry) string {
	if e.Name != "" {
		return e.Type + " " + e.Name + " " + e.Value
	}
	return e.Type + " " + e.Value
}

// entryDetails are an entry's columns after its description.
func entryDetails(e wire.ListEntry) []string {
	added := e.CreatedAt
	if added == "" {
		added = "unknown" // stored before ASE kept it
	}
	out := []string{"tag " + e.Tag, "added " + added, "expires " + expiresText(e.ExpiresAt)}
	if e.Reason != "" {
		out = append(out, "reason "+e.Reason)
	}
	return out
}

// expiresText is an expiry with the time left: "2030-01-02T03:04:05Z (in
// 3h59m59s)", or "never".
func expiresText(at string) string {
	if at == "" {
		return "never"
	}
	t, err := time.Parse(time.RFC3339, at)
	if err != nil {
		return at
	}
	if left := time.Until(t).Truncate(time.Second); left > 0 {
		return at + " (in " + left.String() + ")"
	}
	return at + " (expired)"
}

// table aligns rows of cells in columns, without trailing spaces.
func table(rows [][]string) string {
	var b bytes.Buffer
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	for _, r := range rows {
		// Every cell tab-terminated: the last ones align too.
		fmt.Fprintln(tw, strings.Join(r, "\t")+"\t")
	}
	tw.Flush()
	lines := strings.SplitAfter(b.String(), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(strings.TrimSuffix(l, "\n"), " ")
		if strings.HasSuffix(l, "\n") {
			lines[i] += "\n"
		}
	}
	return strings.Join(lines, "")
}

// shellQuote quotes s for a shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:/@%+=,-") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// checkCommands are check_ip, check_token, check_cookie, check_api_key and
// check_username: "why is this client blocked?".
func checkCommands(e *env, o *options) []*cobra.Command {
	var out []*cobra.Command
	for _, k := range []struct {
		typ, use, what string
	}{
		{"ip", "IP", "an IP address (IPv4 or IPv6)"},
		{"token", "VALUE", "an OAuth2 bearer token"},
		{"cookie", "NAME VALUE", "a cookie"},
		{"api_key", "NAME VALUE", "an API key (NAME: its header or query parameter)"},
		{"username", "USERNAME", "a username"},
	} {
		k := k
		n := len(strings.Fields(k.use))
		cmd := mgmt(e, o, "check_"+k.typ+" "+k.use, "Show whether the lists allow or deny "+k.what+", and by which entries", cobra.ExactArgs(n),
			func(cmd *cobra.Command, c *client.Client, args []string) (any, string, error) {
				name, value := "", args[len(args)-1]
				if n == 2 {
					name = args[0]
				}
				r, err := c.Check(cmd.Context(), k.typ, name, value)
				return r, formatCheck(r), err
			})
		cmd.Long = cmd.Short + `.

The allow list wins over the deny list, as in decisions. Every entry of each
list that matches is shown, the one that decides first: for an address, its
own entry, then the ranges that cover it, most specific first; with each,
its tag, when it was added, when it expires and its reason.`
		out = append(out, cmd)
	}
	return out
}

// formatCheck prints a check: the verdict, then the matching entries.
func formatCheck(r wire.Check) string {
	var b strings.Builder
	who := describeEntry(wire.ListEntry{Type: r.Type, Name: r.Name, Value: r.Value})
	switch r.Verdict {
	case wire.VerdictAllowed:
		fmt.Fprintf(&b, "%s : allowed by the whitelist", who)
		if len(r.Blacklist) > 0 {
			b.WriteString(" (it wins over the blacklist)")
		}
		b.WriteByte('\n')
	case wire.VerdictDenied:
		fmt.Fprintf(&b, "%s : denied by the blacklist\n", who)
	default:
		fmt.Fprintf(&b, "%s : not listed\n", who)
	}
	var rows [][]string
	for _, l := range []struct {
		name    string
		entries []wire.ListEntry
	}{{"whitelist", r.Whitelist}, {"blacklist", r.Blacklist}} {
		for i, e := range l.entries {
			row := append([]string{"  " + l.name + " : " + describeEntry(e)}, entryDetails(e)...)
			if i == 0 && l.name == r.List {
				if e.Reason == "" {
					row = append(row, "")
				}
				row = append(row, "<- decides")
			}
			rows = append(rows, row)
		}
	}
	b.WriteString(table(rows))
	if r.Firewall == wire.StatusDisabled {
		b.WriteString("note : the firewall is disabled: nothing is blocked until it is enabled\n")
	}
	return b.String()
}
