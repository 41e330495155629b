package apidef

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/ase-project/ase/internal/units"
)

func readSeed(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// jsonEqual compares two documents as JSON values.
func jsonEqual(t *testing.T, got, want []byte) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("got invalid JSON: %v", err)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatalf("want invalid JSON: %v", err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}

func TestSeedDefinitionsRoundTrip(t *testing.T) {
	for _, name := range []string{"seed_rest.json", "seed_ws.json"} {
		t.Run(name, func(t *testing.T) {
			seed := readSeed(t, name)
			a, err := Decode("sample_api", seed)
			if err != nil {
				t.Fatalf("seed rejected: %v", err)
			}
			jsonEqual(t, a.Encode(), seed)
			b, err := Decode("sample_api", a.Encode())
			if err != nil || !Equal(a, b) {
				t.Fatalf("encoded form does not decode to the same API: %v", err)
			}
		})
	}
}

func TestSeedTypedValues(t *testing.T) {
	a, err := Decode("sample_api", readSeed(t, "seed_rest.json"))
	if err != nil {
		t.Fatal(err)
	}
	if a.CookieIdleTimeout.String() != "200m" || a.APIMemorySize != 128<<20 {
		t.Errorf("got timeout %v, size %d", a.CookieIdleTimeout, a.APIMemorySize)
	}
	if a.FlowControl.ClientSpikeThreshold != (units.Rate{Count: 0, Per: units.PerSecond}) {
		t.Errorf("got client threshold %v", a.FlowControl.ClientSpikeThreshold)
	}
	if len(a.Servers) != 2 || a.Servers[1].Addr() != "127.0.0.1:8081" {
		t.Errorf("got servers %+v", a.Servers)
	}
	if a.Enforcement.ErrorCode != 401 || !a.EnableBlocking || !a.HealthCheck {
		t.Errorf("got %+v", a)
	}
}

func TestDefaults(t *testing.T) {
	a, err := Decode("min", []byte(`{"api_metadata": {"url": "/shop/"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if a.URL != "/shop" || a.Protocol != HTTP || a.Hostname != "*" || !a.EnableBlocking || a.HealthCheck || len(a.Servers) != 0 {
		t.Fatalf("got %+v", a)
	}
	var doc map[string]map[string]any
	if err := json.Unmarshal(a.Encode(), &doc); err != nil {
		t.Fatal(err)
	}
	// Read back complete: every field of the seed is present.
	var seed map[string]map[string]any
	json.Unmarshal(readSeed(t, "seed_rest.json"), &seed)
	for k := range seed["api_metadata"] {
		if _, ok := doc["api_metadata"][k]; !ok {
			t.Errorf("defaulted definition lacks %s", k)
		}
	}
}

func TestNormalization(t *testing.T) {
	a, err := Decode("n", []byte(`{"api_metadata": {
		"url": "/a/b/", "hostname": "API.Example.com:8443",
		"api_pattern_enforcement": {"protocol_allowed": "HTTPS, http", "methods_allowed": ["get", "Post"],
			"content_type_allowed": "Application/JSON , text/plain", "error_code": 403},
		"decoy_config": {"response_code": "404", "decoy_subpaths": ["/admin/"]}}}`))
	if err != nil {
		t.Fatal(err)
	}
	e := a.Enforcement
	if a.URL != "/a/b" || a.Hostname != "api.example.com:8443" {
		t.Errorf("got url %q host %q", a.URL, a.Hostname)
	}
	if !reflect.DeepEqual(e.ProtocolAllowed, []string{"https", "http"}) ||
		!reflect.DeepEqual(e.MethodsAllowed, []string{"GET", "POST"}) ||
		!reflect.DeepEqual(e.ContentTypeAllowed, []string{"application/json", "text/plain"}) ||
		e.ErrorCode != 403 {
		t.Errorf("got enforcement %+v", e)
	}
	if a.Decoy.ResponseCode != 404 || !reflect.DeepEqual(a.Decoy.Subpaths, []string{"/admin"}) {
		t.Errorf("got decoy %+v", a.Decoy)
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name string
		id   string
		doc  string
		want []string // substrings, each must appear
	}{
		{"bad id", "-x", `{"api_metadata":{"url":"/"}}`, []string{`api_id "-x" is invalid`}},
		{"long id", strings.Repeat("a", 161), `{"api_metadata":{"url":"/"}}`, []string{"is invalid"}},
		{"not json", "a", `{"api_metadata":`, []string{"invalid JSON"}},
		{"trailing data", "a", `{"api_metadata":{"url":"/"}} {}`, []string{"invalid JSON: unexpected data"}},
		{"duplicate key", "a", `{"api_metadata":{"url":"/","url":"/b"}}`, []string{`duplicate key "url"`}},
		{"not object", "a", `[]`, []string{"must be an object, got an array"}},
		{"missing metadata", "a", `{}`, []string{"api_metadata: is required"}},
		{"missing url", "a", `{"api_metadata":{}}`, []string{"api_metadata.url: is required"}},
		{"unknown top", "a", `{"api_metadata":{"url":"/"},"x":1}`, []string{"x: unknown field"}},
		{"typo", "a", `{"api_metadata":{"url":"/","hostnme":"*"}}`, []string{`api_metadata.hostnme: unknown field (did you mean "hostname"?)`}},
		{"nested unknown", "a", `{"api_metadata":{"url":"/","decoy_config":{"enabled":true}}}`, []string{"api_metadata.decoy_config.enabled: unknown field"}},
		{"protocol", "a", `{"api_metadata":{"url":"/","protocol":"grpc"}}`, []string{`api_metadata.protocol: must be "http" or "ws"`}},
		{"url no slash", "a", `{"api_metadata":{"url":"api"}}`, []string{"api_metadata.url: must be a path starting with /"}},
		{"url query", "a", `{"api_metadata":{"url":"/a?b"}}`, []string{"without a query"}},
		{"url dots", "a", `{"api_metadata":{"url":"/a/../b"}}`, []string{". or .. segments"}},
		{"url type", "a", `{"api_metadata":{"url":5}}`, []string{"api_metadata.url: must be a string, got a number"}},
		{"hostname", "a", `{"api_metadata":{"url":"/","hostname":"a b"}}`, []string{"api_metadata.hostname: must be * or a host name"}},
		{"hostname port", "a", `{"api_metadata":{"url":"/","hostname":"a:99999"}}`, []string{"invalid port"}},
		{"cookie", "a", `{"api_metadata":{"url":"/","cookie":"a=b"}}`, []string{"api_metadata.cookie: must be a cookie name"}},
		{"duration", "a", `{"api_metadata":{"url":"/","cookie_idle_timeout":"200x"}}`, []string{"api_metadata.cookie_idle_timeout: must be a duration"}},
		{"zero duration", "a", `{"api_metadata":{"url":"/","cookie_idle_timeout":"0m"}}`, []string{"greater than 0"}},
		{"bool", "a", `{"api_metadata":{"url":"/","enable_blocking":"yes"}}`, []string{"api_metadata.enable_blocking: must be true or false, got a string"}},
		{"apikey header", "a", `{"api_metadata":{"url":"/","apikey_header":"X API"}}`, []string{"api_metadata.apikey_header: must be a header name"}},
		{"apikey qs", "a", `{"api_metadata":{"url":"/","apikey_qs":"a&b"}}`, []string{"api_metadata.apikey_qs: must be a query parameter name"}},
		{"login url", "a", `{"api_metadata":{"url":"/","login_url":"ftp://x"}}`, []string{"api_metadata.login_url: must be an absolute http or https URL"}},
		{"internal url", "a", `{"api_metadata":{"url":"/","api_mapping":{"internal_url":"x"}}}`, []string{"api_metadata.api_mapping.internal_url: must be a path"}},
		{"protocol allowed", "a", `{"api_metadata":{"url":"/","api_pattern_enforcement":{"protocol_allowed":"wss"}}}`, []string{`"wss" is not a protocol of a http API`}},
		{"redirect code", "a", `{"api_metadata":{"url":"/","api_pattern_enforcement":{"http_redirect":{"response_code":"200"}}}}`, []string{"response_code: must be a whole number from 300 to 399"}},
		{"redirect target", "a", `{"api_metadata":{"url":"/","api_pattern_enforcement":{"http_redirect":{"response_code":"301"}}}}`, []string{"https_url: is required when response_code is set"}},
		{"method", "a", `{"api_metadata":{"url":"/","api_pattern_enforcement":{"methods_allowed":["GET","GE T"]}}}`, []string{`methods_allowed[1]: "GE T" is not an HTTP method`}},
		{"method dup", "a", `{"api_metadata":{"url":"/","api_pattern_enforcement":{"methods_allowed":["GET","get"]}}}`, []string{"lists GET twice"}},
		{"methods type", "a", `{"api_metadata":{"url":"/","api_pattern_enforcement":{"methods_allowed":"GET"}}}`, []string{"must be an array of strings"}},
		{"content type", "a", `{"api_metadata":{"url":"/","api_pattern_enforcement":{"content_type_allowed":"json"}}}`, []string{`"json" is not a media type`}},
		{"error code", "a", `{"api_metadata":{"url":"/","api_pattern_enforcement":{"error_code":"200"}}}`, []string{"error_code: must be a whole number from 400 to 599"}},
		{"error def", "a", `{"api_metadata":{"url":"/","api_pattern_enforcement":{"error_def":"a\r\nb"}}}`, []string{"error_def: must be printable text"}},
		{"rate", "a", `{"api_metadata":{"url":"/","flow_control":{"client_spike_threshold":"10/sec"}}}`, []string{"flow_control.client_spike_threshold: must be a rate such as 100/second"}},
		{"bytes on http", "a", `{"api_metadata":{"url":"/","flow_control":{"bytes_in_threshold":"10/second"}}}`, []string{"bytes_in_threshold: applies to ws APIs only"}},
		{"size", "a", `{"api_metadata":{"url":"/","api_memory_size":"128"}}`, []string{"api_memory_size: must be a size from 1mb to 64gb"}},
		{"interval", "a", `{"api_metadata":{"url":"/","health_check_interval":0}}`, []string{"health_check_interval: must be a whole number from 1 to 86400, got 0"}},
		{"interval float", "a", `{"api_metadata":{"url":"/","health_check_interval":1.5}}`, []string{"got 1.5"}},
		{"retry", "a", `{"api_metadata":{"url":"/","health_retry_count":-1}}`, []string{"health_retry_count: must be a whole number from 1 to 100"}},
		{"health url", "a", `{"api_metadata":{"url":"/","health_check":true,"health_url":""}}`, []string{"health_url: is required when health_check is true"}},
		{"servers type", "a", `{"api_metadata":{"url":"/","servers":{}}}`, []string{"servers: must be an array of servers"}},
		{"server host", "a", `{"api_metadata":{"url":"/","servers":[{"host":"h:80","port":80}]}}`, []string{"servers[0].host: must be a host name or IP address without a port"}},
		{"server port", "a", `{"api_metadata":{"url":"/","servers":[{"host":"h","port":"80"}]}}`, []string{"servers[0].port: must be a whole number from 1 to 65535, got a string"}},
		{"server dup", "a", `{"api_metadata":{"url":"/","servers":[{"host":"h","port":80},{"host":"H","port":80}]}}`, []string{"servers[1]: server h:80 is already listed at servers[0]"}},
		{"server quota", "a", `{"api_metadata":{"url":"/","servers":[{"host":"h","port":80,"server_connection_quota":-1}]}}`, []string{"server_connection_quota: must be a whole number from 0 to 1000000"}},
		{"ws spike", "a", `{"api_metadata":{"url":"/","protocol":"ws","servers":[{"host":"h","port":80,"server_spike_threshold":"1/second"}]}}`, []string{"server_spike_threshold: applies to http APIs only"}},
		{"decoy code", "a", `{"api_metadata":{"url":"/","decoy_config":{"response_code":999}}}`, []string{"decoy_config.response_code: must be a whole number from 100 to 599"}},
		{"decoy subpath", "a", `{"api_metadata":{"url":"/","decoy_config":{"decoy_subpaths":["admin","/"]}}}`, []string{"decoy_subpaths[0]: must be a path starting with /", "decoy_subpaths[1]: must name a sub-path"}},
		{"persistence", "a", `{"api_metadata":{"url":"/","cookie_persistence_enabled":true}}`, []string{"cookie_persistence_enabled: needs the cookie field"}},
		{"all at once", "a", `{"api_metadata":{"url":"x","protocol":"x","servers":[{"host":"","port":0}]}}`, []string{"api_metadata.protocol", "api_metadata.url", "servers[0].host", "servers[0].port"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := Decode(tt.id, []byte(tt.doc))
			if err == nil {
				t.Fatalf("got %+v, want an error", a)
			}
			if _, ok := err.(ValidationError); !ok {
				t.Fatalf("got %T, want ValidationError", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("got %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestIsSyntax(t *testing.T) {
	_, err := Decode("a", []byte(`{`))
	if !IsSyntax(err) {
		t.Errorf("IsSyntax(%v) = false", err)
	}
	_, err = Decode("a", []byte(`{"api_metadata":{}}`))
	if IsSyntax(err) {
		t.Errorf("IsSyntax(%v) = true", err)
	}
}

func TestFlowControlPatch(t *testing.T) {
	a, err := Decode("ws", readSeed(t, "seed_ws.json"))
	if err != nil {
		t.Fatal(err)
	}
	fc, err := FlowControlPatch(a, []byte(`{"flow_control":{"client_spike_threshold":"10/second","bytes_in_threshold":"10/minute"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if fc.ClientSpikeThreshold.String() != "10/second" || fc.BytesInThreshold.String() != "10/minute" || fc.BytesOutThreshold.String() != "0/second" {
		t.Errorf("got %+v", fc)
	}
	rest, _ := Decode("rest", readSeed(t, "seed_rest.json"))
	if _, err := FlowControlPatch(rest, []byte(`{"flow_control":{"bytes_out_threshold":"1/second"}}`)); err == nil || !strings.Contains(err.Error(), "flow_control.bytes_out_threshold: applies to ws APIs only") {
		t.Errorf("got %v", err)
	}
	if _, err := FlowControlPatch(rest, []byte(`{"flow_control":{"x":1}}`)); err == nil || !strings.Contains(err.Error(), "flow_control.x: unknown field") {
		t.Errorf("got %v", err)
	}
}

func TestDecodeServer(t *testing.T) {
	s, err := DecodeServer(HTTP, []byte(`{"server":{"host":"192.168.1.100","port":8080,"server_spike_threshold":"1/second","server_connection_quota":100}}`), true)
	if err != nil || s.Addr() != "192.168.1.100:8080" || s.ConnectionQuota != 100 || s.SpikeThreshold.Count != 1 {
		t.Fatalf("got %+v, %v", s, err)
	}
	if _, err := DecodeServer(HTTP, []byte(`{"server":{"host":"h","port":1,"server_connection_quota":1}}`), false); err == nil {
		t.Fatal("delete body with a quota accepted")
	}
	s, err = DecodeServer(HTTP, []byte(`{"server":{"host":"::1","port":80}}`), false)
	if err != nil || s.Addr() != "[::1]:80" {
		t.Fatalf("got %+v, %v", s, err)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add("sample_api", readSeed(f, "seed_rest.json"))
	f.Add("ws", readSeed(f, "seed_ws.json"))
	f.Add("a", []byte(`{"api_metadata":{"url":"/","servers":[{"host":"h","port":1}]}}`))
	f.Fuzz(func(t *testing.T, id string, data []byte) {
		a, err := Decode(id, data)
		if err != nil {
			if a != nil {
				t.Fatal("both an API and an error")
			}
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		// Whatever was accepted encodes to a document that decodes to the
		// same definition.
		b, err := Decode(id, a.Encode())
		if err != nil {
			t.Fatalf("encoded form rejected: %v\n%s", err, a.Encode())
		}
		if !Equal(a, b) {
			t.Fatalf("round trip changed the definition:\n%s\n%s", a.Encode(), b.Encode())
		}
	})
}

func FuzzDecodeServer(f *testing.F) {
	f.Add(`{"server": {"host": "192.168.1.100", "port": 8080, "server_spike_threshold": "1/second", "server_connection_quota": 100}}`, true, false)
	f.Add(`{"server": {"host": "::1", "port": 1}}`, false, true)
	f.Fuzz(func(t *testing.T, body string, full, ws bool) {
		p := HTTP
		if ws {
			p = WS
		}
		s, err := DecodeServer(p, []byte(body), full)
		if err != nil {
			return
		}
		if s.Port < 1 || s.Port > 65535 || s.Host == "" || s.ConnectionQuota < 0 {
			t.Fatalf("accepted an invalid server %+v", s)
		}
	})
}

func FuzzFlowControlPatch(f *testing.F) {
	f.Add(`{"flow_control": {"client_spike_threshold": "10/second", "bytes_in_threshold": "10/second"}}`, true)
	f.Add(`{"flow_control": {"server_connection_queueing": true}}`, false)
	f.Fuzz(func(t *testing.T, body string, ws bool) {
		a := &API{Protocol: HTTP}
		if ws {
			a.Protocol = WS
		}
		fc, err := FlowControlPatch(a, []byte(body))
		if err != nil {
			return
		}
		if !ws && (!fc.BytesInThreshold.IsZero() || !fc.BytesOutThreshold.IsZero()) {
			t.Fatalf("byte thresholds accepted on an http API: %+v", fc)
		}
	})
}

// TestDecoySubpaths: full paths under the url are taken as written,
// others relative to the url, and the ambiguous ones are refused with what
// to write instead. The definition keeps the subpaths as written.
func TestDecoySubpaths(t *testing.T) {
	tests := []struct {
		url, subpaths string
		written       []string
		paths         []string
		err           string // substring of the error; "" = accepted
	}{
		{"/shop", `["/shop/root", "/shop/admin/"]`, []string{"/shop/root", "/shop/admin"}, []string{"/shop/root", "/shop/admin"}, ""},
		{"/shop", `["/admin", "/.git"]`, []string{"/admin", "/.git"}, []string{"/shop/admin", "/shop/.git"}, ""},
		{"/shop", `["/shopping", "/shop/shop"]`, []string{"/shopping", "/shop/shop"}, []string{"/shop/shopping", "/shop/shop"}, ""},
		{"/", `["/admin", "/shop/admin"]`, []string{"/admin", "/shop/admin"}, []string{"/admin", "/shop/admin"}, ""},
		{"/api/v1", `["/api/v1/x", "/api/v2", "/v1"]`, []string{"/api/v1/x", "/api/v2", "/v1"}, []string{"/api/v1/x", "/api/v1/api/v2", "/api/v1/v1"}, ""},
		{"/shop", `[]`, []string{}, []string{}, ""},
		{"/shop", `["/shop"]`, nil, nil, `decoy_subpaths[0]: "/shop" is ambiguous under url "/shop": as a full path it covers the whole API, relative to the url it is "/shop/shop"; write "/shop/shop" for that path, or leave decoy_subpaths empty`},
		{"/api/v1", `["/x", "/api/"]`, nil, nil, `decoy_subpaths[1]: "/api" is ambiguous under url "/api/v1"`},
		{"/shop", `["shop/admin/"]`, nil, nil, `decoy_subpaths[0]: must be a path starting with /, got "shop/admin/"; write the full path it stands for: "/shop/admin" or "/shop/shop/admin"`},
		{"/shop", `["admin"]`, nil, nil, `decoy_subpaths[0]: must be a path starting with /, got "admin"; write the full path it stands for: "/shop/admin"`},
		{"/", `["admin"]`, nil, nil, `write the full path it stands for: "/admin"`},
		{"/shop", `["a b"]`, nil, nil, `decoy_subpaths[0]: must be a path starting with /, got "a b"`},
		{"/shop", `["/admin", "/shop/admin"]`, nil, nil, `decoy_subpaths[1]: "/shop/admin" is the path decoy_subpaths[0] already names`},
		{"/shop", `["/admin", "/admin/"]`, nil, nil, `decoy_subpaths[1]: lists "/admin" twice`},
		{"shop", `["shop"]`, nil, nil, `decoy_subpaths[0]: must be a path starting with /, got "shop"`},
	}
	for _, tt := range tests {
		t.Run(tt.url+" "+tt.subpaths, func(t *testing.T) {
			a, err := Decode("d", []byte(`{"api_metadata": {"url": "`+tt.url+`", "decoy_config": {"decoy_subpaths": `+tt.subpaths+`}}}`))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("got %v, want an error containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(a.Decoy.Subpaths, tt.written) || !reflect.DeepEqual(a.Decoy.Paths, tt.paths) {
				t.Fatalf("got subpaths %q paths %q, want %q and %q", a.Decoy.Subpaths, a.Decoy.Paths, tt.written, tt.paths)
			}
			b, err := Decode("d", a.Encode())
			if err != nil || !reflect.DeepEqual(b.Decoy.Paths, tt.paths) || !reflect.DeepEqual(a.Clone().Decoy.Paths, tt.paths) {
				t.Fatalf("round trip or clone lost the paths: %v %v", b, err)
			}
		})
	}
}

// TestVendorFiles loads the vendor's complete API JSON files unchanged
// (testdata/vendor, sources in its README): their username fields are
// read, the fields with no effect here are reported, and each reads back
// as a definition that decodes to the same API.
func TestVendorFiles(t *testing.T) {
	tests := []struct {
		file                 string
		header               string
		jwt                  JWT
		ignored              []string
		wantJWTOn, wantRound bool
	}{
		{"inline_rest_api.json", "x-username-header", JWT{Location: "h:authorization:bearer", Username: "username", ClientID: "client_id", Header: "authorization", Scheme: "bearer"},
			[]string{"api_metadata.is_token_mandatory: ignored: false asks for nothing (ASE never blocks a request for lacking a token)"}, true, true},
		{"sideband_api.json", "", JWT{Location: "h:authorization:bearer", Username: "username", ClientID: "client_id", Header: "authorization", Scheme: "bearer"},
			[]string{"api_metadata.is_token_mandatory: ignored: false asks for nothing (ASE never blocks a request for lacking a token)"}, true, true},
		{"sideband_pingfederate.json", "", JWT{}, nil, false, true},
		{"sideband_nginx_plus_identity.json", "", JWT{Location: "h:X-Identity", Username: "username", ClientID: "client_id", Header: "x-identity"}, nil, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			a, err := Decode("vendor", readSeed(t, "vendor/"+tt.file))
			if err != nil {
				t.Fatalf("vendor file refused: %v", err)
			}
			if a.UsernameHeaderLC != tt.header || a.JWT != tt.jwt || a.JWT.On() != tt.wantJWTOn {
				t.Errorf("got username header %q, jwt %+v; want %q, %+v", a.UsernameHeaderLC, a.JWT, tt.header, tt.jwt)
			}
			if !reflect.DeepEqual(a.Ignored, tt.ignored) {
				t.Errorf("got ignored %q, want %q", a.Ignored, tt.ignored)
			}
			b, err := Decode("vendor", a.Encode())
			if err != nil || !Equal(a, b) || b.JWT != a.JWT || b.UsernameHeader != a.UsernameHeader || len(b.Ignored) != 0 {
				t.Fatalf("read-back %s decodes to %+v, %v", a.Encode(), b, err)
			}
		})
	}
}

func TestUsernameFields(t *testing.T) {
	doc := func(extra string) string { return `{"api_metadata":{"url":"/",` + extra + `}}` }
	ok := []struct {
		name, extra string
		want        JWT
		ignored     string
	}{
		{"query", `"jwt":{"location":"qs:access_token","username":"sub"}`, JWT{Location: "qs:access_token", Username: "sub", Query: "access_token"}, ""},
		{"mac", `"jwt":{"location":"H:Authorization:MAC","username":"sub"}`, JWT{Location: "H:Authorization:MAC", Username: "sub", Header: "authorization", Scheme: "mac"}, ""},
		{"client id alone", `"jwt":{"location":"h:x-token","clientid":"azp"}`, JWT{Location: "h:x-token", ClientID: "azp", Header: "x-token"}, ""},
		{"all empty", `"jwt":{"location":"","username":"","clientid":""}`, JWT{}, ""},
		{"null", `"jwt":null`, JWT{}, ""},
		{"no location", `"jwt":{"location":"","username":"username","clientid":"client_id"}`, JWT{Username: "username", ClientID: "client_id"},
			"api_metadata.jwt: ignored: jwt.location is empty, so no JWT is read"},
		{"no claim", `"jwt":{"location":"h:authorization:bearer"}`, JWT{Location: "h:authorization:bearer"},
			"api_metadata.jwt: ignored: neither jwt.username nor jwt.clientid names a claim to read"},
	}
	for _, tt := range ok {
		t.Run(tt.name, func(t *testing.T) {
			a, err := Decode("a", []byte(doc(tt.extra)))
			if err != nil {
				t.Fatal(err)
			}
			if a.JWT != tt.want {
				t.Errorf("got %+v, want %+v", a.JWT, tt.want)
			}
			if got := strings.Join(a.Ignored, "; "); got != tt.ignored {
				t.Errorf("got ignored %q, want %q", got, tt.ignored)
			}
		})
	}
	bad := []struct{ name, extra, want string }{
		{"header name", `"username_header":"x user"`, "api_metadata.username_header: must be a header name"},
		{"location kind", `"jwt":{"location":"c:session","username":"sub"}`, `api_metadata.jwt.location: must be "h:<header>:bearer" (such as "h:authorization:bearer"), "h:<header>:mac", "h:<header>" (the header carries the JWT alone) or "qs:<query parameter>", got "c:session"`},
		{"location scheme", `"jwt":{"location":"h:authorization:basic","username":"sub"}`, `api_metadata.jwt.location: reads the authorization scheme "basic", which ASE does not read a JWT from: write "h:<header>:bearer"`},
		{"location header", `"jwt":{"location":"h:","username":"sub"}`, `api_metadata.jwt.location: must name a header, got "h:"`},
		{"location three parts", `"jwt":{"location":"h:a:bearer:x","username":"sub"}`, `the authorization scheme "bearer:x"`},
		{"location query", `"jwt":{"location":"qs:","username":"sub"}`, "api_metadata.jwt.location: names no query parameter"},
		{"location query name", `"jwt":{"location":"qs:a&b","username":"sub"}`, "api_metadata.jwt.location: must be a query parameter name"},
		{"same claims", `"jwt":{"location":"qs:t","username":"sub","clientid":"sub"}`, `api_metadata.jwt.clientid: names the claim "sub", as jwt.username does: the two must differ`},
		{"claim", `"jwt":{"location":"qs:t","username":"a\nb"}`, "api_metadata.jwt.username: must be a claim name"},
		{"jwt type", `"jwt":"h:authorization:bearer"`, "api_metadata.jwt: must be an object, got a string"},
		{"jwt typo", `"jwt":{"locaton":"qs:t"}`, `api_metadata.jwt.locaton: unknown field (did you mean "location"?)`},
		{"token mandatory", `"is_token_mandatory":true`, "api_metadata.is_token_mandatory: true asks ASE to block requests without a token and deny-list their address, which ASE does not do: write false (or remove the field)"},
		{"token mandatory type", `"is_token_mandatory":"no"`, "api_metadata.is_token_mandatory: must be true or false"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode("a", []byte(doc(tt.extra)))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want %q", err, tt.want)
			}
		})
	}
}

// TestVendorDurations: cookie_idle_timeout takes the vendor's w, mnt and
// yr units, read back in days.
func TestVendorDurations(t *testing.T) {
	for in, want := range map[string]string{"2w": "14d", "1mnt": "30d", "1yr": "365d", "200m": "200m"} {
		a, err := Decode("a", []byte(`{"api_metadata":{"url":"/","cookie_idle_timeout":"`+in+`"}}`))
		if err != nil || a.CookieIdleTimeout.String() != want {
			t.Errorf("%s: got %v, %v; want %s", in, a, err, want)
		}
	}
	for _, in := range []string{"w", "0w", "-1w", "+1w", "1 w", "101yr", "99999999999yr", "1mn"} {
		if _, err := Decode("a", []byte(`{"api_metadata":{"url":"/","cookie_idle_timeout":"`+in+`"}}`)); err == nil || !strings.Contains(err.Error(), "s, m, h, d, w, mnt or yr") {
			t.Errorf("%s: got %v, want a duration error", in, err)
		}
	}
}
