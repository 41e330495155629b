// Package server builds ASE's runtime from its configuration, starts its
// listeners and stops them cleanly.
package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/ase-project/ase/internal/accesslog"
	"github.com/ase-project/ase/internal/accounts"
	"github.com/ase-project/ase/internal/admin"
	"github.com/ase-project/ase/internal/audit"
	"github.com/ase-project/ase/internal/catalog"
	"github.com/ase-project/ase/internal/cluster"
	"github.com/ase-project/ase/internal/config"
	"github.com/ase-project/ase/internal/dataport"
	"github.com/ase-project/ase/internal/engine"
	"github.com/ase-project/ase/internal/flow"
	"github.com/ase-project/ase/internal/health"
	"github.com/ase-project/ase/internal/lists"
	"github.com/ase-project/ase/internal/lockout"
	"github.com/ase-project/ase/internal/logfile"
	"github.com/ase-project/ase/internal/metrics"
	"github.com/ase-project/ase/internal/proxy"
	"github.com/ase-project/ase/internal/sbauth"
	"github.com/ase-project/ase/internal/sideband"
	"github.com/ase-project/ase/internal/store"
	"github.com/ase-project/ase/internal/wire"
)

// StoreFile is the embedded store's file name under data_dir.
const StoreFile = "ase.db"

// LogLevel maps admin_log_level (1 fatal .. 5 debug) to a slog level.
func LogLevel(n int) slog.Level {
	switch n {
	case 1:
		return slog.LevelError + 4
	case 2:
		return slog.LevelError
	case 3:
		return slog.LevelWarn
	case 5:
		return slog.LevelDebug
	}
	return slog.LevelInfo
}

