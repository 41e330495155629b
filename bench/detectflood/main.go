//go:build unix

// Command detectflood measures how ASE lists a flood of detected attackers
// (issue 14, points 3 and 4): it starts `ase serve` (inline, enable_xff and
// enable_ase_detected_attack on, a do-nothing backend), then n violators,
// each from its own address (X-Forwarded-For), send a violating request (a
// disallowed method, or a decoy) immediately followed, pipelined on the
// same connection, by a clean request; the clean one must be refused. It
// reports the time the flood took, how many follow-up requests passed,
// how many violators are listed in memory (the metrics) and in the store
// (the deny-list view), and, after a kill -9 and a restart, how many
// survived.
//
//	go build -o bench/bin/ase ./cmd/ase && go run ./bench/detectflood -n 100000
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	bin := flag.String("ase", "bench/bin/ase", "the ase binary")
	n := flag.Int("n", 100_000, "distinct violators (at most 131,072: 198.18.0.0/15)")
	workers := flag.Int("c", 32, "connections")
	memory := flag.String("memory", "128MB", "attack_list_memory")
	flag.Parse()
	if *n > 1<<17 {
		log.Fatal("-n: at most 131072")
	}

	backend := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })}
	bl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go backend.Serve(bl)

	dir, err := os.MkdirTemp("", "detectflood")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	dataPort, mgmtPort := freePort(), freePort()
	conf := fmt.Sprintf("mode=inline\nhttp_ws_port=%d\nhttps_wss_port=0\nmanagement_port=%d\ndata_dir=%s\nenable_xff=true\nenable_ase_detected_attack=true\nattack_list_memory=%s\nenable_access_log=false\n",
		dataPort, mgmtPort, filepath.Join(dir, "data"), *memory)
	if err := os.WriteFile(filepath.Join(dir, "ase.conf"), []byte(conf), 0o600); err != nil {
		log.Fatal(err)
	}
	mgmt := fmt.Sprintf("http://127.0.0.1:%d", mgmtPort)
	srv := start(*bin, dir, mgmt)
	defer func() { srv.Process.Kill(); srv.Wait() }()

	bport := bl.Addr().(*net.TCPAddr).Port
	call(mgmt, "POST", "/v5/ase/api?api_id=shop", fmt.Sprintf(`{"api_metadata": {"url": "/shop", "servers": [{"host": "127.0.0.1", "port": %d}],
		"api_pattern_enforcement": {"methods_allowed": ["GET", "POST"], "error_code": "405", "error_def": "Method Not Allowed", "error_message_body": "no"}}}`, bport))
	call(mgmt, "POST", "/v5/ase/api?api_id=trap", `{"api_metadata": {"url": "/trap", "decoy_config": {"decoy_enabled": true, "response_code": 200, "response_message": "welcome"}}}`)

	var next, passed, bad atomic.Int64
	var wg sync.WaitGroup
	begin := time.Now()
	for w := 0; w < *workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", dataPort))
			if err != nil {
				log.Fatal(err)
			}
			defer conn.Close()
			rd := bufio.NewReader(conn)
			var buf []byte
			for {
				i := int(next.Add(1) - 1)
				if i >= *n {
					return
				}
				ip := fmt.Sprintf("198.%d.%d.%d", 18+i>>16, (i>>8)&255, i&255)
				violation, want := "DELETE /shop/items/1", 405
				if i%2 == 1 {
					violation, want = "GET /trap/wp-login.php", 200
				}
				buf = fmt.Appendf(buf[:0], "%s HTTP/1.1\r\nHost: shop\r\nX-Forwarded-For: %s\r\n\r\nGET /shop/items HTTP/1.1\r\nHost: shop\r\nX-Forwarded-For: %s\r\n\r\n", violation, ip, ip)
				if _, err := conn.Write(buf); err != nil {
					log.Fatal(err)
				}
				for k, code := range []int{want, 403} {
					resp, err := http.ReadResponse(rd, nil)
					if err != nil {
						log.Fatalf("violator %s, reply %d: %v", ip, k, err)
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != code {
						if k == 0 {
							bad.Add(1)
						} else {
							passed.Add(1)
						}
					}
				}
			}
		}()
	}
	wg.Wait()
	flood := time.Since(begin)
	fmt.Printf("flood: %d violators (2 requests each, pipelined, %d connections) in %.2fs: %.0f violators/s\n", *n, *workers, flood.Seconds(), float64(*n)/flood.Seconds())
	fmt.Printf("violating requests with an unexpected reply: %d; follow-up requests NOT refused: %d of %d\n", bad.Load(), passed.Load(), *n)

	m := metrics(mgmt)
	fmt.Printf("right after the flood: ase_detections_total listed=%s refused=%s, pending=%s, deny-list IPs in memory=%s\n",
		m[`ase_detections_total{result="listed"}`], m[`ase_detections_total{result="refused"}`], m["ase_detections_pending"], m[`ase_list_entries{kind="ip",list="blacklist"}`])
	t0 := time.Now()
	fmt.Printf("deny-list view (store): %d entries, %.0f ms after the flood ended (view took %.0f ms)\n", viewCount(mgmt), time.Since(begin.Add(flood)).Seconds()*1000, time.Since(t0).Seconds()*1000)

	srv.Process.Signal(syscall.SIGKILL)
	srv.Wait()
	srv = start(*bin, dir, mgmt)
	fmt.Printf("after kill -9 and a restart: %d entries listed\n", viewCount(mgmt))
	srv.Process.Signal(syscall.SIGTERM)
	srv.Wait()
	if out, err := os.ReadFile(filepath.Join(dir, "ase.log")); err == nil {
		lines := 0
		for _, l := range strings.Split(string(out), "\n") {
			if strings.Contains(l, "deny-list") || strings.Contains(l, "dropping one") {
				lines++
			}
		}
		fmt.Printf("server log: %d bytes, %d lines about detections\n", len(out), lines)
	}
}

