// Package cli is the ase command: `ase serve` runs the server, every other
// command talks to the management API through the typed client, printing
// the vendor's sentences (or the server's JSON with -o json).
package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/ase-project/ase/internal/accounts"
	"github.com/ase-project/ase/internal/client"
)

// Version is the build's version, set with -ldflags "-X .../cli.Version=...".
var Version = "0.1.0-dev"

// Exit codes.
const (
	ExitOK      = 0
	ExitFailure = 1 // the server refused, or could not be reached
	ExitUsage   = 2 // the command line is wrong
)

// promptMarker stands for "-p given without a value": prompt for it.
const promptMarker = "\x00prompt"

// env is the process environment and terminal, injectable for tests.
type env struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string
	isTTY  func() bool
	// readSecret reads a password from the terminal without echo.
	readSecret func(prompt string) (string, error)
	lines      *bufio.Reader // stdin, line by line, when it is not a terminal
}

// Main runs the ase command with args (without the program name) and
// returns the exit code.
func Main(args []string) int {
	e := &env{
		stdin:  os.Stdin,
		stdout: os.Stdout,
		stderr: os.Stderr,
		getenv: os.Getenv,
		isTTY:  func() bool { return term.IsTerminal(int(os.Stdin.Fd())) },
	}
	e.readSecret = func(prompt string) (string, error) {
		fmt.Fprint(e.stderr, prompt)
		b, err := term.ReadPassword(int(os.Stdin.Fd()))
		fmt.Fprintln(e.stderr)
		return string(b), err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return run(ctx, e, args)
}

func run(ctx context.Context, e *env, args []string) int {
	root := newRoot(e)
	root.SetArgs(rewritePromptFlag(args))
	root.SetIn(e.stdin)
	root.SetOut(e.stdout)
	root.SetErr(e.stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	var ue usageError
	var ce *client.Error
	switch {
	case errors.As(err, &ue) || isCobraUsage(err):
		fmt.Fprintf(e.stderr, "ase: %v\nRun 'ase help' for usage.\n", err)
		return ExitUsage
	case errors.As(err, &ce):
		fmt.Fprintf(e.stderr, "ase: %s\n", ce.Error())
	default:
		fmt.Fprintf(e.stderr, "ase: %v\n", err)
	}
	return ExitFailure
}

// usageError is a wrong command line.
type usageError struct{ msg string }

func (u usageError) Error() string { return u.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

func isCobraUsage(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand flag", "accepts ", "requires ", "invalid argument", "flag needs an argument"} {
		if strings.HasPrefix(msg, p) || strings.Contains(msg, " "+p) {
			return true
		}
	}
	return false
}

// rewritePromptFlag turns a -p/--password given without a value (last, or
// followed by another flag) into a request to prompt, as the vendor's CLI
// allows `ase status -u admin -p`.
func rewritePromptFlag(args []string) []string {
	out := make([]string, 0, len(args))
	for i, a := range args {
		if a == "--" {
			return append(out, args[i:]...)
		}
		if a == "-p" || a == "--password" {
			if i == len(args)-1 || strings.HasPrefix(args[i+1], "-") {
				out = append(out, "--password="+promptMarker)
				continue
			}
		}
		out = append(out, a)
	}
	return out
}

// CommandNames lists every command of the ase CLI, for tests that must
// cover each one.
func CommandNames() []string {
	var out []string
	for _, c := range newRoot(&env{}).Commands() {
		out = append(out, c.Name())
	}
	return out
}

// options are the global flags.
type options struct {
	url      string
	user     string
	password string
	output   string
}

func newRoot(e *env) *cobra.Command {
	o := &options{}
	root := &cobra.Command{
		Use:   "ase",
		Short: "ASE, the API Security Enforcer",
		Long: `ASE protects REST and WebSocket APIs, inline as a reverse proxy or in
sideband as the decision service an API gateway asks about every request.

'ase serve' runs the server. Every other command talks to the management API
(--url, default ` + client.DefaultURL + `) as the admin user, or as the local
user given with -u (logged in for the command, logged out after).

With -o json a command prints the server's JSON reply, on success and when the
server refuses (exit 1, its message also on stderr); when no reply came (the
server is unreachable, the command line is wrong), stdout stays empty.

'ase completion bash|zsh|fish|powershell' prints a shell completion script;
it completes API ids, servers, users, API keys, list entry types and tags
from the running server (with the credentials of --url/-u/-p or ASE_URL,
ASE_USER, ASE_PASSWORD; it never prompts).`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			switch o.output {
			case "text", "json":
			default:
				return usagef("-o must be text or json, got %q", o.output)
			}
			return nil
		},
	}
	pf := root.PersistentFlags()
	pf.StringVar(&o.url, "url", "", "management API URL (env ASE_URL, default "+client.DefaultURL+")")
	pf.StringVarP(&o.user, "user", "u", "", "user: admin's access key, or a local user, who logs in (env ASE_USER, default admin)")
	pf.StringVarP(&o.password, "password", "p", "", "secret key or password; -p alone prompts for it (env ASE_PASSWORD)")
	pf.StringVarP(&o.output, "output", "o", "text", "output format: text or json")
	root.CompletionOptions.HiddenDefaultCmd = false

	root.AddCommand(serveCommand(e))
	root.AddCommand(versionCommand(e, o))
	for _, c := range managementCommands(e, o) {
		root.AddCommand(c)
	}
	for _, c := range listCommands(e, o) {
		root.AddCommand(c)
	}
	for _, c := range absCommands(e, o) {
		root.AddCommand(c)
	}
	for _, c := range sidebandCommands(e, o) {
		root.AddCommand(c)
	}
	for _, c := range flowCommands(e, o) {
		root.AddCommand(c)
	}
	for _, c := range accountCommands(e, o) {
		root.AddCommand(c)
	}
	addCompletions(root, e, o)
	return root
}

// client returns the management API client for the global options,
// prompting for the password when needed and possible.
func (o *options) client(e *env) (*client.Client, error) {
	url := firstNonEmpty(o.url, e.getenv("ASE_URL"), client.DefaultURL)
	user := o.userName(e)
	pw := o.password
	if pw == "" {
		pw = e.getenv("ASE_PASSWORD")
	}
	if pw == "" || pw == promptMarker {
		if !e.isTTY() {
			return nil, usagef("no password: give -p PASSWORD or set ASE_PASSWORD (there is no terminal to prompt on)")
		}
		var err error
		if pw, err = e.readSecret("Password: "); err != nil {
			return nil, err
		}
	}
	c := client.New(strings.TrimSuffix(url, "/"), user, pw)
	c.UserAgent = "ase-cli/" + Version
	// Only the built-in admin has the access/secret key headers; any
	// other user logs in and works through a session, ended after the
	// command.
	c.Session = user != accounts.Admin
	return c, nil
}

// userName is who the command acts as: -u, ASE_USER, or the built-in admin.
func (o *options) userName(e *env) string {
	return firstNonEmpty(o.user, e.getenv("ASE_USER"), accounts.Admin)
}

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

// printJSON writes v (a raw reply or a value) indented.
func printJSON(w io.Writer, v any) error {
	if raw, ok := v.(client.Raw); ok {
		var anyv any
		if json.Unmarshal(raw, &anyv) == nil {
			v = anyv
		}
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, string(b))
	return err
}

// readLine reads one line of stdin (for prompts when stdin is a pipe).
func (e *env) readLine() (string, error) {
	if e.lines == nil {
		e.lines = bufio.NewReader(e.stdin)
	}
	s, err := e.lines.ReadString('\n')
	if err != nil && (err != io.EOF || s == "") {
		return "", errors.New("standard input ended before all answers were given")
	}
	return strings.TrimRight(s, "\r\n"), nil
}

// ask reads a secret: from the terminal without echo, or a line of stdin.
func (e *env) ask(prompt string) (string, error) {
	if e.isTTY() {
		return e.readSecret(prompt)
	}
	return e.readLine()
}
