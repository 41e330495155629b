package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// dataURL is the instance's HTTP data port.
func (i *Instance) dataURL() string { return "http://127.0.0.1:" + i.Conf["http_ws_port"] }

// Data sends a request to the data port.
func (i *Instance) Data(method, path, body string, headers map[string]string) Reply {
	i.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, i.dataURL()+path, rd)
	if err != nil {
		i.t.Fatal(err)
	}
	for k, v := range headers {
		if strings.EqualFold(k, "Host") {
			req.Host = v
		} else {
			req.Header.Set(k, v)
		}
	}
	return i.send(req)
}

func startSideband(t *testing.T, conf map[string]string) *Instance {
	t.Helper()
	i := newSideband(t, conf)
	i.Start()
	addSidebandAPIs(t, i)
	return i
}

// newSideband prepares (without starting) a sideband server.
func newSideband(t *testing.T, conf map[string]string) *Instance {
	t.Helper()
	c := map[string]string{"mode": "sideband"}
	for k, v := range conf {
		c[k] = v
	}
	return newInstance(t, c)
}

// addSidebandAPIs defines the APIs the sideband tests ask about: shop and
// monitor (monitor-only).
func addSidebandAPIs(t *testing.T, i *Instance) {
	t.Helper()
	shop := apiDoc("/shop", `"cookie": "SID", "oauth2_access_token": true, "apikey_header": "X-API-Key",
		"api_pattern_enforcement": {"methods_allowed": ["GET", "POST"], "error_code": "405", "error_def": "Method Not Allowed", "error_message_body": "no such method"},
		"decoy_config": {"decoy_enabled": true, "decoy_subpaths": ["/admin"], "response_code": 200, "response_message": "welcome, admin"}`)
	wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=shop", shop, nil), 200, ok)
	wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=monitor", apiDoc("/monitor", `"enable_blocking": false`), nil), 200, ok)
}

func aseCall(sourceIP, method, url string, headers string) string {
	return fmt.Sprintf(`{"source_ip": %q, "source_port": "40000", "method": %q, "url": %q, "http_version": "1.1", "headers": [%s]}`, sourceIP, method, url, headers)
}

