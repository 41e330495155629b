// Command clusterflow measures cluster-wide flow control through running
// nodes: one client sends at twice its client_spike_threshold (per second)
// for a while, its requests spread over the nodes' data ports by a split,
// and the admitted rate is compared with the threshold.
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"strconv"
	"strings"
	"time"
)

func main() {
	ports := flag.String("ports", "", "the nodes' data ports, comma-separated")
	path := flag.String("path", "/", "the path requested")
	split := flag.String("split", "1,1,1", "share of the requests each node gets")
	threshold := flag.Float64("t", 100, "client_spike_threshold, per second")
	dur := flag.Duration("d", 10*time.Second, "measured time")
	warm := flag.Duration("warm", 3*time.Second, "sending before the measure (the nodes learn the client)")
	flag.Parse()
	var urls []string
	for _, p := range strings.Split(*ports, ",") {
		urls = append(urls, "http://127.0.0.1:"+p+*path)
	}
	var weights []float64
	total := 0.0
	for _, w := range strings.Split(*split, ",") {
		f, err := strconv.ParseFloat(w, 64)
		if err != nil {
			log.Fatal(err)
		}
		weights = append(weights, f)
		total += f
	}
	cl := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	gap := time.Duration(float64(time.Second) / (2 * *threshold))
	credit := make([]float64, len(urls))
	send := func() bool {
		// Deterministic weighted round-robin: the node most owed its share.
		best := 0
		for i := range credit {
			credit[i] += weights[i] / total
			if credit[i] > credit[best] {
				best = i
			}
		}
		credit[best]--
		resp, err := cl.Get(urls[best])
		if err != nil {
			log.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode == 200
	}
	run := func(d time.Duration) (sent, admitted int) {
		start := time.Now()
		next := start
		for time.Since(start) < d {
			if send() {
				admitted++
			}
			sent++
			next = next.Add(gap)
			if w := time.Until(next); w > 0 {
				time.Sleep(w)
			}
		}
		return
	}
	run(*warm)
	sent, admitted := run(*dur)
	secs := dur.Seconds()
	fmt.Printf("split %s, threshold %.0f/s, offered %.0f/s: admitted %.1f/s (%+.1f%% of the threshold)\n",
		*split, *threshold, float64(sent)/secs, float64(admitted)/secs, 100*(float64(admitted)/secs / *threshold - 1))
}
