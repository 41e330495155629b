package cli

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/ase-project/ase/internal/client"
	"github.com/ase-project/ase/internal/wire"
)

// absStatuses are the statuses of the attack list's items.
var absStatuses = []string{wire.ABSActive, wire.ABSExpired, wire.ABSReported}

// absCommands are behavioural detection's commands: the vendor CLI's
// switches and attack list, and ASE's status, policy and retraining.
func absCommands(e *env, o *options) []*cobra.Command {
	toggle := func(use, short string, set func(*client.Client, *cobra.Command) (wire.Status, error)) *cobra.Command {
		return mgmt(e, o, use, short, cobra.NoArgs, func(cmd *cobra.Command, c *client.Client, args []string) (any, string, error) {
			s, err := set(c, cmd)
			return s, s.Message, err
		})
	}
	return []*cobra.Command{
		toggle("enable_abs", "Enable behavioural detection: learn each API's traffic, then find attackers in it", func(c *client.Client, cmd *cobra.Command) (wire.Status, error) {
			return c.SetABS(cmd.Context(), true)
		}),
		toggle("disable_abs", "Disable behavioural detection (what it listed stays until it expires)", func(c *client.Client, cmd *cobra.Command) (wire.Status, error) {
			return c.SetABS(cmd.Context(), false)
		}),
		toggle("enable_abs_attack", "Deny-list the attackers behavioural detection finds", func(c *client.Client, cmd *cobra.Command) (wire.Status, error) {
			return c.SetABSAttack(cmd.Context(), true)
		}),
		toggle("disable_abs_attack", "Only report the attackers behavioural detection finds (attack list, audit log, metrics)", func(c *client.Client, cmd *cobra.Command) (wire.Status, error) {
			return c.SetABSAttack(cmd.Context(), false)
		}),
		absAttackListCommand(e, o),
		deleteABSAttackListCommand(e, o),
		mgmt(e, o, "abs_status [API_ID]", "Show behavioural detection: settings, tracked clients, and each API's training, modes and thresholds", cobra.MaximumNArgs(1),
			func(cmd *cobra.Command, c *client.Client, args []string) (any, string, error) {
				if len(args) == 1 {
					s, err := c.ABSAPI(cmd.Context(), args[0])
					return s, formatABSAPI(s), err
				}
				info, err := c.ABSInfo(cmd.Context())
				return info, formatABSInfo(info), err
			}),
		absPolicyCommand(e, o),
		mgmt(e, o, "abs_retrain API_ID", "Forget what an API learned and train it again, on every node", cobra.ExactArgs(1),
			func(cmd *cobra.Command, c *client.Client, args []string) (any, string, error) {
				s, err := c.RetrainABS(cmd.Context(), args[0])
				return s, s.Message, err
			}),
	}
}

func absAttackListCommand(e *env, o *options) *cobra.Command {
	var q client.ABSAttackListQuery
	cmd := mgmt(e, o, "abs_attacklist", "Show the attackers behavioural detection found: active (deny-listed), expired or reported", cobra.NoArgs,
		func(cmd *cobra.Command, c *client.Client, args []string) (any, string, error) {
			l, err := c.ABSAttackList(cmd.Context(), q)
			return l, formatABSAttackList(l), err
		})
	cmd.Flags().StringVar(&q.Status, "status", "", "only items with this status: "+strings.Join(absStatuses, ", "))
	cmd.Flags().StringVar(&q.EarlierDate, "from", "", "only detections at or after this time (RFC 3339, or yyyy-mm-ddThh:mm in UTC)")
	cmd.Flags().StringVar(&q.LaterDate, "to", "", "only detections at or before this time (RFC 3339, or yyyy-mm-ddThh:mm in UTC)")
	cmd.RegisterFlagCompletionFunc("status", func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		return filter(absStatuses, toComplete), cobra.ShellCompDirectiveNoFileComp
	})
	return cmd
}