func TestASEProtocol(t *testing.T) {
	i := startSideband(t, nil)
	wantStatus(t, i.Do("POST", "/v5/ase/firewall/blacklist", `{"type": "ip", "value": "203.0.113.66"}`, nil), 200, "success", "ip 203.0.113.66 added to blacklist")
	wantStatus(t, i.Do("POST", "/v5/ase/firewall/blacklist", `{"type": "token", "value": "stolen-token"}`, nil), 200, "success", "token stolen-token added to blacklist")

	tests := []struct {
		name, body string
		code       int
		want       string // JSON the reply must equal
	}{
		{"allow", aseCall("198.51.100.1", "GET", "/shop/items", `{"Host": "shop.example.com"}`), 200, `{"decision": "allow", "api_id": "shop"}`},
		{"deny ip", aseCall("203.0.113.66", "GET", "/shop/items", `{"Host": "shop.example.com"}`), 403,
			`{"decision": "block", "api_id": "shop", "reason": "deny_list", "response": {"response_code": "403", "response_status": "Forbidden", "headers": [{"content-type": "text/plain"}], "body": "Error: Unauthorized"}}`},
		{"deny token, header any case", aseCall("198.51.100.1", "GET", "/shop/items", `{"AUTHORIZATION": "Bearer stolen-token"}`), 403, ""},
		{"pattern", aseCall("198.51.100.1", "DELETE", "/shop/items", ``), 403,
			`{"decision": "block", "api_id": "shop", "reason": "invalid_method", "response": {"response_code": "405", "response_status": "Method Not Allowed", "headers": [{"content-type": "text/plain"}], "body": "no such method"}}`},
		{"monitor only", aseCall("203.0.113.66", "GET", "/monitor", ``), 200, `{"decision": "allow", "api_id": "monitor", "reason": "deny_list", "monitor": true}`},
		{"numeric port, absolute url, HTTP/ version", `{"source_ip": "198.51.100.1", "source_port": 40000, "method": "GET", "url": "http://shop.example.com/shop/x?y=1", "http_version": "HTTP/1.1"}`, 200, ""},
		{"no version, repeated headers", `{"source_ip": "198.51.100.1", "method": "GET", "url": "/shop", "headers": [{"Cookie": "a=1"}, {"cookie": "b=2"}, {"x-multi": ["1", "2"]}]}`, 200, ""},
		{"unknown api", aseCall("198.51.100.1", "GET", "/nothing", ``), 503, `{"status": "fail", "status_message": "Error: Unknown API"}`},
		{"truncated", `{"source_ip": "198.51.100.1", "method": `, 400, ""},
		{"wrong type", `{"source_ip": 5, "method": "GET", "url": "/shop"}`, 400, `{"status": "fail", "status_message": "source_ip must be a string"}`},
		{"bad ip", `{"source_ip": "999.1.1.1", "method": "GET", "url": "/shop"}`, 400, ""},
		{"missing url", `{"source_ip": "198.51.100.1", "method": "GET"}`, 400, `{"status": "fail", "status_message": "url is required"}`},
		{"unknown field", `{"source_ip": "198.51.100.1", "method": "GET", "url": "/shop", "colour": "red"}`, 400, `{"status": "fail", "status_message": "unknown field \"colour\""}`},
		{"bad port", `{"source_ip": "198.51.100.1", "source_port": "x", "method": "GET", "url": "/shop"}`, 400, ""},
		{"bad headers", `{"source_ip": "198.51.100.1", "method": "GET", "url": "/shop", "headers": {"a": "b"}}`, 400, ""},
		{"not an object", `[]`, 400, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := i.Data("POST", "/ase/request", tt.body, map[string]string{"Content-Type": "application/json"})
			if r.Code != tt.code {
				t.Fatalf("got %d %s, want %d", r.Code, r.Body, tt.code)
			}
			if tt.want != "" {
				wantJSON(t, r, tt.code, tt.want)
			}
			if !r.Close {
				t.Error("no Connection: close although sideband keep-alive is off")
			}
		})
	}
	var headers []string
	for n := 0; n < 300; n++ {
		headers = append(headers, fmt.Sprintf(`{"x-h%d": "v"}`, n))
	}
	if r := i.Data("POST", "/ase/request", aseCall("198.51.100.1", "GET", "/shop", strings.Join(headers, ",")), nil); r.Code != 400 || !strings.Contains(string(r.Body), "more than 256 headers") {
		t.Fatalf("huge header list: got %d %s", r.Code, r.Body)
	}
	if r := i.Data("GET", "/ase/request", "", nil); r.Code != 405 {
		t.Fatalf("GET /ase/request: got %d", r.Code)
	}

	// The response call, paired with the request by X-CorrelationID.
	i.Data("POST", "/ase/request", aseCall("198.51.100.7", "GET", "/shop/pair", ``), map[string]string{"X-CorrelationID": "corr-42"})
	r := i.Data("POST", "/ase/response", `{"response_code": "200", "response_status": "OK", "http_version": "1.1", "headers": [{"Content-Type": "application/json"}]}`, map[string]string{"X-CorrelationID": "corr-42"})
	wantJSON(t, r, 200, `{"decision": "allow"}`)
	wantJSON(t, i.Data("POST", "/ase/response", `{"response_code": 200}`, nil), 200, `{"decision": "allow"}`)
	if r := i.Data("POST", "/ase/response", `{"response_code": "abc"}`, nil); r.Code != 400 {
		t.Fatalf("got %d", r.Code)
	}
	lines := accessLog(t, i, 2, func(l map[string]any) bool { return l["correlation_id"] == "corr-42" })
	if len(lines) != 2 || lines[0]["call"] != "request" || lines[1]["call"] != "response" || lines[0]["path"] != "/shop/pair" {
		t.Fatalf("correlated access log lines: %v", lines)
	}
}

