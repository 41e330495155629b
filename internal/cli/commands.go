package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ase-project/ase/internal/client"
	"github.com/ase-project/ase/internal/config"
	"github.com/ase-project/ase/internal/server"
	"github.com/ase-project/ase/internal/wire"
)

func serveCommand(e *env) *cobra.Command {
	var confPath string
	var check bool
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the ASE server",
		Long: `Run the ASE server with the configuration in --config (the vendor's
ase.conf key=value format; every key can be overridden by ASE_<KEY>).
Without --config it runs on defaults, keeping its state under ./data.
SIGHUP (systemctl reload) or 'ase reload' re-reads ase.conf and api_dir.

With --check it only validates: the configuration (printed complete, with
every default filled in, and the vendor keys it ignores) and the API
definitions in api_dir (each on its own and against each other), then exits
0, or 1 naming every problem. The data directory is not touched, so it can
run next to a live server.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := config.Load(confPath, os.LookupEnv)
			if err != nil {
				return fmt.Errorf("configuration:\n%w", err)
			}
			if check {
				n, apiIgnored, err := server.CheckAPIDir(cmd.Context(), cfg.APIDir)
				if err != nil {
					return fmt.Errorf("API definitions:\n%w", err)
				}
				fmt.Fprint(e.stdout, cfg.Format())
				for _, ig := range cfg.Ignored {
					fmt.Fprintf(e.stdout, "; %s\n", ig)
				}
				for _, ig := range apiIgnored {
					fmt.Fprintf(e.stdout, "; %s\n", ig)
				}
				fmt.Fprintf(e.stdout, "; configuration OK; %d API definitions in api_dir OK\n", n)
				return nil
			}
			// ASE_CPUPROFILE=file profiles the server until it stops: for
			// the benchmarks under bench/.
			if path := e.getenv("ASE_CPUPROFILE"); path != "" {
				f, err := os.Create(path)
				if err != nil {
					return err
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return err
				}
				defer pprof.StopCPUProfile()
			}
			ctx := cmd.Context()
			// ASE_MEMPROFILE=file writes a heap profile when the server is
			// told to stop, before it stops: what the lists and the rest
			// hold while serving, for bench/memory.sh.
			if path := e.getenv("ASE_MEMPROFILE"); path != "" {
				ctx = heapProfileAtStop(ctx, path, e)
			}
			return server.Run(ctx, cfg, e.stderr, Version)
		},
	}
	cmd.Flags().StringVar(&confPath, "config", "", "path of ase.conf")
	cmd.Flags().BoolVar(&check, "check", false, "validate the configuration and api_dir, print the effective configuration, and exit")
	return cmd
}

// heapProfileAtStop returns a context done once ctx is and a heap
// profile (after a collection, so it shows what is live) is written to
// path: the server serves on, with everything it holds, until then.
func heapProfileAtStop(ctx context.Context, path string, e *env) context.Context {
	inner, cancel := context.WithCancel(context.WithoutCancel(ctx))
	go func() {
		defer cancel()
		<-ctx.Done()
		runtime.GC()
		f, err := os.Create(path)
		if err == nil {
			err = pprof.Lookup("heap").WriteTo(f, 0)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			fmt.Fprintf(e.stderr, "ASE_MEMPROFILE: %v\n", err)
		}
	}()
	return inner
}

func versionCommand(e *env, o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of this ase binary",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.output == "json" {
				return printJSON(e.stdout, map[string]string{"version": Version})
			}
			fmt.Fprintf(e.stdout, "ase version %s\n", Version)
			return nil
		},
	}
}

// action is a management command's body: it calls the API and returns the
// reply to print with -o json and the human text.
type action func(cmd *cobra.Command, c *client.Client, args []string) (reply any, text string, err error)

// mgmt builds a command that calls the management API.
func mgmt(e *env, o *options, use, short string, args cobra.PositionalArgs, run action) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  args,
		RunE: func(cmd *cobra.Command, argv []string) error {
			c, err := o.client(e)
			if err != nil {
				return err
			}
			defer logout(cmd.Context(), c)
			reply, text, err := run(cmd, c, argv)
			if err != nil {
				return o.failed(e, err)
			}
			if o.output == "json" {
				return printJSON(e.stdout, reply)
			}
			if text != "" {
				fmt.Fprintln(e.stdout, strings.TrimRight(text, "\n"))
			}
			return nil
		},
	}
}

// failed returns a command's error after printing, with -o json, the
// server's reply when the server refused: scripts read the reason from
// stdout whatever the outcome. Without a reply (unreachable server, local
// error) stdout stays empty.
func (o *options) failed(e *env, err error) error {
	var ce *client.Error
	if o.output == "json" && errors.As(err, &ce) && ce.Body != nil {
		if perr := printJSON(e.stdout, client.Raw(ce.Body)); perr != nil {
			return perr
		}
	}
	return err
}

// logout ends the session a local user's command logged in with, even
// when the command was interrupted; a failure only leaves the session to
// expire.
func logout(ctx context.Context, c *client.Client) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	c.Logout(ctx)
}

// apiIDFromFile is the vendor's rule: the api_id is the file name without
// .json.
func apiIDFromFile(path string) string {
	return strings.TrimSuffix(filepath.Base(path), ".json")
}

func managementCommands(e *env, o *options) []*cobra.Command {
	return []*cobra.Command{
		mgmt(e, o, "status", "Show the server's status", cobra.NoArgs, func(cmd *cobra.Command, c *client.Client, args []string) (any, string, error) {
			s, err := c.Status(cmd.Context())
			return s, formatStatus(s), err
		}),
		updatePasswordCommand(e, o),

		mgmt(e, o, "add_api FILE", "Add the API defined in FILE (api_id = file name without .json)", cobra.ExactArgs(1), func(cmd *cobra.Command, c *client.Client, args []string) (any, string, error) {
			def, err := os.ReadFile(args[0])
			if err != nil {
				return nil, "", err
			}
			id := apiIDFromFile(args[0])
			s, err := c.CreateAPI(cmd.Context(), id, def)
			return s, "api " + id + " added successfully", err
		}),
		mgmt(e, o, "update_api FILE", "Replace the definition of the API named by FILE", cobra.ExactArgs(1), func(cmd *cobra.Command, c *client.Client, args []string) (any, string, error) {
			def, err := os.ReadFile(args[0])
			if err != nil {
				return nil, "", err
			}
			id := apiIDFromFile(args[0])
			s, err := c.UpdateAPI(cmd.Context(), id, def)
			return s, "api " + id + " updated successfully", err
		}),
		mgmt(e, o, "delete_api API_ID", "Delete an API", cobra.ExactArgs(1), func(cmd *cobra.Command, c *client.Client, args []string) (any, string, error) {
			s, err := c.DeleteAPI(cmd.Context(), args[0])
			return s, "api " + args[0] + " deleted successfully", err
		}),
		mgmt(e, o, "list_api", "List the APIs", cobra.NoArgs, func(cmd *cobra.Command, c *client.Client, args []string) (any, string, error) {
			l, err := c.ListAPIs(cmd.Context())
			var b strings.Builder
			fmt.Fprintf(&b, "api count : %s\n", l.APICount)
			for _, a := range l.API {
				fmt.Fprintf(&b, "%s : %s\n", a.APIID, a.Status)
			}
			return l, b.String(), err
		}),
		mgmt(e, o, "api_info API_ID", "Print an API's definition", cobra.ExactArgs(1), func(cmd *cobra.Command, c *client.Client, args []string) (any, string, error) {
			def, err := c.GetAPI(cmd.Context(), args[0])
			return def, string(def), err
		}),

		mgmt(e, o, "add_server API_ID HOST:PORT [SPIKE_THRESHOLD] [CONNECTION_QUOTA]", "Add a backend server to an API", cobra.RangeArgs(2, 4), func(cmd *cobra.Command, c *client.Client, args []string) (any, string, error) {
			s, err := parseServerArgs(args[1:])
			if err != nil {
				return nil, "", err
			}
			st, err := c.AddServer(cmd.Context(), args[0], s)
			return st, "server " + args[1] + " added to api " + args[0], err
		}),
		mgmt(e, o, "delete_server API_ID HOST:PORT", "Remove a backend server from an API", cobra.ExactArgs(2), func(cmd *cobra.Command, c *client.Client, args []string) (any, string, error) {
			host, port, err := splitHostPort(args[1])
			if err != nil {
				return nil, "", err
			}
			st, err := c.DeleteServer(cmd.Context(), args[0], host, port)
			return st, "server " + args[1] + " deleted from api " + args[0], err
		}),
		mgmt(e, o, "list_server API_ID", "List an API's backend servers", cobra.ExactArgs(1), func(cmd *cobra.Command, c *client.Client, args []string) (any, string, error) {
			l, err := c.ListServers(cmd.Context(), args[0])
			return l, formatServers(l, false), err
		}),
		mgmt(e, o, "health_status API_ID", "Show the health of an API's backend servers", cobra.ExactArgs(1), func(cmd *cobra.Command, c *client.Client, args []string) (any, string, error) {
			l, err := c.ListServers(cmd.Context(), args[0])
			return l, formatServers(l, true), err
		}),

		mgmt(e, o, "enable_firewall", "Enable the firewall", cobra.NoArgs, func(cmd *cobra.Command, c *client.Client, args []string) (any, string, error) {
			s, err := c.SetFirewall(cmd.Context(), true)
			return s, s.Message, err
		}),
		mgmt(e, o, "disable_firewall", "Disable the firewall (everything is allowed, still logged)", cobra.NoArgs, func(cmd *cobra.Command, c *client.Client, args []string) (any, string, error) {
			s, err := c.SetFirewall(cmd.Context(), false)
			return s, s.Message, err
		}),
		mgmt(e, o, "firewall_status", "Show whether the firewall is enabled", cobra.NoArgs, func(cmd *cobra.Command, c *client.Client, args []string) (any, string, error) {
			s, err := c.Firewall(cmd.Context())
			return s, "firewall : " + s.Status, err
		}),
		mgmt(e, o, "reload", "Re-read ase.conf and api_dir; apply what can change without a restart", cobra.NoArgs, func(cmd *cobra.Command, c *client.Client, args []string) (any, string, error) {
			var r wire.Reload
			err := c.Do(cmd.Context(), "POST", "/reload", nil, nil, &r)
			return r, formatReload(r), err
		}),
		mgmt(e, o, "cluster_info", "Show the cluster's nodes", cobra.NoArgs, func(cmd *cobra.Command, c *client.Client, args []string) (any, string, error) {
			cl, err := c.Cluster(cmd.Context())
			var b strings.Builder
			fmt.Fprintf(&b, "cluster id : %s\nnode count : %d\n", cl.ClusterID, cl.NodeCount)
			for _, n := range cl.Node {
				fmt.Fprintf(&b, "%s:%d %s %s\n", n.Host, n.Port, n.UUID, n.Status)
			}
			return cl, b.String(), err
		}),
	}
}

func updatePasswordCommand(e *env, o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "update_password",
		Short: "Change your password, the admin's by default (prompts for the current one and the new one twice)",
		Long: `Change the password of the user running the command: the admin, or the
local user given with -u. The command prompts for the current password and
for the new one twice (from standard input, one per line, when there is no
terminal). The new password must have at least 8 characters.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			current, err := e.ask("Enter current password: ")
			if err != nil {
				return err
			}
			next, err := e.ask("Enter new password: ")
			if err != nil {
				return err
			}
			again, err := e.ask("Re-enter new password: ")
			if err != nil {
				return err
			}
			if next != again {
				return usagef("the new passwords do not match")
			}
			if len(next) < 8 {
				return usagef("the new password must have at least 8 characters")
			}
			// The current password authenticates the call, whatever -p says.
			o.password = current
			c, err := o.client(e)
			if err != nil {
				return err
			}
			defer logout(cmd.Context(), c)
			s, err := c.UpdatePassword(cmd.Context(), current, next)
			if err != nil {
				return o.failed(e, err)
			}
			if o.output == "json" {
				return printJSON(e.stdout, s)
			}
			fmt.Fprintln(e.stdout, "password updated successfully")
			return nil
		},
	}
}

