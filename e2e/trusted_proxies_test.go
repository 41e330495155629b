package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// proxyChain is one request as a chain of proxies would deliver it: its
// X-Forwarded-For fields (one field per element), its X-Real-IP, and the
// client ASE must find with trusted_proxies=127.0.0.0/8,10.0.0.0/8 (the
// test's own connection comes from 127.0.0.1, a trusted load balancer).
type proxyChain struct {
	name   string
	xff    []string
	xri    string
	client string
}

// The real client 203.0.113.9 is deny-listed; 198.51.100.7 is not.
var proxyChains = []proxyChain{
	// client → CDN 10.1.2.3 → load balancer 127.0.0.1 → ASE.
	{"cdn then load balancer", []string{"203.0.113.9, 10.1.2.3"}, "", "203.0.113.9"},
	{"spoofed left-most address", []string{"198.51.100.7, 203.0.113.9, 10.1.2.3"}, "", "203.0.113.9"},
	{"spoofed listed address", []string{"203.0.113.9, 198.51.100.7, 10.1.2.3"}, "", "198.51.100.7"},
	{"trusted hops with ports and spaces", []string{"203.0.113.9:5555 ,10.0.0.7,  127.0.0.2"}, "", "203.0.113.9"},
	{"one field per hop", []string{"198.51.100.7", "203.0.113.9", "10.1.2.3"}, "", "203.0.113.9"},
	{"every hop trusted", []string{"10.9.9.9, 127.0.0.5"}, "", "10.9.9.9"},
	{"x-real-ip from the trusted peer", []string{"198.51.100.7"}, "203.0.113.9", "203.0.113.9"},
	{"x-real-ip naming a trusted proxy", []string{"198.51.100.7, 203.0.113.9"}, "10.1.2.3", "203.0.113.9"},
	{"unreadable hop stops the walk", []string{"203.0.113.9, junk, 10.1.2.3"}, "", "10.1.2.3"},
}

func (c proxyChain) header() http.Header {
	h := http.Header{}
	for _, v := range c.xff {
		h.Add("X-Forwarded-For", v)
	}
	if c.xri != "" {
		h.Set("X-Real-IP", c.xri)
	}
	return h
}