// accessLog returns the access log lines matching keep, waiting (for the
// asynchronous writer) until there are at least want of them.
func accessLog(t *testing.T, i *Instance, want int, keep func(map[string]any) bool) []map[string]any {
	t.Helper()
	var out []map[string]any
	deadline := time.Now().Add(10 * time.Second)
	for {
		out = out[:0]
		f, err := os.Open(filepath.Join(i.Conf["data_dir"], "logs", "access.log"))
		if err == nil {
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				var l map[string]any
				if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
					t.Fatalf("access log line is not JSON: %s", sc.Text())
				}
				if keep(l) {
					out = append(out, l)
				}
			}
			f.Close()
		}
		if len(out) >= want || time.Now().After(deadline) {
			return out
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestSidebandKeepAlive(t *testing.T) {
	i := startSideband(t, map[string]string{"enable_sideband_keepalive": "true"})
	conn, err := net.Dial("tcp", "127.0.0.1:"+i.Conf["http_ws_port"])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := aseCall("198.51.100.1", "GET", "/shop", ``)
	br := bufio.NewReader(conn)
	for n := 0; n < 3; n++ {
		fmt.Fprintf(conn, "POST /ase/request HTTP/1.1\r\nHost: ase\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("call %d on one connection: %v", n, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Close {
			t.Fatalf("call %d: %d, close=%v", n, resp.StatusCode, resp.Close)
		}
	}
}

func TestAuthorizeProtocol(t *testing.T) {
	i := startSideband(t, nil)
	wantStatus(t, i.Do("POST", "/v5/ase/firewall/blacklist", `{"type": "username", "value": "mallory"}`, nil), 200, "success", "username mallory added to blacklist")
	allowBody := `{"source_ip": "198.51.100.1", "source_port": "1234", "method": "POST", "url": "https://shop.example.com/shop/cart", "http_version": "1.1", "headers": [{"content-type": "application/json"}], "body": "{\"item\": 1}"}`
	r := i.Data("POST", "/sideband/request", allowBody, nil)
	if r.Code != 200 || string(r.Body) != allowBody {
		t.Fatalf("allow must echo the request: got %d %s", r.Code, r.Body)
	}
	deny := `{"source_ip": "198.51.100.1", "method": "GET", "url": "/shop/cart", "user_info": [{"username": "mallory"}], "body": ""}`
	wantJSON(t, i.Data("POST", "/sideband/request", deny, nil), 200,
		`{"response": {"response_code": "403", "response_status": "Forbidden", "headers": [{"content-type": "text/plain"}], "body": "Error: Unauthorized"}}`)
	decoy := `{"source_ip": "198.51.100.2", "method": "GET", "url": "/shop/admin/users", "body": ""}`
	wantJSON(t, i.Data("POST", "/sideband/request", decoy, nil), 200,
		`{"response": {"response_code": "200", "response_status": "OK", "headers": [{"content-type": "text/plain"}], "body": "welcome, admin"}}`)
	resp := `{"response_code": "200", "response_status": "OK", "headers": [{"content-type": "text/plain"}], "body": "hello", "request": {"method": "GET"}}`
	if r := i.Data("POST", "/sideband/response", resp, nil); r.Code != 200 || string(r.Body) != resp {
		t.Fatalf("the response must pass unchanged: got %d %s", r.Code, r.Body)
	}
	if r := i.Data("POST", "/sideband/request", `{"source_ip": "198.51.100.1", "method": "GET", "url": "/shop", "body": 5}`, nil); r.Code != 400 {
		t.Fatalf("body of the wrong type: got %d", r.Code)
	}
}

func TestForwardAuth(t *testing.T) {
	i := startSideband(t, nil)
	wantStatus(t, i.Do("POST", "/v5/ase/firewall/blacklist", `{"type": "ip", "value": "203.0.113.66"}`, nil), 200, "success", "ip 203.0.113.66 added to blacklist")
	wantStatus(t, i.Do("POST", "/v5/ase/firewall/blacklist", `{"type": "api_key", "name": "X-API-Key", "value": "leaked"}`, nil), 200, "success", "api_key X-API-Key leaked added to blacklist")
	tests := []struct {
		name, method, path string
		headers            map[string]string
		code               int
		reason             string
	}{
		{"nginx allow", "GET", "/ase/authz", map[string]string{"X-Original-URI": "/shop/items?a=1", "X-Original-Method": "GET", "X-Real-IP": "198.51.100.1"}, 200, ""},
		{"nginx deny ip", "GET", "/ase/authz", map[string]string{"X-Original-URI": "/shop/items", "X-Original-Method": "GET", "X-Real-IP": "203.0.113.66"}, 403, "deny_list"},
		{"traefik deny xff", "GET", "/ase/authz", map[string]string{"X-Forwarded-Uri": "/shop/items", "X-Forwarded-Method": "GET", "X-Forwarded-Host": "shop.example.com", "X-Forwarded-Proto": "https", "X-Forwarded-For": "10.0.0.1, 203.0.113.66"}, 403, "deny_list"},
		{"traefik spoofed left xff", "GET", "/ase/authz", map[string]string{"X-Forwarded-Uri": "/shop/items", "X-Forwarded-Method": "GET", "X-Forwarded-For": "203.0.113.66, 198.51.100.1"}, 200, ""},
		{"envoy path", "PUT", "/ase/authz/shop/items", map[string]string{"X-Forwarded-For": "198.51.100.1"}, 403, "invalid_method"},
		{"api key", "GET", "/ase/authz", map[string]string{"X-Original-URI": "/shop/items", "X-API-Key": "leaked", "X-Real-IP": "198.51.100.1"}, 403, "deny_list"},
		{"decoy", "GET", "/ase/authz", map[string]string{"X-Original-URI": "/shop/admin", "X-Real-IP": "198.51.100.9"}, 403, "decoy"},
		{"unknown api", "GET", "/ase/authz", map[string]string{"X-Original-URI": "/elsewhere", "X-Real-IP": "198.51.100.1"}, 403, "unknown_api"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := i.Data(tt.method, tt.path, "", tt.headers)
			if r.Code != tt.code || r.Header.Get("X-ASE-Reason") != tt.reason {
				t.Fatalf("got %d reason %q %s, want %d %q", r.Code, r.Header.Get("X-ASE-Reason"), r.Body, tt.code, tt.reason)
			}
			if tt.code == 200 && (r.Header.Get("X-ASE-API-ID") != "shop" || r.Header.Get("X-ASE-Client-IP") == "") {
				t.Fatalf("allow without identity headers: %v", r.Header)
			}
		})
	}
}

