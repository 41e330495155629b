package sideband

import (
	"strings"
	"testing"

	"github.com/valyala/fastjson"
)

func decodeString(t testing.TB, body string, authorize bool) (*call, error) {
	t.Helper()
	var p fastjson.Parser
	v, err := p.Parse(body)
	if err != nil {
		return nil, err
	}
	c := &call{}
	return c, decodeCall(v, authorize, c)
}

func TestDecodeCallLenient(t *testing.T) {
	for _, body := range []string{
		`{"source_ip": "1.2.3.4", "source_port": "5555", "method": "GET", "url": "/a", "http_version": "1.1"}`,
		`{"source_ip": "1.2.3.4", "source_port": 5555, "method": "GET", "url": "/a", "http_version": "HTTP/1.1"}`,
		`{"source_ip": "1.2.3.4", "method": "GET", "url": "/a"}`,
		`{"source_ip": "::ffff:1.2.3.4", "method": "GET", "url": "/a", "http_version": 1.1}`,
	} {
		c, err := decodeString(t, body, false)
		if err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		if c.sourceIP.String() != "1.2.3.4" || c.httpVersion != "1.1" {
			t.Fatalf("%s: got %+v", body, c)
		}
	}
	c, err := decodeString(t, `{"source_ip": "1.2.3.4", "method": "GET", "url": "/a", "headers": [{"Cookie": "a=1", "HOST": "x"}, {"cookie": "b=2"}, {"Accept": ["a", "b"]}, {"Content-Length": 12}], "user_info": [{"username": "bob"}]}`, false)
	if err != nil {
		t.Fatal(err)
	}
	if c.join("cookie", "; ") != "a=1; b=2" || c.get("host") != "x" || c.join("accept", ",") != "a,b" || !c.hasBody || len(c.usernames) != 1 || c.usernames[0] != "bob" {
		t.Fatalf("got %+v", c)
	}
}

func TestDecodeCallStrict(t *testing.T) {
	tests := map[string]string{
		`{"source_ip": "1.2.3.4", "method": "GET", "url": "/a", "x": 1}`:                    `unknown field "x"`,
		`{"method": "GET", "url": "/a"}`:                                                    "source_ip is required",
		`{"source_ip": "1.2.3.4", "method": "G T", "url": "/a"}`:                            "is not an HTTP method",
		`{"source_ip": "1.2.3.4", "method": "GET", "url": ""}`:                              "url must not be empty",
		`{"source_ip": "1.2.3.4", "method": "GET", "url": "/a", "http_version": "9"}`:       "is not an HTTP version",
		`{"source_ip": "1.2.3.4", "source_port": 70000, "method": "GET", "url": "/a"}`:      "source_port must be from 0 to 65535",
		`{"source_ip": "1.2.3.4", "source_port": 1.5, "method": "GET", "url": "/a"}`:        "source_port must be a whole number",
		`{"source_ip": "1.2.3.4", "method": "GET", "url": "/a", "headers": [["a"]]}`:        "headers[0] must be an object",
		`{"source_ip": "1.2.3.4", "method": "GET", "url": "/a", "headers": [{"a b": "c"}]}`: "is not a header name",
		`{"source_ip": "1.2.3.4", "method": "GET", "url": "/a", "headers": [{"a": true}]}`:  "must be a string",
		`{"source_ip": "1.2.3.4", "method": "GET", "url": "/a", "user_info": "bob"}`:        "user_info must be an array of objects",
		`{"source_ip": "1.2.3.4", "method": "GET", "url": "/a", "body": "x"}`:               `unknown field "body"`,
	}
	for body, want := range tests {
		if _, err := decodeString(t, body, false); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want %q", body, err, want)
		}
	}
	// The Authorize protocol takes a body.
	if c, err := decodeString(t, `{"source_ip": "1.2.3.4", "method": "POST", "url": "/a", "body": "{}"}`, true); err != nil || !c.hasBody {
		t.Fatalf("got %+v %v", c, err)
	}
}

func TestURLShape(t *testing.T) {
	for _, u := range []string{"/shop/a?b=1", "https://Shop.example.com/shop/a?b=1", "http://h:8080", "http://h?x=1"} {
		if _, err := decodeString(t, `{"source_ip": "1.2.3.4", "method": "GET", "url": "`+u+`"}`, false); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
	if _, err := decodeString(t, `{"source_ip": "1.2.3.4", "method": "GET", "url": "shop/a"}`, false); err == nil || !strings.Contains(err.Error(), "neither a path nor an absolute URL") {
		t.Errorf("a relative url: %v", err)
	}
}

func FuzzDecodeCall(f *testing.F) {
	f.Add(`{"source_ip": "1.2.3.4", "source_port": "5555", "method": "GET", "url": "/shop/a?b=1", "http_version": "1.1", "headers": [{"Host": "x"}, {"Cookie": ["a=1", "b=2"]}], "user_info": [{"username": "bob"}]}`, false)
	f.Add(`{"source_ip": "::1", "method": "POST", "url": "https://h/x", "body": "{}", "headers": [{"content-length": 2}]}`, true)
	f.Add(`{"source_ip": 1}`, false)
	f.Fuzz(func(t *testing.T, body string, authorize bool) {
		var p fastjson.Parser
		v, err := p.Parse(body)
		if err != nil {
			return
		}
		var c call
		if err := decodeCall(v, authorize, &c); err != nil {
			if _, ok := err.(*errDecode); !ok {
				t.Fatalf("unexpected error type %T", err)
			}
			return
		}
		if !c.sourceIP.IsValid() || c.method == "" || c.url == "" || len(c.headers) > maxHeaders {
			t.Fatalf("accepted an incomplete call %+v", c)
		}
		c.join("cookie", "; ")
	})
}

func FuzzDecodeResponse(f *testing.F) {
	f.Add(`{"response_code": "200", "response_status": "OK", "http_version": "1.1", "headers": [{"Content-Type": "application/json"}]}`)
	f.Add(`{"response_code": 404}`)
	f.Fuzz(func(t *testing.T, body string) {
		var p fastjson.Parser
		v, err := p.Parse(body)
		if err != nil {
			return
		}
		var r response
		if err := decodeResponse(v, &r); err == nil && (r.code < 100 || r.code > 599) {
			t.Fatalf("accepted response code %d", r.code)
		}
	})
}
