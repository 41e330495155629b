package e2e

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// readmeSection returns the body of the first ```sh block after the
// README heading.
func readmeSection(t *testing.T, heading string) string {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "\n"+heading+"\n")
	if !ok {
		t.Fatalf("README.md has no %q heading", heading)
	}
	m := regexp.MustCompile("(?s)```sh\n(.*?)```").FindStringSubmatch(rest)
	if m == nil {
		t.Fatalf("README.md: no sh block after %q", heading)
	}
	return m[1]
}

// TestReadmeQuickstart runs the README's Quickstart as written, in bash,
// in an empty directory: its go build (of this module), its example
// backend, its commands and its curl calls. Only the port numbers are
// changed, to free ones (the Quickstart's commands are rewritten, and the
// server's defaults overridden with ASE_<KEY> as the README documents),
// so the test runs beside others. The Quickstart stops the server with
// kill $ASE_PID: the server must then be gone. The first run of "The two
// commands" must be the Quickstart's build and run commands.
func TestReadmeQuickstart(t *testing.T) {
	script := readmeSection(t, "## Quickstart")
	first := strings.TrimSpace(strings.SplitN(readmeSection(t, "## The two commands"), "\n", 2)[0])
	first, _, _ = strings.Cut(first, "#")
	if build, run, ok := strings.Cut(strings.TrimSpace(first), " && "); !ok || !hasCommandLine(script, build) || !hasCommandLine(script, run+" &") {
		t.Fatalf("the first run %q is not the Quickstart's build and run commands", first)
	}

	data, mgmt, backend, https := freePort(t), freePort(t), freePort(t), freePort(t)
	for _, r := range []struct{ from, to string }{{"8000", strconv.Itoa(data)}, {"8010", strconv.Itoa(mgmt)}, {"9000", strconv.Itoa(backend)}} {
		re := regexp.MustCompile(`\b` + r.from + `\b`)
		if !re.MatchString(script) {
			t.Fatalf("the Quickstart no longer uses port %s: update this test", r.from)
		}
		script = re.ReplaceAllString(script, r.to)
	}

	// An empty directory in which go build sees this module.
	dir := t.TempDir()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"go.mod", "go.sum", "cmd", "internal"} {
		if err := os.Symlink(filepath.Join(root, f), filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "quickstart.sh"), []byte(script), 0o600); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-e", "-o", "pipefail", "quickstart.sh")
	cmd.Dir = dir
	cmd.Env = append(cleanEnv(),
		"ASE_HTTP_WS_PORT="+strconv.Itoa(data), "ASE_MANAGEMENT_PORT="+strconv.Itoa(mgmt),
		"ASE_HTTPS_WSS_PORT="+strconv.Itoa(https), "ASE_LISTEN_ADDRESS=127.0.0.1",
		"ASE_URL=http://127.0.0.1:"+strconv.Itoa(mgmt))
	// update_password reads the current password and the new one twice
	// from stdin when there is no terminal.
	cmd.Stdin = strings.NewReader("admin\nyour new password\nyour new password\n")
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// Its own process group, so whatever the Quickstart leaves running is
	// stopped at the end, whatever happens.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	if err := cmd.Wait(); err != nil {
		t.Fatalf("the Quickstart failed: %v\n%s", err, out.String())
	}
	got := out.String()
	for _, want := range []string{
		`{"items": ["apple", "pear"]}`, // the backend's file, through ASE
		"HTTP/1.1 403 Forbidden",       // once the client is deny-listed
		"api shop added successfully",
	} {
		if !strings.Contains(got, want) {
			t.Fatalf("the Quickstart's output lacks %q:\n%s", want, got)
		}
	}
	if strings.Count(got, `{"items": ["apple", "pear"]}`) != 2 {
		t.Fatalf("want the backend's file twice (before and after the deny-list entry):\n%s", got)
	}
	// kill $ASE_PID stopped the server: its ports close.
	deadline := time.Now().Add(30 * time.Second)
	for _, port := range []int{mgmt, data} {
		for {
			c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
			if err != nil {
				break
			}
			c.Close()
			if time.Now().After(deadline) {
				t.Fatalf("port %d still answers 30 s after the Quickstart's kill: the PID it kills is not the server's\n%s", port, got)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// hasCommandLine reports whether script has a line that is command, with
// an optional trailing comment.
func hasCommandLine(script, command string) bool {
	for _, l := range strings.Split(script, "\n") {
		l, _, _ = strings.Cut(l, "#")
		if strings.TrimSpace(l) == command {
			return true
		}
	}
	return false
}