func TestSidebandAuthenticationAndTokens(t *testing.T) {
	i := startSideband(t, nil)
	wantJSON(t, i.Do("GET", "/v5/ase/sideband/authentication", "", nil), 200, `{"status": "disabled", "status_message": "Sideband authentication is disabled"}`)
	wantJSON(t, i.Do("POST", "/v5/ase/sideband/authentication?status=enable", "", nil), 200, `{"status": "enabled", "status_message": "Sideband authentication is enabled"}`)
	wantJSON(t, i.Do("GET", "/v5/ase/sideband/authentication", "", nil), 200, `{"status": "enabled", "status_message": "Sideband authentication is enabled"}`)
	wantStatus(t, i.Do("POST", "/v5/ase/sideband/authentication?status=maybe", "", nil), 403, "invalid_value", "query parameter status contains invalid value")

	call := aseCall("198.51.100.1", "GET", "/shop", ``)
	wantJSON(t, i.Data("POST", "/ase/request", call, nil), 401, `{"status": "fail", "status_message": "sideband authentication failed"}`)
	if r := i.Data("GET", "/ase/authz", "", map[string]string{"X-Original-URI": "/shop"}); r.Code != 401 {
		t.Fatalf("forward-auth without a token: %d", r.Code)
	}

	var created struct{ Status, Token string }
	decode(t, i.Do("POST", "/v5/ase/sideband/token", "", nil), &created)
	if created.Status != "token_created" || !regexp.MustCompile(`^[a-z0-9]{32}$`).MatchString(created.Token) {
		t.Fatalf("got %+v", created)
	}
	wantJSON(t, i.Data("POST", "/ase/request", call, map[string]string{"ASE-Token": created.Token}), 200, `{"decision": "allow", "api_id": "shop"}`)
	if r := i.Data("POST", "/ase/request", call, map[string]string{"ASE-Token": created.Token + "x"}); r.Code != 401 {
		t.Fatalf("wrong token: %d", r.Code)
	}

	imported := "dc6684370f014923b8a070c982601f75"
	wantJSON(t, i.Do("PUT", "/v5/ase/sideband/token", `{   "token": "`+imported+`"}`, nil), 200, `{"status": "success", "status_message": "Sideband token dc6684370f014923b8a070c982601f75 imported."}`)
	wantStatus(t, i.Do("PUT", "/v5/ase/sideband/token", `{"token": "`+imported+`"}`, nil), 403, "fail", "Sideband token dc6684370f014923b8a070c982601f75 already exists.")
	for _, badTok := range []string{"short", "DC6684370F014923B8A070C982601F75", "dc6684370f014923b8a070c982601f7!", ""} {
		wantStatus(t, i.Do("PUT", "/v5/ase/sideband/token", `{"token": "`+badTok+`"}`, nil), 403, "validation_error", "the token must be 32 characters of lower-case letters and digits")
	}
	var list struct {
		Tokens []struct {
			Token     string `json:"token"`
			CreatedAt string `json:"created_at"`
		} `json:"sideband_tokens"`
	}
	decode(t, i.Do("GET", "/v5/ase/sideband/token", "", nil), &list)
	if len(list.Tokens) != 2 || !regexp.MustCompile(`^\d{4}-[A-Z][a-z]{2}-\d{2} \d{2}:\d{2}:\d{2}$`).MatchString(list.Tokens[0].CreatedAt) {
		t.Fatalf("got %+v", list)
	}
	wantJSON(t, i.Do("DELETE", "/v5/ase/sideband/token", `{"token": "`+imported+`"}`, nil), 200, `{"status": "success", "status_message": "Sideband token dc6684370f014923b8a070c982601f75 deleted."}`)
	wantStatus(t, i.Do("DELETE", "/v5/ase/sideband/token", `{"token": "`+imported+`"}`, nil), 404, "fail", "Sideband token dc6684370f014923b8a070c982601f75 does not exist.")

	// The CLI.
	out, _, code := i.CLI("", "create_sideband_token")
	if code != 0 || !regexp.MustCompile(`^sideband token created: [a-z0-9]{32}\n$`).MatchString(out) {
		t.Fatalf("got %q %d", out, code)
	}
	out, _, _ = i.CLI("", "import_sideband_token", imported)
	if out != "Sideband token dc6684370f014923b8a070c982601f75 imported.\n" {
		t.Fatalf("got %q", out)
	}
	out, _, _ = i.CLI("", "list_sideband_token")
	if !strings.HasPrefix(out, "sideband tokens : 3\n") {
		t.Fatalf("got %q", out)
	}
	out, _, _ = i.CLI("", "delete_sideband_token", imported)
	if out != "Sideband token dc6684370f014923b8a070c982601f75 deleted.\n" {
		t.Fatalf("got %q", out)
	}
	if out, _, _ := i.CLI("", "disable_sideband_authentication"); out != "Sideband authentication is disabled\n" {
		t.Fatalf("got %q", out)
	}
	wantJSON(t, i.Data("POST", "/ase/request", call, nil), 200, `{"decision": "allow", "api_id": "shop"}`)
	// Survives a restart, as does the setting.
	i.Restart()
	wantJSON(t, i.Do("GET", "/v5/ase/sideband/authentication", "", nil), 200, `{"status": "disabled", "status_message": "Sideband authentication is disabled"}`)
	decode(t, i.Do("GET", "/v5/ase/sideband/token", "", nil), &list)
	if len(list.Tokens) != 2 {
		t.Fatalf("got %d tokens after restart", len(list.Tokens))
	}
}

