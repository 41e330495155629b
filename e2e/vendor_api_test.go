package e2e

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Issue 16, point 2: the vendor's API JSON files load unchanged, and the
// username they configure (username_header, the jwt object) is read on
// every data path, checked against the lists and logged.

// vendorFile reads one of the vendor's complete API JSON files kept with
// apidef (their sources: internal/apidef/testdata/vendor/README.md).
func vendorFile(t testing.TB, name string) string {
	t.Helper()
	return seed(t, "vendor/"+name)
}

// okIgnoringTokenMandatory is the reply to a vendor file that sets
// is_token_mandatory false: accepted, and the field reported as meaning
// nothing here.
const okIgnoringTokenMandatory = `{"status": "success", "status_message": "success", "ignored": [
	"api_metadata.is_token_mandatory: ignored: false asks for nothing (ASE never blocks a request for lacking a token)"]}`

var vendorFiles = []string{"inline_rest_api.json", "sideband_api.json", "sideband_pingfederate.json", "sideband_nginx_plus_identity.json"}

// jwt returns an unsigned-looking JWT (ASE never validates one) whose
// payload is the JSON claims.
func jwt(claims string) string {
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(`{"alg":"RS256","typ":"JWT"}`)) + "." + enc.EncodeToString([]byte(claims)) + ".c2lnbmF0dXJl"
}