// Run starts ASE with cfg and serves until ctx is done, then stops
// cleanly. Errors at start-up are returned with what failed. The
// management log goes to logOut; SIGHUP reloads the configuration.
func Run(ctx context.Context, cfg *config.Config, logOut io.Writer, version string) error {
	hup, stopHup := notifyHangup()
	defer stopHup()
	log, logs := newLogger(logOut, cfg)
	for _, w := range cfg.Warnings {
		log.Warn(w)
	}
	for _, n := range cfg.Ignored {
		log.Info(n.String(), "at", n.Pos)
	}
	var st store.Store
	var etcdStore *store.Etcd
	if cfg.EnableCluster {
		var err error
		if etcdStore, err = openCluster(ctx, cfg, log); err != nil {
			return err
		}
		st = etcdStore
	} else {
		bolt, err := store.Open(filepath.Join(cfg.DataDir, StoreFile))
		if err != nil {
			return err
		}
		if err := testStoreLimits(bolt); err != nil {
			bolt.Close()
			return err
		}
		st = bolt
	}
	defer st.Close()
	reload := newReloader(cfg, log, logs, st)

	if err := importAPIDir(ctx, st, cfg.APIDir, log); errors.Is(err, store.ErrUnavailable) {
		// A cluster node restarted during an etcd outage serves its last
		// state; the files are imported at its next start.
		log.Warn("api_dir not imported: etcd cannot be reached; the files are imported at the next start", "error", err)
	} else if err != nil {
		return err
	}
	accts, err := accounts.Open(ctx, st, log)
	if err != nil {
		return err
	}
	defer accts.Close()
	live, err := catalog.NewLive(ctx, st, catalog.Defaults{
		catalog.Firewall:               cfg.EnableFirewall,
		catalog.ASEDetectedAttack:      cfg.EnableASEDetectedAttack,
		catalog.SidebandAuthentication: cfg.EnableSidebandAuthentication,
		catalog.ABS:                    cfg.EnableABS,
		catalog.ABSAttack:              cfg.EnableABSAttack,
	}, log)
	if err != nil {
		return err
	}
	defer live.Close()

	// In a cluster, a node tells its own unfinished bulk imports (cleaned up
	// at its start) from other nodes' by its UUID.
	listsNode := ""
	if etcdStore != nil {
		if listsNode, err = cluster.NodeUUID(cfg.DataDir); err != nil {
			return err
		}
	}
	now := clock(log) // time.Now, except in end-to-end tests (ASE_TEST_CLOCK)
	lst, err := lists.Open(ctx, st, lists.Options{Limit: int64(cfg.AttackListMemory), Log: log, Node: listsNode, Now: now})
	if err != nil {
		return err
	}
	defer lst.Close()

	sba, err := sbauth.Open(ctx, st, log)
	if err != nil {
		return err
	}
	defer sba.Close()
	clients := flow.NewClients(nil)
	// In a cluster, flow-control limits hold for the whole cluster: the
	// nodes exchange summaries of their load through etcd (no request
	// waits for the network).
	var flowNode *flow.Node
	var flowPeers *cluster.FlowPeers
	if etcdStore != nil {
		var err error
		if flowNode, flowPeers, err = clusterFlow(ctx, cfg, etcdStore, log); err != nil {
			return err
		}
		defer flowPeers.Close()
		clients = flowNode.Clients()
	}
	sweepStop := make(chan struct{})
	defer close(sweepStop)
	go clients.Run(10*time.Second, sweepStop)
	eng := engine.New(lst, live, clients)

	var access *accesslog.Log
	if cfg.EnableAccessLog {
		w, closeFile, err := logWriter(cfg, "access.log", cfg.AccessLogStdout, false)
		if err != nil {
			return fmt.Errorf("access log: %w", err)
		}
		defer closeFile()
		access = accesslog.New(w, cfg.Location)
		defer access.Close()
	}

	backendTLS, err := backendTLSConfig(cfg)
	if err != nil {
		return err
	}
	checker := health.New(log, backendTLS)
	defer checker.Close()
	live.Watch(checker.Sync)

	var auditLog *audit.Log
	if cfg.EnableAudit {
		w, closeFile, err := logWriter(cfg, "audit.log", cfg.AuditLogStdout, true)
		if err != nil {
			return fmt.Errorf("audit log: %w", err)
		}
		defer closeFile()
		auditLog = audit.New(w, cfg.Location, log)
	}

	absCtx, stopABS := context.WithCancel(ctx)
	defer stopABS()
	abs, absRep, err := setupABS(absCtx, cfg, st, live, lst, eng, auditLog, now, log)
	if err != nil {
		return err
	}

	clientCAs, err := loadClientCAs(cfg)
	if err != nil {
		return err
	}
	// Sessions live in the store (every node of a cluster knows them);
	// each node sweeps the expired ones, harmlessly at the same time.
	sessions := accounts.NewSessions(st, cfg.SessionTimeout.Std(), now, log)
	sweepCtx, stopSweep := context.WithCancel(ctx)
	sweepDone := make(chan struct{})
	go func() { defer close(sweepDone); sessions.Run(sweepCtx, etcdStore != nil) }()
	defer func() { stopSweep(); <-sweepDone }()

	// Live WebSocket counts and backend gauges come from the inline
	// proxy, once it exists.
	connections := func(string) wire.ConnectionCount { return wire.ConnectionCount{} }
	sources := metrics.Sources{
		ListEntries:  lst.Counts,
		ListMemory:   func() (int64, int64) { return lst.MemoryUsed(), lst.Limit() },
		LogDropped:   access.Dropped,
		TrackedUsers: clients.Clients,
		Detections:   lst.Detections,
		SecretChecks: sba.SlowChecks,
		// Behavioural detection.
		ABSDetections: abs.Counts,
		ABSTracked:    abs.Tracked,
		ABSStatus:     abs.Status,
		ABSDropped:    absRep.dropped,
		RecentDetections: func() []metrics.Detection {
			var out []metrics.Detection
			for _, e := range lst.Recent() {
				d := metrics.Detection{Time: e.Created.UTC(), Type: e.Kind.String(), Name: e.Name, Value: e.Value, Tag: e.Tag.String(), Reason: e.Reason}
				if !e.Expires.IsZero() {
					t := e.Expires.UTC()
					d.Expires = &t
				}
				out = append(out, d)
			}
			return out
		},
	}
	mx := metrics.New(sources)
	mgmtHandler := admin.New(admin.Deps{
		Store:          st,
		Live:           live,
		Lists:          lst,
		SidebandAuth:   sba,
		Accounts:       accts,
		Guard:          lockout.New(),
		Audit:          auditLog,
		AuditFile:      filepath.Join(logDir(cfg), "audit.log"),
		Log:            log,
		Config:         cfg,
		Version:        version,
		Started:        time.Now(),
		Health:         checker.Status,
		Connections:    func(id string) wire.ConnectionCount { return connections(id) },
		ListMemoryUsed: lst.MemoryUsed,
		Sessions:       sessions,
		ClientCAs:      clientCAs,
		TxnLifetime:    cfg.SessionTimeout.Std(),
		Now:            now,
		Metrics:        mx,
		Cluster:        clusterFunc(cfg, etcdStore),
		Reloader:       reload,
		Behave:         abs,
	})

	mgmt, err := listenManagement(cfg, accts)
	if err != nil {
		return err
	}
	if etcdStore != nil {
		node, err := joinCluster(ctx, cfg, etcdStore, mgmt.Addr(), version, log)
		if err != nil {
			mgmt.Close()
			return err
		}
		defer node.Leave()
		flowPeers.Attach(node)
		// The others' summaries are in: shares from the first request.
		flowNode.Tick()
		go flowNode.Run(sweepStop)
	}
	if accts.DefaultPasswordInUse() {
		log.Warn("the admin password is still the default; change it with `ase update_password`")
	}
	dataOpts := dataport.Options{
		Address: cfg.ListenAddress, HTTPPort: cfg.HTTPWSPort, HTTPSPort: cfg.HTTPSWSSPort,
		CertFile: cfg.TLSCertFile, KeyFile: cfg.TLSKeyFile, DataDir: cfg.DataDir,
		Health: cfg.EnableASEHealth, KeepAlive: true,
		MaxBody: int(cfg.MaxRequestBody), MaxHeader: int(cfg.MaxRequestHeader),
		ReadTimeout: cfg.ReadTimeout.Std(), WriteTimeout: cfg.WriteTimeout.Std(), IdleTimeout: cfg.IdleTimeout.Std(), Log: log,
	}
	// A request the general server could not read is answered by it
	// (400, 408, 413, 431, 501) and logged here like every other answer.
	dataProtocol := "inline"
	if cfg.Mode == config.ModeSideband {
		dataProtocol = "sideband"
	}
	dataOpts.Refused = func(peer net.Addr, status int, reason string) {
		rec := accesslog.Record{Time: time.Now(), Protocol: dataProtocol, Status: status, Decision: "refuse", Reason: reason}
		if ta, ok := peer.(*net.TCPAddr); ok {
			rec.ClientIP = ta.AddrPort().Addr().Unmap()
		}
		access.Write(&rec)
		mx.Request("", dataProtocol, rec.Decision, rec.Reason, 0, rec.ClientIP)
	}
	var handler fasthttp.RequestHandler
	if cfg.Mode == config.ModeSideband {
		sb := &sideband.Handler{Engine: eng, Auth: sba, Live: live, Log: access, KeepAlive: cfg.EnableSidebandKeepalive, IdentityHeaders: true, Metrics: mx,
			TrustedProxies: cfg.TrustedProxies}
		dataOpts.KeepAlive = cfg.EnableSidebandKeepalive
		dataOpts.Accepted = mx.SidebandConnection
		handler = sb.Serve
	} else {
		px := proxy.New(proxy.Options{
			Engine: eng, Live: live, Health: checker, Log: access, Logger: log,
			TrustXFF: cfg.EnableXFF, BackendTLS: backendTLS, Timeout: cfg.BackendTimeout.Std(),
			QueueSize: cfg.ServerQueueSize, QueueWait: cfg.ServerQueueTimeout.Std(), Metrics: mx, Flow: flowNode,
			TrustedProxies: cfg.TrustedProxies,
		})
		sources.Backends, sources.WebSockets = px.Backends, px.WebSockets
		mx.SetSources(sources)
		defer px.Close()
		handler = px.Serve
		connections = px.Connections
		if cfg.InlineEventLoops {
			if dataOpts.Fast = px.FastPath(); dataOpts.Fast == nil {
				log.Info("inline_event_loops: no event loops on " + runtime.GOOS + " (they are Linux's): the general server serves every connection")
			}
		}
	}
	data, err := dataport.Listen(dataOpts, handler)
	if err != nil {
		mgmt.Close()
		return err
	}

	srv := &http.Server{
		TLSConfig:         managementTLS(clientCAs),
		Handler:           admin.WriteDeadlines(mgmtHandler),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		// The handler refuses requests framed two ways (see
		// admin.Listener, in serveListener).
		ConnContext: admin.ConnContext,
	}
	errc := make(chan error, 2)
	go func() {
		if err := serveListener(srv, mgmt, cfg); err != nil {
			errc <- fmt.Errorf("management listener: %w", err)
		}
	}()
	go func() {
		if err := data.Serve(); err != nil {
			errc <- fmt.Errorf("data ports: %w", err)
		}
	}()
	attrs := []any{"version", version, "mode", cfg.Mode, "management", mgmt.Addr().String(), "data_dir", cfg.DataDir}
	for _, a := range data.Addrs() {
		attrs = append(attrs, "data", a.String())
	}
	log.Info("ASE started", attrs...)
	// Reloads end before what they use is closed.
	hupCtx, stopReloads := context.WithCancel(ctx)
	reloadsDone := make(chan struct{})
	go func() { defer close(reloadsDone); reload.watchHangup(hupCtx, hup, auditLog) }()
	defer func() { stopReloads(); <-reloadsDone }()

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("ASE stopping")
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := data.Shutdown(shutdown); err != nil {
		log.Warn("data ports did not stop cleanly", "error", err)
	}
	if err := srv.Shutdown(shutdown); err != nil {
		log.Warn("management listener did not stop cleanly", "error", err)
	}
	log.Info("ASE stopped")
	return nil
}

