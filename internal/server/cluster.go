package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/ase-project/ase/internal/cluster"
	"github.com/ase-project/ase/internal/config"
	"github.com/ase-project/ase/internal/flow"
	"github.com/ase-project/ase/internal/store"
	"github.com/ase-project/ase/internal/wire"
)

// clusterPrefix is where a cluster's keys live in etcd.
func clusterPrefix(id string) string { return "/ase/" + id + "/" }

// openCluster opens the cluster store: etcd, mirrored in data_dir.
func openCluster(ctx context.Context, cfg *config.Config, log *slog.Logger) (*store.Etcd, error) {
	tc, err := etcdTLS(cfg)
	if err != nil {
		return nil, err
	}
	st, err := store.OpenEtcd(ctx, store.EtcdOptions{
		Endpoints: cfg.EtcdEndpoints, Prefix: clusterPrefix(cfg.ClusterID), TLS: tc,
		Username: cfg.EtcdUsername, Password: cfg.EtcdPassword,
		MirrorPath: filepath.Join(cfg.DataDir, "cluster-"+cfg.ClusterID+".db"), Log: log,
	})
	if err != nil {
		return nil, err
	}
	log.Info("cluster mode: state in etcd", "cluster_id", cfg.ClusterID, "endpoints", cfg.EtcdEndpoints, "revision", st.Rev())
	return st, nil
}

// etcdTLS is the TLS configuration for etcd: nil (plain) unless a CA or a
// client certificate is set, or an endpoint is https.
func etcdTLS(cfg *config.Config) (*tls.Config, error) {
	https := false
	for _, e := range cfg.EtcdEndpoints {
		https = https || len(e) > 8 && e[:8] == "https://"
	}
	if cfg.EtcdCAFile == "" && cfg.EtcdCertFile == "" && !https {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.EtcdCAFile != "" {
		pem, err := os.ReadFile(cfg.EtcdCAFile)
		if err != nil {
			return nil, fmt.Errorf("etcd_ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("etcd_ca_file: %s holds no PEM certificate", cfg.EtcdCAFile)
		}
		tc.RootCAs = pool
	}
	if cfg.EtcdCertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.EtcdCertFile, cfg.EtcdKeyFile)
		if err != nil {
			return nil, fmt.Errorf("etcd_cert_file/etcd_key_file: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// joinCluster records this node as a member (its management address) and
// keeps it alive.
func joinCluster(ctx context.Context, cfg *config.Config, st *store.Etcd, mgmt net.Addr, version string, log *slog.Logger) (*cluster.Node, error) {
	id, err := cluster.NodeUUID(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	host := cfg.ManagementAddress
	if a, err := netip.ParseAddr(host); err == nil && a.IsUnspecified() {
		if h, err := os.Hostname(); err == nil {
			host = h
		}
	}
	port := 0
	if ta, ok := mgmt.(*net.TCPAddr); ok {
		port = ta.Port
	}
	self := cluster.Member{UUID: id, Host: host, Port: port, Version: version, Joined: time.Now().UTC()}
	if prev, err := cluster.Lookup(ctx, st, id); err == nil {
		self.Joined = prev.Joined // its place in the list is kept across restarts
	}
	n, err := cluster.Join(ctx, st, self, cfg.ClusterNodeTTL.Std(), log)
	if err != nil {
		return nil, err
	}
	log.Info("joined the cluster", "cluster_id", cfg.ClusterID, "uuid", id, "host", host, "port", port)
	return n, nil
}

// clusterView is GET /cluster's source.
func clusterView(cfg *config.Config, st store.Reader) func(ctx context.Context) (wire.Cluster, error) {
	return func(ctx context.Context) (wire.Cluster, error) { return cluster.View(ctx, st, cfg.ClusterID) }
}

// clusterFunc is admin's Cluster dependency: nil when standalone.
func clusterFunc(cfg *config.Config, st *store.Etcd) func(ctx context.Context) (wire.Cluster, error) {
	if st == nil {
		return nil
	}
	return clusterView(cfg, st)
}

// clusterFlow starts cluster-wide flow control: summaries of this node's
// load, exchanged through etcd.
func clusterFlow(ctx context.Context, cfg *config.Config, st *store.Etcd, log *slog.Logger) (*flow.Node, *cluster.FlowPeers, error) {
	id, err := cluster.NodeUUID(cfg.DataDir)
	if err != nil {
		return nil, nil, err
	}
	seed, err := cluster.FlowSeed(ctx, st)
	if err != nil {
		return nil, nil, fmt.Errorf("cluster flow control: %w", err)
	}
	peers, err := cluster.NewFlowPeers(ctx, st, id, log)
	if err != nil {
		return nil, nil, err
	}
	return flow.NewNode(peers, flow.Options{ID: id, Seed: seed}), peers, nil
}
