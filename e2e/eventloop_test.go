package e2e

import (
	"bufio"
	"bytes"
	"crypto/sha256"
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
)

// streamBackend answers with the response shapes the event loops relay:
// large bodies with and without a length, chunked, ended by the
// connection's close, and slow.
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
			w.Header().Set("Content-Length", strconv.Itoa(len(bigBody)))
			w.Write(bigBody)
		case "/chunked":
			for i := 0; i < len(bigBody); i += 1 << 20 {
				w.Write(bigBody[i : i+1<<20])
				w.(http.Flusher).Flush()
			}
		case "/eof":
			c, rw, _ := w.(http.Hijacker).Hijack()
			rw.WriteString("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the connection ends")
			rw.Flush()
			c.Close()
		case "/slow":
			time.Sleep(3 * time.Second)
			fmt.Fprint(w, "late")
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
	sum := sha256.Sum256(bigBody)
	c, br := dialData(t, i)
	for _, path := range []string{"/length", "/chunked"} {
		c.Write([]byte("GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n"))
		time.Sleep(300 * time.Millisecond) // the proxy's writes to the client block meanwhile
		resp, body := readReply(t, br, "GET")
		if resp.StatusCode != 200 || sha256.Sum256([]byte(body)) != sum {
			t.Fatalf("%s: %d, %d bytes (want %d)", path, resp.StatusCode, len(body), len(bigBody))
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
	c, br := dialData(t, i)
	for n := 0; n < 3; n++ {
		c.Write([]byte("POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi"))
		if resp, body := readReply(t, br, "POST"); resp.StatusCode != 200 || body != "POST /p xff=127.0.0.1 body=hi" {
			t.Fatalf("round %d: %d %q", n, resp.StatusCode, body)
		}
		time.Sleep(500 * time.Millisecond) // the backend closes its idle connection
	}
	c.Write([]byte("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"))
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
	c.Write([]byte("GET /a HTTP/1.1\r\nHost: x\r\n\r\n"))
	if _, body := readReply(t, br, "GET"); !strings.HasPrefix(body, "GET /a") {
		t.Fatalf("got %q", body)
	}
	start := time.Now()
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("idle connection: %v", err)
	}
	if waited := time.Since(start); waited < 500*time.Millisecond || waited > 10*time.Second {
		t.Fatalf("closed after %v, want about 1s", waited)
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
// listening socket whose accept queue is full, so the kernel drops SYNs.
func blackhole(t *testing.T) int {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, _ := syscall.Getsockname(fd)
	port := sa.(*syscall.SockaddrInet4).Port
	for n := 0; n < 3; n++ { // fill the queue
		if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 300*time.Millisecond); err == nil {
			t.Cleanup(func() { c.Close() })
		}
	}
	if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 300*time.Millisecond); err == nil {
		c.Close()
		t.Fatal("the blackhole accepted a connection")
	}
	return port
}

// TestEventLoopConnectTimeout checks that a server that never answers a
// connection costs an idempotent request the connect timeout (5 s), not
// backend_timeout, before another server serves it.
func TestEventLoopConnectTimeout(t *testing.T) {
	b := newStreamBackend(t, 0)
	hole := blackhole(t)
	i := startInstance(t, map[string]string{"backend_timeout": "30s"})
	doc := apiDoc("/", fmt.Sprintf(`"health_check": false, "servers": [{"host": "127.0.0.1", "port": %d}, {"host": "127.0.0.1", "port": %d}]`,
		hole, b.Listener.Addr().(*net.TCPAddr).Port))
	wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=api", doc, nil), 200, ok)
	c, br := dialData(t, i)
	var slowest time.Duration
	for n := 0; n < 2; n++ { // round-robin: one of the two starts at the blackhole
		start := time.Now()
		c.Write([]byte("GET /x HTTP/1.1\r\nHost: x\r\n\r\n"))
		if resp, body := readReply(t, br, "GET"); resp.StatusCode != 200 || !strings.HasPrefix(body, "GET /x") {
			t.Fatalf("request %d: %d %q", n, resp.StatusCode, body)
		}
		slowest = max(slowest, time.Since(start))
	}
	if slowest < 4*time.Second || slowest > 20*time.Second {
		t.Fatalf("the slower request took %v; want about the 5 s connect timeout", slowest)
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
	time.Sleep(time.Second) // the warm-up's backend connection ends
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

// cpuTicks is the CPU time the process used, in clock ticks.
func cpuTicks(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	u, _ := strconv.Atoi(f[11])
	s, _ := strconv.Atoi(f[12])
	return u + s
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
	time.Sleep(500 * time.Millisecond)
	before := cpuTicks(t, pid)
	time.Sleep(2 * time.Second)
	// A loop spinning on its listener burns a whole core: 200 ticks in 2 s.
	if used := cpuTicks(t, pid) - before; used > 60 {
		t.Fatalf("ASE used %d ticks in 2 s while out of descriptors: spinning", used)
	}
	if !strings.Contains(i.out.String(), "cannot accept connections") {
		t.Fatalf("running out of descriptors was not logged:\n%s", i.out.String())
	}
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