// parseServerArgs reads HOST:PORT [SPIKE_THRESHOLD] [CONNECTION_QUOTA].
func parseServerArgs(args []string) (wire.Server, error) {
	host, port, err := splitHostPort(args[0])
	if err != nil {
		return wire.Server{}, err
	}
	s := wire.Server{Host: host, Port: port}
	if len(args) > 1 {
		spike := args[1]
		s.ServerSpikeThreshold = &spike
	}
	if len(args) > 2 {
		q, err := strconv.Atoi(args[2])
		if err != nil || q < 0 {
			return wire.Server{}, usagef("CONNECTION_QUOTA must be a whole number, got %q", args[2])
		}
		s.ServerConnectionQuota = q
	}
	return s, nil
}

func splitHostPort(s string) (string, int, error) {
	i := strings.LastIndexByte(s, ':')
	if i <= 0 {
		return "", 0, usagef("%q is not HOST:PORT", s)
	}
	host := strings.TrimSuffix(strings.TrimPrefix(s[:i], "["), "]")
	port, err := strconv.Atoi(s[i+1:])
	if err != nil {
		return "", 0, usagef("%q is not HOST:PORT", s)
	}
	return host, port, nil
}

func formatServers(l wire.ServerList, healthOnly bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "api : %s\nserver count : %d\n", l.APIID, l.ServerCount)
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	for _, s := range l.Server {
		addr := s.Host + ":" + strconv.Itoa(s.Port)
		if strings.Contains(s.Host, ":") {
			addr = "[" + s.Host + "]:" + strconv.Itoa(s.Port)
		}
		if healthOnly {
			fmt.Fprintf(tw, "server %s\t%s\n", addr, s.HealthStatus)
			continue
		}
		spike := "-"
		if s.ServerSpikeThreshold != nil {
			spike = *s.ServerSpikeThreshold
		}
		fmt.Fprintf(tw, "server %s\tquota %d\tspike %s\t%s\n", addr, s.ServerConnectionQuota, spike, s.HealthStatus)
	}
	tw.Flush()
	return b.String()
}

