package e2e

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// streamBackend answers with the response shapes the event loops relay:
// large bodies with and without a length, chunked, ended by the
// connection's close, slow, and none at all.
type streamBackend struct {
	*httptest.Server
	hits atomic.Int64
}

var bigBody = bytes.Repeat([]byte("0123456789abcdef"), 1<<20) // 16 MB: more than the socket buffers hold

func newStreamBackend(t *testing.T, idle time.Duration) *streamBackend {
	t.Helper()
	b := &streamBackend{}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		body, _ := io.ReadAll(r.Body)
		switch r.URL.Path {
		case "/length":
			n := bodySize(r)
			w.Header().Set("Content-Length", strconv.Itoa(n))
			writePattern(w, n)
		case "/chunked":
			writePattern(w, bodySize(r))
		case "/eof":
			c, rw, _ := w.(http.Hijacker).Hijack()
			rw.WriteString("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the connection ends")
			rw.Flush()
			c.Close()
		case "/slow":
			time.Sleep(3 * time.Second)
			fmt.Fprint(w, "late")
		case "/never":
			<-r.Context().Done() // answers nothing while the connection lasts
		default:
			fmt.Fprintf(w, "%s %s xff=%s body=%s", r.Method, r.URL.RequestURI(), r.Header.Get("X-Forwarded-For"), body)
		}
	})
	b.Server = httptest.NewUnstartedServer(h)
	b.Config.IdleTimeout = idle
	b.Start()
	t.Cleanup(b.Close)
	return b
}

// bodySize is the size of a large response: n bytes when the query says
// n, else len(bigBody).
func bodySize(r *http.Request) int {
	if n, err := strconv.Atoi(r.URL.Query().Get("n")); err == nil {
		return n
	}
	return len(bigBody)
}

// writePattern writes the first n bytes of bigBody's pattern repeated, a
// megabyte at a time, flushing each.
func writePattern(w http.ResponseWriter, n int) {
	for n > 0 {
		k := min(n, 1<<20)
		if _, err := w.Write(bigBody[:k]); err != nil {
			return
		}
		w.(http.Flusher).Flush()
		n -= k
	}
}

// isPattern reports whether body is the first len(body) bytes of
// bigBody's pattern repeated.
func isPattern(body string) bool {
	for i := 0; i < len(body); i += 1 << 20 {
		k := min(len(body)-i, 1<<20)
		if body[i:i+k] != string(bigBody[:k]) {
			return false
		}
	}
	return true
}

func (b *streamBackend) servers() string {
	return fmt.Sprintf(`"servers": [{"host": "127.0.0.1", "port": %d}]`, b.Listener.Addr().(*net.TCPAddr).Port)
}

// inlineConns reads ase_inline_connections_total{event}.
func inlineConns(t *testing.T, i *Instance, event string) float64 {
	t.Helper()
	f := scrape(t, i)["ase_inline_connections_total"]
	if f == nil {
		return 0
	}
	for _, m := range f.Metric {
		for _, l := range m.Label {
			if l.GetName() == "event" && l.GetValue() == event {
				return m.Counter.GetValue()
			}
		}
	}
	return 0
}

func dialData(t *testing.T, i *Instance) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", "127.0.0.1:"+i.Conf["http_ws_port"])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	return c, bufio.NewReader(c)
}

func readReply(t *testing.T, br *bufio.Reader, method string) (*http.Response, string) {
	t.Helper()
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("reading a response: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading a body: %v", err)
	}
	return resp, string(body)
}