// dataRequest sends a request to the data port with every value of each
// header field as its own field line.
func (i *Instance) dataRequest(method, path string, header http.Header) Reply {
	i.t.Helper()
	req, err := http.NewRequest(method, i.dataURL()+path, nil)
	if err != nil {
		i.t.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	return i.send(req)
}

func TestVendorAPIFilesLoad(t *testing.T) {
	// As the vendor ships them: files in the API folder, loaded at start.
	dir := t.TempDir()
	for _, name := range vendorFiles {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(vendorFile(t, name)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	i := startInstance(t, map[string]string{"api_dir": dir})
	wantJSON(t, i.Do("GET", "/v5/ase/api", "", nil), 200, `{"api_count": "4", "api": [
		{"api_id": "inline_rest_api", "status": "loaded"}, {"api_id": "sideband_api", "status": "loaded"},
		{"api_id": "sideband_nginx_plus_identity", "status": "loaded"}, {"api_id": "sideband_pingfederate", "status": "loaded"}]}`)
	// Read back with the username fields as given.
	var doc struct {
		Meta map[string]any `json:"api_metadata"`
	}
	decode(t, i.Do("GET", "/v5/ase/api?api_id=inline_rest_api", "", nil), &doc)
	if doc.Meta["username_header"] != "x-username-header" || fmt.Sprint(doc.Meta["jwt"]) != "map[clientid:client_id location:h:authorization:bearer username:username]" {
		t.Fatalf("read back: username_header %v, jwt %v", doc.Meta["username_header"], doc.Meta["jwt"])
	}

	// The fields meaning nothing here are said once at start, and by
	// serve --check, which names the same ones.
	const note = `api_metadata.is_token_mandatory: ignored: false asks for nothing (ASE never blocks a request for lacking a token)`
	for _, id := range []string{"inline_rest_api", "sideband_api"} {
		if n := strings.Count(i.Output(), "api_dir: "+id+".json: "+note); n != 1 {
			t.Errorf("%s: its ignored field logged %d times at start, want once", id, n)
		}
	}
	stdout, stderr, code := i.CLIEnv(nil, "", "serve", "--check", "--config", i.ConfPath)
	if code != 0 || !strings.HasSuffix(stdout, "; configuration OK; 4 API definitions in api_dir OK\n") {
		t.Fatalf("--check: %d\n%s\n%s", code, stdout, stderr)
	}
	for _, id := range []string{"inline_rest_api", "sideband_api"} {
		if !strings.Contains(stdout, "\n; api_dir: "+id+".json: "+note+"\n") {
			t.Errorf("--check does not report %s's ignored field:\n%s", id, stdout)
		}
	}
	if n := strings.Count(stdout, "; api_dir: "); n != 2 {
		t.Errorf("--check reports %d ignored API fields, want 2:\n%s", n, stdout)
	}

	// Through the management API and the CLI, unchanged.
	s := startInstance(t, map[string]string{"mode": "sideband"})
	for _, name := range vendorFiles {
		r := s.Do("POST", "/v5/ase/api?api_id="+strings.TrimSuffix(name, ".json"), vendorFile(t, name), nil)
		var reply struct {
			Status  string   `json:"status"`
			Ignored []string `json:"ignored"`
		}
		decode(t, r, &reply)
		if r.Code != 200 || reply.Status != "success" {
			t.Fatalf("%s: %d %s", name, r.Code, r.Body)
		}
		// A vendor field that means nothing here is accepted and said.
		if strings.Contains(vendorFile(t, name), "is_token_mandatory") != (len(reply.Ignored) == 1 && strings.HasPrefix(reply.Ignored[0], "api_metadata.is_token_mandatory: ignored")) {
			t.Fatalf("%s: ignored fields reported %q", name, reply.Ignored)
		}
	}
	// ... and logged once when the API is loaded (here from api_dir).
	if !strings.Contains(i.Output(), "api_metadata.is_token_mandatory: ignored") {
		t.Fatalf("the ignored vendor field is not in the management log:\n%s", i.Output())
	}
	file := filepath.Join(t.TempDir(), "cli_copy.json")
	os.WriteFile(file, []byte(strings.Replace(vendorFile(t, "sideband_api.json"), `"/rest"`, `"/cli"`, 1)), 0o600)
	if out, errOut, code := s.CLI("", "add_api", file); code != 0 {
		t.Fatalf("add_api of a vendor file: exit %d: %s %s", code, out, errOut)
	}

	// A value that asks for what ASE cannot do is refused, saying what to
	// write instead; typos stay errors.
	tests := []struct{ name, edit, from, message string }{
		{"is_token_mandatory", `"is_token_mandatory": true`, `"is_token_mandatory": false`, "api_metadata.is_token_mandatory: *"},
		{"jwt location", `"location": "c:session"`, `"location": "h:authorization:bearer"`, "api_metadata.jwt.location: *"},
		{"same claims", `"clientid": "username"`, `"clientid": "client_id"`, "api_metadata.jwt.clientid: *"},
		{"typo", `"username_headr": ""`, `"username_header": ""`, `api_metadata.username_headr: unknown field (did you mean "username_header"?)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := strings.Replace(vendorFile(t, "sideband_api.json"), tt.from, tt.edit, 1)
			r := s.Do("POST", "/v5/ase/api?api_id=refused", body, nil)
			wantStatus(t, r, 403, "validation_error", tt.message)
			if tt.name == "is_token_mandatory" && !strings.Contains(string(r.Body), "false") {
				t.Fatalf("the refusal does not say what to write: %s", r.Body)
			}
		})
	}
}

// vendorInline returns the vendor's inline file with its servers replaced
// by b (and health checks off, as the test backends have no /health).
func vendorInline(t *testing.T, b *backend, url, jwtLocation string) string {
	t.Helper()
	var doc map[string]map[string]any
	if err := json.Unmarshal([]byte(vendorFile(t, "inline_rest_api.json")), &doc); err != nil {
		t.Fatal(err)
	}
	md := doc["api_metadata"]
	md["url"], md["health_check"] = url, false
	md["servers"] = []map[string]any{{"host": "127.0.0.1", "port": b.port()}}
	md["jwt"].(map[string]any)["location"] = jwtLocation
	out, _ := json.Marshal(doc)
	return string(out)
}

func TestVendorUsernameInline(t *testing.T) {
	for _, loops := range []string{"true", "false"} {
		t.Run("inline_event_loops="+loops, func(t *testing.T) {
			b := newBackend(t, "b", false)
			i := startInstance(t, map[string]string{"inline_event_loops": loops})
			wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=shop", vendorInline(t, b, "/shop", "h:authorization:bearer"), nil), 200, okIgnoringTokenMandatory)
			wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=q", vendorInline(t, b, "/q", "qs:access_token"), nil), 200, okIgnoringTokenMandatory)
			wantStatus(t, i.Do("POST", "/v5/ase/firewall/blacklist", `{"type": "username", "value": "mallory"}`, nil), 200, "success", "username mallory added to blacklist")
			wantStatus(t, i.Do("POST", "/v5/ase/firewall/whitelist", `{"type": "username", "value": "vip"}`, nil), 200, "success", "username vip added to whitelist")

			alice, mallory := jwt(`{"sub":"1","username":"alice","client_id":"app-7"}`), jwt(`{"username":"mallory","client_id":"app-9"}`)
			tests := []struct {
				name, path string
				header     http.Header
				code       int
			}{
				{"no username", "/shop/none", nil, 200},
				{"header", "/shop/hdr-alice", http.Header{"X-Username-Header": {"alice"}}, 200},
				{"listed header", "/shop/hdr-mallory", http.Header{"X-Username-Header": {"mallory"}}, 403},
				{"header any case", "/shop/hdr-case", http.Header{"X-USERNAME-HEADER": {"mallory"}}, 403},
				{"repeated header", "/shop/hdr-twice", http.Header{"X-Username-Header": {"alice", "mallory"}}, 403},
				{"comma-joined header", "/shop/hdr-list", http.Header{"X-Username-Header": {"alice, mallory"}}, 403},
				{"jwt", "/shop/jwt-alice", http.Header{"Authorization": {"Bearer " + alice}}, 200},
				{"listed jwt", "/shop/jwt-mallory", http.Header{"Authorization": {"bearer " + mallory}}, 403},
				{"jwt username array", "/shop/jwt-array", http.Header{"Authorization": {"Bearer " + jwt(`{"username":["mallory","alice"]}`)}}, 403},
				{"jwt escaped claim", "/shop/jwt-escaped", http.Header{"Authorization": {"Bearer " + jwt(`{"username":"mal\u006cory"}`)}}, 403},
				{"repeated authorization", "/shop/jwt-twice", http.Header{"Authorization": {"Bearer " + alice, "Bearer " + mallory}}, 403},
				{"malformed jwt is not refused", "/shop/jwt-bad", http.Header{"Authorization": {"Bearer not.a.jwt"}}, 200},
				{"jwt in the query", "/q/jwt-mallory?access_token=" + mallory, nil, 403},
				{"repeated query key", "/q/jwt-twice?access_token=" + alice + "&ACCESS_TOKEN=" + mallory, nil, 403},
				{"query jwt", "/q/jwt-alice?access_token=" + alice, nil, 200},
				{"a jwt elsewhere is not read", "/q/jwt-header", http.Header{"Authorization": {"Bearer " + mallory}}, 200},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					if r := i.dataRequest("GET", tt.path, tt.header); r.Code != tt.code {
						t.Fatalf("got %d %s, want %d", r.Code, r.Body, tt.code)
					}
				})
			}
			if got := b.last().Header.Get("Authorization"); got != "Bearer "+mallory {
				t.Fatalf("the backend got Authorization %q", got)
			}

			// A username the request claims (a header, an unverified JWT)
			// never allows: anyone can claim an allow-listed one.
			wantStatus(t, i.Do("POST", "/v5/ase/firewall/blacklist", `{"type": "ip", "value": "127.0.0.1"}`, nil), 200, "success", "*")
			if r := i.dataRequest("GET", "/shop/vip", http.Header{"X-Username-Header": {"vip"}}); r.Code != 403 {
				t.Fatalf("a claimed allow-listed username let a deny-listed address through: got %d %s", r.Code, r.Body)
			}
			if r := i.dataRequest("GET", "/shop/vip-jwt", http.Header{"Authorization": {"Bearer " + jwt(`{"username":"vip"}`)}}); r.Code != 403 {
				t.Fatalf("a JWT claiming an allow-listed username let a deny-listed address through: got %d %s", r.Code, r.Body)
			}
			if r := i.dataRequest("GET", "/shop/not-vip", http.Header{"X-Username-Header": {"alice"}}); r.Code != 403 {
				t.Fatalf("deny-listed address with another username: got %d", r.Code)
			}

			// The access log names the user and the client id.
			for path, want := range map[string][2]string{
				"/shop/hdr-alice":   {"alice", ""},
				"/shop/hdr-mallory": {"mallory", ""},
				"/shop/jwt-alice":   {"alice", "app-7"},
				"/shop/jwt-mallory": {"mallory", "app-9"},
				"/q/jwt-alice":      {"alice", "app-7"},
				"/shop/jwt-bad":     {"", ""},
			} {
				lines := accessLog(t, i, 1, func(l map[string]any) bool { return l["path"] == path })
				if len(lines) != 1 {
					t.Fatalf("%s: %d access log lines", path, len(lines))
				}
				got := [2]string{str(lines[0]["username"]), str(lines[0]["client_id"])}
				if got != want {
					t.Errorf("%s: logged username and client id %q, want %q (line %v)", path, got, want, lines[0])
				}
			}
		})
	}
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func TestVendorUsernameSideband(t *testing.T) {
	i := startInstance(t, map[string]string{"mode": "sideband"})
	wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=rest", vendorFile(t, "sideband_api.json"), nil), 200, okIgnoringTokenMandatory)
	wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=identity", vendorFile(t, "sideband_nginx_plus_identity.json"), nil), 200, ok)
	wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=qs", apiDoc("/qs", `"username_header": "X-User", "jwt": {"location": "qs:token", "username": "sub", "clientid": "azp"}`), nil), 200, ok)
	wantStatus(t, i.Do("POST", "/v5/ase/firewall/blacklist", `{"type": "username", "value": "mallory"}`, nil), 200, "success", "username mallory added to blacklist")

	alice, mallory := jwt(`{"username":"alice","client_id":"app-7"}`), jwt(`{"username":"mallory","client_id":"app-9"}`)
	subMallory := jwt(`{"sub":"mallory","azp":"app-9"}`)
	tests := []struct {
		name, body string
		code       int
	}{
		{"jwt", aseCall("198.51.100.1", "GET", "/rest/alice", `{"Authorization": "Bearer `+alice+`"}`), 200},
		{"listed jwt", aseCall("198.51.100.1", "GET", "/rest/mallory", `{"authorization": "Bearer `+mallory+`"}`), 403},
		{"repeated authorization", aseCall("198.51.100.1", "GET", "/rest/twice", `{"Authorization": "Bearer `+alice+`"}, {"Authorization": "Bearer `+mallory+`"}`), 403},
		{"jwt alone in a header", aseCall("198.51.100.1", "GET", "/api/x", `{"X-Identity": "`+mallory+`"}`), 403},
		{"jwt in the url", aseCall("198.51.100.1", "GET", "/qs/url?token="+subMallory, ``), 403},
		{"username header", aseCall("198.51.100.1", "GET", "/qs/hdr", `{"x-user": "mallory"}`), 403},
		{"user_info and jwt both checked", `{"source_ip": "198.51.100.1", "method": "GET", "url": "/rest/both", "headers": [{"Authorization": "Bearer ` + mallory + `"}], "user_info": [{"username": "alice"}]}`, 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := i.Data("POST", "/ase/request", tt.body, nil)
			if r.Code != tt.code {
				t.Fatalf("got %d %s, want %d", r.Code, r.Body, tt.code)
			}
			if tt.code == 403 && !strings.Contains(string(r.Body), `"reason":"deny_list"`) && !strings.Contains(string(r.Body), `"reason": "deny_list"`) {
				t.Fatalf("blocked for another reason: %s", r.Body)
			}
		})
	}
	// Forward-auth reads the client's headers the gateway passes on.
	r := i.Data("GET", "/ase/authz", "", map[string]string{"X-Original-URI": "/rest/fa", "X-Real-IP": "198.51.100.1", "Authorization": "Bearer " + mallory})
	if r.Code != 403 || r.Header.Get("X-ASE-Reason") != "deny_list" {
		t.Fatalf("forward-auth with a listed JWT: got %d %q", r.Code, r.Header.Get("X-ASE-Reason"))
	}

	for path, want := range map[string][2]string{
		"/rest/alice":   {"alice", "app-7"},
		"/rest/mallory": {"mallory", "app-9"},
		"/qs/url":       {"mallory", "app-9"},
		"/qs/hdr":       {"mallory", ""},
		"/rest/fa":      {"mallory", "app-9"},
	} {
		lines := accessLog(t, i, 1, func(l map[string]any) bool { return l["path"] == path && l["call"] != "response" })
		if len(lines) == 0 {
			t.Fatalf("%s: no access log line", path)
		}
		got := [2]string{str(lines[0]["username"]), str(lines[0]["client_id"])}
		if got != want {
			t.Errorf("%s: logged username and client id %q, want %q (line %v)", path, got, want, lines[0])
		}
	}
}

// TestClaimedUsernamesNeverVouch: a username the request claims for itself
// (username_header, an unverified JWT) may block but never allows, is not
// listed when its client is detected attacking (an attacker would
// otherwise have a victim's username listed), and forward-auth never hands
// it to the gateway as ASE's X-ASE-Username.
func TestClaimedUsernamesNeverVouch(t *testing.T) {
	b := newBackend(t, "b", false)
	i := startInstance(t, map[string]string{"enable_ase_detected_attack": "true"})
	wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=shop", apiDoc("/shop", servers(b)+`, "username_header": "X-User",
		"decoy_config": {"decoy_enabled": true, "decoy_subpaths": ["/shop/admin"], "response_code": 200, "response_message": "decoy"}`), nil), 200, ok)
	// A decoy hit claiming the victim's name lists the attacker's address,
	// not the victim.
	if r := i.dataRequest("GET", "/shop/admin", http.Header{"X-User": {"victim"}}); r.Code != 200 || string(r.Body) != "decoy" {
		t.Fatalf("decoy: %d %s", r.Code, r.Body)
	}
	r := i.Do("GET", "/v5/ase/firewall/blacklist?tag=decoy", "", nil)
	if !strings.Contains(string(r.Body), "127.0.0.1") || strings.Contains(string(r.Body), "victim") {
		t.Fatalf("after a decoy hit claiming a victim's username the deny list holds %s", r.Body)
	}

	s := startInstance(t, map[string]string{"mode": "sideband"})
	wantJSON(t, s.Do("POST", "/v5/ase/api?api_id=api", apiDoc("/", `"username_header": "X-User"`), nil), 200, ok)
	req, _ := http.NewRequest("GET", s.dataURL()+"/ase/authz", nil)
	req.Header.Set("X-Original-URI", "/x")
	req.Header.Set("X-User", "admin")
	if r := s.send(req); r.Code != 200 || r.Header.Get("X-ASE-Username") != "" {
		t.Fatalf("forward-auth vouched for a claimed username: %d %q", r.Code, r.Header.Get("X-ASE-Username"))
	}
}
