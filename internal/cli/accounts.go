package cli

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/ase-project/ase/internal/accounts"
	"github.com/ase-project/ase/internal/client"
	"github.com/ase-project/ase/internal/wire"
)

// roles are the roles a local user can have, for help and completion.
var roles = []string{string(accounts.RoleAdmin), string(accounts.RoleWrite), string(accounts.RoleRead)}

func checkRole(role string) error {
	if err := accounts.CheckRole(accounts.Role(role)); err != nil {
		return usagef("%v, got %q", err, role)
	}
	return nil
}

// askNewPassword asks for a new password twice (lines of stdin when there
// is no terminal), so that a typing mistake does not lock anyone out.
func askNewPassword(e *env, whose string) (string, error) {
	pw, err := e.ask("Enter the new password of " + whose + ": ")
	if err != nil {
		return "", err
	}
	again, err := e.ask("Re-enter it: ")
	if err != nil {
		return "", err
	}
	if pw != again {
		return "", usagef("the passwords do not match")
	}
	if len(pw) < accounts.MinPasswordLen {
		return "", usagef("the password must have at least %d characters", accounts.MinPasswordLen)
	}
	return pw, nil
}

func accountCommands(e *env, o *options) []*cobra.Command {
	return []*cobra.Command{
		createUserCommand(e, o),
		mgmt(e, o, "list_user", "List the local users and their roles (admin role)", cobra.NoArgs,
			func(cmd *cobra.Command, c *client.Client, args []string) (any, string, error) {
				l, err := c.ListUsers(cmd.Context())
				var b strings.Builder
				fmt.Fprintf(&b, "users : %d\n", len(l.Items))
				tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
				for _, u := range l.Items {
					fmt.Fprintf(tw, "  %s\t%s\tcreated %s\n", u.Body.Name, u.Body.Role, u.Body.CreatedAt)
				}
				tw.Flush()
				return l, b.String(), err
			}),
		updateUserCommand(e, o),
		mgmt(e, o, "delete_user NAME", "Delete a local user (not the built-in admin); its sessions end", cobra.ExactArgs(1),
			func(cmd *cobra.Command, c *client.Client, args []string) (any, string, error) {
				r, err := c.DeleteUser(cmd.Context(), args[0])
				return r, "user " + args[0] + " deleted", err
			}),
		createAPIKeyCommand(e, o),
		mgmt(e, o, "list_api_key", "List API keys, never their tokens (admins: everyone's; users: their own)", cobra.NoArgs,
			func(cmd *cobra.Command, c *client.Client, args []string) (any, string, error) {
				l, err := c.ListAPIKeys(cmd.Context())
				var b strings.Builder
				fmt.Fprintf(&b, "api keys : %d\n", len(l.Items))
				tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
				for _, k := range l.Items {
					fmt.Fprintf(tw, "  %s\t%s\tuser %s\t%s\tcreated %s\n", k.Key, k.Body.Name, k.Body.Username, k.Body.LoginMethod, k.Body.CreatedAt)
				}
				tw.Flush()
				return l, b.String(), err
			}),
		mgmt(e, o, "delete_api_key KEY", "Delete an API key by its key id (admins: any; users: their own)", cobra.ExactArgs(1),
			func(cmd *cobra.Command, c *client.Client, args []string) (any, string, error) {
				r, err := c.DeleteAPIKey(cmd.Context(), args[0])
				return r, "api key " + args[0] + " deleted", err
			}),
		createScraperKeyCommand(e, o),
	}
}

func createUserCommand(e *env, o *options) *cobra.Command {
	cmd := mgmt(e, o, "create_user NAME ROLE", "Create a local user with a role: admin, write or read (prompts for its password twice)", cobra.ExactArgs(2),
		func(cmd *cobra.Command, c *client.Client, args []string) (any, string, error) {
			pw, err := askNewPassword(e, "user "+args[0])
			if err != nil {
				return nil, "", err
			}
			r, err := c.CreateUser(cmd.Context(), args[0], pw, args[1])
			return r, "user " + args[0] + " created with the " + args[1] + " role", err
		})
	cmd.Long = `Create a local user. ROLE is admin (everything, users included), write
(changes configuration, not users) or read (reads everything, changes
nothing). The password (at least 8 characters) is asked twice, on the
terminal without echo, or as two lines of standard input without one.`
	cmd.PreRunE = func(cmd *cobra.Command, args []string) error { return checkRole(args[1]) }
	return cmd
}

func updateUserCommand(e *env, o *options) *cobra.Command {
	var role string
	var newPassword bool
	cmd := mgmt(e, o, "update_user NAME", "Change a local user's role (--role) and/or password (--new-password prompts for it twice)", cobra.ExactArgs(1),
		func(cmd *cobra.Command, c *client.Client, args []string) (any, string, error) {
			name := args[0]
			var pw string
			if newPassword {
				var err error
				if pw, err = askNewPassword(e, "user "+name); err != nil {
					return nil, "", err
				}
			}
			r, err := c.UpdateUser(cmd.Context(), name, pw, role)
			var text string
			switch {
			case role != "" && newPassword:
				text = "user " + name + " now has the " + role + " role and a new password"
			case role != "":
				text = "user " + name + " now has the " + role + " role"
			default:
				text = "the password of user " + name + " is changed"
			}
			return r, text, err
		})
	cmd.Long = `Change a local user's role, password, or both. A new password ends the
user's sessions; its API keys keep working (delete them with delete_api_key).`
	cmd.PreRunE = func(cmd *cobra.Command, args []string) error {
		if role == "" && !newPassword {
			return usagef("give --role ROLE, --new-password, or both")
		}
		if role != "" {
			return checkRole(role)
		}
		return nil
	}
	cmd.Flags().StringVar(&role, "role", "", "the new role: "+strings.Join(roles, ", "))
	cmd.Flags().BoolVar(&newPassword, "new-password", false, "prompt for a new password (twice; lines of stdin without a terminal)")
	return cmd
}

