package e2e

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

const ok = `{"status": "success", "status_message": "success"}`

func TestAPILifecycleWithSeedBodies(t *testing.T) {
	i := startInstance(t, nil)
	wantJSON(t, i.Do("GET", "/v4/ase/api", "", nil), 200, `{"api_count": "0", "api": []}`)

	rest, ws := seed(t, "seed_rest.json"), seed(t, "seed_ws.json")
	wantJSON(t, i.Do("POST", "/v4/ase/api?api_id=sample_api", rest, nil), 200, ok)
	wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=ws_api", ws, nil), 200, ok)

	// Read back complete and identical, under both prefixes.
	wantJSON(t, i.Do("GET", "/v5/ase/api?api_id=sample_api", "", nil), 200, rest)
	wantJSON(t, i.Do("GET", "/v4/ase/api?api_id=ws_api", "", nil), 200, ws)
	wantJSON(t, i.Do("GET", "/v4/ase/api", "", nil), 200,
		`{"api_count": "2", "api": [{"api_id": "sample_api", "status": "loaded"}, {"api_id": "ws_api", "status": "loaded"}]}`)

	wantStatus(t, i.Do("POST", "/v4/ase/api?api_id=sample_api", rest, nil), 403, "api_already_exists", "api sample_api already exists")

	updated := strings.Replace(rest, `"/your_rest_api"`, `"/shop"`, 1)
	wantJSON(t, i.Do("PUT", "/v4/ase/api?api_id=sample_api", updated, nil), 200, ok)
	wantJSON(t, i.Do("GET", "/v4/ase/api?api_id=sample_api", "", nil), 200, updated)

	wantJSON(t, i.Do("DELETE", "/v4/ase/api?api_id=sample_api", "", nil), 200, ok)
	wantStatus(t, i.Do("GET", "/v4/ase/api?api_id=sample_api", "", nil), 404, "api_not_found", "api sample_api does not exist")
	wantStatus(t, i.Do("PUT", "/v4/ase/api?api_id=sample_api", rest, nil), 404, "api_not_found", "api sample_api does not exist")
	wantStatus(t, i.Do("DELETE", "/v4/ase/api?api_id=sample_api", "", nil), 404, "api_not_found", "api sample_api does not exist")

	// Everything acknowledged survives a restart.
	i.Restart()
	wantJSON(t, i.Do("GET", "/v4/ase/api", "", nil), 200, `{"api_count": "1", "api": [{"api_id": "ws_api", "status": "loaded"}]}`)
	wantJSON(t, i.Do("GET", "/v4/ase/api?api_id=ws_api", "", nil), 200, ws)
}

func TestAPIDefaultsReadBackComplete(t *testing.T) {
	i := startInstance(t, nil)
	wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=min", apiDoc("/min", ""), nil), 200, ok)
	var doc struct {
		Meta map[string]any `json:"api_metadata"`
	}
	decode(t, i.Do("GET", "/v5/ase/api?api_id=min", "", nil), &doc)
	var full struct {
		Meta map[string]any `json:"api_metadata"`
	}
	decode(t, Reply{Body: []byte(seed(t, "seed_rest.json"))}, &full)
	for k := range full.Meta {
		if _, ok := doc.Meta[k]; !ok {
			t.Errorf("read-back lacks %s", k)
		}
	}
	if doc.Meta["hostname"] != "*" || doc.Meta["enable_blocking"] != true || doc.Meta["api_memory_size"] != "128mb" {
		t.Errorf("got defaults %v", doc.Meta)
	}
}

