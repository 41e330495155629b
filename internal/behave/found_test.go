package behave

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/ase-project/ase/internal/lists"
)

// A detection's record reads back as written; a record written wrong is
// an error naming what is wrong.
func TestFoundRecord(t *testing.T) {
	at := time.Date(2026, 12, 1, 12, 0, 0, 5, time.UTC)
	d := Detection{Detector: Exfiltration, Figure: FigBytes, Mode: Enforce, API: "shop", Kind: lists.Token, Value: "tok-x",
		IP: netip.MustParseAddr("::ffff:127.0.0.1"), Observed: 9, Threshold: 3, At: at}
	f := NewFound(&d, d.Evidence().Encode(), time.Hour)
	b, _ := json.Marshal(f)
	back, err := DecodeFound(b)
	if err != nil || back.Kind() != lists.Token || back.Value != "tok-x" || !back.Detected.Equal(at) || back.Expires == nil || !back.Expires.Equal(at.Add(time.Hour)) || back.Mode != "enforce" {
		t.Fatalf("back %+v %v", back, err)
	}
	d.Kind, d.Mode = lists.IP, Report
	if f := NewFound(&d, "", time.Hour); f.Value != "127.0.0.1" || f.Expires != nil || string(f.Evidence) != "{}" {
		t.Fatalf("a reported address: %+v", f)
	}
	for rec, want := range map[string]string{
		`{`: "a detection record",
		`{"type":"host","value":"x","mode":"enforce","detected_time":"2026-12-01T00:00:00Z","evidence":{}}`:                `type "host"`,
		`{"type":"ip","value":"x","mode":"enforce","detected_time":"2026-12-01T00:00:00Z","evidence":{}}`:                  `address "x"`,
		`{"type":"token","value":"","mode":"enforce","detected_time":"2026-12-01T00:00:00Z","evidence":{}}`:                "without a value",
		`{"type":"token","value":"t","mode":"off","detected_time":"2026-12-01T00:00:00Z","evidence":{}}`:                   `mode "off"`,
		`{"type":"token","value":"t","mode":"enforce","evidence":{}}`:                                                      "detected_time",
		`{"type":"token","value":"t","mode":"enforce","detected_time":"2026-12-01T00:00:00Z"}`:                             "evidence",
		`{"type":"token","value":"t","mode":"enforce","detected_time":"2026-12-01T00:00:00Z","evidence":{"observed":"x"}}`: "evidence",
		strings.Repeat(" ", maxFound+1): "more than",
	} {
		if _, err := DecodeFound([]byte(rec)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%.60s: %v, want an error naming %q", rec, err, want)
		}
	}
	if k := FoundKey("n1", FoundKept+3); k != "abs/found/n1/0003" {
		t.Fatalf("key %s", k)
	}
}

func FuzzDecodeFound(f *testing.F) {
	f.Add([]byte(`{"type":"token","value":"t","mode":"enforce","detected_time":"2026-12-01T00:00:00Z","evidence":{"detector":"api_probing"}}`))
	f.Add([]byte(`{"type":"ip","value":"::1","mode":"report","detected_time":"2026-12-01T00:00:00Z","expires":null,"evidence":{}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeFound(b)
		if err != nil {
			return
		}
		if _, ok := lists.ParseKind(r.Type); !ok || r.Detected.IsZero() {
			t.Fatalf("accepted %+v", r)
		}
		again, _ := json.Marshal(r)
		if _, err := DecodeFound(again); err != nil {
			t.Fatalf("a record accepted does not read back: %v", err)
		}
	})
}
