package e2e

// A real etcd for the cluster tests: each etcdProc is one etcd server run as
// its own process (the Debian etcd-server package, installed by
// scripts/deps.sh), a single-member cluster listening on 127.0.0.1 only, with
// its data under the test's temporary directory. Tests stop, kill, restart
// and wipe it to play etcd outages and a rebuilt etcd.
//
// TestEtcdHarness checks the harness itself and, above all, that the Go
// client in go.mod (go.etcd.io/etcd/client/v3) works against that server
// for everything the cluster store uses.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// etcdWait bounds every wait on etcd (start-up, shutdown, a client call):
// generous, since a loaded CI machine can be slow; nothing asserts a time.
const etcdWait = 60 * time.Second

// etcdTLSFiles are the PEM files of an etcd started with etcdWithTLS: one CA
// signed both the server's certificate (for 127.0.0.1 and localhost) and a
// client certificate. CAFile, CertFile and KeyFile are what a client (ASE's
// etcd TLS keys) needs.
type etcdTLSFiles struct {
	CAFile         string // the CA certificate (trusted by both sides)
	CertFile       string // client certificate, CN "ase-client"
	KeyFile        string // client key
	ServerCertFile string
	ServerKeyFile  string
}

// Config is the client-side TLS configuration made of those files.
func (f *etcdTLSFiles) Config(t testing.TB) *tls.Config {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(f.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatalf("no certificate in %s", f.CAFile)
	}
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
}

// etcdProc is one etcd server process of a test.
type etcdProc struct {
	t          testing.TB
	bin        string
	name       string
	clientPort int
	peerPort   int
	dataDir    string
	flags      []string

	// TLS is set by etcdWithTLS: clients must use https and a client
	// certificate (--client-cert-auth).
	TLS *etcdTLSFiles
	// User and Password are set by etcdWithAuth: etcd's authentication is
	// enabled with this user (root, with the root role).
	User, Password string

	mu   sync.Mutex
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{} // closed when cmd has exited
	err  error         // cmd's exit error, once done
}

// etcdOption configures startEtcd.
type etcdOption func(p *etcdProc)

// etcdWithTLS serves clients over TLS only, with client certificates
// required; the files are in etcdProc.TLS. (Peers stay plain http on
// loopback: one member only.)
func etcdWithTLS() etcdOption {
	return func(p *etcdProc) {
		p.TLS = etcdWritePKI(p.t, p.t.TempDir())
		p.flags = append(p.flags,
			"--cert-file", p.TLS.ServerCertFile,
			"--key-file", p.TLS.ServerKeyFile,
			"--trusted-ca-file", p.TLS.CAFile,
			"--client-cert-auth")
	}
}

// etcdWithAuth enables etcd's authentication once it runs, through the client
// API: user root with this password (a random one when ""), granted the root
// role. The credentials are in etcdProc.User and etcdProc.Password.
func etcdWithAuth(password string) etcdOption {
	return func(p *etcdProc) {
		if password == "" {
			b := make([]byte, 12)
			rand.Read(b)
			password = hex.EncodeToString(b)
		}
		p.User, p.Password = "root", password
	}
}

// etcdWithFlags adds command-line flags, for example
// "--experimental-watch-progress-notify-interval=500ms",
// "--max-txn-ops=1000", "--max-request-bytes=10485760".
func etcdWithFlags(flags ...string) etcdOption {
	return func(p *etcdProc) { p.flags = append(p.flags, flags...) }
}

// etcdWithJWT makes etcd issue JWT tokens (ES256, a key pair written for
// the test; ttl 0 is etcd's default, 5 minutes) instead of its default
// "simple" tokens, which live in the server's memory only.
func etcdWithJWT(ttl time.Duration) etcdOption {
	return func(p *etcdProc) {
		dir := p.t.TempDir()
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			p.t.Fatal(err)
		}
		priv, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			p.t.Fatal(err)
		}
		pub, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
		if err != nil {
			p.t.Fatal(err)
		}
		privFile, pubFile := filepath.Join(dir, "jwt-key.pem"), filepath.Join(dir, "jwt-pub.pem")
		if err := os.WriteFile(privFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: priv}), 0o600); err != nil {
			p.t.Fatal(err)
		}
		if err := os.WriteFile(pubFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644); err != nil {
			p.t.Fatal(err)
		}
		spec := "jwt,pub-key=" + pubFile + ",priv-key=" + privFile + ",sign-method=ES256"
		if ttl > 0 {
			spec += ",ttl=" + ttl.String()
		}
		p.flags = append(p.flags, "--auth-token", spec)
	}
}

// etcdBinary finds the etcd server binary; a test that needs it fails (never
// skips) when it is missing.
func etcdBinary(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("etcd"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/bin/etcd", "/usr/local/bin/etcd"} {
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
	}
	t.Fatal("the etcd binary is missing: run scripts/deps.sh (it installs Debian's etcd-server package)")
	return ""
}

// startEtcd starts a single-member etcd on free loopback ports with a fresh
// data directory, waits until it serves a linearizable read, and kills it at
// the test's cleanup.
func startEtcd(t testing.TB, opts ...etcdOption) *etcdProc {
	t.Helper()
	p := &etcdProc{
		t:          t,
		bin:        etcdBinary(t),
		name:       "ase-e2e",
		clientPort: freePort(t),
		peerPort:   freePort(t),
		dataDir:    filepath.Join(t.TempDir(), "etcd"),
	}
	for p.peerPort == p.clientPort {
		p.peerPort = freePort(t)
	}
	for _, o := range opts {
		o(p)
	}
	t.Cleanup(func() {
		p.mu.Lock()
		cmd, done := p.cmd, p.done
		p.mu.Unlock()
		if cmd != nil {
			cmd.Process.Kill()
			<-done
		}
	})
	p.startEmpty()
	return p
}

// startEmpty starts etcd on an empty data directory, then sets up the
// authentication when asked (the first start has no users: the readiness
// probe goes without credentials).
func (p *etcdProc) startEmpty() {
	p.t.Helper()
	if p.User == "" {
		p.Start()
		return
	}
	user, pass := p.User, p.Password
	p.User, p.Password = "", ""
	p.Start()
	p.User, p.Password = user, pass
	p.enableAuth()
}

func (p *etcdProc) scheme() string {
	if p.TLS != nil {
		return "https"
	}
	return "http"
}