func TestSharedSecrets(t *testing.T) {
	i := startSideband(t, map[string]string{"enable_sideband_authentication": "true"})
	call := `{"source_ip": "198.51.100.1", "method": "GET", "url": "/shop", "body": ""}`
	wantStatus(t, i.Do("POST", "/v5/ase/sideband/secret", `{"name": "Shared Secret A", "secret": "secret123"}`, nil), 200, "success", "shared secret Shared Secret A created; it is accepted once activated")
	wantStatus(t, i.Do("POST", "/v5/ase/sideband/secret", `{"name": "Shared Secret A", "secret": "secret456"}`, nil), 403, "fail", "shared secret Shared Secret A already exists")
	wantStatus(t, i.Do("POST", "/v5/ase/sideband/secret", `{"name": "short", "secret": "1234567"}`, nil), 403, "validation_error", "the secret must have at least 8 characters")
	wantStatus(t, i.Do("POST", "/v5/ase/sideband/secret", `{"name": "", "secret": "12345678"}`, nil), 403, "validation_error", "the secret name must be 1 to 64 printable characters")

	// Not accepted until activated.
	if r := i.Data("POST", "/sideband/request", call, map[string]string{"CLIENT-TOKEN": "secret123"}); r.Code != 401 {
		t.Fatalf("inactive secret accepted: %d", r.Code)
	}
	wantStatus(t, i.Do("PUT", "/v5/ase/sideband/secret", `{"name": "Shared Secret A", "active": true}`, nil), 200, "success", "shared secret Shared Secret A is now active")
	if r := i.Data("POST", "/sideband/request", call, map[string]string{"CLIENT-TOKEN": "secret123"}); r.Code != 200 {
		t.Fatalf("active secret refused: %d %s", r.Code, r.Body)
	}
	if r := i.Data("POST", "/sideband/request", call, map[string]string{"CLIENT-TOKEN": "secret124"}); r.Code != 401 {
		t.Fatalf("wrong secret accepted: %d", r.Code)
	}
	// Rotation: a second active secret, then the first removed.
	wantStatus(t, i.Do("POST", "/v5/ase/sideband/secret", `{"name": "B", "secret": "next-secret-b"}`, nil), 200, "success", "*")
	wantStatus(t, i.Do("PUT", "/v5/ase/sideband/secret", `{"name": "B", "active": true}`, nil), 200, "success", "shared secret B is now active")
	for _, s := range []string{"secret123", "next-secret-b"} {
		if r := i.Data("POST", "/sideband/request", call, map[string]string{"CLIENT-TOKEN": s}); r.Code != 200 {
			t.Fatalf("during rotation %s refused: %d", s, r.Code)
		}
	}
	wantStatus(t, i.Do("DELETE", "/v5/ase/sideband/secret", `{"name": "Shared Secret A"}`, nil), 403, "secret_in_use", "shared secret Shared Secret A is active: deactivate it before deleting it")
	wantStatus(t, i.Do("PUT", "/v5/ase/sideband/secret", `{"name": "Shared Secret A", "active": false}`, nil), 200, "success", "shared secret Shared Secret A is now inactive")
	if r := i.Data("POST", "/sideband/request", call, map[string]string{"CLIENT-TOKEN": "secret123"}); r.Code != 401 {
		t.Fatalf("deactivated secret accepted: %d", r.Code)
	}
	wantStatus(t, i.Do("DELETE", "/v5/ase/sideband/secret", `{"name": "Shared Secret A"}`, nil), 200, "success", "shared secret Shared Secret A deleted")
	wantStatus(t, i.Do("DELETE", "/v5/ase/sideband/secret", `{"name": "Shared Secret A"}`, nil), 404, "fail", "shared secret Shared Secret A does not exist")

	// Listing never shows a value.
	r := i.Do("GET", "/v5/ase/sideband/secret", "", nil)
	if strings.Contains(string(r.Body), "next-secret-b") || !strings.Contains(string(r.Body), `"name": "B"`) || !strings.Contains(string(r.Body), `"active": true`) {
		t.Fatalf("got %s", r.Body)
	}

	// A custom header, then back to the default on DELETE.
	wantJSON(t, i.Do("GET", "/v5/ase/sideband/secret/header", "", nil), 200, `{"header": "CLIENT-TOKEN"}`)
	wantStatus(t, i.Do("PUT", "/v5/ase/sideband/secret/header", `{"header": "x-shared-secret"}`, nil), 200, "success", "shared secret header is now X-Shared-Secret")
	if r := i.Data("POST", "/sideband/request", call, map[string]string{"CLIENT-TOKEN": "next-secret-b"}); r.Code != 401 {
		t.Fatalf("the old header still works: %d", r.Code)
	}
	if r := i.Data("POST", "/sideband/request", call, map[string]string{"X-Shared-Secret": "next-secret-b"}); r.Code != 200 {
		t.Fatalf("the new header does not work: %d", r.Code)
	}
	wantStatus(t, i.Do("PUT", "/v5/ase/sideband/secret/header", `{"header": "bad header"}`, nil), 403, "validation_error", "the header must be a valid HTTP header name")
	wantStatus(t, i.Do("DELETE", "/v5/ase/sideband/secret/header", "", nil), 200, "success", "shared secret header reset to CLIENT-TOKEN")
	wantJSON(t, i.Do("GET", "/v5/ase/sideband/secret/header", "", nil), 200, `{"header": "CLIENT-TOKEN"}`)
	// A secret works on every protocol.
	if r := i.Data("POST", "/ase/request", aseCall("198.51.100.1", "GET", "/shop", ``), map[string]string{"CLIENT-TOKEN": "next-secret-b"}); r.Code != 200 {
		t.Fatalf("ASE protocol: %d", r.Code)
	}
	if r := i.Data("GET", "/ase/authz", "", map[string]string{"CLIENT-TOKEN": "next-secret-b", "X-Original-URI": "/shop"}); r.Code != 200 {
		t.Fatalf("forward-auth: %d", r.Code)
	}

	// The CLI prompts for the value (a line of stdin here).
	out, stderr, code := i.CLI("cli-secret-1\n", "create_shared_secret", "C")
	if code != 0 || out != "shared secret C created; it is accepted once activated\n" {
		t.Fatalf("got %q %q %d", out, stderr, code)
	}
	out, _, _ = i.CLI("", "list_shared_secret")
	if !hasLine(out, "B active created "+strings.Fields(out)[len(strings.Fields(out))-1]) && !strings.Contains(out, "C  inactive") {
		t.Fatalf("got %q", out)
	}
	// No secret value is ever logged.
	i.Stop()
	for _, f := range []string{"audit.log", "access.log"} {
		b, _ := os.ReadFile(filepath.Join(i.Conf["data_dir"], "logs", f))
		for _, s := range []string{"secret123", "next-secret-b", "cli-secret-1"} {
			if strings.Contains(string(b), s) {
				t.Errorf("%s contains the secret %s", f, s)
			}
		}
	}
	if strings.Contains(i.Output(), "secret123") {
		t.Error("the server log contains a secret")
	}
}

