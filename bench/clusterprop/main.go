// Command clusterprop measures how fast a deny entry made on one node of a
// cluster is enforced on another: for each of n entries, one at a time, the
// time from node A's 200 to the first request node C refuses (polled as
// fast as C answers, over one keep-alive connection). The nodes must trust
// X-Real-IP (enable_xff=true): each entry denies its own client address.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"sort"
	"time"
)

func main() {
	mgmtA := flag.String("a", "http://127.0.0.1:8011", "node A's management API")
	dataC := flag.String("c", "http://127.0.0.1:8003", "node C's data port")
	password := flag.String("p", "admin", "admin password")
	n := flag.Int("n", 1000, "entries")
	flag.Parse()
	cl := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	var lat []time.Duration
	for i := range *n {
		ip := fmt.Sprintf("10.%d.%d.%d", 100+i>>16, (i>>8)&255, i&255)
		// C lets the client through before the entry exists.
		if code := get(cl, *dataC, ip); code != 200 {
			log.Fatalf("%s: node C answered %d before the entry", ip, code)
		}
		req, _ := http.NewRequest("POST", *mgmtA+"/v5/ase/firewall/blacklist", bytes.NewBufferString(`{"type": "ip", "value": "`+ip+`"}`))
		req.Header.Set("x-ase-access-key", "admin")
		req.Header.Set("x-ase-secret-key", *password)
		req.Header.Set("Content-Type", "application/json")
		resp, err := cl.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		acked := time.Now()
		if resp.StatusCode != 200 {
			log.Fatalf("%s: node A answered %d", ip, resp.StatusCode)
		}
		for get(cl, *dataC, ip) != 403 {
			if time.Since(acked) > 10*time.Second {
				log.Fatalf("%s: not enforced on node C after 10 s", ip)
			}
		}
		lat = append(lat, time.Since(acked))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	q := func(p float64) time.Duration { return lat[min(int(p*float64(len(lat))), len(lat)-1)] }
	fmt.Printf("propagation A->C over %d entries: p50 %v, p90 %v, p99 %v, max %v\n", len(lat),
		q(0.50).Round(10*time.Microsecond), q(0.90).Round(10*time.Microsecond), q(0.99).Round(10*time.Microsecond), lat[len(lat)-1].Round(10*time.Microsecond))
}

func get(cl *http.Client, url, ip string) int {
	req, _ := http.NewRequest("GET", url+"/", nil)
	req.Header.Set("X-Real-IP", ip)
	resp, err := cl.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}