// Endpoint is the client URL: http://127.0.0.1:PORT (https with TLS).
func (p *etcdProc) Endpoint() string {
	return p.scheme() + "://127.0.0.1:" + strconv.Itoa(p.clientPort)
}

// PeerURL is the (plain http) peer URL.
func (p *etcdProc) PeerURL() string { return "http://127.0.0.1:" + strconv.Itoa(p.peerPort) }

// DataDir is the current data directory (a new one after Wipe).
func (p *etcdProc) DataDir() string { return p.dataDir }

// Output is what the current (or last) process has logged.
func (p *etcdProc) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.out == nil {
		return ""
	}
	return p.out.String()
}

// Running tells whether the process is up (started and not exited).
func (p *etcdProc) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// tail is the end of the process's log, for failure messages.
func (p *etcdProc) tail() string {
	s := p.Output()
	if len(s) > 6000 {
		s = "..." + s[len(s)-6000:]
	}
	return s
}

// Start starts etcd (again) on the same ports and data directory and waits
// until it serves a linearizable read. After Stop or Kill, this ends an
// outage with the data kept.
func (p *etcdProc) Start() {
	p.t.Helper()
	if p.Running() {
		p.t.Fatal("etcd: Start while it is running")
	}
	args := []string{
		"--name", p.name,
		"--data-dir", p.dataDir,
		"--listen-client-urls", p.Endpoint(),
		"--advertise-client-urls", p.Endpoint(),
		"--listen-peer-urls", p.PeerURL(),
		"--initial-advertise-peer-urls", p.PeerURL(),
		"--initial-cluster", p.name + "=" + p.PeerURL(),
		"--initial-cluster-state", "new",
		"--initial-cluster-token", "ase-e2e",
		"--logger", "zap",
		"--log-outputs", "stderr",
	}
	args = append(args, p.flags...)
	cmd := exec.Command(p.bin, args...)
	// etcd reads ETCD_* variables as flags: a developer's shell must not
	// change the server the tests see.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ETCD_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	if runtime.GOARCH != "amd64" {
		// etcd 3.4 refuses to start on other architectures without it.
		cmd.Env = append(cmd.Env, "ETCD_UNSUPPORTED_ARCH="+runtime.GOARCH)
	}
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	// Dies with the test binary, even when that is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("starting etcd: %v", err)
	}
	done := make(chan struct{})
	p.mu.Lock()
	p.cmd, p.out, p.done, p.err = cmd, out, done, nil
	p.mu.Unlock()
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(done)
	}()
	p.waitReady(done)
}

// waitReady waits until a linearizable Get succeeds (a leader is elected
// and the client port serves), or fails the test if etcd exits.
func (p *etcdProc) waitReady(done chan struct{}) {
	p.t.Helper()
	deadline := time.Now().Add(etcdWait)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-done:
			p.mu.Lock()
			err := p.err
			p.mu.Unlock()
			p.t.Fatalf("etcd exited during start-up (%v):\n%s", err, p.tail())
		default:
		}
		last = p.probe()
		if last == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.t.Fatalf("etcd at %s not ready within %v (last error: %v):\n%s", p.Endpoint(), etcdWait, last, p.tail())
}

func (p *etcdProc) probe() error {
	cfg := p.clientConfig()
	cfg.DialTimeout = 2 * time.Second
	c, err := clientv3.New(cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err = c.Get(ctx, "ase-e2e-probe")
	return err
}

// clientConfig is a client configuration for this etcd: its endpoint, its
// TLS files and credentials when set, and no client logging.
func (p *etcdProc) clientConfig() clientv3.Config {
	cfg := clientv3.Config{
		Endpoints:   []string{p.Endpoint()},
		DialTimeout: 5 * time.Second,
		Username:    p.User,
		Password:    p.Password,
		Logger:      zap.NewNop(),
		// gRPC's default reconnect backoff grows to 120 s: after a long
		// outage a default client may take tens of seconds to notice that
		// etcd is back. Tests want to see etcd as soon as it serves.
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff: backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
		})},
	}
	if os.Getenv("ASE_TEST_ETCD_CLIENT_LOG") != "" {
		cfg.Logger = nil // the client's own: warnings to stderr
	}
	if p.TLS != nil {
		cfg.TLS = p.TLS.Config(p.t)
	}
	return cfg
}

// Client is a new client of this etcd (with its TLS files and credentials),
// closed at the test's cleanup. It keeps working across Stop/Kill and Start:
// the client reconnects by itself.
func (p *etcdProc) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(p.clientConfig())
	if err != nil {
		t.Fatalf("etcd client: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// wait waits for the process to exit.
func (p *etcdProc) wait() {
	p.t.Helper()
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	select {
	case <-done:
	case <-time.After(etcdWait):
		p.t.Fatalf("etcd did not exit within %v:\n%s", etcdWait, p.tail())
	}
}

// Stop sends SIGTERM and waits for the process to exit: a clean shutdown.
func (p *etcdProc) Stop() {
	p.t.Helper()
	if !p.Running() {
		p.t.Fatal("etcd: Stop while it is not running")
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.wait()
	p.mu.Lock()
	err := p.err
	p.mu.Unlock()
	// etcd re-raises the signal after its shutdown, so it dies "by"
	// SIGTERM; anything else is a failure.
	var ee *exec.ExitError
	if err != nil && !(errors.As(err, &ee) && ee.Sys().(syscall.WaitStatus).Signal() == syscall.SIGTERM) {
		p.t.Fatalf("etcd did not stop cleanly: %v\n%s", err, p.tail())
	}
}

// Kill sends SIGKILL and waits for the process to exit: a crash.
func (p *etcdProc) Kill() {
	p.t.Helper()
	if !p.Running() {
		p.t.Fatal("etcd: Kill while it is not running")
	}
	p.cmd.Process.Kill()
	p.wait()
}

// Wipe replaces etcd by a rebuilt one: the process is killed if it runs,
// then started on the same ports with a new, empty data directory, so its
// revisions start again from 1 (cluster and member IDs are the same, being
// derived from the name, the peer URL and the cluster token). The same TLS
// files serve, and with etcdWithAuth the same user and password are set up
// again, as an operator rebuilding it would.
func (p *etcdProc) Wipe() {
	p.t.Helper()
	if p.Running() {
		p.Kill()
	}
	p.dataDir = filepath.Join(p.t.TempDir(), "etcd")
	p.startEmpty()
}

// enableAuth adds the user (root role) and enables authentication.
func (p *etcdProc) enableAuth() {
	p.t.Helper()
	cfg := p.clientConfig()
	cfg.Username, cfg.Password = "", ""
	c, err := clientv3.New(cfg)
	if err != nil {
		p.t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), etcdWait)
	defer cancel()
	if _, err := c.UserAdd(ctx, p.User, p.Password); err != nil {
		p.t.Fatalf("etcd user add: %v", err)
	}
	if _, err := c.UserGrantRole(ctx, p.User, "root"); err != nil {
		p.t.Fatalf("etcd grant root role: %v", err)
	}
	if _, err := c.AuthEnable(ctx); err != nil {
		p.t.Fatalf("etcd auth enable: %v", err)
	}
}

// AddUser adds a user (through the root user when authentication is on)
// with read-write access to the keys under prefix, or the root role when
// prefix is "". An empty password makes a user without one (etcd 3.4's
// NoPassword): it can only authenticate by a TLS client certificate whose
// CN is its name, with no token at all.
func (p *etcdProc) AddUser(t testing.TB, name, password, prefix string) {
	t.Helper()
	c := p.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), etcdWait)
	defer cancel()
	var err error
	if password == "" {
		_, err = c.UserAddWithOptions(ctx, name, "", &clientv3.UserAddOptions{NoPassword: true})
	} else {
		_, err = c.UserAdd(ctx, name, password)
	}
	if err != nil {
		t.Fatalf("etcd user add %s: %v", name, err)
	}
	role := "root"
	if prefix != "" {
		role = name + "-rw"
		if _, err := c.RoleAdd(ctx, role); err != nil {
			t.Fatalf("etcd role add %s: %v", role, err)
		}
		if _, err := c.RoleGrantPermission(ctx, role, prefix, clientv3.GetPrefixRangeEnd(prefix), clientv3.PermissionType(clientv3.PermReadWrite)); err != nil {
			t.Fatalf("etcd grant %s: %v", role, err)
		}
	}
	if _, err := c.UserGrantRole(ctx, name, role); err != nil {
		t.Fatalf("etcd grant %s to %s: %v", role, name, err)
	}
}