func TestAPIValidationErrors(t *testing.T) {
	i := startInstance(t, nil)
	wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=keep", apiDoc("/keep", ""), nil), 200, ok)
	tests := []struct {
		name, path, body string
		code             int
		status, message  string
	}{
		{"missing api_id", "/v5/ase/api", apiDoc("/a", ""), 403, "validation_error", "query parameter api_id is required"},
		{"bad api_id", "/v5/ase/api?api_id=bad$id", apiDoc("/a", ""), 403, "validation_error", `api_id "bad$id" is invalid*`},
		{"unknown field", "/v5/ase/api?api_id=a", apiDoc("/a", `"colour": "red"`), 403, "validation_error", "api_metadata.colour: unknown field"},
		{"wrong type", "/v5/ase/api?api_id=a", apiDoc("/a", `"enable_blocking": "yes"`), 403, "validation_error", "api_metadata.enable_blocking: must be true or false, got a string"},
		{"threshold", "/v5/ase/api?api_id=a", apiDoc("/a", `"flow_control": {"client_spike_threshold": "5/day"}`), 403, "validation_error", "api_metadata.flow_control.client_spike_threshold: must be a rate*"},
		{"all at once", "/v5/ase/api?api_id=a", `{"api_metadata": {"url": "a", "servers": [{"host": "x y", "port": 70000}]}}`, 403, "validation_error",
			`api_metadata.url: must be a path starting with /, got "a"; api_metadata.servers[0].host: must be a host name or IP address without a port, got "x y"; api_metadata.servers[0].port: must be a whole number from 1 to 65535, got 70000`},
		{"route taken", "/v5/ase/api?api_id=b", apiDoc("/keep", ""), 403, "validation_error", "api_metadata.url: api keep already serves hostname * and url /keep"},
		{"malformed json", "/v5/ase/api?api_id=a", `{"api_metadata": {`, 403, "fail", "json parsing error"},
		{"no body", "/v5/ase/api?api_id=a", "", 403, "fail", "json parsing error"},
		{"unknown query", "/v5/ase/api?api_id=a&x=1", apiDoc("/a", ""), 403, "validation_error", `unknown query parameter "x" for POST /api`},
		{"repeated query", "/v5/ase/api?api_id=a&api_id=b", apiDoc("/a", ""), 403, "validation_error", `query parameter "api_id" is given more than once`},
		{"malformed query", "/v5/ase/api?api_id=%zz", apiDoc("/a", ""), 403, "validation_error", "the query string is malformed*"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantStatus(t, i.Do("POST", tt.path, tt.body, nil), tt.code, tt.status, tt.message)
		})
	}
	// Nothing changed.
	wantJSON(t, i.Do("GET", "/v5/ase/api", "", nil), 200, `{"api_count": "1", "api": [{"api_id": "keep", "status": "loaded"}]}`)
}

func TestRequestHygiene(t *testing.T) {
	i := startInstance(t, nil)
	t.Run("content type", func(t *testing.T) {
		wantStatus(t, i.Do("POST", "/v5/ase/api?api_id=a", apiDoc("/a", ""), map[string]string{"Content-Type": "text/plain"}), 403, "fail", "content-type header missing")
		wantStatus(t, i.Do("POST", "/v5/ase/api?api_id=a", apiDoc("/a", ""), map[string]string{"Content-Type": ""}), 403, "fail", "content-type header missing")
	})
	t.Run("huge body", func(t *testing.T) {
		big := apiDoc("/a", `"login_url": "/`+strings.Repeat("x", 1<<20)+`"`)
		wantStatus(t, i.Do("POST", "/v5/ase/api?api_id=a", big, nil), 413, "fail", "request body too large*")
	})
	t.Run("method", func(t *testing.T) {
		r := i.Do("PATCH", "/v5/ase/api?api_id=a", "", nil)
		wantStatus(t, r, 405, "fail", "method PATCH is not allowed on /v5/ase/api")
		if r.Header.Get("Allow") != "DELETE, GET, POST, PUT" {
			t.Errorf("got Allow %q", r.Header.Get("Allow"))
		}
	})
	t.Run("unknown path", func(t *testing.T) {
		wantStatus(t, i.Do("GET", "/v5/ase/nothing", "", nil), 404, "fail", "no such endpoint: /v5/ase/nothing")
	})
	wantJSON(t, i.Do("GET", "/v5/ase/api", "", nil), 200, `{"api_count": "0", "api": []}`)
}

