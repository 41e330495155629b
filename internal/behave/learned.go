package behave

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/ase-project/ase/internal/lists"
)

// Learned is what an API learned in training, as kept in the store so that
// a restart (or another node of a cluster) enforces at once instead of
// training again: per class of identity and figure ("token/requests"),
// the learned histogram's non-empty buckets.
type Learned struct {
	TrainedAt time.Time                    `json:"trained_at"`
	Window    string                       `json:"window"` // the window the figures were counted over
	Figures   map[string]map[string]uint32 `json:"figures"`
}

// snapshot copies a's histograms (under a.mu).
func (a *apiState) snapshot() Learned {
	l := Learned{TrainedAt: time.Unix(0, a.trainUntil.Load()).UTC(), Figures: map[string]map[string]uint32{}}
	for c := range a.hist {
		for f := Figure(0); f < NumFigures; f++ {
			b := map[string]uint32{}
			for i, n := range a.hist[c][f].counts {
				if n > 0 {
					b[fmt.Sprint(i)] = n
				}
			}
			if len(b) > 0 {
				l.Figures[ClassName(c)+"/"+f.String()] = b
			}
		}
	}
	return l
}

// parseClassFigure reads "token/requests".
func parseClassFigure(s string) (int, Figure, bool) {
	cn, fn, ok := strings.Cut(s, "/")
	f, fok := ParseFigure(fn)
	if !ok || !fok {
		return 0, 0, false
	}
	for c := 0; c < NumClasses; c++ {
		if ClassName(c) == cn {
			return c, f, true
		}
	}
	return 0, 0, false
}

// DecodeLearned reads a kept Learned, checking every figure and bucket.
func DecodeLearned(b []byte) (Learned, error) {
	var l Learned
	if err := json.Unmarshal(b, &l); err != nil {
		return l, err
	}
	for name, buckets := range l.Figures {
		if _, _, ok := parseClassFigure(name); !ok {
			return l, fmt.Errorf("unknown class and figure %q (such as token/requests)", name)
		}
		for k := range buckets {
			var i int
			if _, err := fmt.Sscan(k, &i); err != nil || i < 0 || i >= histBuckets || fmt.Sprint(i) != k {
				return l, fmt.Errorf("figure %s: bucket %q out of range", name, k)
			}
		}
	}
	return l, nil
}