// serveListener serves the management API on ln. Every connection is
// watched for requests framed two ways (admin.Listener), which needs the
// decrypted stream: TLS is terminated here rather than by net/http, and
// spoken with HTTP/1.1 only.
func serveListener(srv *http.Server, ln net.Listener, cfg *config.Config) error {
	if cfg.ManagementTLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.ManagementTLSCertFile, cfg.ManagementTLSKeyFile)
		if err != nil {
			return err
		}
		tc := srv.TLSConfig.Clone()
		tc.Certificates = []tls.Certificate{cert}
		tc.NextProtos = []string{"http/1.1"}
		ln = tls.NewListener(ln, tc)
	}
	err := srv.Serve(admin.Listener(ln))
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// listenManagement binds the management API, refusing a non-loopback
// address while the admin password is the factory one (unless the
// operator allowed it explicitly).
func listenManagement(cfg *config.Config, accts *accounts.Accounts) (net.Listener, error) {
	addr, err := netip.ParseAddr(cfg.ManagementAddress)
	if err != nil {
		return nil, fmt.Errorf("management_address %q: %w", cfg.ManagementAddress, err)
	}
	if !addr.IsLoopback() && accts.DefaultPasswordInUse() && !cfg.AllowDefaultPassword {
		return nil, fmt.Errorf("refusing to serve the management API on %s while the admin password is the default: run `ase update_password` with management_address=127.0.0.1 first, or set allow_default_password=true", addr)
	}
	if cfg.ManagementTLSCertFile != "" {
		if _, err := tls.LoadX509KeyPair(cfg.ManagementTLSCertFile, cfg.ManagementTLSKeyFile); err != nil {
			return nil, fmt.Errorf("management_tls_cert_file/management_tls_key_file: %w", err)
		}
	}
	hostport := net.JoinHostPort(addr.String(), strconv.Itoa(cfg.ManagementPort))
	ln, err := net.Listen("tcp", hostport)
	if err != nil {
		return nil, fmt.Errorf("management API: %w", err)
	}
	return ln, nil
}