// keyCreated is what a created key prints: its token, once.
func keyCreated(k wire.APIKey) string {
	return fmt.Sprintf("api key %s (key %s) created for user %s\ntoken : %s\nthe token is shown only this once", k.Body.Name, k.Key, k.Body.Username, k.Body.Token)
}

// createAPIKeyCommand makes a key for the user running the command, as
// the vendor does (the CLI logs in as -u, then creates it), or, with
// --for, for another user through the admin-only endpoint.
func createAPIKeyCommand(e *env, o *options) *cobra.Command {
	var forUser string
	cmd := mgmt(e, o, "create_api_key NAME", "Create an API key for yourself (the -u user), or for another user with --for; prints its token once", cobra.ExactArgs(1),
		func(cmd *cobra.Command, c *client.Client, args []string) (any, string, error) {
			var k wire.APIKey
			var err error
			if forUser != "" {
				k, err = c.CreateAPIKeyFor(cmd.Context(), forUser, args[0])
			} else {
				k, err = c.CreateAPIKey(cmd.Context(), args[0])
			}
			return k, keyCreated(k), err
		})
	cmd.Long = `Create an API key named NAME. Without --for, the key is yours: the CLI logs
in as the -u user (ASE_USER) and creates it, as the vendor's model has it; the
built-in admin has no API keys. With --for USER, an admin creates a key for
USER (audited as the admin's create_api_key for USER).

The token is printed once and never shown again (the server keeps only a
digest). A request with "Authorization: apikey <token>" acts with the user's
role and can never change configuration.`
	cmd.PreRunE = func(cmd *cobra.Command, args []string) error {
		if forUser == "" && o.userName(e) == accounts.Admin {
			return usagef("the built-in admin cannot have API keys: give --for USER to create one for a user, or -u USER to create your own")
		}
		return nil
	}
	cmd.Flags().StringVar(&forUser, "for", "", "create the key for this user (admin role)")
	return cmd
}

// scraperKey is what create_scraper_key prints with -o json: the user (as
// the server shows it), whether this command created it, and the server's
// reply creating the key.
type scraperKey struct {
	UserCreated bool        `json:"user_created"`
	User        wire.User   `json:"user"`
	APIKey      wire.APIKey `json:"api_key"`
}

// createScraperKeyCommand gives a metrics scraper (Prometheus) a read-only
// credential in one step: a read user, created when absent with a random
// password nobody ever sees, and an API key for it. Run again, it makes
// another key for the same user: rotation.
func createScraperKeyCommand(e *env, o *options) *cobra.Command {
	var keyName string
	cmd := mgmt(e, o, "create_scraper_key NAME", "Create a read-only API key for a metrics scraper (and its read user NAME if needed); prints the token once", cobra.ExactArgs(1),
		func(cmd *cobra.Command, c *client.Client, args []string) (any, string, error) {
			ctx, name := cmd.Context(), args[0]
			if keyName == "" {
				keyName = name
			}
			out := scraperKey{}
			var text strings.Builder
			u, err := c.GetUser(ctx, name)
			var ce *client.Error
			if errors.As(err, &ce) && ce.Code == http.StatusNotFound {
				_, err = c.CreateUser(ctx, name, randomPassword(), string(accounts.RoleRead))
				// Created meanwhile by another run: use it like an
				// existing one.
				out.UserCreated = err == nil
				if err == nil || errors.As(err, &ce) && ce.Code == http.StatusConflict {
					u, err = c.GetUser(ctx, name)
				}
			}
			if err != nil {
				return nil, "", err
			}
			out.User = u
			if u.Body.Role != string(accounts.RoleRead) {
				return nil, "", fmt.Errorf("user %s has the %s role: a scraper key belongs to a read user; give another NAME", name, u.Body.Role)
			}
			if out.UserCreated {
				fmt.Fprintf(&text, "user %s created with the read role (its password is random and never shown: it uses only API keys)\n", name)
			} else {
				fmt.Fprintf(&text, "user %s exists with the read role\n", name)
			}
			if out.APIKey, err = c.CreateAPIKeyFor(ctx, name, keyName); err != nil {
				return nil, "", err
			}
			text.WriteString(keyCreated(out.APIKey))
			text.WriteString(`; scrape /v5/ase/metrics with the header "Authorization: apikey <token>"`)
			return out, text.String(), nil
		})
	cmd.Long = `Give a metrics scraper (Prometheus, say) a read-only credential in one step.

If user NAME does not exist, it is created with the read role and a random
password that is never shown (it only ever uses API keys; an admin can set a
password later with update_user --new-password). If it exists, it must have
the read role. Then an API key is created for it (named NAME, or --key-name)
and its token printed once. Running it again for the same NAME makes another
key: rotate by creating the new one, updating the scraper, then deleting the
old one with delete_api_key.

With -o json it prints {"user_created", "user", "api_key"}: the user and the
key as the server returns them, the token in api_key.body.token.`
	cmd.Flags().StringVar(&keyName, "key-name", "", "the API key's name (default: NAME)")
	return cmd
}

// randomPassword is a scraper user's password: 256 random bits, used once
// to create the user and forgotten.
func randomPassword() string {
	var b [32]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
