// Command absreplay is a replay benchmark of behavioural detection (issue
// 20, internal/behave): it drives the engine in virtual time with a
// realistic normal mix, trains it, then replays the same mix with one
// attacker per detector started at known times, and reports per attacker
// whether it was found, how long after its start (virtual seconds and its
// own requests), and the normal identities reported meanwhile (false
// positives).
//
// The normal mix: -clients clients, each with its own loopback address
// (127.10/16; 10% share one of a few NAT addresses, 127.9/16, in groups
// of 2 to 8; 2% roam between two, 127.8/16) and its credential (a bearer
// token, or a session cookie renewed at each login; 0.5% are partner
// integrations with an API key, always on, at about 1 request a second).
// Humans come in sessions (10 minutes on average, 20 between), at a
// lognormal rate (median one request every 10 s), browse a catalogue of
// -items resources with Zipf popularity, search, carts, their orders and
// invoices (150 KB), follow a stale link (404) now and then, and log in at
// the API's login_url at a session's start, mistyping their password 5%
// of the time (401, then a retry). The attackers, 127.200/16 to
// 127.206/16, never contacted: addresses are only values.
//
//	go run ./bench/absreplay [-clients 2000] [-training 1h] [-window 1m] [-detection 30m] [-seed 1] [-json]
//
// -bignat N puts N more humans behind one office address (127.7.0.1).
//
// The figures are reproducible for a seed but for the engine's own
// per-process hash seed (distinct counts are HyperLogLog estimates): a
// delay may move by a request or two between runs.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

func main() {
	cfg := DefaultConfig()
	flag.IntVar(&cfg.Clients, "clients", cfg.Clients, "normal clients")
	flag.DurationVar(&cfg.Training, "training", cfg.Training, "the training period (virtual time)")
	flag.DurationVar(&cfg.Window, "window", cfg.Window, "the engine's window")
	flag.DurationVar(&cfg.Detection, "detection", cfg.Detection, "the detection period, with the attacks (virtual time)")
	flag.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "the mix's random seed")
	flag.IntVar(&cfg.Items, "items", cfg.Items, "resources in the catalogue")
	flag.IntVar(&cfg.BigNAT, "bignat", cfg.BigNAT, "humans behind one more shared address (an office), besides the small NATs")
	asJSON := flag.Bool("json", false, "print the result as JSON instead of Markdown")
	flag.Parse()
	if cfg.Clients < 10 || cfg.Items < 10 || cfg.Window <= 0 || cfg.Training < cfg.Window || cfg.Detection < 10*cfg.Window {
		fmt.Fprintln(os.Stderr, "absreplay: want -clients >= 10, -items >= 10, -training >= -window and -detection >= 10 windows")
		os.Exit(2)
	}
	began := time.Now()
	res := Run(cfg)
	fmt.Fprintf(os.Stderr, "absreplay: %d requests in %.1fs\n", res.Requests, time.Since(began).Seconds())
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		enc.Encode(res)
		return
	}
	Markdown(os.Stdout, res)
}

// Markdown writes res as tables.
func Markdown(w io.Writer, res *Result) {
	fmt.Fprintf(w, "# Behavioural detection: replay\n\n")
	fmt.Fprintf(w, "%d clients, seed %d, training %s, window %s, detection %s (virtual time); %d requests, %d of them normal in the detection period.\n\n",
		res.Clients, res.Seed, res.Training, res.Window, res.Detection, res.Requests, res.NormalRequests)
	fmt.Fprintf(w, "| attack | detector | start (s) | req/s | detected | delay (s) | delay (requests) | found as | observed / threshold | other detectors | normal identities reported (FP) |\n")
	fmt.Fprintf(w, "|---|---|---:|---:|---|---:|---:|---|---:|---|---:|\n")
	for _, a := range res.Attacks {
		det, delay, reqs, as, obs := "**no**", "-", "-", "-", "-"
		if a.Detected {
			det, delay, reqs = "yes", fmt.Sprintf("%.1f", a.DelayS), fmt.Sprint(a.DelayRequests)
			as = fmt.Sprintf("%s (%s)", a.Identity, a.Figure)
			obs = fmt.Sprintf("%.4g / %.4g", a.Observed, a.Threshold)
		}
		other := strings.Join(a.OtherDetectors, ", ")
		if other == "" {
			other = "-"
		}
		fmt.Fprintf(w, "| %s | %s | %.0f | %.3g | %s | %s | %s | %s | %s | %s | %d |\n", a.Attack, a.Detector, a.StartS, a.RatePerS, det, delay, reqs, as, obs, other, res.FPByDetector[a.Detector])
	}
	fmt.Fprintf(w, "\nFalse positives: %d of %d normal identities (addresses and credentials) seen in the detection period reported by any detector (%.3f%%).\n",
		res.FalsePositives, res.NormalIdentities, 100*res.FPRate)
	if len(res.FPs) > 0 {
		fmt.Fprintf(w, "\n| normal identity reported | detector | figure | observed / threshold | at (s) | note |\n|---|---|---|---:|---:|---|\n")
		for i, f := range res.FPs {
			if i == 20 {
				fmt.Fprintf(w, "| ... %d more | | | | | |\n", len(res.FPs)-i)
				break
			}
			fmt.Fprintf(w, "| %s | %s | %s | %.4g / %.4g | %.0f | %s |\n", f.Identity, f.Detector, f.Figure, f.Observed, f.Threshold, f.AtS, f.Note)
		}
	}
	fmt.Fprintf(w, "\nWhat training learned (per identity and window; each kind of identity apart, one seldom seen takes every kind's windows together):\n\n| identity | figure | detector | windows learned | learned | threshold |\n|---|---|---|---:|---:|---:|\n")
	for _, f := range res.Thresholds {
		fmt.Fprintf(w, "| %s | %s | %s | %d | %.4g | %.4g |\n", f.Identity, f.Figure, f.Detector, f.Windows, f.Learned, f.Threshold)
	}
}
