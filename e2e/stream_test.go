package e2e

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// peakRSS is the process's peak resident set (VmHWM), in bytes.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM")
	return 0
}

// pattern is the byte at offset i of the test downloads.
func pattern(i int64) byte { return byte(i*7 + i>>16) }

// bigBackend serves /big?n=<bytes>[&chunked=1] as a patterned download.
func bigBackend(t *testing.T) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
		if r.URL.Query().Get("chunked") == "" {
			w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		}
		buf := make([]byte, 64<<10)
		for off := int64(0); off < n; {
			k := min(int64(len(buf)), n-off)
			for j := range k {
				buf[j] = pattern(off + j)
			}
			if _, err := w.Write(buf[:k]); err != nil {
				return
			}
			off += k
		}
	}))
	t.Cleanup(s.Close)
	return s
}

// readPattern reads r to its end, checking every byte, and returns how
// many it read.
func readPattern(t *testing.T, r io.Reader) int64 {
	t.Helper()
	br := bufio.NewReaderSize(r, 64<<10)
	buf := make([]byte, 64<<10)
	var off int64
	for {
		n, err := br.Read(buf)
		for j := 0; j < n; j++ {
			if buf[j] != pattern(off+int64(j)) {
				t.Fatalf("byte %d differs", off+int64(j))
			}
		}
		off += int64(n)
		if err == io.EOF {
			return off
		}
		if err != nil {
			t.Fatalf("after %d bytes: %v", off, err)
		}
	}
}

// TestGeneralServerStreams (issue 18, point 3): the TLS port, the
// connections the event loops hand over, and the whole plain port with
// inline_event_loops=false stream a backend's response to the client
// instead of taking it whole first: downloads of 256 and 160 MiB (with
// and without a Content-Length) arrive byte for byte while ASE's peak
// memory grows by far less than the body (bench/stream.sh runs 1 GiB).
// Before, the general server held the whole body: its peak grew by the
// download's size. The access log records the bytes sent.
func TestGeneralServerStreams(t *testing.T) {
	back := bigBackend(t)
	port := back.Listener.Addr().(*net.TCPAddr).Port
	const bound = 96 << 20 // peak growth allowed: buffers, not the body
	tlsClient := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}

	for _, tc := range []struct {
		name  string
		conf  map[string]string
		tls   bool
		path  string // the handed-over request has a target the loops do not take
		size  int64
		chunk bool
	}{
		{"tls", map[string]string{}, true, "/big", 256 << 20, false},
		{"tls chunked", map[string]string{}, true, "/big", 160 << 20, true},
		{"handed over", nil, false, "/%62ig", 256 << 20, false},
		{"general server chunked", map[string]string{"inline_event_loops": "false"}, false, "/big", 160 << 20, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conf := map[string]string{}
			for k, v := range tc.conf {
				conf[k] = v
			}
			if tc.tls {
				conf["https_wss_port"] = strconv.Itoa(freePort(t))
			}
			i := startInstance(t, conf)
			wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=dl", apiDoc("/", fmt.Sprintf(`"servers": [{"host": "127.0.0.1", "port": %d}]`, port)), nil), 200, ok)
			base := i.dataURL()
			c := http.DefaultClient
			if tc.tls {
				base, c = "https://127.0.0.1:"+i.Conf["https_wss_port"], tlsClient
			}
			// A small one first, so that every pool and buffer exists
			// before the peak is read.
			url := fmt.Sprintf("%s%s?n=%d", base, tc.path, 1<<20)
			resp, err := c.Get(url)
			if err != nil {
				t.Fatal(err)
			}
			if got := readPattern(t, resp.Body); resp.StatusCode != 200 || got != 1<<20 {
				t.Fatalf("warm-up: %d, %d bytes", resp.StatusCode, got)
			}
			resp.Body.Close()
			before := peakRSS(t, i.cmd.Process.Pid)

			url = fmt.Sprintf("%s%s?n=%d", base, tc.path, tc.size)
			if tc.chunk {
				url += "&chunked=1"
			}
			resp, err = c.Get(url)
			if err != nil {
				t.Fatal(err)
			}
			got := readPattern(t, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || got != tc.size {
				t.Fatalf("got %d, %d of %d bytes", resp.StatusCode, got, tc.size)
			}
			if grew := peakRSS(t, i.cmd.Process.Pid) - before; grew > bound {
				t.Fatalf("ASE's peak memory grew by %d MiB for a %d MiB download: the body was held, not streamed", grew>>20, tc.size>>20)
			}
			// The line is written once the body is done.
			query := strings.TrimPrefix(url[strings.IndexByte(url, '?'):], "?")
			lines := accessLog(t, i, 1, func(l map[string]any) bool { return l["api_id"] == "dl" && l["query"] == query })
			if l := lines[0]; l["bytes_out"] != float64(tc.size) || l["status"] != 200.0 {
				t.Fatalf("access log: %v", l)
			}
		})
	}
}

// TestGeneralServerBackendTimeoutIsIdle: on the general server,
// backend_timeout bounds each wait for the backend (the head, then each
// stretch of the body), not the whole download: a body that keeps coming
// for longer than backend_timeout arrives whole, and a backend that stops
// sending mid-body for longer than it has its connection cut.
func TestGeneralServerBackendTimeoutIsIdle(t *testing.T) {
	stall := make(chan struct{})
	back := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f := w.(http.Flusher)
		w.Header().Set("Content-Type", "text/plain")
		// 12 pieces, one every 250 ms: 3 s in all, past backend_timeout
		// (2 s), never waiting nearly as long as it between two.
		for k := 0; k < 12; k++ {
			fmt.Fprintf(w, "piece %02d\n", k)
			f.Flush()
			time.Sleep(250 * time.Millisecond)
		}
		if r.URL.Path == "/stall" {
			<-stall
		}
	}))
	t.Cleanup(back.Close)
	t.Cleanup(func() { close(stall) }) // runs first: the stalled handler ends
	port := back.Listener.Addr().(*net.TCPAddr).Port
	i := startInstance(t, map[string]string{"inline_event_loops": "false", "backend_timeout": "2s"})
	wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=slow", apiDoc("/", fmt.Sprintf(`"servers": [{"host": "127.0.0.1", "port": %d}]`, port)), nil), 200, ok)

	resp, err := http.Get(i.dataURL() + "/steady")
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || strings.Count(string(b), "piece") != 12 {
		t.Fatalf("steady: %d %q %v", resp.StatusCode, b, err)
	}

	resp, err = http.Get(i.dataURL() + "/stall")
	if err != nil {
		t.Fatal(err)
	}
	b, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil {
		t.Fatalf("a backend that stopped sending mid-body: the client read a whole body %q", b)
	}
	if strings.Count(string(b), "piece") != 12 {
		t.Fatalf("stall: got %q before the cut", b)
	}
}
