package e2e

// Cluster mode (issue 15): several ase nodes share one state through a real
// etcd, run as its own process by these tests.

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ase-project/ase/internal/wire"
)

// clusterNode starts one ase node of cluster id on e, with conf on top.
func clusterNode(t *testing.T, e *etcdProc, id string, conf map[string]string) *Instance {
	t.Helper()
	c := map[string]string{"enable_cluster": "true", "cluster_id": id, "etcd_endpoints": e.Endpoint(), "cluster_node_ttl": "3s"}
	for k, v := range conf {
		c[k] = v
	}
	return startInstance(t, c)
}

// startCluster starts n nodes of cluster "c1".
func startCluster(t *testing.T, e *etcdProc, n int, conf map[string]string) []*Instance {
	t.Helper()
	var out []*Instance
	for range n {
		out = append(out, clusterNode(t, e, "c1", conf))
	}
	return out
}

// clusterView reads GET /cluster from a node.
func clusterView(t *testing.T, i *Instance) wire.Cluster {
	t.Helper()
	r := i.Do("GET", "/v5/ase/cluster", "", nil)
	if r.Code != 200 {
		t.Fatalf("GET /cluster: %d %s", r.Code, r.Body)
	}
	var c wire.Cluster
	decode(t, r, &c)
	return c
}

// nodeStatus is a node's status in a view, by uuid.
func nodeStatus(c wire.Cluster, uuid string) string {
	for _, n := range c.Node {
		if n.UUID == uuid {
			return n.Status
		}
	}
	return "absent"
}

