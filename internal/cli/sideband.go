package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ase-project/ase/internal/client"
)

func sidebandCommands(e *env, o *options) []*cobra.Command {
	status := func(s string) string { return s }
	return []*cobra.Command{
		mgmt(e, o, "enable_sideband_authentication", "Require a sideband token or shared secret on sideband calls", cobra.NoArgs,
			func(cmd *cobra.Command, c *client.Client, args []string) (any, string, error) {
				s, err := c.SetSidebandAuthentication(cmd.Context(), true)
				return s, status(s.Message), err
			}),
		mgmt(e, o, "disable_sideband_authentication", "Accept sideband calls without credentials", cobra.NoArgs,
			func(cmd *cobra.Command, c *client.Client, args []string) (any, string, error) {
				s, err := c.SetSidebandAuthentication(cmd.Context(), false)
				return s, status(s.Message), err
			}),
		mgmt(e, o, "sideband_authentication_status", "Show whether sideband authentication is on", cobra.NoArgs,
			func(cmd *cobra.Command, c *client.Client, args []string) (any, string, error) {
				s, err := c.SidebandAuthentication(cmd.Context())
				return s, status(s.Message), err
			}),
		mgmt(e, o, "create_sideband_token", "Create a sideband token (prints it)", cobra.NoArgs,
			func(cmd *cobra.Command, c *client.Client, args []string) (any, string, error) {
				t, err := c.CreateSidebandToken(cmd.Context())
				return t, "sideband token created: " + t.Token, err
			}),
		mgmt(e, o, "import_sideband_token TOKEN", "Import a sideband token (32 lower-case letters and digits)", cobra.ExactArgs(1),
			func(cmd *cobra.Command, c *client.Client, args []string) (any, string, error) {
				s, err := c.ImportSidebandToken(cmd.Context(), args[0])
				return s, s.Message, err
			}),
		mgmt(e, o, "delete_sideband_token TOKEN", "Delete a sideband token", cobra.ExactArgs(1),
			func(cmd *cobra.Command, c *client.Client, args []string) (any, string, error) {
				s, err := c.DeleteSidebandToken(cmd.Context(), args[0])
				return s, s.Message, err
			}),
		mgmt(e, o, "list_sideband_token", "List the sideband tokens", cobra.NoArgs,
			func(cmd *cobra.Command, c *client.Client, args []string) (any, string, error) {
				l, err := c.ListSidebandTokens(cmd.Context())
				var b strings.Builder
				fmt.Fprintf(&b, "sideband tokens : %d\n", len(l.Tokens))
				for _, t := range l.Tokens {
					fmt.Fprintf(&b, "  %s  created %s\n", t.Token, t.CreatedAt)
				}
				return l, b.String(), err
			}),
		sharedSecretCreate(e, o),
		mgmt(e, o, "activate_shared_secret NAME", "Accept a shared secret (several may be active: rotation)", cobra.ExactArgs(1),
			func(cmd *cobra.Command, c *client.Client, args []string) (any, string, error) {
				s, err := c.SetSharedSecretActive(cmd.Context(), args[0], true)
				return s, s.Message, err
			}),
		mgmt(e, o, "deactivate_shared_secret NAME", "Stop accepting a shared secret", cobra.ExactArgs(1),
			func(cmd *cobra.Command, c *client.Client, args []string) (any, string, error) {
				s, err := c.SetSharedSecretActive(cmd.Context(), args[0], false)
				return s, s.Message, err
			}),
		mgmt(e, o, "delete_shared_secret NAME", "Delete an inactive shared secret", cobra.ExactArgs(1),
			func(cmd *cobra.Command, c *client.Client, args []string) (any, string, error) {
				s, err := c.DeleteSharedSecret(cmd.Context(), args[0])
				return s, s.Message, err
			}),
		mgmt(e, o, "list_shared_secret", "List the shared secrets (never their values)", cobra.NoArgs,
			func(cmd *cobra.Command, c *client.Client, args []string) (any, string, error) {
				l, err := c.ListSharedSecrets(cmd.Context())
				var b strings.Builder
				fmt.Fprintf(&b, "shared secrets : %d\n", len(l.Secrets))
				for _, s := range l.Secrets {
					state := "inactive"
					if s.Active {
						state = "active"
					}
					fmt.Fprintf(&b, "  %s  %s  created %s\n", s.Name, state, s.CreatedAt)
				}
				return l, b.String(), err
			}),
		mgmt(e, o, "set_shared_secret_header [HEADER]", "Set the header that carries shared secrets (no HEADER: reset to CLIENT-TOKEN)", cobra.MaximumNArgs(1),
			func(cmd *cobra.Command, c *client.Client, args []string) (any, string, error) {
				h := ""
				if len(args) == 1 {
					h = args[0]
				}
				s, err := c.SetSharedSecretHeader(cmd.Context(), h)
				return s, s.Message, err
			}),
	}
}

// sharedSecretCreate prompts for the secret rather than taking it as an
// argument, which would land in the shell's history.
func sharedSecretCreate(e *env, o *options) *cobra.Command {
	return mgmt(e, o, "create_shared_secret NAME", "Create a shared secret (prompts for its value; inactive until activated)", cobra.ExactArgs(1),
		func(cmd *cobra.Command, c *client.Client, args []string) (any, string, error) {
			secret, err := e.ask("Enter the shared secret: ")
			if err != nil {
				return nil, "", err
			}
			if len(secret) < 8 {
				return nil, "", usagef("the secret must have at least 8 characters")
			}
			s, err := c.CreateSharedSecret(cmd.Context(), args[0], secret)
			return s, s.Message, err
		})
}
