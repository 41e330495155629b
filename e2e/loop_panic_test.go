package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestLoopPanicClosesOnlyItsConnection: a panic while an event loop
// serves one connection gives that client a 500 and closes its
// connection; the loop goes on serving every other connection, new ones
// included, and the panic is logged with its stack. The panic is the
// test-only one ASE_TEST_PANIC_PATH sets up (no real input is known to
// panic); GOMAXPROCS=1 makes one loop, so every connection shares the
// panicking one's loop.
func TestLoopPanicClosesOnlyItsConnection(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok "+r.URL.Path)
	}))
	t.Cleanup(backend.Close)
	i := newInstance(t, map[string]string{"listen_address": "127.0.0.1", "inline_event_loops": "true"})
	i.Env = append(i.Env, "ASE_TEST_PANIC_PATH=/p/panic", "GOMAXPROCS=1")
	i.Start()
	port := backend.Listener.Addr().(*net.TCPAddr).Port
	wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=p", apiDoc("/p", fmt.Sprintf(`"servers": [{"host": "127.0.0.1", "port": %d}]`, port)), nil), 200, ok)

	type conn struct {
		c  net.Conn
		br *bufio.Reader
	}
	exchange := func(k conn, path string) *http.Response {
		t.Helper()
		if _, err := io.WriteString(k.c, "GET "+path+" HTTP/1.1\r\nHost: a\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(k.br, nil)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		return resp
	}
	wantOK := func(k conn, path string) {
		t.Helper()
		resp := exchange(k, path)
		body, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != 200 || string(body) != "ok "+path || resp.Close {
			t.Fatalf("GET %s: got %d %q (close %v), %v; want 200 %q, kept open", path, resp.StatusCode, body, resp.Close, err, "ok "+path)
		}
	}
	dial := func() conn {
		t.Helper()
		c, err := net.Dial("tcp", "127.0.0.1:"+i.Conf["http_ws_port"])
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		// A failure path only: every read below expects data or the end.
		c.SetDeadline(time.Now().Add(60 * time.Second))
		return conn{c, bufio.NewReader(c)}
	}

	// Open connections, each with a request served and kept alive.
	conns := make([]conn, 4)
	for n := range conns {
		conns[n] = dial()
		wantOK(conns[n], fmt.Sprintf("/p/before/%d", n))
	}

	// The panic, on the second connection.
	resp := exchange(conns[1], "/p/panic")
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 500 || !resp.Close {
		t.Fatalf("the panicking request: got %d %q (close %v), want 500 and Connection: close", resp.StatusCode, body, resp.Close)
	}
	if n, err := conns[1].br.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("after the 500: read %d bytes, %v; want the connection closed (EOF)", n, err)
	}

	// Every other connection, and a new one, is served on.
	for n, k := range conns {
		if n != 1 {
			wantOK(k, fmt.Sprintf("/p/after/%d", n))
		}
	}
	wantOK(dial(), "/p/new")

	out := i.Output()
	if !strings.Contains(out, `msg="data path panic"`) || !strings.Contains(out, "ASE_TEST_PANIC_PATH /p/panic") || !strings.Contains(out, "(*cconn).serve") {
		t.Fatalf("the panic is not logged with its stack:\n%s", tail(out, 4000))
	}
	// The loops served them all: nothing was handed to the general server.
	fams := scrape(t, i)
	if n := value(t, fams, "ase_inline_connections_total", map[string]string{"event": "accepted"}); n != 5 {
		t.Fatalf("the loops accepted %v connections, want 5", n)
	}
	for _, m := range fams["ase_inline_connections_total"].Metric {
		for _, l := range m.Label {
			if l.GetValue() == "handed_off" && m.Counter.GetValue() != 0 {
				t.Fatalf("%v connections were handed to the general server", m.Counter.GetValue())
			}
		}
	}
}
