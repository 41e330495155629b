// Command loadlists fills a running ASE's deny list with n entries through
// the management API: by default JSON arrays of 100,000 entries per call
// (IPv4 addresses, tokens and cookies, none of them the benchmark's
// clients); with -format text, plain-text feeds of IPv4 addresses, as
// threat feeds are published (a million fit one call).
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"time"
)

func main() {
	url := flag.String("url", "http://127.0.0.1:8010", "management API")
	password := flag.String("p", "admin", "admin password")
	n := flag.Int("n", 1_000_000, "entries")
	per := flag.Int("per", 100_000, "entries per call")
	format := flag.String("format", "json", "json (addresses, tokens and cookies) or text (a feed of addresses)")
	flag.Parse()
	var bodies [][]byte
	for c := 0; c*(*per) < *n; c++ {
		var b bytes.Buffer
		for k := 0; k < *per && c*(*per)+k < *n; k++ {
			v := c*(*per) + k
			// 11.0.0.0 - 190.255.255.255: the clients are 127.0.0.1
			ip := fmt.Sprintf("%d.%d.%d.%d", 11+v%180, (v>>16)&255, (v>>8)&255, v&255)
			if *format == "text" {
				fmt.Fprintln(&b, ip)
				continue
			}
			if k > 0 {
				b.WriteString(",")
			}
			switch v % 4 {
			case 0, 1:
				fmt.Fprintf(&b, `{"type":"ip","value":"%s"}`, ip)
			case 2:
				fmt.Fprintf(&b, `{"type":"token","value":"bench-token-%08d"}`, v)
			case 3:
				fmt.Fprintf(&b, `{"type":"cookie","name":"SID","value":"bench-cookie-%08d"}`, v)
			}
		}
		body := b.Bytes()
		if *format != "text" {
			body = append(append([]byte("["), body...), ']')
		}
		bodies = append(bodies, body)
	}
	ct := "application/json"
	if *format == "text" {
		ct = "text/plain"
	}
	// The bodies are made before the clock starts: what is timed is ASE.
	start := time.Now()
	for _, body := range bodies {
		req, _ := http.NewRequest("POST", *url+"/v5/ase/firewall/blacklist", bytes.NewReader(body))
		req.Header.Set("x-ase-access-key", "admin")
		req.Header.Set("x-ase-secret-key", *password)
		req.Header.Set("Content-Type", ct)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		reply, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			log.Fatalf("HTTP %d: %s", resp.StatusCode, reply)
		}
	}
	fmt.Printf("loaded %d entries in %.2fs\n", *n, time.Since(start).Seconds())
}