func TestAdminAuthentication(t *testing.T) {
	i := startInstance(t, nil)
	wantStatus(t, i.Do("GET", "/v4/ase/api", "", map[string]string{"x-ase-access-key": ""}), 403, "fail", "x-ase-access-key header missing")
	wantStatus(t, i.Do("GET", "/v4/ase/api", "", map[string]string{"x-ase-secret-key": ""}), 403, "fail", "x-ase-secret-key header missing")
	wantStatus(t, i.Do("GET", "/v4/ase/api", "", map[string]string{"x-ase-secret-key": "wrong"}), 403, "fail", "authorization failure")
	wantStatus(t, i.Do("GET", "/v4/ase/api", "", map[string]string{"x-ase-access-key": "root"}), 403, "fail", "authorization failure")
	// A failed write changes nothing.
	wantStatus(t, i.Do("POST", "/v4/ase/api?api_id=a", apiDoc("/a", ""), map[string]string{"x-ase-secret-key": "wrong"}), 403, "fail", "authorization failure")
	wantJSON(t, i.Do("GET", "/v4/ase/api", "", nil), 200, `{"api_count": "0", "api": []}`)

	// Brute force: the 10th failure within a minute locks the address
	// out, even with the right password.
	for n := 4; n <= 9; n++ {
		wantStatus(t, i.Do("GET", "/v4/ase/api", "", map[string]string{"x-ase-secret-key": "guess"}), 403, "fail", "authorization failure")
	}
	r := i.Do("GET", "/v4/ase/api", "", map[string]string{"x-ase-secret-key": "guess"})
	wantStatus(t, r, 429, "fail", "too many failed authentications from this address*")
	if ra := r.Header.Get("Retry-After"); ra != "60" {
		t.Errorf("got Retry-After %q, want 60", ra)
	}
	wantStatus(t, i.Do("GET", "/v4/ase/api", "", nil), 429, "fail", "too many failed authentications from this address*")
	if strings.Contains(i.Output(), "guess") {
		t.Error("a tried password appears in the server's log")
	}
}

