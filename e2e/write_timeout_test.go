package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestWriteTimeout: a response the client does not take within
// write_timeout is abandoned: ASE closes the connection with the response
// unfinished. The client asks for 32 MB and reads nothing, with a small
// receive buffer, so ASE's writes stall; the test waits until ASE's end of
// the connection leaves ESTABLISHED (it closed it: FIN_WAIT1, its FIN
// queued behind the data the client never took), then reads what was
// sent: less than the response, then the end. backend_timeout is far
// longer than the test waits, so only write_timeout can end it.
func TestWriteTimeout(t *testing.T) {
	const size = 32 << 20
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(size))
		chunk := []byte(strings.Repeat("x", 64<<10))
		for n := 0; n < size; n += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	t.Cleanup(backend.Close)
	port := backend.Listener.Addr().(*net.TCPAddr).Port

	for _, loops := range []string{"true", "false"} {
		t.Run("inline_event_loops="+loops, func(t *testing.T) {
			i := startInstance(t, map[string]string{"listen_address": "127.0.0.1", "inline_event_loops": loops,
				"write_timeout": "1s", "backend_timeout": "10m"})
			wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=big", apiDoc("/big", fmt.Sprintf(`"servers": [{"host": "127.0.0.1", "port": %d}]`, port)), nil), 200, ok)

			d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
				var err error
				c.Control(func(fd uintptr) { err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
				return err
			}}
			c, err := d.DialContext(context.Background(), "tcp", "127.0.0.1:"+i.Conf["http_ws_port"])
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := io.WriteString(c, "GET /big/file HTTP/1.1\r\nHost: a\r\n\r\n"); err != nil {
				t.Fatal(err)
			}

			// ASE's end of this connection, as the kernel lists it.
			local := c.LocalAddr().(*net.TCPAddr).Port
			deadline := time.Now().Add(60 * time.Second)
			seen := false
			for {
				st := tcpState(t, i.Conf["http_ws_port"], local)
				if st != "" && st != "01" || st == "" && seen {
					break // no longer ESTABLISHED (or gone): ASE closed it
				}
				seen = seen || st == "01"
				if time.Now().After(deadline) {
					t.Fatalf("ASE still had the connection open (state %q) after 60s with write_timeout=1s", st)
				}
				time.Sleep(20 * time.Millisecond)
			}

			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("reading the response head: %v", err)
			}
			if resp.StatusCode != 200 || resp.ContentLength != size {
				t.Fatalf("got %d with length %d, want 200 with %d", resp.StatusCode, resp.ContentLength, size)
			}
			n, err := io.Copy(io.Discard, resp.Body)
			if err == nil || n >= size {
				t.Fatalf("read %d of %d bytes (%v): the response was finished, not abandoned", n, size, err)
			}
		})
	}
}

// tcpState returns the state (hex, as /proc/net/tcp gives it: 01 is
// ESTABLISHED) of the loopback connection from local port server to
// remote port peer, or "" if there is none.
func tcpState(t *testing.T, server string, peer int) string {
	t.Helper()
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	sp, err := strconv.Atoi(server)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("0100007F:%04X 0100007F:%04X", sp, peer)
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 3 && f[1]+" "+f[2] == want {
			return f[3]
		}
	}
	return ""
}