func freePort() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func start(bin, dir, mgmt string) *exec.Cmd {
	logf, err := os.OpenFile(filepath.Join(dir, "ase.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		log.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", "--config", filepath.Join(dir, "ase.conf"))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		log.Fatal(err)
	}
	for k := 0; k < 600; k++ {
		if resp, err := http.Get(mgmt + "/v5/ase/status"); err == nil {
			resp.Body.Close()
			return cmd
		}
		time.Sleep(50 * time.Millisecond)
	}
	log.Fatal("ase did not start")
	return nil
}

func call(mgmt, method, path, body string) []byte {
	req, _ := http.NewRequest(method, mgmt+path, strings.NewReader(body))
	req.Header.Set("x-ase-access-key", "admin")
	req.Header.Set("x-ase-secret-key", "admin")
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		log.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	return b
}

// metrics returns the samples of the metrics scrape, by name and labels.
func metrics(mgmt string) map[string]string {
	out := map[string]string{}
	for _, l := range strings.Split(string(call(mgmt, "GET", "/v5/ase/metrics", "")), "\n") {
		if l == "" || l[0] == '#' {
			continue
		}
		if i := strings.LastIndexByte(l, ' '); i > 0 {
			out[l[:i]] = l[i+1:]
		}
	}
	for _, k := range []string{`ase_detections_total{result="listed"}`, `ase_detections_total{result="refused"}`, "ase_detections_pending"} {
		if _, ok := out[k]; !ok {
			out[k] = "(none)"
		}
	}
	return out
}

func viewCount(mgmt string) int {
	var view map[string][]json.RawMessage
	if err := json.Unmarshal(call(mgmt, "GET", "/v5/ase/firewall/blacklist", ""), &view); err != nil {
		log.Fatal(err)
	}
	n := 0
	for _, es := range view {
		n += len(es)
	}
	return n
}
