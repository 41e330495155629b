package lists

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

// FuzzFastEntry: the fast path decodes an entry only as encoding/json
// would (strictly: unknown fields refused), so that a bulk import means
// the same whichever path reads an entry; and it never accepts what
// encoding/json refuses.
func FuzzFastEntry(f *testing.F) {
	for _, s := range []string{
		`{"type":"ip","value":"1.2.3.4"}`,
		` { "type" : "cookie" , "name" : "SID" , "value" : "x" , "ttl" : 60 , "reason" : "r" } `,
		`{"type":"token","value":"t","ttl":"1h30m"}`,
		`{"type":"ip","value":"1.2.3.4","type":"token"}`,
		`{"Type":"ip","value":"1.2.3.4"}`,
		`{"type":"ip","value":"a\"b"}`,
		`{"type":"ip","value":"1.2.3.4","ttl":01}`,
		`{"type":"ip","value":"1.2.3.4",}`,
		`{"type":"ip","value":"é"}`,
		`{"type":"ip","value":"1.2.3.4"} x`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var fast Input
		if !fastEntry(raw, &fast) {
			return
		}
		var slow Input
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&slow); err != nil || dec.More() {
			t.Fatalf("%q: the fast path took what encoding/json refuses (%v)", raw, err)
		}
		if !reflect.DeepEqual(fast, slow) {
			t.Fatalf("%q: fast %+v, encoding/json %+v", raw, fast, slow)
		}
	})
}
