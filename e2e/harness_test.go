// Package e2e drives the real ase binary: it is built once, started on
// free loopback ports with a fresh data directory, and exercised through
// its management API, its CLI and its data ports.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ase-project/ase/internal/client"
)

var aseBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ase-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	aseBin = filepath.Join(dir, "ase")
	args := []string{"build", "-o", aseBin}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "../cmd/ase")
	build := exec.Command("go", args...)
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building ase:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// handedOut are the ports freePort returned: the kernel may give a port
// just closed again at once, and two of an instance's ports (or another
// test's) must not be the same.
var handedOut = struct {
	sync.Mutex
	m map[int]bool
}{m: map[int]bool{}}

// freePort returns a loopback TCP port that was free a moment ago and that
// this test process has not handed out before.
func freePort(t testing.TB) int {
	t.Helper()
	for {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		handedOut.Lock()
		seen := handedOut.m[port]
		handedOut.m[port] = true
		handedOut.Unlock()
		if !seen {
			return port
		}
	}
}

// syncBuffer collects a process's output for inspection while it runs.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Instance is one running ase server.
type Instance struct {
	t        testing.TB
	Dir      string // working directory; data under Dir/data
	ConfPath string
	Conf     map[string]string
	Env      []string
	MgmtURL  string
	Password string
	Bin      string // the ase binary to run; the suite's own when empty
	// HTTP sends the instance's management and data requests; when nil,
	// http.DefaultClient. A test that needs its own TLS settings sets it
	// here: tests run in parallel, so http.DefaultClient is never changed.
	HTTP *http.Client
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan error
}

// newInstance prepares (without starting) a server with conf applied on
// top of test defaults: free ports, data in a temp dir, HTTPS off.
func newInstance(t testing.TB, conf map[string]string) *Instance {
	t.Helper()
	dir := t.TempDir()
	i := &Instance{t: t, Dir: dir, ConfPath: filepath.Join(dir, "ase.conf"), Password: "admin"}
	i.Conf = map[string]string{
		"mode":               "inline",
		"http_ws_port":       strconv.Itoa(freePort(t)),
		"https_wss_port":     "0",
		"management_port":    strconv.Itoa(freePort(t)),
		"management_address": "127.0.0.1",
		"listen_address":     "127.0.0.1", // tests listen on loopback only
		"data_dir":           filepath.Join(dir, "data"),
	}
	for k, v := range conf {
		i.Conf[k] = v
	}
	i.MgmtURL = "http://127.0.0.1:" + i.Conf["management_port"]
	return i
}

// startInstance starts a server and waits until its management API
// answers.
func startInstance(t testing.TB, conf map[string]string) *Instance {
	t.Helper()
	i := newInstance(t, conf)
	i.Start()
	return i
}

func (i *Instance) writeConf() {
	keys := make([]string, 0, len(i.Conf))
	for k := range i.Conf {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("; written by the e2e harness\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%s\n", k, i.Conf[k])
	}
	if err := os.WriteFile(i.ConfPath, []byte(b.String()), 0o600); err != nil {
		i.t.Fatal(err)
	}
}

// Launch starts the process without waiting for it to be ready.
func (i *Instance) Launch() {
	i.t.Helper()
	i.writeConf()
	i.out = &syncBuffer{}
	bin := aseBin
	if i.Bin != "" {
		bin = i.Bin
	}
	i.cmd = exec.Command(bin, "serve", "--config", i.ConfPath)
	i.cmd.Dir = i.Dir
	i.cmd.Env = append(cleanEnv(), i.Env...)
	i.cmd.Stdout, i.cmd.Stderr = i.out, i.out
	if err := i.cmd.Start(); err != nil {
		i.t.Fatal(err)
	}
	i.done = make(chan error, 1)
	cmd := i.cmd
	go func() { i.done <- cmd.Wait() }()
	i.t.Cleanup(func() {
		if i.cmd != nil && i.cmd.ProcessState == nil {
			i.cmd.Process.Kill()
			<-i.done
		}
	})
}