// formatReload prints what a reload changed, one key a line.
func formatReload(r wire.Reload) string {
	var b strings.Builder
	b.WriteString(r.Message + "\n")
	line := func(what string, ch wire.ReloadChange) {
		fmt.Fprintf(&b, "%-13s : %s", what, ch.Key)
		if !ch.Secret {
			fmt.Fprintf(&b, " %q -> %q", ch.From, ch.To)
		} else {
			b.WriteString(" changed")
		}
		if ch.Hint != "" {
			b.WriteString(" (" + ch.Hint + ")")
		}
		b.WriteString("\n")
	}
	for _, ch := range r.Applied {
		line("applied", ch)
	}
	for _, ch := range r.NeedsRestart {
		line("needs restart", ch)
	}
	return b.String()
}

// formatStatus prints GET /status in the vendor's layout.
func formatStatus(s wire.StatusInfo) string {
	rows := [][2]string{
		{"status", s.Status},
		{"version", s.Version},
		{"mode", s.Mode},
		{"http/ws", s.HTTPWS},
		{"https/wss", s.HTTPSWSS},
		{"firewall", s.Firewall},
		{"audit", s.Audit},
		{"sideband authentication", s.SidebandAuthentication},
		{"ase detected attack", s.ASEDetectedAttack},
		{"abs", s.ABS},
		{"abs attack", s.ABSAttack},
		{"attack list memory", s.AttackListMemory},
		{"log level", s.LogLevel},
		{"timezone", s.Timezone},
		{"cluster", s.Cluster},
		{"admin password", s.AdminPassword},
	}
	var b strings.Builder
	b.WriteString("API Security Enforcer\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "%-23s : %s\n", r[0], r[1])
	}
	if s.AdminPassword == "default" {
		b.WriteString("warning: the admin password is the default; change it with 'ase update_password'\n")
	}
	return b.String()
}