// TestEventLoopKeepAliveAndPipelining sends requests back to back on one
// connection, several in one write, and checks that the event loops (not
// the general server) answered them in order.
func TestEventLoopKeepAliveAndPipelining(t *testing.T) {
	b := newStreamBackend(t, 0)
	i := startInstance(t, nil)
	wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=api", apiDoc("/", b.servers()), nil), 200, ok)
	handed := inlineConns(t, i, "handed_off")

	c, br := dialData(t, i)
	c.Write([]byte("GET /one?a=1 HTTP/1.1\r\nHost: x\r\n\r\n" +
		"POST /two HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nX-Forwarded-For: 203.0.113.9\r\n\r\nhello" +
		"HEAD /length HTTP/1.1\r\nHost: x\r\n\r\n" +
		"GET /three HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
	want := []string{"GET /one?a=1 xff=127.0.0.1 body=", "POST /two xff=203.0.113.9, 127.0.0.1 body=hello"}
	for _, w := range want {
		if resp, body := readReply(t, br, "GET"); resp.StatusCode != 200 || body != w {
			t.Fatalf("got %d %q, want %q", resp.StatusCode, body, w)
		}
	}
	resp, body := readReply(t, br, "HEAD")
	if resp.StatusCode != 200 || resp.ContentLength != int64(len(bigBody)) || body != "" {
		t.Fatalf("HEAD: %d length %d body %d bytes", resp.StatusCode, resp.ContentLength, len(body))
	}
	resp, body = readReply(t, br, "GET")
	if body != "GET /three xff=127.0.0.1 body=" || !resp.Close {
		t.Fatalf("last: %q close %v", body, resp.Close)
	}
	if n, err := br.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("the connection stayed open after Connection: close (%d, %v)", n, err)
	}
	if got := inlineConns(t, i, "handed_off"); got != handed {
		t.Fatalf("%v connections were handed to the general server", got-handed)
	}
	if accepted := inlineConns(t, i, "accepted"); accepted < 1 {
		t.Fatal("the event loops accepted no connection")
	}
	lines := accessLog(t, i, 4, func(l map[string]any) bool { return l["api_id"] == "api" && l["backend"] != "" })
	if len(lines) < 4 {
		t.Fatalf("access log: %v", lines)
	}
	for _, l := range lines {
		if l["status"] != float64(200) || l["decision"] != "allow" || l["client_ip"] != "127.0.0.1" {
			t.Fatalf("access log record: %v", l)
		}
	}
}

// TestEventLoopHandoff checks that a connection whose request the loops
// do not take is served on by the general server, request after request.
func TestEventLoopHandoff(t *testing.T) {
	b := newStreamBackend(t, 0)
	i := startInstance(t, nil)
	wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=api", apiDoc("/", b.servers()), nil), 200, ok)
	handed := inlineConns(t, i, "handed_off")
	c, br := dialData(t, i)
	c.Write([]byte("GET /first HTTP/1.1\r\nHost: x\r\n\r\n"))
	if _, body := readReply(t, br, "GET"); body != "GET /first xff=127.0.0.1 body=" {
		t.Fatalf("first: %q", body)
	}
	// A chunked body: the general server takes the connection over, with
	// the bytes already read.
	c.Write([]byte("POST /second HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /third HTTP/1.1\r\nHost: x\r\n\r\n"))
	if _, body := readReply(t, br, "POST"); body != "POST /second xff=127.0.0.1 body=abc" {
		t.Fatalf("second: %q", body)
	}
	if _, body := readReply(t, br, "GET"); body != "GET /third xff=127.0.0.1 body=" {
		t.Fatalf("third: %q", body)
	}
	if got := inlineConns(t, i, "handed_off"); got != handed+1 {
		t.Fatalf("handed off %v connections, want 1", got-handed)
	}
}

// TestEventLoopStreaming relays responses larger than the socket buffers
// to a client that does not read at first (backpressure), with a length,
// chunked and ended by the backend's close, and the connection goes on.
func TestEventLoopStreaming(t *testing.T) {
	b := newStreamBackend(t, 0)
	i := startInstance(t, nil)
	wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=api", apiDoc("/", b.servers()), nil), 200, ok)
	backendPort, pid := b.Listener.Addr().(*net.TCPAddr).Port, i.cmd.Process.Pid
	// Larger than what the kernel may buffer towards the client (ASE's
	// send buffer grows up to tcp_wmem's maximum; the client's receive
	// buffer does not grow while it reads nothing), so that ASE must
	// leave some of the response unread at the backend.
	size := len(bigBody)
	if wmem, err := os.ReadFile("/proc/sys/net/ipv4/tcp_wmem"); err == nil {
		f := strings.Fields(string(wmem))
		if m, err := strconv.Atoi(f[len(f)-1]); err == nil {
			size = max(size, 2*m+8<<20)
		}
	}
	c, br := dialData(t, i)
	for _, path := range []string{"/length", "/chunked"} {
		c.Write([]byte("GET " + path + "?n=" + strconv.Itoa(size) + " HTTP/1.1\r\nHost: x\r\n\r\n"))
		// Backpressure: with the client reading nothing, ASE stops reading
		// the backend and sleeps while the backend's bytes wait, unread,
		// on its connection to the backend.
		eventually(t, path+": ASE asleep while the backend's bytes wait unread", func() bool {
			var socks []tcpSocket
			asleep := asleepThroughout(t, pid, func() { socks = tcpSockets(t) })
			for _, s := range socks {
				if asleep && s.remote == backendPort && s.state == tcpEstablished && s.rxq > 0 {
					return true
				}
			}
			return false
		})
		resp, body := readReply(t, br, "GET")
		if resp.StatusCode != 200 || len(body) != size || !isPattern(body) {
			t.Fatalf("%s: %d, %d bytes (want %d of the pattern)", path, resp.StatusCode, len(body), size)
		}
		if chunked := len(resp.TransferEncoding) > 0; chunked != (path == "/chunked") {
			t.Fatalf("%s: transfer encoding %v", path, resp.TransferEncoding)
		}
	}
	c.Write([]byte("GET /eof HTTP/1.1\r\nHost: x\r\n\r\n"))
	resp, body := readReply(t, br, "GET")
	if body != "until the connection ends" || !resp.Close {
		t.Fatalf("/eof: %q close %v", body, resp.Close)
	}
}

// TestEventLoopBackendConnections checks the loops' keep-alive pool to the
// backend: connections the backend closed while idle are not used (a POST
// after one succeeds), and a backend slower than backend_timeout is
// answered 504.
func TestEventLoopBackendConnections(t *testing.T) {
	b := newStreamBackend(t, 200*time.Millisecond)
	i := startInstance(t, map[string]string{"backend_timeout": "1s"})
	wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=api", apiDoc("/", b.servers()), nil), 200, ok)
	backendPort := b.Listener.Addr().(*net.TCPAddr).Port
	c, br := dialData(t, i)
	for n := 0; n < 3; n++ {
		c.Write([]byte("POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi"))
		if resp, body := readReply(t, br, "POST"); resp.StatusCode != 200 || body != "POST /p xff=127.0.0.1 body=hi" {
			t.Fatalf("round %d: %d %q", n, resp.StatusCode, body)
		}
		// The backend closes its idle connection, and ASE its end of it.
		eventually(t, "ASE closed the connection the backend closed", func() bool { return openTo(t, backendPort) == 0 })
	}
	c.Write([]byte("GET /never HTTP/1.1\r\nHost: x\r\n\r\n"))
	resp, body := readReply(t, br, "GET")
	if resp.StatusCode != 504 || body != "Error: Gateway Timeout" {
		t.Fatalf("slow backend: %d %q", resp.StatusCode, body)
	}
	lines := accessLog(t, i, 1, func(l map[string]any) bool { return l["reason"] == "backend_timeout" })
	if len(lines) != 1 || lines[0]["status"] != float64(504) {
		t.Fatalf("access log: %v", lines)
	}
	// The connection still serves.
	c.Write([]byte("GET /after HTTP/1.1\r\nHost: x\r\n\r\n"))
	if _, body := readReply(t, br, "GET"); !strings.HasPrefix(body, "GET /after") {
		t.Fatalf("after the timeout: %q", body)
	}
}

// TestEventLoopIdleTimeout checks that the loops close a keep-alive
// connection left idle for idle_timeout, and hand an HTTP/1.0 client to the
// general server, which answers it.
func TestEventLoopIdleTimeout(t *testing.T) {
	b := newStreamBackend(t, 0)
	i := startInstance(t, map[string]string{"idle_timeout": "1s"})
	wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=api", apiDoc("/", b.servers()), nil), 200, ok)
	c, br := dialData(t, i)
	// Taken before the request is sent, so before the connection fell
	// idle: ASE cannot close it less than idle_timeout after this, however
	// slowly either side runs.
	start := time.Now()
	c.Write([]byte("GET /a HTTP/1.1\r\nHost: x\r\n\r\n"))
	if _, body := readReply(t, br, "GET"); !strings.HasPrefix(body, "GET /a") {
		t.Fatalf("got %q", body)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("idle connection: %v (not closed within the read deadline, 30 s)", err)
	}
	if waited := time.Since(start); waited < time.Second {
		t.Fatalf("closed %v after the request was sent, before idle_timeout (1s)", waited)
	}
	handed := inlineConns(t, i, "handed_off")
	c2, br2 := dialData(t, i)
	c2.Write([]byte("GET /old HTTP/1.0\r\nHost: x\r\n\r\n"))
	if resp, body := readReply(t, br2, "GET"); resp.StatusCode != 200 || !strings.HasPrefix(body, "GET /old") {
		t.Fatalf("HTTP/1.0: %d %q", resp.StatusCode, body)
	}
	if got := inlineConns(t, i, "handed_off"); got != handed+1 {
		t.Fatalf("handed off %v, want 1", got-handed)
	}
}

// blackhole returns a port where connections are never completed: a
// listening socket with a filter that drops every packet that reaches it,
// so the kernel never sees a SYN to answer (how the kernel treats a full
// accept queue plays no part).
func blackhole(t *testing.T) int {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	drop := []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: 0}}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &unix.SockFprog{Len: 1, Filter: &drop[0]}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 128); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	port := sa.(*unix.SockaddrInet4).Port
	if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 300*time.Millisecond); err == nil {
		c.Close()
		t.Fatal("the blackhole accepted a connection")
	}
	return port
}

