package e2e

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"
)

type activityReport struct {
	StepSeconds int       `json:"step_seconds"`
	From        time.Time `json:"from"`
	To          time.Time `json:"to"`
	Series      []struct {
		APIID    string   `json:"api_id"`
		Decision string   `json:"decision"`
		Reason   string   `json:"reason"`
		Requests []uint32 `json:"requests"`
		Total    uint64   `json:"total"`
	} `json:"series"`
}

// TestActivityEndpoint: GET /v5/ase/activity (the console's charts, and
// scripts') gives the requests the data path answered, by API, decision and
// reason, in 5-second steps: the traffic this test sends shows up there,
// counted exactly, for a read user too; since and api_id narrow it; a bad
// since is refused naming it.
func TestActivityEndpoint(t *testing.T) {
	i := startInstance(t, nil)
	b := newWireBackend(t)
	wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=shop", apiDoc("/shop", `"oauth2_access_token": true, `+b.servers()), nil), 200, ok)
	wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=pets", apiDoc("/pets", b.servers()), nil), 200, ok)
	if r := i.Do("POST", "/v5/ase/firewall/blacklist", `{"type": "token", "value": "stolen"}`, nil); r.Code != 200 {
		t.Fatalf("deny-listing a token: %d %s", r.Code, r.Body)
	}
	port := i.Conf["http_ws_port"]
	for n := range 7 {
		if code, _, _ := exchange(t, port, fmt.Sprintf("GET /shop/%d HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer fine\r\n\r\n", n)); code != 200 {
			t.Fatalf("allowed request: %d", code)
		}
	}
	for range 3 {
		if code, _, _ := exchange(t, port, "GET /shop/x HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer stolen\r\n\r\n"); code != 403 {
			t.Fatalf("deny-listed token: %d", code)
		}
	}
	if code, _, _ := exchange(t, port, "GET /pets/1 HTTP/1.1\r\nHost: a\r\n\r\n"); code != 200 {
		t.Fatalf("pets: %d", code)
	}
	sent := time.Now()

	i.createUser("watcher", "watcher-password", "read")
	reader := i.login("watcher", "watcher-password")
	read := func(query string) activityReport {
		t.Helper()
		r := i.as("GET", "/v5/ase/activity"+query, "", reader)
		if r.Code != 200 {
			t.Fatalf("GET /v5/ase/activity%s: %d %s", query, r.Code, r.Body)
		}
		var rep activityReport
		if err := json.Unmarshal(r.Body, &rep); err != nil {
			t.Fatalf("%s: %v", r.Body, err)
		}
		return rep
	}
	totals := func(rep activityReport) map[string]uint64 {
		out := map[string]uint64{}
		for _, s := range rep.Series {
			var sum uint64
			for _, v := range s.Requests {
				sum += uint64(v)
			}
			if sum != s.Total || len(s.Requests) != int(rep.To.Sub(rep.From)/(5*time.Second)) {
				t.Fatalf("%+v: steps do not add up (from %v to %v)", s, rep.From, rep.To)
			}
			out[s.APIID+" "+s.Decision+" "+s.Reason] += s.Total
		}
		return out
	}
	want := "map[pets allow none:1 shop allow none:7 shop block deny_list:3]"
	// The requests are counted in the step they came in, reported once
	// that step has ended (within 5 s).
	var rep activityReport
	for deadline := time.Now().Add(60 * time.Second); ; {
		rep = read("")
		if fmt.Sprint(totals(rep)) == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("activity: %v, want %s", totals(rep), want)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if rep.StepSeconds != 5 || rep.To.Sub(rep.From) != time.Hour || rep.To.Before(sent.Add(-5*time.Second)) {
		t.Fatalf("steps of %d s from %v to %v (requests sent by %v)", rep.StepSeconds, rep.From, rep.To, sent)
	}
	if got := fmt.Sprint(totals(read("?api_id=pets"))); got != "map[pets allow none:1]" {
		t.Fatalf("api_id=pets: %s", got)
	}
	// Nothing more was sent: the steps that ended after the last report
	// hold nothing, in either form of since.
	for _, since := range []string{rep.To.Format(time.RFC3339), fmt.Sprint(rep.To.Unix())} {
		if got := read("?since=" + url.QueryEscape(since)); len(got.Series) != 0 || !got.From.Equal(rep.To) {
			t.Fatalf("since %s: %+v", since, got)
		}
	}
	r := i.as("GET", "/v5/ase/activity?since=yesterday", "", reader)
	if r.Code != 403 || !strings.Contains(string(r.Body), "since") {
		t.Fatalf("since=yesterday: %d %s", r.Code, r.Body)
	}
	if r := i.as("GET", "/v5/ase/activity?api_id=nothing", "", reader); r.Code != 404 {
		t.Fatalf("an unknown api_id: %d %s", r.Code, r.Body)
	}
}