// absItems are the attack list's items with their identities as the
// lists name them: type, name and value.
func absItems(l wire.ABSAttackList) [][4]string {
	var out [][4]string
	line := func(typ, name, value string, a wire.ABSAttack) {
		expires := "never"
		if a.Expires != nil {
			expires = *a.Expires
		}
		id := typ
		if name != "" {
			id += " " + name
		}
		out = append(out, [4]string{id + " " + value, a.Status, a.Detector + "\tapi " + a.APIName, "detected " + a.DetectedTime + "\texpires " + expires})
	}
	for _, a := range l.IPs {
		line("ip", "", a.IP, a)
	}
	for _, a := range l.Cookies {
		line("cookie", a.CookieName, a.Cookie, a)
	}
	for _, a := range l.OAuthTokens {
		line("token", "", a.Token, a)
	}
	for _, a := range l.APIKeys {
		line("api_key", a.APIKeyName, a.APIKey, a)
	}
	for _, a := range l.Usernames {
		line("username", "", a.Username, a)
	}
	return out
}

func formatABSAttackList(l wire.ABSAttackList) string {
	items := absItems(l)
	var b strings.Builder
	fmt.Fprintf(&b, "attack list (%s) : %d\n", l.Status, len(items))
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	for _, it := range items {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", it[0], it[1], it[2], it[3])
	}
	tw.Flush()
	return b.String()
}

func deleteABSAttackListCommand(e *env, o *options) *cobra.Command {
	var req wire.ABSDelete
	cmd := mgmt(e, o, "delete_abs_attacklist [TYPE [NAME] VALUE]", "Remove what behavioural detection deny-listed: one identity, --all, or whole types (never manual entries)", cobra.MaximumNArgs(3),
		func(cmd *cobra.Command, c *client.Client, args []string) (any, string, error) {
			r := req
			if len(args) > 0 {
				entry, err := entryArgs(args)
				if err != nil {
					return nil, "", err
				}
				switch entry.Type {
				case "ip":
					r.IPs = []string{entry.Value}
				case "token":
					r.OAuthTokens = []string{entry.Value}
				case "cookie":
					r.Cookies = []wire.NamedValue{{Name: entry.Name, Value: entry.Value}}
				case "api_key":
					r.APIKeys = []wire.NamedValue{{Name: entry.Name, Value: entry.Value}}
				case "username":
					r.Usernames = []string{entry.Value}
				default:
					return nil, "", usagef("unknown TYPE %q (ip, token, cookie, api_key or username)", entry.Type)
				}
			} else if !(r.DeleteAll || r.DeleteAllIPs || r.DeleteAllCookies || r.DeleteAllOAuthTokens || r.DeleteAllAPIKeys || r.DeleteAllUsernames) {
				return nil, "", usagef("give an identity (TYPE [NAME] VALUE), --all, or --all-ips, --all-cookies, --all-tokens, --all-api-keys, --all-usernames")
			}
			d, err := c.DeleteABSAttackList(cmd.Context(), r)
			return d, d.Message, err
		})
	cmd.Long = cmd.Short + `.

Only entries behavioural detection added (tag abs_generated) are removed. A
client found attacking again is listed again: to stop that, allow-list it
(ase add_whitelist TYPE [NAME] VALUE); detection never observes allow-listed
requests.`
	f := cmd.Flags()
	f.BoolVar(&req.DeleteAll, "all", false, "every entry behavioural detection added")
	f.BoolVar(&req.DeleteAllIPs, "all-ips", false, "every address it added")
	f.BoolVar(&req.DeleteAllCookies, "all-cookies", false, "every cookie it added")
	f.BoolVar(&req.DeleteAllOAuthTokens, "all-tokens", false, "every OAuth token it added")
	f.BoolVar(&req.DeleteAllAPIKeys, "all-api-keys", false, "every API key it added")
	f.BoolVar(&req.DeleteAllUsernames, "all-usernames", false, "every username it added")
	cmd.ValidArgsFunction = func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) == 0 {
			return filter(entryTypes(), toComplete), cobra.ShellCompDirectiveNoFileComp
		}
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return cmd
}

