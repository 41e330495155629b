package wire

import (
	"encoding/json"
	"reflect"
	"testing"
)

// A list view keeps the server's section order both ways, and its cursor.
func TestListViewJSON(t *testing.T) {
	in := `{"manual_blacklist": [{"type": "ip", "value": "1.1.1.1", "tag": "manual", "created_at": "2026-12-01T10:00:00Z"}], "abs_generated_blacklist": [], "decoy_blacklist": [], "next_cursor": "abc"}`
	var v ListView
	if err := json.Unmarshal([]byte(in), &v); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(v.Order, []string{"manual_blacklist", "abs_generated_blacklist", "decoy_blacklist"}) || v.NextCursor != "abc" || v.Sections["manual_blacklist"][0].CreatedAt == "" {
		t.Fatalf("got %+v", v)
	}
	out, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"manual_blacklist":[{"type":"ip","value":"1.1.1.1","tag":"manual","created_at":"2026-12-01T10:00:00Z"}],"abs_generated_blacklist":[],"decoy_blacklist":[],"next_cursor":"abc"}`
	if string(out) != want {
		t.Fatalf("got %s\nwant %s", out, want)
	}
	v.NextCursor = ""
	if out, _ := json.Marshal(v); string(out) != want[:len(want)-len(`,"next_cursor":"abc"}`)]+"}" {
		t.Fatalf("without a cursor: %s", out)
	}
	if err := json.Unmarshal([]byte(`[]`), &v); err == nil {
		t.Fatal("an array read as a view")
	}
	if err := json.Unmarshal([]byte(`{"whitelist": 3}`), &v); err == nil {
		t.Fatal("a number read as a section")
	}
}