// backendTLSConfig trusts server_ca_cert_path (a PEM file, or a directory
// of them) for backend TLS, or the system roots when it is not set.
func backendTLSConfig(cfg *config.Config) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.ServerCACertPath == "" {
		return tc, nil
	}
	files := []string{cfg.ServerCACertPath}
	if fi, err := os.Stat(cfg.ServerCACertPath); err != nil {
		return nil, fmt.Errorf("server_ca_cert_path: %w", err)
	} else if fi.IsDir() {
		files, _ = filepath.Glob(filepath.Join(cfg.ServerCACertPath, "*.pem"))
		crt, _ := filepath.Glob(filepath.Join(cfg.ServerCACertPath, "*.crt"))
		files = append(files, crt...)
	}
	pool := x509.NewCertPool()
	for _, f := range files {
		pem, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("server_ca_cert_path: %w", err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("server_ca_cert_path: %s holds no PEM certificate", f)
		}
	}
	tc.RootCAs = pool
	return tc, nil
}

// loadClientCAs reads client_ca_file, the CAs of x509 operator logins.
// They need the management API on TLS.
func loadClientCAs(cfg *config.Config) (*x509.CertPool, error) {
	if cfg.ClientCAFile == "" {
		return nil, nil
	}
	if cfg.ManagementTLSCertFile == "" {
		return nil, fmt.Errorf("client_ca_file (x509 login) needs the management API on TLS: set management_tls_cert_file and management_tls_key_file")
	}
	pem, err := os.ReadFile(cfg.ClientCAFile)
	if err != nil {
		return nil, fmt.Errorf("client_ca_file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("client_ca_file: %s holds no PEM certificate", cfg.ClientCAFile)
	}
	return pool, nil
}

// managementTLS asks for (but does not require) client certificates when
// x509 login is configured; the TLS handshake verifies them.
func managementTLS(clientCAs *x509.CertPool) *tls.Config {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if clientCAs != nil {
		tc.ClientCAs = clientCAs
		tc.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return tc
}

// logWriter is where the log name goes: standard output, or a file under
// the log directory rotated by size (synced on every write for the audit
// log). The returned function closes the file.
func logWriter(cfg *config.Config, name string, toStdout, sync bool) (io.Writer, func() error, error) {
	if toStdout {
		return os.Stdout, func() error { return nil }, nil
	}
	f, err := logfile.Open(filepath.Join(logDir(cfg), name), int64(cfg.LogMaxSize), cfg.LogMaxFiles, sync)
	if err != nil {
		return nil, nil, err
	}
	return f, f.Close, nil
}

func logDir(cfg *config.Config) string {
	if cfg.LogDir != "" {
		return cfg.LogDir
	}
	return filepath.Join(cfg.DataDir, "logs")
}

// testStoreLimits bounds the embedded store's batches as an etcd server's
// are, when the test-only environment variable ASE_TEST_STORE_LIMITS says
// so ("128,1048576": operations, bytes): the end-to-end tests run the
// writers of lists and api_dir as they run on a cluster.
func testStoreLimits(b *store.Bolt) error {
	v := os.Getenv("ASE_TEST_STORE_LIMITS")
	if v == "" {
		return nil
	}
	var n, m int
	if k, err := fmt.Sscanf(v, "%d,%d", &n, &m); k != 2 || err != nil || n < 0 || m < 0 {
		return fmt.Errorf("ASE_TEST_STORE_LIMITS=%q: want operations,bytes", v)
	}
	b.SetLimits(store.Limits{MaxOps: n, MaxBytes: m})
	return nil
}
