package behave

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"time"

	"github.com/ase-project/ase/internal/lists"
)

// FoundPrefix is where every node keeps its last detections in the
// shared store, FoundKept of them in a ring: FoundPrefix + node + "/" +
// slot (4 digits). The attack list of any node reads every node's, so a
// detection only reported (a detector in report mode, abs_attack off) or
// listed and since expired is seen from the whole cluster, not only from
// the node that made it.
const (
	FoundPrefix = "abs/found/"
	FoundKept   = 1024
)

// FoundKey is the key of slot i of node's ring.
func FoundKey(node string, i int) string {
	return fmt.Sprintf("%s%s/%04d", FoundPrefix, node, i%FoundKept)
}

// Found is a detection as the store keeps it.
type Found struct {
	Type     string          `json:"type"` // a list entry's type: ip, token, cookie, api_key, username
	Name     string          `json:"name,omitempty"`
	Value    string          `json:"value"`
	Mode     string          `json:"mode"` // enforce (it was listed) or report
	Detected time.Time       `json:"detected_time"`
	Expires  *time.Time      `json:"expires,omitempty"` // enforced with a TTL: when its entry expires
	Evidence json.RawMessage `json:"evidence"`
}

// NewFound is d's record; ttl is how long its entry is listed (0: until
// removed), for an enforced one.
func NewFound(d *Detection, evidence string, ttl time.Duration) Found {
	f := Found{Type: d.Kind.String(), Name: d.Name, Value: d.Value, Mode: d.Mode.String(), Detected: d.At.UTC(), Evidence: json.RawMessage(evidence)}
	if d.Kind == lists.IP {
		f.Value = d.IP.Unmap().String()
	}
	if d.Mode == Enforce && ttl > 0 {
		e := f.Detected.Add(ttl)
		f.Expires = &e
	}
	if len(f.Evidence) == 0 {
		f.Evidence = json.RawMessage(`{}`)
	}
	return f
}

// Kind is f's identity type.
func (f *Found) Kind() lists.Kind {
	k, _ := lists.ParseKind(f.Type)
	return k
}

// maxFound bounds a stored record: the evidence (1 KiB), a credential's
// name and value (lists' bounds), and the rest.
const maxFound = 16 << 10

// DecodeFound reads a stored record back, checking every field: a
// record another node (or version) wrote wrong is an error naming what is
// wrong, never a crash.
func DecodeFound(b []byte) (Found, error) {
	var f Found
	if len(b) > maxFound {
		return f, fmt.Errorf("a detection record of %d bytes, more than %d", len(b), maxFound)
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return f, fmt.Errorf("a detection record: %v", err)
	}
	k, ok := lists.ParseKind(f.Type)
	if !ok {
		return f, fmt.Errorf("a detection record's type %q is not ip, token, cookie, api_key or username", f.Type)
	}
	if k == lists.IP {
		if _, err := netip.ParseAddr(f.Value); err != nil {
			return f, fmt.Errorf("a detection record's address %q: %v", f.Value, err)
		}
	} else if f.Value == "" {
		return f, fmt.Errorf("a detection record of a %s without a value", f.Type)
	}
	if m, ok := ParseMode(f.Mode); !ok || m == Off {
		return f, fmt.Errorf("a detection record's mode %q is not enforce or report", f.Mode)
	}
	if f.Detected.IsZero() {
		return f, fmt.Errorf("a detection record without its detected_time")
	}
	var ev Evidence
	if err := json.Unmarshal(f.Evidence, &ev); err != nil {
		return f, fmt.Errorf("a detection record's evidence: %v", err)
	}
	return f, nil
}
