package metrics

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ase-project/ase/internal/behave"
)

// TestABSMetrics: behavioural detection's series, from its sources:
// detections by detector and mode (enforce and report: an off detector
// finds nothing), tracked identities, and each API's training.
func TestABSMetrics(t *testing.T) {
	var counts [behave.NumDetectors][3]int64
	counts[behave.ExtremeActivity][behave.Enforce] = 4
	counts[behave.Probing][behave.Report] = 2
	m := New(Sources{
		ABSDetections: func() [behave.NumDetectors][3]int64 { return counts },
		ABSTracked:    func() int { return 17 },
		ABSDropped:    func() (int64, int64) { return 3, 5 },
		ABSStatus: func(id string) ([]behave.APIStatus, bool) {
			return []behave.APIStatus{{API: "chat", Training: true, TrainingUntil: time.Now()}, {API: "shop"}}, true
		},
	})
	w := httptest.NewRecorder()
	m.Handler().ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	body := w.Body.String()
	for _, want := range []string{
		`ase_abs_detections_total{detector="extreme_client_activity",mode="enforce"} 4`,
		`ase_abs_detections_total{detector="extreme_client_activity",mode="report"} 0`,
		`ase_abs_detections_total{detector="api_probing",mode="report"} 2`,
		`ase_abs_detections_total{detector="content_scraping",mode="enforce"} 0`,
		"ase_abs_tracked_clients 17",
		`ase_abs_dropped_total{what="audit"} 3`,
		`ase_abs_dropped_total{what="record"} 5`,
		`ase_abs_training{api_id="chat"} 1`,
		`ase_abs_training{api_id="shop"} 0`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("no %s in\n%s", want, body)
		}
	}
	if strings.Contains(body, `mode="off"`) {
		t.Error("a series for the off mode")
	}
	if n := strings.Count(body, "ase_abs_detections_total{"); n != 2*int(behave.NumDetectors) {
		t.Errorf("%d detection series, want %d", n, 2*behave.NumDetectors)
	}
}