func TestServers(t *testing.T) {
	i := startInstance(t, nil)
	wantJSON(t, i.Do("POST", "/v4/ase/api?api_id=shop", seed(t, "seed_rest.json"), nil), 200, ok)
	wantJSON(t, i.Do("POST", "/v4/ase/api?api_id=chat", seed(t, "seed_ws.json"), nil), 200, ok)

	rest := `{"server": {"host": "192.168.1.100", "port": 8080, "server_spike_threshold": "1/second", "server_connection_quota": 100}}`
	wantJSON(t, i.Do("POST", "/v4/ase/server?api_id=shop", rest, nil), 200, ok)
	wantStatus(t, i.Do("POST", "/v4/ase/server?api_id=shop", rest, nil), 403, "server_exists", "server already exists")
	wantStatus(t, i.Do("POST", "/v4/ase/server?api_id=nope", rest, nil), 404, "api_not_found", "api nope does not exist")
	wantStatus(t, i.Do("POST", "/v4/ase/server?api_id=shop", `{"server": {"host": "192.168.1.100", "port": 0}}`, nil), 403, "validation_error", "server.port: must be a whole number from 1 to 65535, got 0")
	wantStatus(t, i.Do("POST", "/v4/ase/server?api_id=chat", rest, nil), 403, "validation_error", "server.server_spike_threshold: applies to http APIs only; this API's protocol is ws")
	wantJSON(t, i.Do("POST", "/v4/ase/server?api_id=chat", `{"server": {"host": "192.168.1.100", "port": 8080, "server_connection_quota": 100}}`, nil), 200, ok)

	// The seeds check health and nothing listens at these servers: Down
	// once each first probe has answered (Unknown before).
	settleHealth(t, i, "shop")
	settleHealth(t, i, "chat")
	wantJSON(t, i.Do("GET", "/v4/ase/server?api_id=shop", "", nil), 200, `{"api_id": "shop", "server_count": 3, "server": [
		{"host": "127.0.0.1", "port": 8080, "server_spike_threshold": "0/second", "server_connection_quota": 0, "health_status": "Down"},
		{"host": "127.0.0.1", "port": 8081, "server_spike_threshold": "0/second", "server_connection_quota": 0, "health_status": "Down"},
		{"host": "192.168.1.100", "port": 8080, "server_spike_threshold": "1/second", "server_connection_quota": 100, "health_status": "Down"}]}`)
	wantJSON(t, i.Do("GET", "/v4/ase/server?api_id=chat", "", nil), 200, `{"api_id": "chat", "server_count": 3, "server": [
		{"host": "127.0.0.1", "port": 8080, "server_connection_quota": 0, "health_status": "Down"},
		{"host": "127.0.0.1", "port": 8081, "server_connection_quota": 0, "health_status": "Down"},
		{"host": "192.168.1.100", "port": 8080, "server_connection_quota": 100, "health_status": "Down"}]}`)

	del := `{"server": {"host": "192.168.1.100", "port": 8080}}`
	wantJSON(t, i.Do("DELETE", "/v4/ase/server?api_id=shop", del, nil), 200, ok)
	wantStatus(t, i.Do("DELETE", "/v4/ase/server?api_id=shop", del, nil), 404, "server_not_found", "server does not exist")
	wantStatus(t, i.Do("DELETE", "/v4/ase/server?api_id=nope", del, nil), 404, "api_not_found", "api nope does not exist")
	wantStatus(t, i.Do("DELETE", "/v4/ase/server?api_id=shop", `{"server": {"host": "192.168.1.100"}}`, nil), 403, "validation_error", "server.port: is required")
	var l struct {
		Count int `json:"server_count"`
	}
	decode(t, i.Do("GET", "/v4/ase/server?api_id=shop", "", nil), &l)
	if l.Count != 2 {
		t.Fatalf("got %d servers, want 2", l.Count)
	}
}

func TestFirewallClusterConnections(t *testing.T) {
	i := startInstance(t, nil)
	wantJSON(t, i.Do("GET", "/v4/ase/firewall", "", nil), 200, `{"status": "enabled", "status_message": "Ok"}`)
	wantJSON(t, i.Do("POST", "/v4/ase/firewall?status=enable", "", nil), 200, `{"status": "enabled", "status_message": "Firewall is already enabled"}`)
	wantJSON(t, i.Do("POST", "/v4/ase/firewall?status=disable", "", nil), 200, `{"status": "disabled", "status_message": "Firewall is now disabled"}`)
	wantJSON(t, i.Do("POST", "/v5/ase/firewall?status=disable", "", nil), 200, `{"status": "disabled", "status_message": "Firewall is already disabled"}`)
	wantJSON(t, i.Do("POST", "/v4/ase/firewall?status=off", "", nil), 403, `{"status": "invalid_value", "status_message": "query parameter status contains invalid value"}`)
	wantJSON(t, i.Do("POST", "/v4/ase/firewall", "", nil), 403, `{"status": "invalid_value", "status_message": "query parameter status contains invalid value"}`)

	// The setting changed through the API wins over ase.conf after a restart.
	i.Restart()
	wantJSON(t, i.Do("GET", "/v4/ase/firewall", "", nil), 200, `{"status": "disabled", "status_message": "Ok"}`)

	wantJSON(t, i.Do("GET", "/v4/ase/cluster", "", nil), 404, `{"status": "no_cluster_mode", "status_message": "ase is not in cluster mode"}`)

	wantJSON(t, i.Do("POST", "/v4/ase/api?api_id=sample", seed(t, "seed_ws.json"), nil), 200, ok)
	wantJSON(t, i.Do("GET", "/v4/ase/persistentconnection?api_id=sample", "", nil), 200, `{"api_id": "sample", "persistent_connection_count": {"ws": 0, "wss": 0}}`)
	wantStatus(t, i.Do("GET", "/v4/ase/persistentconnection?api_id=nope", "", nil), 404, "api_not_found", "api nope does not exist")
}

