package cli

import (
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
		var ttl, reason, file string
		vf := &viewFlags{}
		add := mgmt(e, o, "add_"+list+" TYPE [NAME] VALUE", "Add an entry to the "+list+" (or --file FILE: a feed)", cobra.MaximumNArgs(3),
			func(cmd *cobra.Command, c *client.Client, args []string) (any, string, error) {
				if file != "" {
					if len(args) > 0 {
						return nil, "", usagef("give either --file or an entry, not both")
					}
					return addFile(cmd, c, list, file, ttl, reason)
				}
				entry, err := entryArgs(args)
				if err != nil {
					return nil, "", err
				}
				entry.TTL, entry.Reason = ttl, reason
				s, err := c.AddListEntries(cmd.Context(), list, entry)
				return s, s.Message, err
			})
		add.Long = add.Short + `.

--file imports a feed all at once, all or nothing (entries already listed are
skipped and counted): a JSON array of entries, or plain text with one IP
address or CIDR range per line, comments starting with # or ;, blank lines.
--ttl and --reason apply to the entry, or to the feed's entries that carry
none of their own.`
		add.Flags().StringVar(&ttl, "ttl", "", "time until the entry expires: seconds (3600) or a duration (90m, 4h, 7d, 1h30m); default never")
		add.Flags().StringVar(&reason, "reason", "", "why the entry is listed, shown by views and checks")
		add.Flags().StringVar(&file, "file", "", "a feed to import: a JSON array of entries, or one IP address or CIDR range per line")
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
			withViewFlags(vf, mgmt(e, o, "view_"+list+" [TAG]", "Show the "+list+" ("+tagHelp(list)+")", cobra.MaximumNArgs(1),
				func(cmd *cobra.Command, c *client.Client, args []string) (any, string, error) {
					return viewList(cmd, c, list, args, vf)
				})),
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
	out = append(out, checkCommands(e, o)...)
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