// Restore makes API id enforce what l learned (kept by a node before), if
// it was learned over the same window length; it reports whether it did.
// An API not defined yet keeps l until it is.
func (e *Engine) Restore(id string, l Learned) bool {
	if l.Window != "" && l.Window != e.cfg.Window.String() {
		return false
	}
	e.mu.Lock()
	a := e.byID[id]
	e.mu.Unlock()
	if a == nil {
		return false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.hist = [NumClasses][NumFigures]Histogram{}
	for name, buckets := range l.Figures {
		c, f, ok := parseClassFigure(name)
		if !ok {
			continue
		}
		h := &a.hist[c][f]
		for k, n := range buckets {
			var i int
			if _, err := fmt.Sscan(k, &i); err != nil || i < 0 || i >= histBuckets {
				continue
			}
			h.n += uint64(n) - uint64(h.counts[i])
			h.counts[i] = n
		}
	}
	a.derive(e.cfg.Window)
	a.trainUntil.Store(l.TrainedAt.UnixNano())
	a.trained.Store(true)
	return true
}

// Retrain starts API id's training again (its traffic changed); it
// reports whether the API exists.
func (e *Engine) Retrain(id string) bool {
	e.mu.Lock()
	a := e.byID[id]
	e.mu.Unlock()
	if a == nil {
		return false
	}
	now := e.cfg.Now().UnixNano()
	a.mu.Lock()
	defer a.mu.Unlock()
	a.hist = [NumClasses][NumFigures]Histogram{}
	a.trained.Store(false)
	a.trainUntil.Store(now + int64(e.cfg.Training))
	return true
}

// FigureStatus is one figure of an API for one class of identity, as the
// management API shows it.
type FigureStatus struct {
	Identity  string  `json:"identity"` // ip, token, cookie, api_key, username
	Figure    string  `json:"figure"`
	Detector  string  `json:"detector"`
	Windows   uint64  `json:"windows_learned"`
	Learned   float64 `json:"learned"`   // the learned quantile; 0 while training
	Threshold float64 `json:"threshold"` // in effect; 0 while training without an override
	Override  bool    `json:"override"`
	Rule      string  `json:"rule"`
}

// APIStatus is an API's detection state.
type APIStatus struct {
	API           string            `json:"api_id"`
	Training      bool              `json:"training"`
	TrainingUntil time.Time         `json:"training_until"`
	Modes         map[string]string `json:"modes"`
	Figures       []FigureStatus    `json:"figures"`
}

// Status returns every API's detection state, or one API's (ok false when
// it does not exist).
func (e *Engine) Status(id string) ([]APIStatus, bool) {
	e.mu.Lock()
	var states []*apiState
	for aid, a := range e.byID {
		if id == "" || aid == id {
			states = append(states, a)
		}
	}
	e.mu.Unlock()
	if id != "" && len(states) == 0 {
		return nil, false
	}
	out := make([]APIStatus, 0, len(states))
	for _, a := range states {
		p := a.policy.Load()
		s := APIStatus{API: a.id, Modes: map[string]string{}}
		a.mu.Lock()
		s.Training = !a.trained.Load() && e.cfg.Now().UnixNano() < a.trainUntil.Load()
		s.TrainingUntil = time.Unix(0, a.trainUntil.Load()).UTC()
		for d := Detector(0); d < NumDetectors; d++ {
			m := Enforce
			if p != nil {
				m = p.Modes[d]
			}
			s.Modes[d.String()] = m.String()
		}
		for f := Figure(0); f < NumFigures; f++ {
			for c := 0; c < NumClasses; c++ {
				if f == FigIPs && c == classOf(lists.IP) || f == FigFailingClients && c != classOf(lists.Username) {
					continue // addresses do not come from addresses; only usernames are logged in as
				}
				r := Rules[f]
				fs := FigureStatus{Identity: ClassName(c), Figure: f.String(), Detector: FigureDetector[f].String(), Windows: a.hist[c][f].Count()}
				if a.trained.Load() {
					fs.Learned = math.Float64frombits(a.learned[c][f].Load())
					fs.Threshold = math.Float64frombits(a.thr[c][f].Load())
				}
				if p != nil && p.Thresholds[f] > 0 {
					fs.Threshold, fs.Override = p.Thresholds[f], true
				}
				floor := r.Floor
				if r.PerMin {
					floor = math.Max(1, math.Round(floor*e.cfg.Window.Minutes()))
				}
				fs.Rule = fmt.Sprintf("max(%g x p%g of the windows learned, %g)", r.Factor, r.Quantile*100, floor)
				s.Figures = append(s.Figures, fs)
			}
		}
		a.mu.Unlock()
		out = append(out, s)
	}
	sortStatus(out)
	return out, true
}

func sortStatus(s []APIStatus) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j].API < s[j-1].API; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// Store prefixes of detection's shared state.
const (
	PolicyPrefix  = "abs/policy/"  // + api id: an API's Policy (JSON)
	LearnedPrefix = "abs/learned/" // + api id: what it learned (Learned, JSON)
)

// policyJSON is a Policy as stored and as the management API takes it:
// modes by detector name, thresholds by figure name; absent ones are the
// defaults (enforce, the learned threshold).
type policyJSON struct {
	Modes      map[string]string  `json:"modes,omitempty"`
	Thresholds map[string]float64 `json:"thresholds,omitempty"`
}

// DecodePolicy reads a policy, naming the first thing wrong in it.
func DecodePolicy(b []byte) (Policy, error) {
	var p Policy
	var in policyJSON
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return p, fmt.Errorf("not a detection policy: %v (want {\"modes\": {detector: enforce|report|off}, \"thresholds\": {figure: number}})", err)
	}
	for name, m := range in.Modes {
		d, ok := ParseDetector(name)
		if !ok {
			return p, fmt.Errorf("modes: unknown detector %q (one of %s)", name, strings.Join(detectorNames[:], ", "))
		}
		mode, ok := ParseMode(m)
		if !ok {
			return p, fmt.Errorf("modes.%s: %q is not a mode (enforce, report or off)", name, m)
		}
		p.Modes[d] = mode
	}
	for name, v := range in.Thresholds {
		f, ok := ParseFigure(name)
		if !ok {
			return p, fmt.Errorf("thresholds: unknown figure %q (one of %s)", name, strings.Join(figureNames[:], ", "))
		}
		if !(v >= 0) || v > 1e15 {
			return p, fmt.Errorf("thresholds.%s: must be a number from 0 (the learned threshold) to 1e15, got %v", name, v)
		}
		p.Thresholds[f] = v
	}
	return p, nil
}

// Encode returns p as stored: only what differs from the defaults.
func (p Policy) Encode() []byte {
	out := policyJSON{Modes: map[string]string{}, Thresholds: map[string]float64{}}
	for d, m := range p.Modes {
		if m != Enforce {
			out.Modes[Detector(d).String()] = m.String()
		}
	}
	for f, v := range p.Thresholds {
		if v > 0 {
			out.Thresholds[Figure(f).String()] = v
		}
	}
	b, _ := json.Marshal(out)
	return b
}