// Revision is etcd's current revision.
func (p *etcdProc) Revision(t testing.TB) int64 {
	t.Helper()
	c := p.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), etcdWait)
	defer cancel()
	resp, err := c.Get(ctx, "ase-e2e-probe", clientv3.WithCountOnly())
	if err != nil {
		t.Fatalf("etcd revision: %v", err)
	}
	return resp.Header.Revision
}

// Compact compacts the keyspace to the current revision (physically: done
// when it returns) and returns that revision. Reads and watches from an
// earlier revision then fail with ErrCompacted.
func (p *etcdProc) Compact(t testing.TB) int64 {
	t.Helper()
	c := p.Client(t)
	rev := p.Revision(t)
	ctx, cancel := context.WithTimeout(context.Background(), etcdWait)
	defer cancel()
	if _, err := c.Compact(ctx, rev, clientv3.WithCompactPhysical()); err != nil {
		t.Fatalf("etcd compact to %d: %v", rev, err)
	}
	return rev
}

// etcdWritePKI writes a CA, a server certificate for 127.0.0.1/localhost
// (server and client usage: etcd's own gateway dials itself with it) and a
// client certificate, all signed by that CA, as PEM files under dir.
func etcdWritePKI(t testing.TB, dir string) *etcdTLSFiles {
	t.Helper()
	f := &etcdTLSFiles{
		CAFile:         filepath.Join(dir, "etcd-ca.pem"),
		CertFile:       filepath.Join(dir, "etcd-client.pem"),
		KeyFile:        filepath.Join(dir, "etcd-client-key.pem"),
		ServerCertFile: filepath.Join(dir, "etcd-server.pem"),
		ServerKeyFile:  filepath.Join(dir, "etcd-server-key.pem"),
	}
	now := time.Now()
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	serial := int64(1)
	sign := func(tmpl, parent *x509.Certificate, pub, signer any) *x509.Certificate {
		serial++
		tmpl.SerialNumber = big.NewInt(serial)
		tmpl.NotBefore, tmpl.NotAfter = now.Add(-time.Hour), now.Add(24*time.Hour)
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	writeCert := func(path string, c *x509.Certificate) {
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeKey := func(path string, k *ecdsa.PrivateKey) {
		der, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	caKey := newKey()
	caTmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "ase e2e etcd CA"},
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	ca := sign(caTmpl, caTmpl, &caKey.PublicKey, caKey)
	writeCert(f.CAFile, ca)

	srvKey := newKey()
	srv := sign(&x509.Certificate{
		Subject:     pkix.Name{CommonName: "etcd"},
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}, ca, &srvKey.PublicKey, caKey)
	writeCert(f.ServerCertFile, srv)
	writeKey(f.ServerKeyFile, srvKey)

	// Not "root": with --client-cert-auth and authentication on, etcd
	// takes a certificate's CN as the user when a request has no token.
	cliKey := newKey()
	cli := sign(&x509.Certificate{
		Subject:     pkix.Name{CommonName: "ase-client"},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, ca, &cliKey.PublicKey, caKey)
	writeCert(f.CertFile, cli)
	writeKey(f.KeyFile, cliKey)
	return f
}

// ---------------------------------------------------------------------------
// TestEtcdHarness

// etcdCtx is a context bounded by etcdWait, cancelled at the test's end.
func etcdCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), etcdWait)
	t.Cleanup(cancel)
	return ctx
}

// etcdNextWatch reads one response from a watch channel, failing the test if
// the channel closes or nothing comes within etcdWait.
func etcdNextWatch(t testing.TB, wc clientv3.WatchChan) clientv3.WatchResponse {
	t.Helper()
	select {
	case wr, ok := <-wc:
		if !ok {
			t.Fatal("watch channel closed")
		}
		return wr
	case <-time.After(etcdWait):
		t.Fatalf("no watch response within %v", etcdWait)
	}
	return clientv3.WatchResponse{}
}

// etcdWatchEvents reads watch responses until n events have come (progress
// notifications are skipped) and returns them.
func etcdWatchEvents(t testing.TB, wc clientv3.WatchChan, n int) []*clientv3.Event {
	t.Helper()
	var evs []*clientv3.Event
	for len(evs) < n {
		wr := etcdNextWatch(t, wc)
		if err := wr.Err(); err != nil {
			t.Fatalf("watch: %v", err)
		}
		evs = append(evs, wr.Events...)
	}
	if len(evs) != n {
		t.Fatalf("watch: %d events, want %d", len(evs), n)
	}
	return evs
}