func nodeUUID(t *testing.T, i *Instance) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(i.Conf["data_dir"], "node-uuid"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// eventually waits (generously) for cond; what is checked is the state
// reached, never how fast.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never happened: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// denied reports whether a node's data port refuses a request as
// deny-listed.
func denied(t *testing.T, i *Instance) bool {
	t.Helper()
	r := i.Data("GET", "/x", "", nil)
	return r.Code == 403
}

func TestClusterNodesShareOneState(t *testing.T) {
	e := startEtcd(t)
	b := newBackend(t, "b", false)
	nodes := startCluster(t, e, 3, nil)
	a, bb, c := nodes[0], nodes[1], nodes[2]

	// GET /cluster, as seed 001 shows it, the same from every node.
	want := map[string]bool{}
	for _, n := range nodes {
		want[nodeUUID(t, n)] = true
	}
	for _, n := range nodes {
		eventually(t, "every node active", func() bool {
			v := clusterView(t, n)
			for u := range want {
				if nodeStatus(v, u) != "active" {
					return false
				}
			}
			return v.ClusterID == "c1" && v.NodeCount == 3
		})
	}
	var raw map[string]any
	decode(t, a.Do("GET", "/v5/ase/cluster", "", nil), &raw)
	if _, ok := raw["node_count"].(float64); !ok || raw["cluster_id"] != "c1" {
		t.Fatalf("GET /cluster shape: %v", raw)
	}
	for _, n := range raw["node"].([]any) {
		m := n.(map[string]any)
		if m["host"] != "127.0.0.1" || m["port"] == nil || m["uuid"] == nil || m["status"] != "active" {
			t.Fatalf("node entry: %v", m)
		}
	}
	out, _, code := c.CLI("", "cluster_info")
	if code != 0 || !strings.Contains(out, "node count : 3") || strings.Count(out, " active") != 3 {
		t.Fatalf("cluster_info:\n%s", out)
	}
	out, _, _ = bb.CLI("", "status")
	if !strings.Contains(out, "enabled (cluster c1, 3 of 3 nodes active)") {
		t.Fatalf("status:\n%s", out)
	}

	// A change acknowledged by one node is enforced on every node.
	wantJSON(t, a.Do("POST", "/v5/ase/api?api_id=api", apiDoc("/", servers(b)), nil), 200, ok)
	eventually(t, "the API on the third node", func() bool { return c.Data("GET", "/x", "", nil).Code == 200 })
	wantStatus(t, bb.Do("POST", "/v5/ase/firewall/blacklist", `{"type": "ip", "value": "127.0.0.1"}`, nil), 200, "success", "ip 127.0.0.1 added to blacklist")
	if !denied(t, bb) {
		t.Fatal("the node that acknowledged the entry does not enforce it")
	}
	eventually(t, "the entry on the other nodes", func() bool { return denied(t, a) && denied(t, c) })
	wantStatus(t, c.Do("DELETE", "/v5/ase/firewall/blacklist", `{"type": "ip", "value": "127.0.0.1"}`, nil), 200, "success", "ip 127.0.0.1 deleted from blacklist")
	eventually(t, "the deletion on every node", func() bool { return !denied(t, a) && !denied(t, bb) && !denied(t, c) })

	// Another cluster on the same etcd sees none of it.
	other := clusterNode(t, e, "c2", nil)
	if r := other.Do("GET", "/v5/ase/api", "", nil); !strings.Contains(string(r.Body), `"api_count": "0"`) {
		t.Fatalf("another cluster sees: %s", r.Body)
	}
	if v := clusterView(t, other); v.NodeCount != 1 {
		t.Fatalf("another cluster's nodes: %+v", v)
	}

	// A node stopped cleanly is inactive at once; one killed, within its
	// lease's TTL (3 s here); a restarted node keeps its uuid.
	uc := nodeUUID(t, c)
	c.Stop()
	if s := nodeStatus(clusterView(t, a), uc); s != "inactive" {
		t.Fatalf("a cleanly stopped node shows %q", s)
	}
	c.Start()
	if nodeUUID(t, c) != uc {
		t.Fatal("the node's uuid changed across a restart")
	}
	eventually(t, "the restarted node active", func() bool { return nodeStatus(clusterView(t, a), uc) == "active" })
	ub := nodeUUID(t, bb)
	killed := time.Now()
	bb.Kill()
	eventually(t, "the killed node inactive", func() bool { return nodeStatus(clusterView(t, a), ub) == "inactive" })
	t.Logf("a killed node showed inactive after %v (cluster_node_ttl 3s)", time.Since(killed).Round(100*time.Millisecond))
	out, _, _ = a.CLI("", "status")
	if !strings.Contains(out, "2 of 3 nodes active") {
		t.Fatalf("status:\n%s", out)
	}
}

func TestClusterThroughEtcdOutages(t *testing.T) {
	e := startEtcd(t)
	b := newBackend(t, "b", false)
	nodes := startCluster(t, e, 3, nil)
	a, bb, c := nodes[0], nodes[1], nodes[2]
	wantJSON(t, a.Do("POST", "/v5/ase/api?api_id=api", apiDoc("/", servers(b)), nil), 200, ok)
	wantStatus(t, a.Do("POST", "/v5/ase/firewall/blacklist", `{"type": "ip", "value": "127.0.0.1"}`, nil), 200, "success", "*")
	eventually(t, "the entry everywhere", func() bool { return denied(t, bb) && denied(t, c) })

	// etcd down: decisions go on unchanged, reads answer, writes are 503
	// and change nothing.
	e.Kill()
	for _, n := range nodes {
		if !denied(t, n) {
			t.Fatal("a node stopped enforcing its last state during the outage")
		}
		if r := n.Do("GET", "/v5/ase/api?api_id=api", "", nil); r.Code != 200 {
			t.Fatalf("a read during the outage: %d %s", r.Code, r.Body)
		}
	}
	wantStatus(t, bb.Do("POST", "/v5/ase/firewall/blacklist", `{"type": "ip", "value": "10.1.1.1"}`, nil), 503, "fail", "the cluster store (etcd) cannot be reached*")
	// A node restarted during the outage starts from its mirror.
	bb.Restart()
	if !denied(t, bb) {
		t.Fatal("a node restarted during the outage does not enforce its last state")
	}
	e.Start()
	if r := bb.Do("GET", "/v5/ase/firewall/blacklist", "", nil); strings.Contains(string(r.Body), "10.1.1.1") {
		t.Fatalf("a refused write changed something: %s", r.Body)
	}
	// Back: writes work and propagate.
	eventually(t, "writes accepted again", func() bool {
		return bb.Do("DELETE", "/v5/ase/firewall/blacklist", `{"type": "ip", "value": "127.0.0.1"}`, nil).Code == 200
	})
	eventually(t, "the deletion everywhere after the outage", func() bool { return !denied(t, a) && !denied(t, c) })

	// A node cut off (stopped) while etcd restarts, changes are made and
	// the revisions it had are compacted: when it comes back it cannot
	// resume its watch, resynchronises, and ends with exactly etcd's state
	// (the stale-routes failure of APISIX, apache/apisix 11390 and 6902).
	c.cmd.Process.Signal(syscall.SIGSTOP)
	e.Kill()
	e.Start()
	wantStatus(t, a.Do("POST", "/v5/ase/firewall/blacklist", `{"type": "ip", "value": "127.0.0.1"}`, nil), 200, "success", "*")
	wantJSON(t, a.Do("POST", "/v5/ase/api?api_id=later", apiDoc("/later", servers(b)), nil), 200, ok)
	wantStatus(t, a.Do("POST", "/v5/ase/firewall/blacklist", `{"type": "ip", "value": "10.2.2.2"}`, nil), 200, "success", "*")
	e.Compact(t)
	c.cmd.Process.Signal(syscall.SIGCONT)
	eventually(t, "the cut-off node converged", func() bool {
		return denied(t, c) && c.Do("GET", "/v5/ase/api?api_id=later", "", nil).Code == 200
	})
	if !strings.Contains(c.Output(), "resynchronises") {
		t.Logf("note: the node caught up by its watch without a resynchronisation")
	}
	sameLists(t, nodes)

	// etcd rebuilt empty (its revisions start again from 1), and written
	// to past the revision the nodes had before they look: every node ends
	// with exactly etcd's state, here none at all.
	before := e.Revision(t)
	e.Wipe()
	cli := e.Client(t)
	for k := 0; e.Revision(t) <= before+5; k++ {
		if _, err := cli.Put(etcdCtx(t), fmt.Sprintf("/ase/c1/filler/%d", k), "x"); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range nodes {
		eventually(t, "a node following the rebuilt etcd", func() bool {
			r := n.Data("GET", "/x", "", nil)
			return r.Code == 503 && string(r.Body) == "Error: Unknown Hostname"
		})
	}
	// A restarted node makes the built-in admin again (with the factory
	// password), and every node can be managed again.
	a.Restart()
	for _, n := range nodes {
		eventually(t, "the admin account back on every node", func() bool { return n.Do("GET", "/v5/ase/api", "", nil).Code == 200 })
	}
}

// sameLists checks that every node lists the same deny entries.
func sameLists(t *testing.T, nodes []*Instance) {
	t.Helper()
	var first string
	for k, n := range nodes {
		r := n.Do("GET", "/v5/ase/firewall/blacklist", "", nil)
		if k == 0 {
			first = string(r.Body)
		} else if string(r.Body) != first {
			t.Fatalf("node %d lists %s\nnode 0 lists %s", k, r.Body, first)
		}
	}
}

func TestClusterNodeJoinsAndRejoins(t *testing.T) {
	e := startEtcd(t)
	b := newBackend(t, "b", false)
	nodes := startCluster(t, e, 2, nil)
	a, c := nodes[0], nodes[1]
	wantJSON(t, a.Do("POST", "/v5/ase/api?api_id=api", apiDoc("/", servers(b)), nil), 200, ok)
	var entries []string
	for k := range 300 {
		entries = append(entries, fmt.Sprintf(`{"type": "token", "value": "t%d"}`, k))
	}
	for k := 0; k < len(entries); k += 100 {
		wantStatus(t, a.Do("POST", "/v5/ase/firewall/blacklist", "["+strings.Join(entries[k:k+100], ",")+"]", nil), 200, "success", "*")
	}
	wantStatus(t, a.Do("POST", "/v5/ase/firewall/blacklist", `{"type": "ip", "value": "127.0.0.1"}`, nil), 200, "success", "*")
	// A node down while an entry is deleted never brings it back.
	eventually(t, "the entry on the second node", func() bool { return denied(t, c) })
	c.Kill()
	wantStatus(t, a.Do("DELETE", "/v5/ase/firewall/blacklist", `{"type": "ip", "value": "127.0.0.1"}`, nil), 200, "success", "*")
	c.Start()
	if denied(t, c) {
		t.Fatal("a node that was down resurrected a deleted entry")
	}
	// A new node with an empty data_dir serves the full state.
	n := clusterNode(t, e, "c1", nil)
	if denied(t, n) {
		t.Fatal("the new node enforces a deleted entry")
	}
	sameLists(t, []*Instance{a, c, n})
	r := n.Do("GET", "/v5/ase/firewall/blacklist", "", nil)
	if strings.Count(string(r.Body), `"type":"token"`) != 300 {
		t.Fatalf("the new node lists %d tokens", strings.Count(string(r.Body), `"type":"token"`))
	}
}

func TestClusterEtcdTLSAndAuth(t *testing.T) {
	for _, tt := range []struct {
		name string
		opts []etcdOption
	}{
		{"tls and password", []etcdOption{etcdWithTLS(), etcdWithAuth("")}},
		{"password", []etcdOption{etcdWithAuth("")}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := startEtcd(t, tt.opts...)
			conf := map[string]string{"enable_cluster": "true", "cluster_id": "sec", "etcd_endpoints": e.Endpoint(), "cluster_node_ttl": "3s", "etcd_username": e.User}
			if e.TLS != nil {
				conf["etcd_ca_file"], conf["etcd_cert_file"], conf["etcd_key_file"] = e.TLS.CAFile, e.TLS.CertFile, e.TLS.KeyFile
			}
			i := newInstance(t, conf)
			i.Env = append(i.Env, "ASE_ETCD_PASSWORD="+e.Password)
			i.Start()
			wantStatus(t, i.Do("POST", "/v5/ase/firewall/blacklist", `{"type": "ip", "value": "10.3.3.3"}`, nil), 200, "success", "*")
			// etcd restarts: its authentication tokens are gone; the node
			// logs in again by itself, for its writes, its watch (a write
			// answers once the node's watch has brought it) and its lease.
			e.Kill()
			e.Start()
			eventually(t, "writes accepted after etcd restarted", func() bool {
				return i.Do("POST", "/v5/ase/firewall/blacklist", `{"type": "ip", "value": "10.3.3.4"}`, nil).Code == 200
			})
			if v := clusterView(t, i); v.NodeCount != 1 || v.Node[0].Status != "active" {
				t.Fatalf("GET /cluster: %+v", v)
			}
			r := i.Do("GET", "/v5/ase/status", "", nil)
			if strings.Contains(string(r.Body), e.Password) || strings.Contains(i.Output(), e.Password) {
				t.Fatal("the etcd password was shown or logged")
			}
			// The wrong password: start-up fails, naming etcd's refusal.
			bad := newInstance(t, conf)
			bad.Env = append(bad.Env, "ASE_ETCD_PASSWORD=wrong-password")
			bad.Launch()
			if err := bad.Wait(60 * time.Second); err == nil {
				t.Fatal("a node with a wrong etcd password started")
			}
			if strings.Contains(bad.Output(), "wrong-password") || !strings.Contains(bad.Output(), "etcd_username/etcd_password") {
				t.Fatalf("the wrong password: %s", bad.Output())
			}
		})
	}
}

func TestClusterSessionsAndTransactions(t *testing.T) {
	e := startEtcd(t)
	nodes := startCluster(t, e, 3, nil)
	a, bb, c := nodes[0], nodes[1], nodes[2]
	a.createUser("ops", "ops-password-1", "admin")
	eventually(t, "the user on every node", func() bool {
		return c.Do("GET", "/api/configuration/aaa/local_database/users", "", nil).Code == 200 &&
			strings.Contains(string(c.Do("GET", "/api/configuration/aaa/local_database/users", "", nil).Body), `"ops"`)
	})
	// Log in on A, use the session on B.
	ops := a.login("ops", "ops-password-1")
	eventually(t, "the session on B", func() bool { return bb.as("GET", "/v5/ase/api", "", ops).Code == 200 })

	// A transaction opened on A: every other writer on every node gets 409.
	if r := a.as("POST", "/api/transaction", "{}", ops); r.Code != 200 {
		t.Fatalf("open: %d %s", r.Code, r.Body)
	}
	for _, n := range []*Instance{bb, c} {
		eventually(t, "the transaction seen on every node", func() bool {
			return n.Do("POST", "/v5/ase/firewall/blacklist", `{"type": "ip", "value": "10.4.4.4"}`, nil).Code == 409
		})
	}
	// The owner stages a change on C and commits on B.
	if r := c.as("POST", "/v5/ase/firewall/blacklist", `{"type": "ip", "value": "10.5.5.5"}`, ops); r.Code != 200 {
		t.Fatalf("staged on C: %d %s", r.Code, r.Body)
	}
	if r := a.Do("GET", "/v5/ase/firewall/blacklist", "", nil); strings.Contains(string(r.Body), "10.5.5.5") {
		t.Fatal("a staged change is visible to others")
	}
	if r := bb.as("PUT", "/api/transaction", `{"status": "commit", "message": "from B"}`, ops); r.Code != 200 {
		t.Fatalf("commit on B: %d %s", r.Code, r.Body)
	}
	eventually(t, "the committed change on A", func() bool {
		return strings.Contains(string(a.Do("GET", "/v5/ase/firewall/blacklist", "", nil).Body), "10.5.5.5")
	})
	// Writers are free again; logout on C ends the session on A.
	wantStatus(t, c.Do("POST", "/v5/ase/firewall/blacklist", `{"type": "ip", "value": "10.4.4.4"}`, nil), 200, "success", "*")
	if r := c.as("DELETE", "/api/authentication", "", ops); r.Code != 200 && r.Code != 204 {
		t.Fatalf("logout on C: %d %s", r.Code, r.Body)
	}
	eventually(t, "the session ended on A", func() bool { return a.as("GET", "/v5/ase/api", "", ops).Code != 200 })
}

// freeRun returns a port p with p+1 .. p+n free too.
func freeRun(t *testing.T, n int) int {
	t.Helper()
	for range 100 {
		p := freePort(t)
		ok := true
		for k := 1; k <= n && ok; k++ {
			ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p+k))
			if err != nil {
				ok = false
				continue
			}
			ln.Close()
		}
		if ok {
			handedOut.Lock()
			for k := 1; k <= n; k++ {
				handedOut.m[p+k] = true
			}
			handedOut.Unlock()
			return p
		}
	}
	t.Fatal("no run of free ports")
	return 0
}

