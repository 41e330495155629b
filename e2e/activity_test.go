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
	TopBlocked []struct {
		IP         string `json:"ip"`
		Blocked    uint64 `json:"blocked"`
		LastAPIID  string `json:"last_api_id"`
		LastReason string `json:"last_reason"`
	} `json:"top_blocked_clients"`
	Detections []struct {
		Time                     time.Time
		Type, Value, Tag, Reason string
	} `json:"recent_detections"`
}

// TestActivityEndpoint: GET /v5/ase/activity (the console's charts, and
// scripts') gives the requests the data path answered, by API, decision and
// reason, in 5-second steps: the traffic this test sends shows up there,
// counted exactly, for a read user too; since and api_id narrow it; a bad
// since is refused naming it.
func TestActivityEndpoint(t *testing.T) {
	i := startInstance(t, nil)
	b := newWireBackend(t)
	wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=shop", apiDoc("/shop", `"oauth2_access_token": true, "decoy_config": {"decoy_enabled": true, "decoy_subpaths": ["/shop/admin"]}, `+b.servers()), nil), 200, ok)
	wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=pets", apiDoc("/pets", b.servers()), nil), 200, ok)
	if r := i.Do("POST", "/v5/ase/firewall/blacklist", `{"type": "token", "value": "stolen"}`, nil); r.Code != 200 {
		t.Fatalf("deny-listing a token: %d %s", r.Code, r.Body)
	}
	if r := i.Do("POST", "/v5/ase/firewall/ase_detected_attack?status=enable", "", nil); r.Code != 200 {
		t.Fatalf("enabling ASE-detected attacks: %d %s", r.Code, r.Body)
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
	// Last: a decoy, which deny-lists this client (127.0.0.1).
	exchange(t, port, "GET /shop/admin HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer fine\r\n\r\n")
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
	want := "map[pets allow none:1 shop allow none:7 shop block deny_list:3 shop decoy decoy:1]"
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
	// The clients refused most: this one, 3 deny-listed token requests
	// and the decoy; the attacker the decoy listed, with why.
	if len(rep.TopBlocked) != 1 || rep.TopBlocked[0].IP != "127.0.0.1" || rep.TopBlocked[0].Blocked != 4 || rep.TopBlocked[0].LastReason != "decoy" || rep.TopBlocked[0].LastAPIID != "shop" {
		t.Fatalf("top blocked clients: %+v", rep.TopBlocked)
	}
	// (the decoy lists the address and the token it came with, newest
	// first)
	if len(rep.Detections) != 2 || rep.Detections[0].Type+" "+rep.Detections[0].Value != "token fine" || rep.Detections[1].Type+" "+rep.Detections[1].Value != "ip 127.0.0.1" {
		t.Fatalf("recent detections: %+v", rep.Detections)
	}
	for _, d := range rep.Detections {
		if d.Tag != "decoy" || !strings.HasPrefix(d.Reason, "requested a decoy path") || d.Time.IsZero() {
			t.Fatalf("recent detection %+v: tag, reason or time missing", d)
		}
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