// etcdGRPCCode is the gRPC status code of a client error.
func etcdGRPCCode(err error) codes.Code {
	if s, ok := status.FromError(err); ok {
		return s.Code()
	}
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		return ee.Code()
	}
	return codes.Unknown
}

// TestEtcdHarness runs the harness and checks, against Debian's etcd 3.4.23
// with client v3.7.3, what the cluster store relies on. What it found:
//
//   - Put/Get/Delete with prefix, paging at one revision (WithLimit, WithRev,
//     WithRange from the last key + "\x00", More, Count), WithFromKey, Txn
//     with Compare on Value, CreateRevision, ModRevision and nested txns,
//     Watch with prefix, WithRev, WithPrevKV, progress notifications
//     (periodic and RequestProgress), leases (grant, keep-alive, expiry,
//     TimeToLive with keys, Leases), Compact: all work.
//   - Limits (defaults): 128 per list of a txn (compares, then-ops and
//     else-ops each): 129 is "etcdserver: too many operations in txn
//     request" (rpctypes.ErrTooManyOps, gRPC InvalidArgument). A nested
//     txn's lists may hold 128 minus the length of the list holding it, so
//     64 nested txns of 64 puts commit 4,096 puts atomically. A request over
//     1.5 MiB is "etcdserver: request is too large" (ErrRequestTooLarge).
//     One key written twice in a txn: "etcdserver: duplicate key given in
//     txn request" (ErrDuplicateKey), nested txns included.
//   - A Get at a compacted revision is ErrCompacted ("etcdserver: mvcc:
//     required revision has been compacted", gRPC OutOfRange); a watch from
//     one gets one response with Canceled, CompactRevision = the compaction
//     revision and Err() = ErrCompacted, then its channel closes.
//   - A lease granted with TTL 1 has TTL 2 (the server's minimum).
//   - Not in 3.4: AuthStatus (3.5) and GetStream/RangeStream (3.7) answer
//     gRPC Unimplemented ("unknown method ... for service ...").
//   - A watch open across an outage resumes by itself (Kill, Start). A watch
//     open across a wipe (revisions back to 1) resumes at its old revision
//     and silently drops every event up to it: only a header revision going
//     back tells that etcd was rebuilt (cluster and member IDs stay).
//   - Password auth with simple tokens (etcd's default): after etcd restarts
//     (or a token idles past --auth-token-ttl, or a JWT passes its ttl) the
//     3.7 client retries Authenticate with the stale token attached, which
//     3.4 refuses ("invalid auth token") forever: that client never works
//     again; a new client does. A JWT survives a restart; a user named as
//     the client certificate's CN needs no token at all.
func TestEtcdHarness(t *testing.T) {
	// One etcd for the core checks, one each for TLS, password auth and
	// JWT, all at once.
	t.Run("Core", func(t *testing.T) {
		t.Parallel()
		etcdCoreChecks(t)
	})

	t.Run("TLS", func(t *testing.T) {
		t.Parallel()
		tp := startEtcd(t, etcdWithTLS())
		if !strings.HasPrefix(tp.Endpoint(), "https://127.0.0.1:") {
			t.Fatal(tp.Endpoint())
		}
		tc := tp.Client(t)
		tctx := etcdCtx(t)
		if _, err := tc.Put(tctx, "/tls/a", "1"); err != nil {
			t.Fatal(err)
		}
		wctx, cancel := context.WithCancel(tctx)
		defer cancel()
		wc := tc.Watch(wctx, "/tls/", clientv3.WithPrefix(), clientv3.WithRev(1))
		if evs := etcdWatchEvents(t, wc, 1); string(evs[0].Kv.Value) != "1" {
			t.Fatal(evs)
		}
		// Without a client certificate: the handshake is refused.
		cfg := tp.TLS.Config(t)
		cfg.Certificates = nil
		conn, err := tls.Dial("tcp", strings.TrimPrefix(tp.Endpoint(), "https://"), cfg)
		if err == nil {
			conn.SetDeadline(time.Now().Add(etcdWait))
			_, err = conn.Read(make([]byte, 1))
			conn.Close()
		}
		if err == nil {
			t.Fatal("TLS without a client certificate accepted")
		}
		t.Logf("TLS without a client certificate: %v", err)
		// The health endpoint over the same port.
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tp.TLS.Config(t)}, Timeout: etcdWait}
		resp, err := hc.Get(tp.Endpoint() + "/health")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), `"health":"true"`) {
			t.Fatalf("/health: %d %s", resp.StatusCode, body)
		}
		// Restart keeps serving TLS with the same files.
		tp.Kill()
		tp.Start()
		if g, err := tc.Get(tctx, "/tls/a"); err != nil || len(g.Kvs) != 1 {
			t.Fatalf("after restart: %v %v", g, err)
		}
	})

	t.Run("Auth", func(t *testing.T) {
		t.Parallel()
		ap := startEtcd(t, etcdWithAuth(""), etcdWithTLS())
		if ap.User != "root" || len(ap.Password) < 16 {
			t.Fatalf("credentials %q %q", ap.User, ap.Password)
		}
		ac := ap.Client(t)
		actx := etcdCtx(t)
		if _, err := ac.Put(actx, "/auth/a", "1"); err != nil {
			t.Fatal(err)
		}
		// No password: refused (the client certificate's CN, ase-client,
		// is no user yet).
		cfg := ap.clientConfig()
		cfg.Username, cfg.Password = "", ""
		cn, err := clientv3.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer cn.Close()
		_, err = cn.Get(actx, "/auth/a")
		if !errors.Is(err, rpctypes.ErrPermissionDenied) {
			t.Fatalf("read without credentials: %v", err)
		}
		t.Logf("read without credentials: %v (gRPC %v)", err, etcdGRPCCode(err))
		// A wrong password: the client fails at New.
		cfg.Username, cfg.Password = "root", "wrong password"
		bad, err := clientv3.New(cfg)
		if err == nil {
			_, err = bad.Get(actx, "/auth/a")
			bad.Close()
		}
		if !errors.Is(err, rpctypes.ErrAuthFailed) {
			t.Fatalf("wrong password: %v", err)
		}
		t.Logf("wrong password: %v", err)
		// The CN as a user without password, limited to a prefix: no token.
		ap.AddUser(t, "ase-client", "", "/auth/cn/")
		if _, err := cn.Put(actx, "/auth/cn/x", "1"); err != nil {
			t.Fatalf("CN user in its prefix: %v", err)
		}
		if _, err := cn.Put(actx, "/auth/x", "1"); !errors.Is(err, rpctypes.ErrPermissionDenied) {
			t.Fatalf("CN user outside its prefix: %v", err)
		}

		ap.Kill()
		ap.Start()
		// Simple tokens live in the server's memory: after a restart the
		// client's token is unknown. The 3.7 client then asks for a new
		// one with the stale token attached, which etcd 3.4 refuses
		// ("invalid auth token") again and again: the client never
		// recovers. (The same happens once a simple token has been idle
		// for --auth-token-ttl, 300 s, or a JWT is older than its ttl.)
		sctx, cancel := context.WithTimeout(actx, 5*time.Second)
		_, err = ac.Get(sctx, "/auth/a")
		cancel()
		t.Logf("password client across a restart (simple token, 5 s deadline): err=%v", err)
		if g, err := ap.Client(t).Get(actx, "/auth/a"); err != nil || len(g.Kvs) != 1 {
			t.Fatalf("new client after restart: %v %v", g, err)
		}
		if g, err := cn.Get(actx, "/auth/cn/x"); err != nil || len(g.Kvs) != 1 {
			t.Fatalf("CN client across a restart: %v %v", g, err)
		}
		// A rebuilt etcd with the same root user and password.
		ap.Wipe()
		g, err := ap.Client(t).Get(actx, "/auth/", clientv3.WithPrefix())
		if err != nil || len(g.Kvs) != 0 || g.Header.Revision > 10 {
			t.Fatalf("new client after the wipe: %v %v", g, err)
		}
	})

	t.Run("AuthJWT", func(t *testing.T) {
		t.Parallel()
		jp := startEtcd(t, etcdWithAuth("a password"), etcdWithJWT(0))
		jc := jp.Client(t)
		jctx := etcdCtx(t)
		if _, err := jc.Put(jctx, "/jwt/a", "1"); err != nil {
			t.Fatal(err)
		}
		// A signed token outlives a restart (until its ttl).
		jp.Kill()
		jp.Start()
		if g, err := jc.Get(jctx, "/jwt/a"); err != nil || len(g.Kvs) != 1 {
			t.Fatalf("JWT client across a restart: %v %v", g, err)
		}
	})
}

