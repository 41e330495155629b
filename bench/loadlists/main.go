// Command loadlists fills a running ASE's deny list with n entries (IPv4
// addresses, tokens and cookies, none of them the benchmark's clients)
// through the management API, 100,000 per call.
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
	flag.Parse()
	start := time.Now()
	for c := 0; c*100_000 < *n; c++ {
		var b bytes.Buffer
		b.WriteString("[")
		for k := 0; k < 100_000 && c*100_000+k < *n; k++ {
			if k > 0 {
				b.WriteString(",")
			}
			v := c*100_000 + k
			switch v % 4 {
			case 0, 1: // 11.0.0.0 - 190.255.255.255: the clients are 127.0.0.1
				fmt.Fprintf(&b, `{"type":"ip","value":"%d.%d.%d.%d"}`, 11+v%180, (v>>16)&255, (v>>8)&255, v&255)
			case 2:
				fmt.Fprintf(&b, `{"type":"token","value":"bench-token-%08d"}`, v)
			case 3:
				fmt.Fprintf(&b, `{"type":"cookie","name":"SID","value":"bench-cookie-%08d"}`, v)
			}
		}
		b.WriteString("]")
		req, _ := http.NewRequest("POST", *url+"/v5/ase/firewall/blacklist", &b)
		req.Header.Set("x-ase-access-key", "admin")
		req.Header.Set("x-ase-secret-key", *password)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			log.Fatalf("HTTP %d: %s", resp.StatusCode, body)
		}
	}
	fmt.Printf("loaded %d entries in %.2fs\n", *n, time.Since(start).Seconds())
}