func TestDecoyInSidebandListsAttacker(t *testing.T) {
	i := startSideband(t, map[string]string{"enable_ase_detected_attack": "true"})
	decoy := aseCall("192.0.2.77", "GET", "/shop/admin/config", `{"Cookie": "SID=attacker-session"}`)
	r := i.Data("POST", "/ase/request", decoy, nil)
	wantJSON(t, r, 403, `{"decision": "block", "api_id": "shop", "reason": "decoy", "response": {"response_code": "200", "response_status": "OK", "headers": [{"content-type": "text/plain"}], "body": "welcome, admin"}}`)
	// From then on the attacker is refused on the real API, by address and
	// by session cookie.
	deadline := time.Now().Add(10 * time.Second)
	for {
		r = i.Data("POST", "/ase/request", aseCall("192.0.2.77", "GET", "/shop/items", ``), nil)
		if r.Code == 403 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	wantJSON(t, r, 403, `{"decision": "block", "api_id": "shop", "reason": "deny_list", "response": {"response_code": "403", "response_status": "Forbidden", "headers": [{"content-type": "text/plain"}], "body": "Error: Unauthorized"}}`)
	if r := i.Data("POST", "/ase/request", aseCall("198.51.100.200", "GET", "/shop/items", `{"Cookie": "SID=attacker-session"}`), nil); r.Code != 403 {
		t.Fatalf("the attacker's cookie from another address: %d", r.Code)
	}
	var decoys map[string][]viewEntry
	decode(t, i.Do("GET", "/v5/ase/firewall/blacklist?tag=decoy", "", nil), &decoys)
	if d := decoys["decoy_blacklist"]; len(decoys) != 1 || len(d) != 2 || d[0].describe() != "cookie SID attacker-session" || d[1].describe() != "ip 192.0.2.77" || d[0].Tag != "decoy" {
		t.Fatalf("decoy entries: %+v", decoys)
	}
	// A pattern violation lists under its own tag.
	i.Data("POST", "/ase/request", aseCall("192.0.2.78", "PATCH", "/shop/items", ``), nil)
	waitUntil(t, func() bool {
		var v map[string][]any
		decode(t, i.Do("GET", "/v5/ase/firewall/blacklist?tag=invalid_method", "", nil), &v)
		return len(v["invalid_method_blacklist"]) == 1
	})
	// Disabling ASE-detected attacks removes what it added.
	wantStatus(t, i.Do("POST", "/v5/ase/firewall/ase_detected_attack?status=disable", "", nil), 200, "disabled", "ASE detected attack is now disabled")
	var v map[string][]any
	decode(t, i.Do("GET", "/v5/ase/firewall/blacklist", "", nil), &v)
	for k, entries := range v {
		if len(entries) != 0 {
			t.Fatalf("%s still holds %v", k, entries)
		}
	}
	wantJSON(t, i.Data("POST", "/ase/request", aseCall("192.0.2.77", "GET", "/shop/items", ``), nil), 200, `{"decision": "allow", "api_id": "shop"}`)
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestTTLEntryExpiresInService(t *testing.T) {
	i := newSideband(t, nil)
	clock := withTestClock(t, i)
	i.Start()
	addSidebandAPIs(t, i)
	wantStatus(t, i.Do("POST", "/v5/ase/firewall/blacklist", `{"type": "ip", "value": "192.0.2.44", "ttl": 3600}`, nil), 200, "success", "ip 192.0.2.44 added to blacklist")
	call := aseCall("192.0.2.44", "GET", "/shop", ``)
	// Listed until its expiry, an hour after it was added...
	clock.Advance(59 * time.Minute)
	if r := i.Data("POST", "/ase/request", call, nil); r.Code != 403 {
		t.Fatalf("listed client allowed a minute before the entry's expiry: %d", r.Code)
	}
	if r := i.Do("GET", "/v5/ase/firewall/blacklist?tag=manual", "", nil); r.Code != 200 || !strings.Contains(string(r.Body), "192.0.2.44") {
		t.Fatalf("the entry left the view before its expiry: %d %s", r.Code, r.Body)
	}
	// ...then it stops matching and leaves the view, without any operator
	// action.
	clock.Advance(2 * time.Minute)
	wantJSON(t, i.Data("POST", "/ase/request", call, nil), 200, `{"decision": "allow", "api_id": "shop"}`)
	wantJSON(t, i.Do("GET", "/v5/ase/firewall/blacklist?tag=manual", "", nil), 200, `{"manual_blacklist": []}`)
	// And it is gone from the store too: a restart does not bring it back.
	i.Restart()
	wantJSON(t, i.Do("GET", "/v5/ase/firewall/blacklist?tag=manual", "", nil), 200, `{"manual_blacklist": []}`)
}
