package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestAccessLogDropsWhenStuck: when the access log cannot be written,
// lines are dropped and counted (ase_access_log_dropped_total) and
// requests still pass. The log is a FIFO the test holds open but never
// reads, so once the pipe's buffer is full the writer blocks for good;
// lines pile up to the pending bound, and every line past it is dropped.
func TestAccessLogDropsWhenStuck(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	t.Cleanup(backend.Close)

	i := newInstance(t, map[string]string{"listen_address": "127.0.0.1"})
	logs := filepath.Join(i.Conf["data_dir"], "logs")
	if err := os.MkdirAll(logs, 0o700); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(logs, "access.log")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	// A reader that never reads: ASE's open for writing does not block,
	// and its writes block once the pipe is full.
	reader, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reader.Close() })
	i.Start()
	port := backend.Listener.Addr().(*net.TCPAddr).Port
	wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=d", apiDoc("/d", fmt.Sprintf(`"servers": [{"host": "127.0.0.1", "port": %d}]`, port)), nil), 200, ok)

	// Long lines (a long path, the longest query and user agent logged),
	// so the pending bound (8 MiB) is reached in about 650 requests.
	url := "http://127.0.0.1:" + i.Conf["http_ws_port"] + "/d/" + strings.Repeat("p", 10000) + "?q=" + strings.Repeat("v", 2100)
	ua := strings.Repeat("u", 600)
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	send := func() error {
		req, _ := http.NewRequest("GET", url, nil)
		req.Header.Set("User-Agent", ua)
		resp, err := c.Do(req)
		if err != nil {
			return err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || string(body) != "ok" {
			return fmt.Errorf("got %d %q, %v; want 200 ok", resp.StatusCode, body, err)
		}
		return nil
	}
	batch := func(n int) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k := w; k < n; k += 4 {
					if err := send(); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("a request while the access log is stuck: %v", err)
		}
	}
	dropped := func() float64 {
		return value(t, scrape(t, i), "ase_access_log_dropped_total", nil)
	}
	if d := dropped(); d != 0 {
		t.Fatalf("got %v lines dropped before any request, want 0", d)
	}

	// Ten times the requests the bound needs, at most.
	sent := 0
	for dropped() == 0 {
		if sent >= 6500 {
			t.Fatalf("no line dropped after %d requests with the access log stuck:\n%s", sent, tail(i.Output(), 2000))
		}
		batch(100)
		sent += 100
	}

	// From now on every line is dropped, and requests still pass.
	before := dropped()
	batch(50)
	deadline := time.Now().Add(60 * time.Second)
	for dropped() < before+50 {
		if time.Now().After(deadline) {
			t.Fatalf("got %v dropped after 50 more requests, want at least %v", dropped(), before+50)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
