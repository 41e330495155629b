package e2e

// Issue 14, points 7 and 8: the management API's brute-force limit holds
// under concurrency, duplicated credentials are refused rather than half
// checked, and a request framed two ways (Content-Length and
// Transfer-Encoding) is refused instead of being read the
// Transfer-Encoding way.

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// bruteLimit is SPEC section 11's rule: the 10th failure within a minute
// locks the address, so at most 10 wrong guesses are ever checked, the
// first 9 answered as failures and the 10th with the lock's 429.
const bruteLimit = 10

// burstReply is one reply of a concurrent burst, with the order in which
// it arrived.
type burstReply struct {
	code  int
	body  string
	order int64
	err   error
}

// burst sends every request at once (each on its own connection, all
// released together) and returns the replies in the requests' order.
func burst(reqs []*http.Request) []burstReply {
	tr := &http.Transport{MaxIdleConnsPerHost: -1, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	cl := &http.Client{Transport: tr}
	out := make([]burstReply, len(reqs))
	var arrived atomic.Int64
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	for n, req := range reqs {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			ready.Done()
			<-start
			resp, err := cl.Do(req)
			if err != nil {
				out[n] = burstReply{err: err, order: arrived.Add(1)}
				return
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			out[n] = burstReply{code: resp.StatusCode, body: string(b), err: err, order: arrived.Add(1)}
		}()
	}
	ready.Wait()
	close(start)
	done.Wait()
	return out
}

// statusMessage reads either error shape: {"status", "status_message"}
// or {"error": {"type", "message"}}.
func statusMessage(body string) (status, message string) {
	var e struct {
		Status  string `json:"status"`
		Message string `json:"status_message"`
		Error   struct{ Type, Message string }
	}
	json.Unmarshal([]byte(body), &e)
	if e.Error.Type != "" {
		return e.Error.Type, e.Error.Message
	}
	return e.Status, e.Message
}

func isLockout(r burstReply) bool {
	_, msg := statusMessage(r.body)
	return r.code == 429 && strings.HasPrefix(msg, "too many failed authentications from this address")
}

// countFailedChecks counts the failure lines of the server's log: one per
// password or key that was checked and found wrong.
func countFailedChecks(i *Instance) int {
	return strings.Count(i.Output(), "management authentication failed")
}

func TestManagementBypassBruteForce(t *testing.T) {
	// Each case: a fresh instance, 200 concurrent wrong guesses with one
	// kind of credential. At most 9 are answered as checked failures; the
	// rest are 429. Before the fix about 180 of 200 were checked.
	cases := []struct {
		name  string
		setup func(i *Instance)
		req   func(i *Instance, right bool) *http.Request
		// failure is how a checked wrong guess is answered.
		failCode    int
		failMessage string
	}{
		{
			name: "access and secret key headers", failCode: 403, failMessage: "fail",
			req: func(i *Instance, right bool) *http.Request {
				req, _ := http.NewRequest("GET", i.MgmtURL+"/v5/ase/api", nil)
				req.Header.Set("x-ase-access-key", "admin")
				req.Header.Set("x-ase-secret-key", "wrong-guess")
				if right {
					req.Header.Set("x-ase-secret-key", i.Password)
				}
				return req
			},
		},
		{
			name: "basic login", failCode: 401, failMessage: "AuthenticationFailure",
			req: func(i *Instance, right bool) *http.Request {
				req, _ := http.NewRequest("GET", i.MgmtURL+"/api/authentication?login_method=local&type=password", nil)
				req.SetBasicAuth("admin", "wrong-guess")
				if right {
					req.SetBasicAuth("admin", i.Password)
				}
				return req
			},
		},
		{
			// A session (here the admin's headers) can guess the current
			// password at PUT /password: the same budget applies.
			name: "current password", failCode: 403, failMessage: "fail",
			req: func(i *Instance, right bool) *http.Request {
				current := "wrong-guess"
				if right {
					current = i.Password
				}
				req, _ := http.NewRequest("PUT", i.MgmtURL+"/v5/ase/password", strings.NewReader(`{"current_password": "`+current+`", "new_password": "long-enough-1"}`))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("x-ase-access-key", "admin")
				req.Header.Set("x-ase-secret-key", i.Password)
				return req
			},
		},
		{
			name: "api key", failCode: 401, failMessage: "AuthenticationFailure",
			req: func(i *Instance, right bool) *http.Request {
				req, _ := http.NewRequest("GET", i.MgmtURL+"/api/configuration/aaa/local_database/api_keys", nil)
				req.Header.Set("Authorization", "apikey d3JvbmctZ3Vlc3Mtd3JvbmctZ3Vlc3M=")
				return req
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			i := startInstance(t, nil)
			const n = 200
			const right = n / 2 // the right password, in the middle of the burst
			reqs := make([]*http.Request, n)
			for k := range reqs {
				reqs[k] = tc.req(i, k == right && tc.name != "api key")
			}
			replies := burst(reqs)
			checked, locked := 0, 0
			for k, r := range replies {
				status, _ := statusMessage(r.body)
				switch {
				case r.err != nil:
					t.Fatalf("guess %d: %v", k, r.err)
				case k == right && r.code == 200:
				case r.code == tc.failCode && status == tc.failMessage:
					checked++
				case isLockout(r):
					locked++
				default:
					t.Fatalf("guess %d: got %d %s", k, r.code, r.body)
				}
			}
			t.Logf("%d concurrent guesses: %d answered as checked failures, %d refused with 429 (right one: %d)", n, checked, locked, replies[right].code)
			if checked > bruteLimit-1 {
				t.Errorf("%d wrong guesses were checked and answered as failures; at most %d may be", checked, bruteLimit-1)
			}
			if r := replies[right]; r.code == 200 {
				// Accepted: then it was one of the first guesses checked,
				// never one checked after the limit was reached.
				before := 0
				for _, o := range replies {
					if o.code == tc.failCode && o.order < r.order {
						before++
					}
				}
				if before > bruteLimit-1 {
					t.Errorf("the right password was accepted after %d rejected guesses", before)
				}
			}
			// The server's own count of checked failures agrees (its log
			// may lag the replies, which only lowers this count).
			if f := countFailedChecks(i); f > bruteLimit {
				t.Errorf("the server logged %d failed checks; at most %d may happen", f, bruteLimit)
			}

			// The address is locked now: the right password inside a
			// second burst is refused, and nothing more is checked.
			again := make([]*http.Request, 20)
			for k := range again {
				again[k] = tc.req(i, k == 10)
			}
			for k, r := range burst(again) {
				if !isLockout(r) {
					t.Errorf("locked address, guess %d: got %d %s, want 429", k, r.code, r.body)
				}
			}
			r := i.Do("GET", "/v5/ase/api", "", nil)
			wantStatus(t, r, 429, "fail", "too many failed authentications from this address*")
			if r.Header.Get("Retry-After") == "" {
				t.Error("429 without Retry-After")
			}
		})
	}
}

// sendHeaders sends a management request with exactly these header
// lines (names may repeat).
func (i *Instance) sendHeaders(method, path string, headers [][2]string) Reply {
	i.t.Helper()
	req, err := http.NewRequest(method, i.MgmtURL+path, nil)
	if err != nil {
		i.t.Fatal(err)
	}
	for _, h := range headers {
		req.Header.Add(h[0], h[1])
	}
	return i.send(req)
}

func TestManagementBypassDuplicateCredentials(t *testing.T) {
	i := startInstance(t, nil)
	i.createUser("ops", "ops-password", "write")
	session := strings.TrimPrefix(i.login("ops", "ops-password")["Cookie"], "session_id=")
	var key struct {
		Body struct{ Token string } `json:"body"`
	}
	decode(t, i.as("POST", "/api/configuration/aaa/local_database/api_keys", `{"name": "k"}`, map[string]string{"Cookie": "session_id=" + session}), &key)
	if key.Body.Token == "" {
		t.Fatal("no API key token")
	}
	basic := func(user, password string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
	}
	other := strings.Repeat("0", len(session))

	// Each credential alone works.
	for _, h := range [][][2]string{
		{{"x-ase-access-key", "admin"}, {"x-ase-secret-key", "admin"}},
		{{"Authorization", "apikey " + key.Body.Token}},
		{{"Cookie", "session_id=" + session}},
		{{"session_id", session}},
	} {
		if r := i.sendHeaders("GET", "/v5/ase/status", h); r.Code != 200 {
			t.Fatalf("%v: got %d %s", h, r.Code, r.Body)
		}
	}

	cases := []struct {
		name    string
		path    string
		headers [][2]string
	}{
		{"secret key twice, right one first", "/v5/ase/api", [][2]string{{"x-ase-access-key", "admin"}, {"x-ase-secret-key", "admin"}, {"x-ase-secret-key", "wrong"}}},
		{"secret key twice, right one second", "/v4/ase/api", [][2]string{{"x-ase-access-key", "admin"}, {"x-ase-secret-key", "wrong"}, {"x-ase-secret-key", "admin"}}},
		{"access key twice", "/v5/ase/api", [][2]string{{"x-ase-access-key", "admin"}, {"x-ase-access-key", "root"}, {"x-ase-secret-key", "admin"}}},
		{"secret key twice on /api", "/api/configuration/aaa/local_database/users", [][2]string{{"x-ase-access-key", "admin"}, {"x-ase-secret-key", "admin"}, {"x-ase-secret-key", "admin"}}},
		{"api key twice", "/v5/ase/status", [][2]string{{"Authorization", "apikey " + key.Body.Token}, {"Authorization", "apikey wrong"}}},
		{"api key twice on /api", "/api/configuration/aaa/local_database/api_keys", [][2]string{{"Authorization", "apikey " + key.Body.Token}, {"Authorization", "apikey " + key.Body.Token}}},
		{"basic login twice", "/api/authentication?login_method=local&type=password", [][2]string{{"Authorization", basic("ops", "ops-password")}, {"Authorization", basic("ops", "wrong")}}},
		{"session cookie twice in one header", "/v5/ase/status", [][2]string{{"Cookie", "session_id=" + session + "; session_id=" + other}}},
		{"session cookie in two headers", "/v5/ase/status", [][2]string{{"Cookie", "session_id=" + session}, {"Cookie", "session_id=" + other}}},
		{"session header twice", "/v5/ase/status", [][2]string{{"session_id", session}, {"session_id", other}}},
		{"session header and cookie", "/api/configuration/aaa/local_database/api_keys", [][2]string{{"session_id", session}, {"Cookie", "session_id=" + other}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := i.sendHeaders("GET", tc.path, tc.headers)
			if strings.HasPrefix(tc.path, "/api") {
				wantAPIError(t, r, 400, "InvalidAuthenticationRequest")
			} else {
				wantStatus(t, r, 400, "fail", "*")
			}
			if _, msg := statusMessage(string(r.Body)); !strings.Contains(msg, "more than once") {
				t.Errorf("the message does not say what is wrong: %s", r.Body)
			}
		})
	}
	// Refusing an ambiguous request checks nothing: no failure is
	// counted, so the address is not locked out.
	if f := countFailedChecks(i); f != 0 {
		t.Errorf("duplicates were counted as %d failed authentications", f)
	}
	wantJSON(t, i.Do("GET", "/v5/ase/api", "", nil), 200, `{"api_count": "0", "api": []}`)
}

// smuggle is a request that a proxy framing by Content-Length reads as one
// POST whose body is "0\r\n\r\n" and a DELETE, and that a server letting
// Transfer-Encoding win reads as two requests.
func smuggle(victim, teFirst string) string {
	hidden := "DELETE /v5/ase/api?api_id=" + victim + " HTTP/1.1\r\nHost: x\r\nx-ase-access-key: admin\r\nx-ase-secret-key: admin\r\n\r\n"
	body := "0\r\n\r\n" + hidden
	framing := fmt.Sprintf("Content-Length: %d\r\nTransfer-Encoding: chunked\r\n", len(body))
	if teFirst != "" {
		framing = fmt.Sprintf("transfer-encoding: chunked\r\ncontent-length: %d\r\n", len(body))
	}
	return "POST /v5/ase/firewall/blacklist HTTP/1.1\r\nHost: x\r\nx-ase-access-key: admin\r\nx-ase-secret-key: admin\r\nContent-Type: application/json\r\n" + framing + "\r\n" + body
}

// mgmtExchange writes raw on c and reads every response until the server
// closes the connection.
func mgmtExchange(t *testing.T, c net.Conn, raw string) []Reply {
	t.Helper()
	defer c.Close()
	// Only a guard against hanging when a server keeps the connection
	// open; the assertions are on what was read.
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	var out []Reply
	for {
		resp, err := http.ReadResponse(br, nil)
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return out
		}
		if err != nil {
			t.Fatalf("after %d responses: %v", len(out), err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		out = append(out, Reply{Code: resp.StatusCode, Header: resp.Header, Body: b, Close: resp.Close})
		if resp.Close {
			// The server said it closes: nothing more may follow.
			if n, _ := br.Read(make([]byte, 1)); n != 0 {
				t.Fatal("the server sent more after Connection: close")
			}
			return out
		}
	}
}

func TestManagementBypassFraming(t *testing.T) {
	check := func(t *testing.T, i *Instance, dial func() net.Conn) {
		for _, id := range []string{"victim", "victim2", "victim3"} {
			wantJSON(t, i.Do("POST", "/v5/ase/api?api_id="+id, apiDoc("/"+id, ""), nil), 200, ok)
		}
		t.Run("content-length and transfer-encoding", func(t *testing.T) {
			rs := mgmtExchange(t, dial(), smuggle("victim", ""))
			if len(rs) != 1 {
				t.Fatalf("got %d responses, want 1 (the smuggled DELETE must not be read)", len(rs))
			}
			wantStatus(t, rs[0], 400, "fail", "*")
			if !rs[0].Close {
				t.Error("the connection is kept open after an ambiguous request")
			}
		})
		t.Run("transfer-encoding first, lower case", func(t *testing.T) {
			rs := mgmtExchange(t, dial(), smuggle("victim2", "te first"))
			if len(rs) != 1 {
				t.Fatalf("got %d responses, want 1", len(rs))
			}
			wantStatus(t, rs[0], 400, "fail", "*")
		})
		t.Run("on an /api route", func(t *testing.T) {
			raw := "GET /api/configuration/aaa/local_database/users HTTP/1.1\r\nHost: x\r\nx-ase-access-key: admin\r\nx-ase-secret-key: admin\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
			rs := mgmtExchange(t, dial(), raw)
			if len(rs) != 1 {
				t.Fatalf("got %d responses, want 1", len(rs))
			}
			wantAPIError(t, rs[0], 400, "InvalidRequest")
		})
		t.Run("a request before it on the connection is served", func(t *testing.T) {
			first := "GET /v5/ase/api?api_id=victim3 HTTP/1.1\r\nHost: x\r\nx-ase-access-key: admin\r\nx-ase-secret-key: admin\r\n\r\n"
			rs := mgmtExchange(t, dial(), first+smuggle("victim3", ""))
			if len(rs) != 2 || rs[0].Code != 200 {
				t.Fatalf("got %d responses (%v), want 200 then 400", len(rs), rs)
			}
			wantStatus(t, rs[1], 400, "fail", "*")
		})
		t.Run("chunked alone is still read", func(t *testing.T) {
			entry := `{"type": "ip", "value": "192.0.2.7"}`
			raw := fmt.Sprintf("POST /v5/ase/firewall/blacklist HTTP/1.1\r\nHost: x\r\nx-ase-access-key: admin\r\nx-ase-secret-key: admin\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n", len(entry), entry)
			raw += "GET /v5/ase/api?api_id=victim HTTP/1.1\r\nHost: x\r\nx-ase-access-key: admin\r\nx-ase-secret-key: admin\r\nConnection: close\r\n\r\n"
			rs := mgmtExchange(t, dial(), raw)
			if len(rs) != 2 {
				t.Fatalf("got %d responses, want 2", len(rs))
			}
			wantStatus(t, rs[0], 200, "success", "ip 192.0.2.7 added to blacklist")
			if rs[1].Code != 200 {
				t.Fatalf("the request after a chunked one: %d %s", rs[1].Code, rs[1].Body)
			}
		})
		// No smuggled DELETE ran.
		wantJSON(t, i.Do("GET", "/v5/ase/api", "", nil), 200, `{"api_count": "3", "api": [
			{"api_id": "victim", "status": "loaded"}, {"api_id": "victim2", "status": "loaded"}, {"api_id": "victim3", "status": "loaded"}]}`)
	}

	t.Run("http", func(t *testing.T) {
		i := startInstance(t, nil)
		check(t, i, func() net.Conn {
			c, err := net.Dial("tcp", strings.TrimPrefix(i.MgmtURL, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			return c
		})
	})
	t.Run("https", func(t *testing.T) {
		dir := t.TempDir()
		caFile, certFile, keyFile, _ := testPKI(t, dir, "alice")
		i := newInstance(t, map[string]string{"management_tls_cert_file": certFile, "management_tls_key_file": keyFile})
		i.MgmtURL = "https://127.0.0.1:" + i.Conf["management_port"]
		pool := x509.NewCertPool()
		pem, _ := os.ReadFile(caFile)
		pool.AppendCertsFromPEM(pem)
		tc := &tls.Config{RootCAs: pool}
		i.HTTP = &http.Client{Transport: &http.Transport{TLSClientConfig: tc}}
		i.Start()
		check(t, i, func() net.Conn {
			c, err := tls.Dial("tcp", strings.TrimPrefix(i.MgmtURL, "https://"), tc)
			if err != nil {
				t.Fatal(err)
			}
			return c
		})
	})
}