// sendChain sends one request through the data port with the chain's
// forwarding fields.
func sendChain(t *testing.T, i *Instance, method, path string, h http.Header) Reply {
	t.Helper()
	req, err := http.NewRequest(method, i.dataURL()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range h {
		req.Header[k] = vs
	}
	return i.send(req)
}

// clientOf is the client_ip of the access log line of path.
func clientOf(t *testing.T, i *Instance, path string) any {
	t.Helper()
	lines := accessLog(t, i, 1, func(l map[string]any) bool { return l["path"] == path })
	if len(lines) != 1 {
		t.Fatalf("%s: %d access log lines, want 1", path, len(lines))
	}
	return lines[0]["client_ip"]
}

func TestTrustedProxiesInline(t *testing.T) {
	for _, loops := range []string{"true", "false"} {
		t.Run("inline_event_loops="+loops, func(t *testing.T) {
			a := newBackend(t, "a", false)
			i := startInstance(t, map[string]string{"enable_xff": "true", "trusted_proxies": "127.0.0.0/8, 10.0.0.0/8", "inline_event_loops": loops})
			wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=api", apiDoc("/", servers(a)), nil), 200, ok)
			wantStatus(t, i.Do("POST", "/v5/ase/firewall/blacklist", `{"type": "ip", "value": "203.0.113.9"}`, nil), 200, "success", "*")
			for n, c := range proxyChains {
				path := fmt.Sprintf("/chain/%d", n)
				want := 200
				if c.client == "203.0.113.9" {
					want = 403
				}
				r := sendChain(t, i, "GET", path, c.header())
				if r.Code != want {
					t.Errorf("%s: got %d %s, want %d (client %s)", c.name, r.Code, r.Body, want, c.client)
				}
				if got := clientOf(t, i, path); got != c.client {
					t.Errorf("%s: access log client %v, want %s", c.name, got, c.client)
				}
			}
			// The backend gets the chain it was sent, and ASE's own peer
			// appended: what it would have got from the load balancer.
			before := a.count()
			if r := sendChain(t, i, "GET", "/seen", proxyChain{xff: []string{"198.51.100.7, 10.1.2.3"}}.header()); r.Code != 200 || a.count() != before+1 {
				t.Fatalf("got %d, want the backend's answer", r.Code)
			}
			if got := strings.Join(a.last().Header.Values("X-Forwarded-For"), ", "); got != "198.51.100.7, 10.1.2.3, 127.0.0.1" {
				t.Fatalf("backend's X-Forwarded-For %q", got)
			}
		})
	}
}

// TestTrustedProxiesUntrustedPeer: a peer outside trusted_proxies is the
// client, whatever forwarding fields it sends, inline and in forward-auth.
func TestTrustedProxiesUntrustedPeer(t *testing.T) {
	spoof := http.Header{"X-Forwarded-For": {"203.0.113.9"}, "X-Real-IP": {"203.0.113.9"}}
	t.Run("inline", func(t *testing.T) {
		a := newBackend(t, "a", false)
		i := startInstance(t, map[string]string{"enable_xff": "true", "trusted_proxies": "10.0.0.0/8"})
		wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=api", apiDoc("/", servers(a)), nil), 200, ok)
		wantStatus(t, i.Do("POST", "/v5/ase/firewall/blacklist", `{"type": "ip", "value": "203.0.113.9"}`, nil), 200, "success", "*")
		if r := sendChain(t, i, "GET", "/spoof", spoof); r.Code != 200 {
			t.Fatalf("got %d %s, want 200: the peer 127.0.0.1 is not trusted", r.Code, r.Body)
		}
		if got := clientOf(t, i, "/spoof"); got != "127.0.0.1" {
			t.Fatalf("access log client %v, want the peer 127.0.0.1", got)
		}
	})
	t.Run("forward-auth", func(t *testing.T) {
		i := startSideband(t, map[string]string{"trusted_proxies": "10.0.0.0/8"})
		wantStatus(t, i.Do("POST", "/v5/ase/firewall/blacklist", `{"type": "ip", "value": "203.0.113.9"}`, nil), 200, "success", "*")
		h := spoof.Clone()
		h.Set("X-Original-URI", "/shop/items")
		r := sendChain(t, i, "GET", "/ase/authz", h)
		if r.Code != 200 || r.Header.Get("X-ASE-Client-IP") != "127.0.0.1" {
			t.Fatalf("got %d, client %q, want 200 and the gateway 127.0.0.1 as the client", r.Code, r.Header.Get("X-ASE-Client-IP"))
		}
	})
}

func TestTrustedProxiesForwardAuth(t *testing.T) {
	// The gateway (127.0.0.1) and the proxies in front of it are trusted.
	i := startSideband(t, map[string]string{"trusted_proxies": "127.0.0.0/8,10.0.0.0/8"})
	wantStatus(t, i.Do("POST", "/v5/ase/firewall/blacklist", `{"type": "ip", "value": "203.0.113.9"}`, nil), 200, "success", "*")
	for _, c := range proxyChains {
		h := c.header()
		h.Set("X-Forwarded-Uri", "/shop/items")
		h.Set("X-Forwarded-Method", "GET")
		r := sendChain(t, i, "GET", "/ase/authz", h)
		switch {
		case c.client == "203.0.113.9" && (r.Code != 403 || r.Header.Get("X-ASE-Reason") != "deny_list"):
			t.Errorf("%s: got %d %s, want 403 deny_list", c.name, r.Code, r.Body)
		case c.client != "203.0.113.9" && (r.Code != 200 || r.Header.Get("X-ASE-Client-IP") != c.client):
			t.Errorf("%s: got %d, client %q, want 200 and %s", c.name, r.Code, r.Header.Get("X-ASE-Client-IP"), c.client)
		}
	}
}

// TestTrustedProxiesConfig: trusted_proxies is read strictly, shown
// canonical, and a setting that cannot do what it seems to is named at
// start.
func TestTrustedProxiesConfig(t *testing.T) {
	for _, tt := range []struct{ value, want string }{
		{"10.0.0.0/8,junk", `"junk" is not an IP address or CIDR range`},
		{"10.0.0.1/8", `"10.0.0.1/8" has bits set past its length (10.0.0.0/8 or 10.0.0.1/32?)`},
		{"10.0.0.0/8,,127.0.0.1", `an empty entry`},
		{"fe80::1%eth0", `"fe80::1%eth0" is not an IP address or CIDR range`},
	} {
		i := newInstance(t, map[string]string{"trusted_proxies": tt.value})
		i.writeConf()
		_, stderr, code := i.CLIEnv(nil, "", "serve", "--check", "--config", i.ConfPath)
		if code != 1 || !strings.Contains(stderr, "trusted_proxies") || !strings.Contains(stderr, tt.want) {
			t.Errorf("trusted_proxies=%s: got %d %q, want 1 and %q", tt.value, code, stderr, tt.want)
		}
	}
	i := newInstance(t, map[string]string{"trusted_proxies": " 127.0.0.1, 10.0.0.0/8 ,::ffff:192.0.2.0/120, 2001:db8::/32"})
	i.writeConf()
	stdout, stderr, code := i.CLIEnv(nil, "", "serve", "--check", "--config", i.ConfPath)
	if code != 0 || !hasLine(stdout, "trusted_proxies=127.0.0.1/32,10.0.0.0/8,192.0.2.0/24,2001:db8::/32") {
		t.Fatalf("got %d %q %q", code, stdout, stderr)
	}
	// Inline, enable_xff is the switch: trusted_proxies alone reads no
	// forwarding field, and says so.
	i = startInstance(t, map[string]string{"trusted_proxies": "10.0.0.0/8"})
	if !strings.Contains(i.Output(), "trusted_proxies has no effect in inline mode without enable_xff=true") {
		t.Fatalf("no warning for trusted_proxies without enable_xff: %s", i.Output())
	}
	i = startInstance(t, map[string]string{"trusted_proxies": "10.0.0.0/8,0.0.0.0/0", "enable_xff": "true"})
	if !strings.Contains(i.Output(), "trusted_proxies contains 0.0.0.0/0") {
		t.Fatalf("no warning for a catch-all range: %s", i.Output())
	}
}