// cleanEnv is the test process's environment without ASE_ variables, so a
// developer's shell cannot change what the tests see.
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ASE_") {
			out = append(out, kv)
		}
	}
	return out
}

// Start launches the server and waits for its management API.
func (i *Instance) Start() {
	i.t.Helper()
	i.Launch()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-i.done:
			i.done <- err // for the cleanup's wait
			i.t.Fatalf("ase exited during start-up (%v):\n%s", err, i.out.String())
		default:
		}
		resp, err := i.httpClient().Get(i.MgmtURL + "/v5/ase/status")
		if err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	i.t.Fatalf("ase did not answer within 60s:\n%s", i.out.String())
}

// Wait waits for the process to exit and returns its error.
func (i *Instance) Wait(timeout time.Duration) error {
	i.t.Helper()
	select {
	case err := <-i.done:
		return err
	case <-time.After(timeout):
		i.t.Fatalf("ase did not exit within %v:\n%s", timeout, i.out.String())
		return nil
	}
}

// Stop sends SIGTERM and waits for a clean exit.
func (i *Instance) Stop() {
	i.t.Helper()
	i.cmd.Process.Signal(syscall.SIGTERM)
	if err := i.Wait(30 * time.Second); err != nil {
		i.t.Fatalf("ase did not stop cleanly: %v\n%s", err, i.out.String())
	}
}

// Kill sends SIGKILL: a crash.
func (i *Instance) Kill() {
	i.t.Helper()
	i.cmd.Process.Kill()
	i.Wait(30 * time.Second)
}

// Restart stops (cleanly) and starts the server again on the same data.
func (i *Instance) Restart() {
	i.t.Helper()
	i.Stop()
	i.Start()
}

// Output is what the server has written so far.
func (i *Instance) Output() string { return i.out.String() }

// Client is a management API client with the current admin password.
func (i *Instance) Client() *client.Client { return client.New(i.MgmtURL, "admin", i.Password) }

// Reply is an HTTP response read whole.
type Reply struct {
	Code   int
	Header http.Header
	Body   []byte
	Close  bool // the server said Connection: close
}

// Do sends a management request with the admin's headers (unless headers
// overrides them: a header set to "" is removed).
func (i *Instance) Do(method, path string, body string, headers map[string]string) Reply {
	i.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, i.MgmtURL+path, rd)
	if err != nil {
		i.t.Fatal(err)
	}
	req.Header.Set("x-ase-access-key", "admin")
	req.Header.Set("x-ase-secret-key", i.Password)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range headers {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	return i.send(req)
}

// httpClient is the client of the instance's requests (see HTTP).
func (i *Instance) httpClient() *http.Client {
	if i.HTTP != nil {
		return i.HTTP
	}
	return http.DefaultClient
}

// send sends req and reads the whole reply.
func (i *Instance) send(req *http.Request) Reply {
	i.t.Helper()
	resp, err := i.httpClient().Do(req)
	if err != nil {
		i.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		i.t.Fatal(err)
	}
	return Reply{Code: resp.StatusCode, Header: resp.Header, Body: b, Close: resp.Close}
}

// CLI runs `ase args...` against this instance with stdin, returning
// stdout, stderr and the exit code.
func (i *Instance) CLI(stdin string, args ...string) (string, string, int) {
	i.t.Helper()
	return i.CLIEnv([]string{"ASE_URL=" + i.MgmtURL, "ASE_PASSWORD=" + i.Password}, stdin, args...)
}

// CLIEnv runs the CLI with exactly env (beyond the clean environment).
func (i *Instance) CLIEnv(env []string, stdin string, args ...string) (string, string, int) {
	i.t.Helper()
	cmd := exec.Command(aseBin, args...)
	cmd.Dir = i.Dir
	cmd.Env = append(cleanEnv(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		i.t.Fatal(err)
	}
	return stdout.String(), stderr.String(), code
}
