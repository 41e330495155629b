package proxy

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/ase-project/ase/internal/catalog"
	"github.com/ase-project/ase/internal/engine"
	"github.com/ase-project/ase/internal/health"
	"github.com/ase-project/ase/internal/lists"
	"github.com/ase-project/ase/internal/store"
)

// gatedClock is the time the byte throttle reads and waits on: it stands
// still except when the throttle sleeps, and each sleep is reported on
// sleeps and lasts until the test sends on wake.
type gatedClock struct {
	mu     sync.Mutex
	now    time.Time
	sleeps chan time.Duration
	wake   chan struct{}
}

func (c *gatedClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *gatedClock) Sleep(d time.Duration) {
	c.sleeps <- d
	<-c.wake
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// wsRig is a proxy in front of one WebSocket backend, with the API's
// definition in a store the test changes live.
type wsRig struct {
	st      store.Store
	addr    string // the proxy
	backend int    // its port
	conns   chan net.Conn
	clock   *gatedClock
}

func newWSRig(t *testing.T) *wsRig {
	t.Helper()
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	st, err := store.Open(filepath.Join(t.TempDir(), "ase.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	live, err := catalog.NewLive(ctx, st, catalog.Defaults{}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(live.Close)
	lst, err := lists.Open(ctx, st, lists.Options{Limit: 1 << 20, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(lst.Close)
	checker := health.New(log, nil)
	t.Cleanup(checker.Close)
	r := &wsRig{st: st, conns: make(chan net.Conn, 1), clock: &gatedClock{now: time.Unix(1000, 0), sleeps: make(chan time.Duration), wake: make(chan struct{})}}
	p := New(Options{Engine: engine.New(lst, live, nil), Live: live, Health: checker, Logger: log, Clock: r.clock})
	t.Cleanup(p.Close)

	// The backend answers the upgrade and hands the connection over.
	bl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bl.Close() })
	r.backend = bl.Addr().(*net.TCPAddr).Port
	go func() {
		for {
			c, err := bl.Accept()
			if err != nil {
				return
			}
			if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
				c.Close()
				continue
			}
			io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
			r.conns <- c
		}
	}()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go (&fasthttp.Server{Handler: p.Serve}).Serve(ln)
	r.addr = ln.Addr().String()
	return r
}

// setAPI stores the chat API with flow control fc (a JSON object); the
// proxy has it when the commit returns.
func (r *wsRig) setAPI(t *testing.T, fc string) {
	t.Helper()
	doc := fmt.Sprintf(`{"api_metadata": {"url": "/chat", "protocol": "ws", "servers": [{"host": "127.0.0.1", "port": %d}], "flow_control": %s}}`, r.backend, fc)
	if _, err := r.st.Commit(context.Background(), store.Batch{Ops: []store.Op{store.Put(catalog.APIPrefix+"chat", []byte(doc))}}); err != nil {
		t.Fatal(err)
	}
}

// open upgrades a client connection and returns it with the backend's.
func (r *wsRig) open(t *testing.T) (client net.Conn, clientBuf *bufio.Reader, backend net.Conn) {
	t.Helper()
	c, err := net.Dial("tcp", r.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	io.WriteString(c, "GET /chat/ws HTTP/1.1\r\nHost: chat.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	select {
	case b := <-r.conns:
		t.Cleanup(func() { b.Close() })
		return c, br, b
	case <-time.After(30 * time.Second):
		t.Fatal("the backend got no upgrade")
		return nil, nil, nil
	}
}

// pattern is n bytes that show where each came from.
func pattern(n, seed int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte((i*7 + seed) % 251)
	}
	return b
}

// transfer writes msg on from and reads it from to, answering the
// throttle's sleeps meanwhile; it returns what the sleeps added up to.
func (r *wsRig) transfer(t *testing.T, from net.Conn, to io.Reader, msg []byte) (slept time.Duration, sleeps int) {
	t.Helper()
	got := make(chan []byte, 1)
	go func() {
		b := make([]byte, len(msg))
		n, _ := io.ReadFull(to, b)
		got <- b[:n]
	}()
	if _, err := from.Write(msg); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(60 * time.Second)
	for {
		select {
		case d := <-r.clock.sleeps:
			slept += d
			sleeps++
			r.clock.wake <- struct{}{}
		case b := <-got:
			if !bytes.Equal(b, msg) {
				t.Fatalf("got %d bytes, not the %d sent", len(b), len(msg))
			}
			return slept, sleeps
		case <-deadline:
			t.Fatalf("%d bytes not through after 60s", len(msg))
		}
	}
}

// TestWebSocketBytesOut: bytes_out_threshold holds what the backend sends
// the client to its rate (a second's worth, at least 1 KB, passing at
// once), on the proxy's clock, with nothing lost; what the client sends is
// not held by it; and a change reaches an open connection at its next
// chunk. The throttle waits on an injected clock, so the test needs no
// real time: it adds up the waits.
func TestWebSocketBytesOut(t *testing.T) {
	r := newWSRig(t)
	r.setAPI(t, `{"bytes_out_threshold": "1000/second"}`)
	client, clientBuf, backend := r.open(t)

	if slept, n := r.transfer(t, client, backend, pattern(8192, 1)); n != 0 {
		t.Fatalf("client to backend waited %d times (%v) with only bytes_out_threshold set", n, slept)
	}
	// 4096 bytes at 1000 a second, the first 1024 at once: 3.072 s.
	slept, n := r.transfer(t, backend, clientBuf, pattern(4096, 2))
	if want := 3072 * time.Millisecond; slept < want-time.Millisecond || slept > want+time.Millisecond || n < 3 {
		t.Fatalf("backend to client waited %v in %d sleeps, want %v in at least 3", slept, n, want)
	}

	// Lifted live: the next chunk passes without waiting, on the same
	// connection.
	r.setAPI(t, `{"bytes_out_threshold": "0/second"}`)
	if slept, n := r.transfer(t, backend, clientBuf, pattern(4096, 3)); n != 0 {
		t.Fatalf("after the threshold was lifted, backend to client still waited %d times (%v)", n, slept)
	}
	// Set again live: the next chunk waits at the new rate (2000 a
	// second: 8192 bytes, the first 2000 at once, take 3.096 s).
	r.setAPI(t, `{"bytes_out_threshold": "2000/second"}`)
	slept, n = r.transfer(t, backend, clientBuf, pattern(8192, 4))
	if want := 3096 * time.Millisecond; slept < want-time.Millisecond || slept > want+time.Millisecond {
		t.Fatalf("at the new rate, backend to client waited %v in %d sleeps, want %v", slept, n, want)
	}
}