// TestClusterScript runs docs/cluster.md's walk-through with the script it
// describes.
func TestClusterScript(t *testing.T) {
	dir := t.TempDir()
	etcdPort, dataBase, mgmtBase := freeRun(t, 1), freeRun(t, 3), freeRun(t, 3)
	env := append(cleanEnv(), fmt.Sprintf("ETCD_PORT=%d", etcdPort), fmt.Sprintf("DATA_BASE=%d", dataBase), fmt.Sprintf("MGMT_BASE=%d", mgmtBase))
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("../scripts/cluster.sh", append(args, dir)...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("cluster.sh %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	t.Cleanup(func() { run("stop") })
	run("start")
	if out := run("status"); strings.Count(out, `"active"`) != 3 {
		t.Fatalf("status: %s", out)
	}
	b := newBackend(t, "b", false)
	mgmt := func(n int) *Instance {
		return &Instance{t: t, MgmtURL: fmt.Sprintf("http://127.0.0.1:%d", mgmtBase+n), Password: "admin",
			Conf: map[string]string{"http_ws_port": fmt.Sprint(dataBase + n)}}
	}
	n1, n3 := mgmt(1), mgmt(3)
	wantJSON(t, n1.Do("POST", "/v5/ase/api?api_id=demo", apiDoc("/", servers(b)), nil), 200, ok)
	wantStatus(t, n1.Do("POST", "/v5/ase/firewall/blacklist", `{"type": "ip", "value": "127.0.0.1"}`, nil), 200, "success", "*")
	eventually(t, "node 3 refuses the client", func() bool { return n3.Data("GET", "/", "", nil).Code == 403 })
	run("etcd-stop")
	wantStatus(t, n3.Do("DELETE", "/v5/ase/firewall/blacklist", `{"type": "ip", "value": "127.0.0.1"}`, nil), 503, "fail", "*")
	if n3.Data("GET", "/", "", nil).Code != 403 {
		t.Fatal("node 3 stopped enforcing during the outage")
	}
	run("etcd-start")
	eventually(t, "writes accepted after the outage", func() bool {
		return n3.Do("DELETE", "/v5/ase/firewall/blacklist", `{"type": "ip", "value": "127.0.0.1"}`, nil).Code == 200
	})
	eventually(t, "node 1 lets the client through", func() bool { return mgmt(1).Data("GET", "/", "", nil).Code == 200 })
}

// TestClusterFlowControl: a client's client_spike_threshold holds for the
// whole cluster, wherever its requests land: a client at three times its
// threshold (10/second), round-robin over three nodes, is admitted at
// about the threshold; standalone nodes would admit all of it (each sees
// only its own third). The accuracy figures are bench/cluster.sh's.
func TestClusterFlowControl(t *testing.T) {
	e := startEtcd(t)
	b := newBackend(t, "b", false)
	nodes := startCluster(t, e, 3, nil)
	wantJSON(t, nodes[0].Do("POST", "/v5/ase/api?api_id=api", apiDoc("/", servers(b)+`, "flow_control": {"client_spike_threshold": "10/second"}`), nil), 200, ok)
	for _, n := range nodes {
		eventually(t, "the API on every node", func() bool { return n.Do("GET", "/v5/ase/api?api_id=api", "", nil).Code == 200 })
	}
	admitted, sent := 0, 0
	start := time.Now()
	next := start
	for time.Since(start) < 8*time.Second {
		switch r := nodes[sent%3].Data("GET", "/x", "", nil); r.Code {
		case 200:
			admitted++
		case 429:
		default:
			t.Fatalf("request %d: %d %s", sent, r.Code, r.Body)
		}
		sent++
		next = next.Add(time.Second / 30)
		time.Sleep(time.Until(next))
	}
	secs := time.Since(start).Seconds()
	t.Logf("offered %.1f/s, admitted %.1f/s (threshold 10/s over three nodes)", float64(sent)/secs, float64(admitted)/secs)
	// The first second may pass up to twice the threshold before the nodes
	// know of each other's requests; then each admits its share.
	if max := 10*secs*1.2 + 10; float64(admitted) > max {
		t.Fatalf("admitted %d in %.1f s: more than the cluster's threshold allows (%.0f)", admitted, secs, max)
	}
	if float64(sent)/secs >= 20 && float64(admitted) < 10*secs*0.7 {
		t.Fatalf("admitted %d in %.1f s: well under the threshold", admitted, secs)
	}
}
