package behave

import (
	"encoding/json"
	"strings"
	"time"
)

// Evidence is what a deny-list entry of a detection carries as its reason
// (JSON, at most maxEvidence bytes): which detector, the figure observed
// against the threshold and what was learned, and sample requests. The
// management API's attack list reads it back.
type Evidence struct {
	Detector   string   `json:"detector"`
	AttackType string   `json:"attack_type"`
	API        string   `json:"api_id"`
	Figure     string   `json:"figure"`
	Observed   float64  `json:"observed"`
	Threshold  float64  `json:"threshold"`
	Learned    float64  `json:"learned,omitempty"`
	Windows    uint64   `json:"windows_learned,omitempty"`
	Override   bool     `json:"override,omitempty"`
	Window     string   `json:"window"`
	Mode       string   `json:"mode"`
	Note       string   `json:"note,omitempty"`
	Detected   string   `json:"detected_time"`
	Samples    []Sample `json:"samples,omitempty"`
}

// maxEvidence is the most an entry's reason may hold (lists.MaxReason).
const maxEvidence = 1024

// Evidence returns d's evidence.
func (d *Detection) Evidence() Evidence {
	ev := Evidence{
		Detector: d.Detector.String(), AttackType: d.Detector.AttackType(d.Kind), API: d.API, Figure: d.Figure.String(),
		Observed: d.Observed, Threshold: d.Threshold, Learned: roundTo(d.Learned), Windows: d.Windows, Override: d.Override,
		Window: d.Window.String(), Mode: d.Mode.String(), Note: strings.ToValidUTF8(d.Note, "?"),
		Detected: d.At.UTC().Format(time.RFC3339Nano),
	}
	for _, s := range d.Samples {
		s.Path = strings.ToValidUTF8(s.Path, "?")
		s.Time = s.Time.UTC()
		ev.Samples = append(ev.Samples, s)
	}
	return ev
}

func roundTo(v float64) float64 { return float64(int64(v*100+0.5)) / 100 }

// Encode returns ev as an entry's reason: compact JSON of printable
// characters, at most 1024 bytes (samples are dropped from the oldest
// until it fits).
func (ev Evidence) Encode() string {
	for {
		b, _ := json.Marshal(ev)
		if len(b) <= maxEvidence || (len(ev.Samples) == 0 && len(ev.Note) == 0) {
			if len(b) > maxEvidence {
				return string(b[:0])
			}
			return string(b)
		}
		if len(ev.Samples) > 0 {
			ev.Samples = ev.Samples[:len(ev.Samples)-1]
		} else {
			ev.Note = ""
		}
	}
}

// ParseEvidence reads an entry's reason back; ok is false for a reason
// that is not a detection's evidence (an operator's words).
func ParseEvidence(reason string) (Evidence, bool) {
	var ev Evidence
	if !strings.HasPrefix(reason, `{"detector":`) {
		return ev, false
	}
	if err := json.Unmarshal([]byte(reason), &ev); err != nil {
		return ev, false
	}
	return ev, ev.Detector != ""
}
