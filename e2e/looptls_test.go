package e2e

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestTLSOnTheLoops: in inline mode the event loops serve https_wss_port
// as they serve the plain port (issue 18, point 3): a TLS connection is
// counted among the loops' own, requests arriving in any cut of TLS records
// (pipelined in one, one byte per record, a large body) are answered in
// order and forwarded with X-Forwarded-Proto: https, a connection the loops
// hand to the general server goes on in its TLS session, and a client that
// never finishes its handshake, or is not speaking TLS, is let go without
// holding anything up. TestInlineEnginesAgree compares the two engines
// over TLS request by request; TestGeneralServerStreams holds memory flat
// while gigabytes stream over TLS.
func TestTLSOnTheLoops(t *testing.T) {
	i := startInstance(t, map[string]string{"https_wss_port": strconv.Itoa(freePort(t)), "read_timeout": "1s"})
	b := newWireBackend(t)
	wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=api", apiDoc("/", b.servers()), nil), 200, ok)
	addr := "127.0.0.1:" + i.Conf["https_wss_port"]
	dial := func() (*tls.Conn, *bufio.Reader) {
		t.Helper()
		c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(30 * time.Second))
		return c, bufio.NewReader(c)
	}
	read := func(br *bufio.Reader, method string) (int, string) {
		t.Helper()
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			t.Fatalf("no response: %v", err)
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("reading the body: %v", err)
		}
		return resp.StatusCode, string(body)
	}

	accepted, handed := inlineConns(t, i, "accepted"), inlineConns(t, i, "handed_off")
	c, br := dial()
	before := b.count()
	pipelined := "GET /one HTTP/1.1\r\nHost: a\r\n\r\n" +
		"POST /two HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc" +
		"GET /three HTTP/1.1\r\nHost: a\r\n\r\n"
	if _, err := c.Write([]byte(pipelined)); err != nil { // one TLS record
		t.Fatal(err)
	}
	for _, m := range []string{"GET", "POST", "GET"} {
		if code, body := read(br, m); code != 200 || body != "backend" {
			t.Fatalf("pipelined: got %d %q", code, body)
		}
	}
	got := b.since(before)
	if len(got) != 3 {
		t.Fatalf("the backend got %d requests, want 3", len(got))
	}
	for n, want := range []string{"GET /one ", "POST /two ", "GET /three "} {
		if !strings.HasPrefix(got[n].head, want) || !strings.Contains(got[n].head, "\r\nX-Forwarded-Proto: https\r\n") {
			t.Fatalf("request %d reached the backend as %q", n, got[n].head)
		}
	}
	if got[1].body != "abc" {
		t.Fatalf("the pipelined body reached the backend as %q", got[1].body)
	}
	if n := inlineConns(t, i, "accepted"); n != accepted+1 {
		t.Fatalf("the loops accepted %v TLS connections, want 1: the general server served it", n-accepted)
	}

	// One byte per record, on the same connection.
	before = b.count()
	for _, ch := range []byte("POST /bytes HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello") {
		if _, err := c.Write([]byte{ch}); err != nil {
			t.Fatal(err)
		}
	}
	if code, _ := read(br, "POST"); code != 200 {
		t.Fatalf("a request in one-byte records: %d", code)
	}
	if got := b.since(before); len(got) != 1 || got[0].body != "hello" {
		t.Fatalf("the backend got %v", got)
	}

	// A body of many records.
	big := strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB
	before = b.count()
	if _, err := io.WriteString(c, "POST /big HTTP/1.1\r\nHost: a\r\nContent-Length: "+strconv.Itoa(len(big))+"\r\n\r\n"+big); err != nil {
		t.Fatal(err)
	}
	if code, _ := read(br, "POST"); code != 200 {
		t.Fatalf("a 1 MiB body: %d", code)
	}
	if got := b.since(before); len(got) != 1 || got[0].body != big {
		t.Fatalf("the backend got %d requests, the body %d bytes", len(got), len(got[0].body))
	}

	// A request the loops leave to the general server: the session goes
	// on there, for this request and the next.
	c2, br2 := dial()
	before = b.count()
	for n := range 2 {
		if _, err := io.WriteString(c2, "GET /%62ig HTTP/1.1\r\nHost: a\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		if code, body := read(br2, "GET"); code != 200 || body != "backend" {
			t.Fatalf("handed-over request %d: %d %q", n, code, body)
		}
	}
	if got := b.since(before); len(got) != 2 || !strings.Contains(got[0].head, "\r\nX-Forwarded-Proto: https\r\n") {
		t.Fatalf("the backend got %v", got)
	}
	if n := inlineConns(t, i, "handed_off"); n != handed+1 {
		t.Fatalf("%v connections handed off, want 1", n-handed)
	}

	// A client that connects and never finishes a handshake is closed
	// (after read_timeout), and one that is not speaking TLS at once;
	// neither holds up the connection already served.
	silent, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	plain, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	io.WriteString(plain, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	if _, err := io.WriteString(c, "GET /after HTTP/1.1\r\nHost: a\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if code, _ := read(br, "GET"); code != 200 {
		t.Fatalf("the first connection, after the others came: %d", code)
	}
	// A record that does not decrypt, after the handshake: the session
	// ends (the loop closes the connection), the others go on.
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	tc := tls.Client(raw, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	io.WriteString(raw, "\x17\x03\x03\x00\x20"+strings.Repeat("x", 32)) // application data, garbage
	for name, conn := range map[string]net.Conn{"silent": silent, "not TLS": plain, "bad record": raw} {
		conn.SetReadDeadline(time.Now().Add(60 * time.Second))
		if _, err := io.Copy(io.Discard, conn); err != nil && !strings.Contains(err.Error(), "reset by peer") {
			t.Fatalf("the %s client was not let go: %v", name, err)
		}
	}
	if _, err := io.WriteString(c, "GET /last HTTP/1.1\r\nHost: a\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if code, _ := read(br, "GET"); code != 200 {
		t.Fatalf("the first connection, at the end: %d", code)
	}
}