func TestFlowControlEndpoints(t *testing.T) {
	i := startInstance(t, nil)
	wantJSON(t, i.Do("POST", "/v4/ase/api?api_id=rest", seed(t, "seed_rest.json"), nil), 200, ok)
	wantJSON(t, i.Do("POST", "/v4/ase/api?api_id=ws", seed(t, "seed_ws.json"), nil), 200, ok)

	wantJSON(t, i.Do("GET", "/v4/ase/firewall/flowcontrol?api_id=rest", "", nil), 200,
		`{"api_id": "rest", "flow_control": {"client_spike_threshold": "0/second", "server_connection_queueing": false}}`)
	wantJSON(t, i.Do("GET", "/v4/ase/firewall/flowcontrol?api_id=ws", "", nil), 200,
		`{"api_id": "ws", "flow_control": {"client_spike_threshold": "0/second", "bytes_in_threshold": "0/second", "bytes_out_threshold": "0/second", "server_connection_queueing": false}}`)

	wantJSON(t, i.Do("POST", "/v4/ase/firewall/flowcontrol?api_id=rest", `{ "flow_control": {"client_spike_threshold": "0/second"}}`, nil), 200,
		`{"api_id": "rest", "flow_control": {"client_spike_threshold": "0/second", "server_connection_queueing": false}}`)
	wantJSON(t, i.Do("POST", "/v4/ase/firewall/flowcontrol?api_id=ws", `{ "flow_control": {"client_spike_threshold": "10/second", "bytes_in_threshold": "10/second", "bytes_out_threshold": "10/second"}}`, nil), 200,
		`{"api_id": "ws", "flow_control": {"client_spike_threshold": "10/second", "bytes_in_threshold": "10/second", "bytes_out_threshold": "10/second", "server_connection_queueing": false}}`)
	// The change is stored in the API's definition.
	var doc struct {
		Meta struct {
			FC map[string]any `json:"flow_control"`
		} `json:"api_metadata"`
	}
	decode(t, i.Do("GET", "/v4/ase/api?api_id=ws", "", nil), &doc)
	if doc.Meta.FC["client_spike_threshold"] != "10/second" {
		t.Fatalf("got %v", doc.Meta.FC)
	}
	wantStatus(t, i.Do("POST", "/v4/ase/firewall/flowcontrol?api_id=rest", `{"flow_control": {"client_spike_threshold": "ten"}}`, nil), 403, "validation_error", "flow_control.client_spike_threshold: must be a rate*")
	wantStatus(t, i.Do("POST", "/v4/ase/firewall/flowcontrol?api_id=rest", `{"flow_control": {"bytes_in_threshold": "1/second"}}`, nil), 403, "validation_error", "flow_control.bytes_in_threshold: applies to ws APIs only; this API's protocol is http")
	wantStatus(t, i.Do("GET", "/v4/ase/firewall/flowcontrol?api_id=nope", "", nil), 404, "api_not_found", "api nope does not exist")
	wantStatus(t, i.Do("POST", "/v4/ase/firewall/flowcontrol?api_id=nope", `{"flow_control": {}}`, nil), 404, "api_not_found", "api nope does not exist")

	wantJSON(t, i.Do("POST", "/v4/ase/firewall/flowcontrol/server?api_id=rest",
		`{"server": {"host": "127.0.0.1", "port": 8080, "server_connection_quota": 1000, "server_spike_threshold": "10/second"}}`, nil), 200,
		`{"status": "success", "status_message": "server updated successfully"}`)
	wantJSON(t, i.Do("POST", "/v4/ase/firewall/flowcontrol/server?api_id=ws",
		`{"server": {"host": "127.0.0.1", "port": 8080, "server_connection_quota": 100000}}`, nil), 200,
		`{"status": "success", "status_message": "server updated successfully"}`)
	wantStatus(t, i.Do("POST", "/v4/ase/firewall/flowcontrol/server?api_id=rest", `{"server": {"host": "127.0.0.2", "port": 8080, "server_connection_quota": 1}}`, nil), 404, "server_not_found", "server does not exist")
	wantStatus(t, i.Do("POST", "/v4/ase/firewall/flowcontrol/server?api_id=nope", `{"server": {"host": "127.0.0.2", "port": 8080}}`, nil), 404, "api_not_found", "api nope does not exist")
	settleHealth(t, i, "rest") // the seed checks health; nothing listens there
	wantJSON(t, i.Do("GET", "/v4/ase/server?api_id=rest", "", nil), 200, `{"api_id": "rest", "server_count": 2, "server": [
		{"host": "127.0.0.1", "port": 8080, "server_spike_threshold": "10/second", "server_connection_quota": 1000, "health_status": "Down"},
		{"host": "127.0.0.1", "port": 8081, "server_spike_threshold": "0/second", "server_connection_quota": 0, "health_status": "Down"}]}`)
}