func absPolicyCommand(e *env, o *options) *cobra.Command {
	var modes, thresholds []string
	var reset bool
	cmd := mgmt(e, o, "abs_policy API_ID", "Show or set an API's detection policy: --mode detector=enforce|report|off, --threshold figure=N, or --reset", cobra.ExactArgs(1),
		func(cmd *cobra.Command, c *client.Client, args []string) (any, string, error) {
			id := args[0]
			if reset {
				if len(modes)+len(thresholds) > 0 {
					return nil, "", usagef("give either --reset or --mode/--threshold, not both")
				}
				r, err := c.ResetABSPolicy(cmd.Context(), id)
				return r, r.Message, err
			}
			if len(modes)+len(thresholds) == 0 {
				s, err := c.ABSAPI(cmd.Context(), id)
				return s, formatABSAPI(s), err
			}
			p := wire.ABSPolicy{Modes: map[string]string{}, Thresholds: map[string]float64{}}
			for _, m := range modes {
				d, mode, ok := strings.Cut(m, "=")
				if !ok || d == "" {
					return nil, "", usagef("--mode %q: give detector=mode, e.g. api_probing=report", m)
				}
				p.Modes[d] = mode
			}
			for _, t := range thresholds {
				fig, v, ok := strings.Cut(t, "=")
				n, err := strconv.ParseFloat(v, 64)
				if !ok || fig == "" || err != nil {
					return nil, "", usagef("--threshold %q: give figure=number, e.g. requests=600", t)
				}
				p.Thresholds[fig] = n
			}
			r, err := c.SetABSPolicy(cmd.Context(), id, p)
			return r, r.Message, err
		})
	cmd.Long = cmd.Short + `.

Without flags it shows the API's modes and thresholds. --mode and --threshold
(each may be repeated) set the whole policy: detectors and figures not named
go back to their defaults (enforce; the learned threshold). Detectors:
stolen_credential, login_attack, api_probing, extreme_client_activity,
data_exfiltration, content_scraping. Figures: distinct_ips, failed_logins,
failing_clients, error_paths, requests, response_bytes, distinct_paths (a
threshold of 0 is the learned one).`
	cmd.Flags().StringArrayVar(&modes, "mode", nil, "detector=enforce|report|off (repeatable)")
	cmd.Flags().StringArrayVar(&thresholds, "threshold", nil, "figure=N, a threshold override per window (repeatable)")
	cmd.Flags().BoolVar(&reset, "reset", false, "back to the defaults: every detector enforces, learned thresholds")
	return cmd
}

func formatABSInfo(s wire.ABSInfo) string {
	var b strings.Builder
	kinds := make([]string, 0, len(s.TTL))
	for k := range s.TTL {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	var ttl []string
	for _, k := range kinds {
		ttl = append(ttl, k+" "+s.TTL[k])
	}
	rows := [][2]string{
		{"behavioural detection", enabledWord(s.Enabled)},
		{"abs attack", enabledWord(s.Enforcing)},
		{"training period", s.TrainingPeriod},
		{"window", s.Window},
		{"tracked clients", fmt.Sprintf("%d of %d", s.TrackedClients, s.MaxClients)},
		{"ttl", strings.Join(ttl, ", ")},
		{"apis", strconv.Itoa(len(s.APIs))},
	}
	for _, r := range rows {
		fmt.Fprintf(&b, "%-21s : %s\n", r[0], r[1])
	}
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	for _, a := range s.APIs {
		fmt.Fprintf(tw, "  %s\t%s\n", a.APIID, apiState(a))
	}
	tw.Flush()
	return b.String()
}

func enabledWord(on bool) string {
	if on {
		return wire.StatusEnabled
	}
	return wire.StatusDisabled
}

func apiState(a wire.ABSAPIStatus) string {
	if a.Training {
		return "training until " + a.TrainingUntil
	}
	return "enforcing"
}

func formatABSAPI(a wire.ABSAPIStatus) string {
	var b strings.Builder
	fmt.Fprintf(&b, "api : %s\nstate : %s\n", a.APIID, apiState(a))
	names := make([]string, 0, len(a.Modes))
	for d := range a.Modes {
		names = append(names, d)
	}
	sort.Strings(names)
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	b.WriteString("modes :\n")
	for _, d := range names {
		fmt.Fprintf(tw, "  %s\t%s\n", d, a.Modes[d])
	}
	tw.Flush()
	b.WriteString("figures :\n")
	for _, f := range a.Figures {
		thr := "learning"
		if f.Threshold > 0 {
			thr = "threshold " + strconv.FormatFloat(f.Threshold, 'g', -1, 64)
			if f.Override {
				thr += " (override)"
			}
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%d windows learned\n", f.Identity, f.Figure, f.Detector, thr, f.Windows)
	}
	tw.Flush()
	return b.String()
}