// etcdCoreChecks is TestEtcdHarness on a plain etcd, one subtest after the
// other on the same server.
func etcdCoreChecks(t *testing.T) {
	p := startEtcd(t, etcdWithFlags("--experimental-watch-progress-notify-interval=300ms"))
	c := p.Client(t)
	ctx := etcdCtx(t)

	st, err := c.Status(ctx, p.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("etcd server %s at %s (cluster %x, member %x)", st.Version, p.Endpoint(), st.Header.ClusterId, st.Header.MemberId)

	t.Run("GetPaged", func(t *testing.T) {
		const n = 250
		// Three transactions (128 puts at most each): three revisions.
		for i := 0; i < n; i += 100 {
			var ops []clientv3.Op
			for j := i; j < i+100 && j < n; j++ {
				ops = append(ops, clientv3.OpPut(fmt.Sprintf("/page/k%04d", j), strconv.Itoa(j)))
			}
			if _, err := c.Txn(ctx).Then(ops...).Commit(); err != nil {
				t.Fatal(err)
			}
		}
		first, err := c.Get(ctx, "/page/", clientv3.WithPrefix(), clientv3.WithLimit(100))
		if err != nil {
			t.Fatal(err)
		}
		if len(first.Kvs) != 100 || !first.More || first.Count != n {
			t.Fatalf("first page: %d kvs, more %v, count %d", len(first.Kvs), first.More, first.Count)
		}
		rev := first.Header.Revision
		// Written after the snapshot revision: must not show in its pages.
		if _, err := c.Put(ctx, "/page/k0999", "late"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Delete(ctx, "/page/k0200"); err != nil {
			t.Fatal(err)
		}
		keys := []string{}
		for _, kv := range first.Kvs {
			keys = append(keys, string(kv.Key))
		}
		end := clientv3.GetPrefixRangeEnd("/page/")
		for more := first.More; more; {
			from := keys[len(keys)-1] + "\x00"
			page, err := c.Get(ctx, from, clientv3.WithRange(end), clientv3.WithLimit(100), clientv3.WithRev(rev))
			if err != nil {
				t.Fatal(err)
			}
			if page.Header.Revision <= rev {
				t.Fatalf("header revision %d: the store's current one, not the read's", page.Header.Revision)
			}
			for _, kv := range page.Kvs {
				keys = append(keys, string(kv.Key))
			}
			more = page.More
		}
		if len(keys) != n || keys[0] != "/page/k0000" || keys[n-1] != "/page/k0249" {
			t.Fatalf("paged read at revision %d: %d keys, %q..%q", rev, len(keys), keys[0], keys[len(keys)-1])
		}
		for i, k := range keys {
			if k != fmt.Sprintf("/page/k%04d", i) {
				t.Fatalf("key %d is %s", i, k)
			}
		}
		// WithFromKey: from a key to the end of the keyspace.
		tail, err := c.Get(ctx, "/page/k0248", clientv3.WithFromKey(), clientv3.WithKeysOnly())
		if err != nil {
			t.Fatal(err)
		}
		if len(tail.Kvs) != 3 || string(tail.Kvs[2].Key) != "/page/k0999" {
			t.Fatalf("from key: %d kvs", len(tail.Kvs))
		}
		// A future revision and a count.
		if _, err := c.Get(ctx, "/page/", clientv3.WithPrefix(), clientv3.WithRev(tail.Header.Revision+100)); !errors.Is(err, rpctypes.ErrFutureRev) {
			t.Fatalf("future revision: %v", err)
		}
		cnt, err := c.Get(ctx, "/page/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil || cnt.Count != n {
			t.Fatalf("count: %v %v", cnt, err)
		}
	})

	t.Run("Txn", func(t *testing.T) {
		// Create if absent: CreateRevision == 0.
		create := func(v string) *clientv3.TxnResponse {
			r, err := c.Txn(ctx).
				If(clientv3.Compare(clientv3.CreateRevision("/txn/a"), "=", 0)).
				Then(clientv3.OpPut("/txn/a", v)).
				Else(clientv3.OpGet("/txn/a")).
				Commit()
			if err != nil {
				t.Fatal(err)
			}
			return r
		}
		r1 := create("1")
		if !r1.Succeeded {
			t.Fatal("create of an absent key failed")
		}
		r2 := create("2")
		if r2.Succeeded || string(r2.Responses[0].GetResponseRange().Kvs[0].Value) != "1" {
			t.Fatalf("second create: %+v", r2)
		}
		modRev := r1.Header.Revision
		// Compare and swap on ModRevision.
		cas := func(rev int64, v string) bool {
			r, err := c.Txn(ctx).
				If(clientv3.Compare(clientv3.ModRevision("/txn/a"), "=", rev)).
				Then(clientv3.OpPut("/txn/a", v)).
				Commit()
			if err != nil {
				t.Fatal(err)
			}
			return r.Succeeded
		}
		if !cas(modRev, "3") || cas(modRev, "4") {
			t.Fatal("ModRevision compare-and-swap")
		}
		// On Value.
		r, err := c.Txn(ctx).
			If(clientv3.Compare(clientv3.Value("/txn/a"), "=", "3"), clientv3.Compare(clientv3.Value("/txn/b"), "=", "x")).
			Then(clientv3.OpPut("/txn/c", "no")).
			Else(clientv3.OpPut("/txn/c", "yes")).
			Commit()
		if err != nil || r.Succeeded {
			t.Fatalf("compare on value: %v %v", r, err)
		}
		got, err := c.Get(ctx, "/txn/c")
		if err != nil || len(got.Kvs) != 1 || string(got.Kvs[0].Value) != "yes" {
			t.Fatalf("else branch: %v %v", got, err)
		}
		// A nested transaction (used to carry a transaction's conditions).
		r, err = c.Txn(ctx).Then(clientv3.OpTxn(
			[]clientv3.Cmp{clientv3.Compare(clientv3.Version("/txn/c"), ">", 0)},
			[]clientv3.Op{clientv3.OpPut("/txn/d", "nested")}, nil)).Commit()
		if err != nil || !r.Responses[0].GetResponseTxn().Succeeded {
			t.Fatalf("nested txn: %v %v", r, err)
		}
	})

	t.Run("Limits", func(t *testing.T) {
		puts := func(n int) []clientv3.Op {
			ops := make([]clientv3.Op, n)
			for i := range ops {
				ops[i] = clientv3.OpPut(fmt.Sprintf("/limit/k%03d", i), "v")
			}
			return ops
		}
		cmps := func(n int) []clientv3.Cmp {
			cs := make([]clientv3.Cmp, n)
			for i := range cs {
				cs[i] = clientv3.Compare(clientv3.ModRevision(fmt.Sprintf("/limit/c%03d", i)), "=", 0)
			}
			return cs
		}
		// 128 conditions and 128 operations: the limit applies to each list.
		r, err := c.Txn(ctx).If(cmps(128)...).Then(puts(128)...).Commit()
		if err != nil || !r.Succeeded {
			t.Fatalf("128 compares + 128 puts: %v %v", r, err)
		}
		_, err = c.Txn(ctx).Then(puts(129)...).Commit()
		if !errors.Is(err, rpctypes.ErrTooManyOps) {
			t.Fatalf("129 puts: %v", err)
		}
		t.Logf("129 operations in one txn: %v (gRPC %v)", err, etcdGRPCCode(err))
		_, err = c.Txn(ctx).If(cmps(129)...).Then(puts(1)...).Commit()
		if !errors.Is(err, rpctypes.ErrTooManyOps) {
			t.Fatalf("129 compares: %v", err)
		}
		// Nested: the server counts each list of each txn on its own.
		nested := func(prefix string, n int) clientv3.Op {
			ops := make([]clientv3.Op, n)
			for i := range ops {
				ops[i] = clientv3.OpPut(fmt.Sprintf("/limit/%s%03d", prefix, i), "v")
			}
			return clientv3.OpTxn(nil, ops, nil)
		}
		// A nested txn's lists may hold 128 minus the length of the list
		// holding it: two nested txns of 126 puts pass (252 puts), of 127
		// do not; 64 nested txns of 64 puts make 4,096 puts in one atomic
		// txn (the 1.5 MiB request limit still applies).
		r, err = c.Txn(ctx).Then(nested("n", 126), nested("m", 126)).Commit()
		if err != nil || !r.Succeeded {
			t.Fatalf("two nested txns of 126 puts: %v", err)
		}
		_, err = c.Txn(ctx).Then(nested("n", 127), nested("m", 127)).Commit()
		if !errors.Is(err, rpctypes.ErrTooManyOps) {
			t.Fatalf("two nested txns of 127 puts: %v", err)
		}
		var wide []clientv3.Op
		for i := 0; i < 64; i++ {
			wide = append(wide, nested(fmt.Sprintf("w%02d-", i), 64))
		}
		r, err = c.Txn(ctx).Then(wide...).Commit()
		if err != nil || !r.Succeeded {
			t.Fatalf("64 nested txns of 64 puts: %v", err)
		}
		cnt, err := c.Get(ctx, "/limit/w", clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil || cnt.Count != 64*64 {
			t.Fatalf("after 64x64 nested puts: %v %v", cnt, err)
		}
		_, err = c.Txn(ctx).Then(clientv3.OpPut("/limit/dup", "1"), clientv3.OpPut("/limit/dup", "2")).Commit()
		if !errors.Is(err, rpctypes.ErrDuplicateKey) {
			t.Fatalf("one key put twice in a txn: %v", err)
		}
		t.Logf("one key written twice in a txn: %v", err)
		// 1.5 MiB per request (--max-request-bytes default 1572864).
		big := strings.Repeat("x", 1572864)
		_, err = c.Put(ctx, "/limit/big", big)
		if !errors.Is(err, rpctypes.ErrRequestTooLarge) {
			t.Fatalf("a 1.5 MiB value: %v", err)
		}
		t.Logf("a request over 1.5 MiB: %v (gRPC %v)", err, etcdGRPCCode(err))
		if _, err := c.Put(ctx, "/limit/big", big[:1500000]); err != nil {
			t.Fatalf("a 1.43 MiB value: %v", err)
		}
		if _, err := c.Delete(ctx, "/limit/", clientv3.WithPrefix()); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("DeletePrefix", func(t *testing.T) {
		for i := 0; i < 5; i++ {
			if _, err := c.Put(ctx, fmt.Sprintf("/del/k%d", i), "v"); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := c.Put(ctx, "/delx", "outside"); err != nil {
			t.Fatal(err)
		}
		d, err := c.Delete(ctx, "/del/", clientv3.WithPrefix(), clientv3.WithPrevKV())
		if err != nil || d.Deleted != 5 || len(d.PrevKvs) != 5 {
			t.Fatalf("delete prefix: %v %v", d, err)
		}
		g, err := c.Get(ctx, "/del", clientv3.WithPrefix())
		if err != nil || len(g.Kvs) != 1 || string(g.Kvs[0].Key) != "/delx" {
			t.Fatalf("after delete: %v %v", g, err)
		}
	})

	t.Run("Watch", func(t *testing.T) {
		r0, err := c.Put(ctx, "/w/a", "1")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Put(ctx, "/w/a", "2"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Put(ctx, "/wx", "outside the prefix"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Delete(ctx, "/w/a"); err != nil {
			t.Fatal(err)
		}
		// From a past revision, with previous values: history first.
		wctx, cancel := context.WithCancel(ctx)
		defer cancel()
		wc := c.Watch(wctx, "/w/", clientv3.WithPrefix(), clientv3.WithRev(r0.Header.Revision), clientv3.WithPrevKV())
		evs := etcdWatchEvents(t, wc, 3)
		if evs[0].Type != mvccpb.PUT || string(evs[0].Kv.Value) != "1" || evs[0].PrevKv != nil || !evs[0].IsCreate() ||
			evs[1].Type != mvccpb.PUT || string(evs[1].Kv.Value) != "2" || evs[1].PrevKv == nil || string(evs[1].PrevKv.Value) != "1" ||
			evs[2].Type != mvccpb.DELETE || evs[2].PrevKv == nil || string(evs[2].PrevKv.Value) != "2" || evs[2].Kv.ModRevision != r0.Header.Revision+3 {
			t.Fatalf("history: %v", evs)
		}
		// Then live events; a transaction's puts come in one response.
		tr, err := c.Txn(ctx).Then(clientv3.OpPut("/w/b", "1"), clientv3.OpPut("/w/c", "1")).Commit()
		if err != nil {
			t.Fatal(err)
		}
		wr := etcdNextWatch(t, wc)
		if len(wr.Events) != 2 || wr.Events[0].Kv.ModRevision != tr.Header.Revision || wr.Events[1].Kv.ModRevision != tr.Header.Revision {
			t.Fatalf("txn events: %+v", wr)
		}

		// Progress notification on an idle watch (the server's interval is
		// 300ms here; 10 minutes by default), and on request.
		pctx, pcancel := context.WithCancel(ctx)
		defer pcancel()
		pc := c.Watch(pctx, "/idle/", clientv3.WithPrefix(), clientv3.WithProgressNotify(), clientv3.WithCreatedNotify())
		if wr := etcdNextWatch(t, pc); !wr.Created {
			t.Fatalf("first response is not the creation: %+v", wr)
		}
		if _, err := c.Put(ctx, "/w/d", "moves the revision"); err != nil {
			t.Fatal(err)
		}
		cur := p.Revision(t)
		for {
			wr := etcdNextWatch(t, pc)
			if !wr.IsProgressNotify() {
				t.Fatalf("idle watch got %+v", wr)
			}
			if wr.Header.Revision >= cur {
				break
			}
		}
		if err := c.RequestProgress(pctx); err != nil {
			t.Fatalf("RequestProgress: %v", err)
		}
		if wr := etcdNextWatch(t, pc); !wr.IsProgressNotify() || wr.Header.Revision < cur {
			t.Fatalf("requested progress: %+v", wr)
		}
	})

	t.Run("Compaction", func(t *testing.T) {
		r1, err := c.Put(ctx, "/comp/a", "1")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Put(ctx, "/comp/a", "2"); err != nil {
			t.Fatal(err)
		}
		crev := p.Compact(t)
		_, err = c.Get(ctx, "/comp/a", clientv3.WithRev(r1.Header.Revision))
		if !errors.Is(err, rpctypes.ErrCompacted) {
			t.Fatalf("read at a compacted revision: %v", err)
		}
		t.Logf("Get at a compacted revision: %v (gRPC %v)", err, etcdGRPCCode(err))
		g, err := c.Get(ctx, "/comp/a", clientv3.WithRev(crev))
		if err != nil || len(g.Kvs) != 1 || string(g.Kvs[0].Value) != "2" {
			t.Fatalf("read at the compaction revision itself: %v %v", g, err)
		}
		wctx, cancel := context.WithCancel(ctx)
		defer cancel()
		wc := c.Watch(wctx, "/comp/", clientv3.WithPrefix(), clientv3.WithRev(r1.Header.Revision))
		wr := etcdNextWatch(t, wc)
		if !wr.Canceled || wr.CompactRevision != crev || !errors.Is(wr.Err(), rpctypes.ErrCompacted) {
			t.Fatalf("watch from a compacted revision: %+v err %v", wr, wr.Err())
		}
		t.Logf("watch from a compacted revision: Canceled=%v CompactRevision=%d Err()=%v", wr.Canceled, wr.CompactRevision, wr.Err())
		if _, ok := <-wc; ok {
			t.Fatal("the watch channel stays open after the compaction response")
		}
	})

	t.Run("Lease", func(t *testing.T) {
		g, err := c.Grant(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("lease granted with TTL 1 has TTL %d (the server's minimum)", g.TTL)
		if _, err := c.Put(ctx, "/lease/node", "up", clientv3.WithLease(g.ID)); err != nil {
			t.Fatal(err)
		}
		kctx, kcancel := context.WithCancel(ctx)
		ka, err := c.KeepAlive(kctx, g.ID)
		if err != nil {
			t.Fatal(err)
		}
		// Keep-alives sent every TTL/3: past the TTL, the key is still there.
		for i := 0; i < 4; i++ {
			select {
			case r, ok := <-ka:
				if !ok {
					t.Fatal("keep-alive channel closed")
				}
				if r.ID != g.ID || r.TTL != g.TTL {
					t.Fatalf("keep-alive: %+v", r)
				}
			case <-time.After(etcdWait):
				t.Fatal("no keep-alive answer")
			}
		}
		ttl, err := c.TimeToLive(ctx, g.ID, clientv3.WithAttachedKeys())
		if err != nil || ttl.TTL <= 0 || len(ttl.Keys) != 1 || string(ttl.Keys[0]) != "/lease/node" {
			t.Fatalf("time to live: %+v %v", ttl, err)
		}
		ls, err := c.Leases(ctx)
		if err != nil || len(ls.Leases) != 1 {
			t.Fatalf("leases: %+v %v", ls, err)
		}
		// The keep-alive stops (a node killed): the key goes by expiry.
		wctx, wcancel := context.WithCancel(ctx)
		defer wcancel()
		wc := c.Watch(wctx, "/lease/", clientv3.WithPrefix(), clientv3.WithRev(ttl.ResponseHeader.Revision+1))
		kcancel()
		evs := etcdWatchEvents(t, wc, 1)
		if evs[0].Type != mvccpb.DELETE || string(evs[0].Kv.Key) != "/lease/node" {
			t.Fatalf("expiry: %v", evs)
		}
		if _, err := c.KeepAliveOnce(ctx, g.ID); !errors.Is(err, rpctypes.ErrLeaseNotFound) {
			t.Fatalf("keep-alive of an expired lease: %v", err)
		}
	})

	t.Run("NewerAPIs", func(t *testing.T) {
		// What the 3.7 client offers and this server may not have.
		_, err := c.AuthStatus(ctx)
		t.Logf("AuthStatus (etcd 3.5+): err=%v (gRPC %v)", err, etcdGRPCCode(err))
		s, err := c.GetStream(ctx, "/page/", clientv3.WithPrefix())
		if err == nil {
			_, err = clientv3.GetStreamToGetResponse(s)
		}
		t.Logf("GetStream/RangeStream (etcd 3.7): err=%v (gRPC %v)", err, etcdGRPCCode(err))
		if err == nil {
			t.Fatal("GetStream works: update the notes on what the server lacks")
		}
		_, err = c.Put(ctx, "/page/k0000", "", clientv3.WithIgnoreValue())
		t.Logf("Put WithIgnoreValue (3.2): err=%v", err)
		_, err = c.MemberList(ctx)
		t.Logf("MemberList: err=%v", err)
		_, err = c.SnapshotWithVersion(ctx)
		t.Logf("SnapshotWithVersion (3.6): err=%v", err)
	})

	t.Run("KillAndStart", func(t *testing.T) {
		wctx, cancel := context.WithCancel(ctx)
		defer cancel()
		put, err := c.Put(ctx, "/restart/a", "before")
		if err != nil {
			t.Fatal(err)
		}
		// A watch open across the outage resumes by itself.
		wc := c.Watch(wctx, "/restart/", clientv3.WithPrefix(), clientv3.WithRev(put.Header.Revision))
		if evs := etcdWatchEvents(t, wc, 1); string(evs[0].Kv.Value) != "before" {
			t.Fatalf("%v", evs)
		}
		p.Kill()
		if p.Running() {
			t.Fatal("running after Kill")
		}
		sctx, scancel := context.WithTimeout(ctx, 3*time.Second)
		_, err = c.Get(sctx, "/restart/a")
		scancel()
		t.Logf("a Get while etcd is down (3s deadline): %v", err)
		if err == nil {
			t.Fatal("a Get answered while etcd is down")
		}
		p.Start()
		g, err := c.Get(ctx, "/restart/a")
		if err != nil || len(g.Kvs) != 1 || string(g.Kvs[0].Value) != "before" || g.Kvs[0].ModRevision != put.Header.Revision {
			t.Fatalf("after restart: %v %v", g, err)
		}
		if g.Header.Revision < put.Header.Revision {
			t.Fatalf("revision went back from %d to %d", put.Header.Revision, g.Header.Revision)
		}
		if _, err := c.Put(ctx, "/restart/b", "after"); err != nil {
			t.Fatalf("first Put after restart: %v", err)
		}
		if evs := etcdWatchEvents(t, wc, 1); string(evs[0].Kv.Key) != "/restart/b" {
			t.Fatalf("resumed watch: %v", evs)
		}
		// A clean stop keeps the data too.
		p.Stop()
		p.Start()
		g, err = c.Get(ctx, "/restart/", clientv3.WithPrefix())
		if err != nil || len(g.Kvs) != 2 {
			t.Fatalf("after stop and start: %v %v", g, err)
		}
	})

	t.Run("Wipe", func(t *testing.T) {
		before, err := c.Put(ctx, "/wipe/old", "gone after the wipe")
		if err != nil {
			t.Fatal(err)
		}
		oldRev := before.Header.Revision
		oldCluster := before.Header.ClusterId
		wctx, cancel := context.WithCancel(ctx)
		defer cancel()
		wc := c.Watch(wctx, "/wipe/", clientv3.WithPrefix(), clientv3.WithRev(oldRev))
		if evs := etcdWatchEvents(t, wc, 1); string(evs[0].Kv.Key) != "/wipe/old" {
			t.Fatalf("%v", evs)
		}
		p.Wipe()
		g, err := c.Get(ctx, "/", clientv3.WithPrefix())
		if err != nil {
			t.Fatal(err)
		}
		if len(g.Kvs) != 0 || g.Header.Revision != 1 {
			t.Fatalf("after the wipe: %d keys at revision %d", len(g.Kvs), g.Header.Revision)
		}
		t.Logf("wipe: revision %d -> %d; cluster ID %x -> %x", oldRev, g.Header.Revision, oldCluster, g.Header.ClusterId)
		// The watch opened before the wipe resumes at oldRev+1 on the new
		// etcd: events of revisions up to oldRev are silently lost, with no
		// error on the watch. Only a revision going back (a header, a
		// progress notification) tells a client that etcd was rebuilt.
		var last *clientv3.PutResponse
		for i := 0; ; i++ {
			last, err = c.Put(ctx, fmt.Sprintf("/wipe/k%04d", i), "new")
			if err != nil {
				t.Fatal(err)
			}
			if last.Header.Revision > oldRev {
				break
			}
		}
		evs := etcdWatchEvents(t, wc, 1)
		if evs[0].Kv.ModRevision != last.Header.Revision {
			t.Fatalf("the watch across the wipe delivered revision %d first (expected the loss of every revision up to %d)", evs[0].Kv.ModRevision, oldRev)
		}
		t.Logf("watch across the wipe: first event at revision %d; the %d writes before it were not delivered, and no error", evs[0].Kv.ModRevision, last.Header.Revision-2)
	})
}
