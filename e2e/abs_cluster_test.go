package e2e

import (
	"encoding/json"
	"testing"
)

// absTraining reads an API's detection state from a node: whether it
// trains, and its thresholds by figure.
func absTraining(t *testing.T, i *Instance, api string) (bool, map[string]float64) {
	t.Helper()
	r := i.Do("GET", "/v5/ase/abs/"+api, "", nil)
	if r.Code != 200 {
		t.Fatalf("GET /abs/%s: %d %s", api, r.Code, r.Body)
	}
	var st struct {
		Training bool
		Figures  []struct {
			Identity, Figure string
			Threshold        float64
		}
	}
	if err := json.Unmarshal(r.Body, &st); err != nil {
		t.Fatalf("GET /abs/%s: %v: %s", api, err, r.Body)
	}
	thr := map[string]float64{}
	for _, f := range st.Figures {
		thr[f.Identity+"/"+f.Figure] = f.Threshold
	}
	return st.Training, thr
}

// Behavioural detection in a cluster (issue 20): what one node learned is
// enforced by every node, also after a restart, without training again;
// an attacker one node finds is refused by every node.
func TestBehaviouralDetectionCluster(t *testing.T) {
	e := startEtcd(t)
	port := absBackend(t)
	a := clusterNode(t, e, "c1", absConf(map[string]string{"enable_xff": "true", "abs_training_period": "3s"}))
	b := clusterNode(t, e, "c1", absConf(map[string]string{"enable_xff": "true", "abs_training_period": "1h"}))
	wantJSON(t, a.Do("POST", "/v5/ase/api?api_id=abs", absInlineAPI(port), nil), 200, ok)
	doA, doB := absInlineClient(t, a), absInlineClient(t, b)
	eventually(t, "node b serving the API", func() bool { return doB("127.0.3.1", "GET", "/abs/items/1", nil) == 200 })

	stop := make(chan struct{})
	refused, done := absNormal(t, doA, stop)
	defer func() { close(stop); done.Wait() }()
	// Node a trains for 3 s; node b would train for an hour, and enforces
	// what a learned as soon as a stored it.
	eventually(t, "node a's training to end", func() bool { tr, _ := absTraining(t, a, "abs"); return !tr })
	var thrA map[string]float64
	eventually(t, "node b enforcing what node a learned", func() bool {
		_, thrA = absTraining(t, a, "abs")
		tr, thrB := absTraining(t, b, "abs")
		return !tr && thrB["ip/requests"] == thrA["ip/requests"] && thrB["token/requests"] == thrA["token/requests"] && thrB["ip/requests"] > 0
	})

	// An attacker found on node a is refused on node b.
	for k := 0; k < 3000; k++ {
		if doA("127.0.2.100", "GET", "/abs/items/1", nil) == 403 {
			break
		}
	}
	eventually(t, "node b refusing the attacker node a found", func() bool {
		return doB("127.0.2.100", "GET", "/abs/items/2", nil) == 403
	})
	var found bool
	for _, en := range absListed(t, b) {
		if en.Type == "ip" && en.Value == "127.0.2.100" && en.Evidence.Detector == "extreme_client_activity" {
			found = true
		}
	}
	if !found {
		t.Fatalf("node b's deny list lacks the attacker with its evidence: %+v", absListed(t, b))
	}

	// A restarted node enforces at once what was learned.
	b.Restart()
	if tr, thrB := absTraining(t, b, "abs"); tr || thrB["ip/requests"] != thrA["ip/requests"] || thrB["token/requests"] != thrA["token/requests"] {
		t.Fatalf("after a restart node b trains (%v) or has other thresholds: %v, want %v", tr, thrB, thrA)
	}
	if n := refused.Load(); n > 0 {
		t.Errorf("%d requests of normal clients were refused", n)
	}

	// What node b only reported is in node a's attack list: every node
	// keeps its last detections in the shared store.
	if r := a.Do("PUT", "/v5/ase/abs/abs/policy", `{"modes": {"extreme_client_activity": "report"}, "thresholds": {"requests": 3}}`, nil); r.Code != 200 {
		t.Fatalf("PUT policy: %d %s", r.Code, r.Body)
	}
	eventually(t, "node a's attack list showing what node b reported", func() bool {
		for k := 0; k < 5; k++ {
			if code := doB("127.0.4.1", "GET", "/abs/items/1", nil); code != 200 {
				t.Fatalf("a request reported only got %d", code)
			}
		}
		for _, it := range absAttackList(t, a, "/v4/abs/attacklist?status=reported").IPs {
			if it.IP == "127.0.4.1" && it.Detector == "extreme_client_activity" {
				return true
			}
		}
		return false
	})
}