func TestStatus(t *testing.T) {
	i := startInstance(t, map[string]string{"attack_list_memory": "64MB", "timezone": "local", "admin_log_level": "5"})
	var s map[string]any
	decode(t, i.Do("GET", "/v5/ase/status", "", nil), &s)
	want := map[string]any{
		"status": "started", "mode": "inline", "firewall": "enabled", "https_wss": "disabled",
		"sideband_authentication": "disabled", "ase_detected_attack": "disabled", "audit": "enabled",
		"attack_list_memory": "configured 64.00 MB, used 0.00 MB, free 64.00 MB",
		"log_level":          "debug", "timezone": "local", "admin_password": "default", "cluster": "disabled",
		"http_ws": "port " + i.Conf["http_ws_port"],
	}
	for k, v := range want {
		if s[k] != v {
			t.Errorf("status %s: got %v, want %v", k, s[k], v)
		}
	}
	if !strings.Contains(i.Output(), "admin password is still the default") {
		t.Error("no start-up warning about the default password")
	}
}

func TestHealthStatusFollowsBackends(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer backend.Close()
	livePort := backend.Listener.Addr().(*net.TCPAddr).Port
	deadPort := freePort(t)

	i := startInstance(t, nil)
	def := apiDoc("/h", fmt.Sprintf(`"health_check": true, "health_check_interval": 1, "health_retry_count": 1,
		"servers": [{"host": "127.0.0.1", "port": %d}, {"host": "127.0.0.1", "port": %d}]`, livePort, deadPort))
	wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=h", def, nil), 200, ok)
	want := map[int]string{livePort: "Up", deadPort: "Down"}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var l struct {
			Server []struct {
				Port   int    `json:"port"`
				Health string `json:"health_status"`
			} `json:"server"`
		}
		decode(t, i.Do("GET", "/v5/ase/server?api_id=h", "", nil), &l)
		good := len(l.Server) == 2
		for _, s := range l.Server {
			good = good && s.Health == want[s.Port]
		}
		if good {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("health never became %v: got %+v", want, l.Server)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A server added through the API is probed at once.
	wantJSON(t, i.Do("POST", "/v5/ase/server?api_id=h", fmt.Sprintf(`{"server": {"host": "127.0.0.1", "port": %d}}`, freePort(t)), nil), 200, ok)
	out, _, _ := i.CLI("", "health_status", "h")
	if strings.Count(out, "Down") > 2 || !strings.Contains(out, "Up") {
		t.Fatalf("got %q", out)
	}
}
