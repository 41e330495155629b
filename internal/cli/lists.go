package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ase-project/ase/internal/client"
	"github.com/ase-project/ase/internal/wire"
)

// entryArgs reads TYPE [NAME] VALUE: cookie and api_key entries have a
// name, the others do not.
func entryArgs(args []string) (wire.ListEntry, error) {
	if len(args) == 0 {
		return wire.ListEntry{}, usagef("give TYPE [NAME] VALUE (TYPE is ip, token, cookie, api_key or username)")
	}
	e := wire.ListEntry{Type: args[0]}
	named := e.Type == "cookie" || e.Type == "api_key"
	switch {
	case named && len(args) == 3:
		e.Name, e.Value = args[1], args[2]
	case !named && len(args) == 2:
		e.Value = args[1]
	case named:
		return e, usagef("a %s entry is TYPE NAME VALUE, e.g. %s JSESSIONID abc123", e.Type, e.Type)
	default:
		return e, usagef("an entry is TYPE VALUE for %s (NAME only for cookie and api_key)", e.Type)
	}
	return e, nil
}

func listCommands(e *env, o *options) []*cobra.Command {
	var out []*cobra.Command
	for _, list := range []string{"blacklist", "whitelist"} {
		list := list
		var ttl int64
		var file string
		add := mgmt(e, o, "add_"+list+" TYPE [NAME] VALUE", "Add an entry to the "+list+" (or --file FILE: a JSON array of entries)", cobra.MaximumNArgs(3),
			func(cmd *cobra.Command, c *client.Client, args []string) (any, string, error) {
				if file != "" {
					if len(args) > 0 {
						return nil, "", usagef("give either --file or an entry, not both")
					}
					data, err := os.ReadFile(file)
					if err != nil {
						return nil, "", err
					}
					s, err := c.AddListEntries(cmd.Context(), list, json.RawMessage(data))
					return s, s.Message, err
				}
				entry, err := entryArgs(args)
				if err != nil {
					return nil, "", err
				}
				entry.TTL = ttl
				s, err := c.AddListEntries(cmd.Context(), list, entry)
				return s, s.Message, err
			})
		add.Flags().Int64Var(&ttl, "ttl", 0, "seconds until the entry expires (default: never)")
		add.Flags().StringVar(&file, "file", "", "JSON file holding an array of entries to import all at once")
		out = append(out, add,
			mgmt(e, o, "delete_"+list+" TYPE [NAME] VALUE", "Delete an entry from the "+list, cobra.RangeArgs(2, 3),
				func(cmd *cobra.Command, c *client.Client, args []string) (any, string, error) {
					entry, err := entryArgs(args)
					if err != nil {
						return nil, "", err
					}
					s, err := c.DeleteListEntry(cmd.Context(), list, entry)
					return s, s.Message, err
				}),
			mgmt(e, o, "view_"+list+" [TAG]", "Show the "+list+" ("+tagHelp(list)+")", cobra.MaximumNArgs(1),
				func(cmd *cobra.Command, c *client.Client, args []string) (any, string, error) {
					tag := "all"
					if len(args) == 1 {
						tag = args[0]
					}
					v, err := c.ViewList(cmd.Context(), list, tag)
					return v, formatList(v), err
				}),
			mgmt(e, o, "clear_"+list+" [TAG]", "Delete every entry of the "+list+", or those with TAG ("+tagHelp(list)+")", cobra.MaximumNArgs(1),
				func(cmd *cobra.Command, c *client.Client, args []string) (any, string, error) {
					tag := "all"
					if len(args) == 1 {
						tag = args[0]
					}
					s, err := c.ClearList(cmd.Context(), list, tag)
					return s, s.Message, err
				}),
		)
	}
	return append(out,
		mgmt(e, o, "enable_ase_detected_attack", "Put clients caught by decoys and pattern rules on the deny list", cobra.NoArgs,
			func(cmd *cobra.Command, c *client.Client, args []string) (any, string, error) {
				s, err := c.SetASEDetectedAttack(cmd.Context(), true)
				return s, s.Message, err
			}),
		mgmt(e, o, "disable_ase_detected_attack", "Stop listing detected attackers and remove the entries it added", cobra.NoArgs,
			func(cmd *cobra.Command, c *client.Client, args []string) (any, string, error) {
				s, err := c.SetASEDetectedAttack(cmd.Context(), false)
				return s, s.Message, err
			}),
	)
}

// formatList prints a view one section after the other.
func formatList(v map[string][]wire.ListEntry) string {
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return sectionOrder(keys[i]) < sectionOrder(keys[j]) })
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s : %d\n", strings.ReplaceAll(k, "_", " "), len(v[k]))
		for _, e := range v[k] {
			b.WriteString("  " + e.Type)
			if e.Name != "" {
				b.WriteString(" " + e.Name)
			}
			b.WriteString(" " + e.Value)
			if e.ExpiresAt != "" {
				b.WriteString(" (expires " + e.ExpiresAt + ")")
			}
			b.WriteByte('\n')
		}
	}
	return b.String()
}

func sectionOrder(k string) int {
	for i, t := range []string{"manual", "abs_generated", "invalid_content_type", "invalid_method", "invalid_protocol", "decoy"} {
		if k == t+"_blacklist" {
			return i
		}
	}
	return 99
}