// TestEventLoopConnectTimeout checks that a server that never answers a
// connection costs an idempotent request ASE's connect timeout, not
// backend_timeout, before another server serves it: ASE says so in its
// log, naming the connect timeout as what failed.
func TestEventLoopConnectTimeout(t *testing.T) {
	b := newStreamBackend(t, 0)
	hole := blackhole(t)
	i := startInstance(t, map[string]string{"backend_timeout": "10m"})
	doc := apiDoc("/", fmt.Sprintf(`"health_check": false, "servers": [{"host": "127.0.0.1", "port": %d}, {"host": "127.0.0.1", "port": %d}]`,
		hole, b.Listener.Addr().(*net.TCPAddr).Port))
	wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=api", doc, nil), 200, ok)
	c, br := dialData(t, i)
	for n := 0; n < 2; n++ { // round-robin: one of the two starts at the blackhole
		c.Write([]byte("GET /x HTTP/1.1\r\nHost: x\r\n\r\n"))
		if resp, body := readReply(t, br, "GET"); resp.StatusCode != 200 || !strings.HasPrefix(body, "GET /x") {
			t.Fatalf("request %d: %d %q", n, resp.StatusCode, body)
		}
	}
	var moved []string
	for _, line := range strings.Split(i.Output(), "\n") {
		if strings.Contains(line, "trying another server") {
			moved = append(moved, line)
		}
	}
	want := fmt.Sprintf("server=127.0.0.1:%d error=\"connect timed out: connection timed out\"", hole)
	if len(moved) != 1 || !strings.Contains(moved[0], want) {
		t.Fatalf("ASE moved on from a server %d times, want once, from the blackhole with %s:\n%s", len(moved), want, strings.Join(moved, "\n"))
	}
}

// openFDs counts the descriptors the ASE process holds.
func openFDs(t *testing.T, i *Instance) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", i.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestEventLoopClientsThatLeave has many clients leave at every point of
// an exchange — in the middle of the head, of the body, while the backend
// works, in the middle of a streamed response, with requests pipelined —
// and checks that the loops release every connection (no descriptor
// leaks) and serve on.
func TestEventLoopClientsThatLeave(t *testing.T) {
	b := newStreamBackend(t, 200*time.Millisecond) // idle backend connections end soon
	i := startInstance(t, nil)
	wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=api", apiDoc("/", b.servers()), nil), 200, ok)
	addr := "127.0.0.1:" + i.Conf["http_ws_port"]
	get := func() {
		c, br := dialData(t, i)
		c.Write([]byte("GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
		if resp, _ := readReply(t, br, "GET"); resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	get()
	// The warm-up's backend connection ends (the backend closes it when
	// idle, then ASE its end).
	backendPort := b.Listener.Addr().(*net.TCPAddr).Port
	eventually(t, "ASE closed the warm-up's backend connection", func() bool { return openTo(t, backendPort) == 0 })
	base := openFDs(t, i)

	leave := []func(c net.Conn){
		func(c net.Conn) { c.Write([]byte("GET /half HTTP/1.1\r\nHo")) },
		func(c net.Conn) {
			c.Write([]byte("POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly part"))
		},
		func(c net.Conn) {
			c.Write([]byte("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"))
			time.Sleep(100 * time.Millisecond)
		},
		func(c net.Conn) {
			c.Write([]byte("GET /length HTTP/1.1\r\nHost: x\r\n\r\n"))
			io.ReadFull(c, make([]byte, 100_000)) // part of 16 MB
		},
		func(c net.Conn) {
			c.Write([]byte(strings.Repeat("GET /p HTTP/1.1\r\nHost: x\r\n\r\n", 20)))
			c.Read(make([]byte, 10))
		},
		func(c net.Conn) {
			c.Write([]byte("GET /chunked HTTP/1.1\r\nHost: x\r\n\r\n"))
			io.ReadFull(c, make([]byte, 50_000))
			c.(*net.TCPConn).SetLinger(0) // leave with a reset
		},
	}
	done := make(chan struct{})
	for n := 0; n < 120; n++ {
		go func() {
			defer func() { done <- struct{}{} }()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				return
			}
			c.SetDeadline(time.Now().Add(10 * time.Second))
			leave[n%len(leave)](c)
			c.Close()
		}()
	}
	for n := 0; n < 120; n++ {
		<-done
	}
	get()
	// The slow requests' backend exchanges end within 3 s; then every
	// descriptor they held is released.
	deadline := time.Now().Add(15 * time.Second)
	for {
		n := openFDs(t, i)
		if n <= base {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d descriptors open, %d before the clients came", n, base)
		}
		time.Sleep(200 * time.Millisecond)
	}
	get()
}

// setFileLimit sets the soft RLIMIT_NOFILE of process pid.
func setFileLimit(t *testing.T, pid int, soft uint64) {
	t.Helper()
	var old syscall.Rlimit
	if _, _, e := syscall.RawSyscall6(syscall.SYS_PRLIMIT64, uintptr(pid), syscall.RLIMIT_NOFILE, 0, uintptr(unsafe.Pointer(&old)), 0, 0); e != 0 {
		t.Fatalf("prlimit: %v", e)
	}
	lim := syscall.Rlimit{Cur: soft, Max: old.Max}
	if _, _, e := syscall.RawSyscall6(syscall.SYS_PRLIMIT64, uintptr(pid), syscall.RLIMIT_NOFILE, uintptr(unsafe.Pointer(&lim)), 0, 0, 0); e != 0 {
		t.Fatalf("prlimit: %v", e)
	}
}

// TestEventLoopOutOfDescriptors checks that a process out of file
// descriptors does not spin on the connections it cannot accept, and
// serves them once descriptors are free again.
func TestEventLoopOutOfDescriptors(t *testing.T) {
	b := newStreamBackend(t, 0)
	i := startInstance(t, nil)
	wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=api", apiDoc("/", b.servers()), nil), 200, ok)
	pid := i.cmd.Process.Pid
	setFileLimit(t, pid, uint64(openFDs(t, i)+4))
	addr := "127.0.0.1:" + i.Conf["http_ws_port"]
	var conns []net.Conn
	for n := 0; n < 12; n++ {
		c, err := net.Dial("tcp", addr) // completes in the kernel's queue
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	eventually(t, "running out of descriptors is logged", func() bool {
		return strings.Contains(i.out.String(), "cannot accept connections")
	})
	// Not spinning: the whole process sleeps, not woken once, while
	// connections wait in the listener's queue (a loop that went back to
	// the listener at once would always be running or runnable).
	port, _ := strconv.Atoi(i.Conf["http_ws_port"])
	eventually(t, "ASE asleep while connections wait to be accepted", func() bool {
		var socks []tcpSocket
		asleep := asleepThroughout(t, pid, func() { socks = tcpSockets(t) })
		for _, s := range socks {
			if asleep && s.local == port && s.state == tcpListen && s.rxq > 0 {
				return true
			}
		}
		return false
	})
	setFileLimit(t, pid, 1024)
	// Every connection that waited is served.
	for n, c := range conns {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		c.Write([]byte("GET /waited HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
		if resp, body := readReply(t, bufio.NewReader(c), "GET"); resp.StatusCode != 200 || !strings.HasPrefix(body, "GET /waited") {
			t.Fatalf("connection %d: %d %q", n, resp.StatusCode, body)
		}
		c.Close()
	}
}

// openTo counts the loopback connections to port that are open on the
// connecting side: established, or closed by the other side but not yet
// by this one (CLOSE_WAIT).
func openTo(t *testing.T, port int) int {
	t.Helper()
	n := 0
	for _, s := range tcpSockets(t) {
		if s.remote == port {
			n++
		}
	}
	return n
}

// TCP states as the kernel numbers them.
const (
	tcpEstablished = 1
	tcpCloseWait   = 8
	tcpListen      = 10
)

// tcpSocket is a TCP socket as the kernel's socket diagnostics give it.
type tcpSocket struct {
	local, remote int   // ports
	state         int   // tcpEstablished, tcpCloseWait or tcpListen
	rxq, txq      int64 // bytes not yet read / not yet acknowledged; a listener's rxq is its accept queue
}

// tcpSockets lists the machine's IPv4 TCP sockets that are established,
// listening or in CLOSE_WAIT (not those in TIME_WAIT, of which a busy
// machine may hold thousands), through a sock_diag netlink query: far
// quicker than /proc/net/tcp, which prints every socket.
func tcpSockets(t *testing.T) []tcpSocket {
	t.Helper()
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_INET_DIAG)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	ne := binary.NativeEndian
	// struct nlmsghdr, then struct inet_diag_req_v2.
	req := make([]byte, 16+56)
	ne.PutUint32(req[0:], uint32(len(req)))
	ne.PutUint16(req[4:], unix.SOCK_DIAG_BY_FAMILY)
	ne.PutUint16(req[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	req[16], req[17] = unix.AF_INET, unix.IPPROTO_TCP
	ne.PutUint32(req[20:], 1<<tcpEstablished|1<<tcpCloseWait|1<<tcpListen)
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		t.Fatal(err)
	}
	var out []tcpSocket
	buf := make([]byte, 64<<10)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			t.Fatal(err)
		}
		for b := buf[:n]; len(b) >= 16; {
			l := int(ne.Uint32(b[0:]))
			if l < 16 || l > len(b) {
				t.Fatalf("sock_diag: a message of %d bytes in %d", l, len(b))
			}
			switch ne.Uint16(b[4:]) {
			case unix.NLMSG_DONE:
				return out
			case unix.NLMSG_ERROR:
				t.Fatalf("sock_diag: error %d", int32(ne.Uint32(b[16:])))
			}
			// struct inet_diag_msg: family, state, timer, retrans; the
			// socket's id (ports in network order first); expires,
			// rqueue, wqueue, uid, inode.
			m := b[16:l]
			out = append(out, tcpSocket{
				state: int(m[1]), local: int(binary.BigEndian.Uint16(m[4:])), remote: int(binary.BigEndian.Uint16(m[6:])),
				rxq: int64(ne.Uint32(m[56:])), txq: int64(ne.Uint32(m[60:])),
			})
			b = b[(l+3)&^3:]
		}
	}
}

// threadState reads a thread's status file (as /proc/<pid>/task/<tid>/status
// gives it) down to its scheduler state and how often it has been
// switched out: "S 1234" is a sleeping thread that gave up the CPU 1234
// times.
func threadState(status []byte) string {
	var state string
	var switches int
	for _, line := range strings.Split(string(status), "\n") {
		k, v, _ := strings.Cut(line, ":")
		v = strings.TrimSpace(v)
		switch k {
		case "State":
			state, _, _ = strings.Cut(v, " ")
		case "voluntary_ctxt_switches", "nonvoluntary_ctxt_switches":
			n, _ := strconv.Atoi(v)
			switches += n
		}
	}
	return fmt.Sprintf("%s %d", state, switches)
}

// asleepThroughout calls look and reports whether no thread of process
// pid ran meanwhile: every one was asleep before and after, and none was
// switched in and out in between (a thread woken and asleep again counts
// one more switch). What look saw, the process let be without running a
// single instruction, however slowly either side runs. The process wakes
// now and then on its own (the Go runtime's monitor, timers): look must
// be quick, and is called again until it falls between two wake-ups.
func asleepThroughout(t *testing.T, pid int, look func()) bool {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/task", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	files := make([]*os.File, len(ents))
	before, after := make([][]byte, len(ents)), make([][]byte, len(ents))
	for k, e := range ents {
		if files[k], err = os.Open(dir + "/" + e.Name() + "/status"); err != nil {
			return false // the thread ended
		}
		defer files[k].Close()
		before[k], after[k] = make([]byte, 4096), make([]byte, 4096)
	}
	read := func(into [][]byte) bool {
		for k, f := range files {
			n, err := f.ReadAt(into[k], 0)
			if err != nil && err != io.EOF {
				return false
			}
			into[k] = into[k][:n]
		}
		return true
	}
	ok := read(before)
	look()
	if !read(after) || !ok {
		return false
	}
	if now, err := os.ReadDir(dir); err != nil || len(now) != len(ents) {
		return false // a thread started or ended
	}
	for k := range files {
		b, a := threadState(before[k]), threadState(after[k])
		if a != b || !strings.HasPrefix(b, "S ") && !strings.HasPrefix(b, "D ") {
			return false
		}
	}
	return true
}
