// Package catalog is ASE's API configuration as stored: the key layout for
// API definitions and firewall settings, and the operations that turn a
// requested change into one atomic, conditional store batch.
//
// Operations read through a store.Reader and return a store.Batch instead of
// committing, so the caller decides whether the change applies at once or is
// staged in a transaction. Live keeps the enforced view current from the
// store's change stream.
package catalog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/ase-project/ase/internal/apidef"
	"github.com/ase-project/ase/internal/behave"
	"github.com/ase-project/ase/internal/store"
)

// Key prefixes of the catalog in the store.
const (
	APIPrefix     = "api/"
	SettingPrefix = "setting/"
)

// Errors of the catalog's operations. The management API maps each to the
// vendor's status string.
var (
	ErrAPIExists      = errors.New("api already exists")
	ErrAPINotFound    = errors.New("api does not exist")
	ErrServerExists   = errors.New("server already exists")
	ErrServerNotFound = errors.New("server does not exist")
)

// ConflictError says an API's hostname and url are already another API's.
type ConflictError struct {
	Other, Hostname, URL string
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("api_metadata.url: api %s already serves hostname %s and url %s", e.Other, e.Hostname, e.URL)
}

func apiKey(id string) string { return APIPrefix + id }

// GetAPI returns the stored definition of api id.
func GetAPI(ctx context.Context, r store.Reader, id string) (*apidef.API, error) {
	a, _, err := getAPI(ctx, r, id)
	return a, err
}

func getAPI(ctx context.Context, r store.Reader, id string) (*apidef.API, []byte, error) {
	raw, err := r.Get(ctx, apiKey(id))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, ErrAPINotFound
	}
	if err != nil {
		return nil, nil, err
	}
	a, err := apidef.Decode(id, raw)
	if err != nil {
		return nil, nil, fmt.Errorf("catalog: stored api %s is invalid: %w", id, err)
	}
	return a, raw, nil
}

// ListAPIs returns every stored API, ordered by api_id.
func ListAPIs(ctx context.Context, r store.Reader) ([]*apidef.API, error) {
	var out []*apidef.API
	err := r.Scan(ctx, APIPrefix, func(key string, value []byte) error {
		id := strings.TrimPrefix(key, APIPrefix)
		a, err := apidef.Decode(id, value)
		if err != nil {
			return fmt.Errorf("catalog: stored api %s is invalid: %w", id, err)
		}
		out = append(out, a)
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, err
}

// checkRoute refuses a definition whose hostname and url another API
// already has: requests could not be routed to exactly one of them.
func checkRoute(ctx context.Context, r store.Reader, a *apidef.API) error {
	apis, err := ListAPIs(ctx, r)
	if err != nil {
		return err
	}
	for _, o := range apis {
		if o.ID != a.ID && o.Hostname == a.Hostname && o.URL == a.URL {
			return &ConflictError{Other: o.ID, Hostname: a.Hostname, URL: a.URL}
		}
	}
	return nil
}

// CreateAPI returns the batch that stores a new API.
func CreateAPI(ctx context.Context, r store.Reader, a *apidef.API) (store.Batch, error) {
	if _, err := r.Get(ctx, apiKey(a.ID)); err == nil {
		return store.Batch{}, ErrAPIExists
	} else if !errors.Is(err, store.ErrNotFound) {
		return store.Batch{}, err
	}
	if err := checkRoute(ctx, r, a); err != nil {
		return store.Batch{}, err
	}
	return store.Batch{
		Conds: []store.Cond{store.Absent(apiKey(a.ID))},
		Ops:   []store.Op{store.Put(apiKey(a.ID), compact(a))},
	}, nil
}

// UpdateAPI returns the batch that replaces an existing API's definition.
func UpdateAPI(ctx context.Context, r store.Reader, a *apidef.API) (store.Batch, error) {
	_, raw, err := getAPI(ctx, r, a.ID)
	if err != nil {
		return store.Batch{}, err
	}
	if err := checkRoute(ctx, r, a); err != nil {
		return store.Batch{}, err
	}
	return replace(a, raw), nil
}

// DeleteAPI returns the batch that removes an API.
func DeleteAPI(ctx context.Context, r store.Reader, id string) (store.Batch, error) {
	if _, _, err := getAPI(ctx, r, id); err != nil {
		return store.Batch{}, err
	}
	// What behavioural detection learned of the API and the operator's
	// policy for it go with it: an API added later under the same id
	// trains afresh, under the defaults.
	return store.Batch{
		Conds: []store.Cond{store.Present(apiKey(id))},
		Ops:   []store.Op{store.Delete(apiKey(id)), store.Delete(behave.PolicyPrefix + id), store.Delete(behave.LearnedPrefix + id)},
	}, nil
}

// modify applies fn to a copy of api id and returns the replacing batch.
func modify(ctx context.Context, r store.Reader, id string, fn func(a *apidef.API) error) (*apidef.API, store.Batch, error) {
	a, raw, err := getAPI(ctx, r, id)
	if err != nil {
		return nil, store.Batch{}, err
	}
	if err := fn(a); err != nil {
		return nil, store.Batch{}, err
	}
	return a, replace(a, raw), nil
}

// AddServer returns the batch that adds a backend server to api id.
func AddServer(ctx context.Context, r store.Reader, id string, s apidef.Server) (store.Batch, error) {
	_, b, err := modify(ctx, r, id, func(a *apidef.API) error {
		if a.ServerIndex(s.Host, s.Port) >= 0 {
			return ErrServerExists
		}
		a.Servers = append(a.Servers, s)
		return nil
	})
	return b, err
}

// DeleteServer returns the batch that removes a backend server of api id.
func DeleteServer(ctx context.Context, r store.Reader, id, host string, port int) (store.Batch, error) {
	_, b, err := modify(ctx, r, id, func(a *apidef.API) error {
		i := a.ServerIndex(host, port)
		if i < 0 {
			return ErrServerNotFound
		}
		a.Servers = append(a.Servers[:i], a.Servers[i+1:]...)
		return nil
	})
	return b, err
}

// UpdateServerFlow returns the batch that sets the spike threshold and/or
// connection quota of one backend server of api id; a limit not given
// stays as it is.
func UpdateServerFlow(ctx context.Context, r store.Reader, id string, p apidef.ServerPatch) (store.Batch, error) {
	_, b, err := modify(ctx, r, id, func(a *apidef.API) error {
		i := a.ServerIndex(p.Host, p.Port)
		if i < 0 {
			return ErrServerNotFound
		}
		if p.Spike != nil {
			a.Servers[i].SpikeThreshold = *p.Spike
		}
		if p.Quota != nil {
			a.Servers[i].ConnectionQuota = *p.Quota
		}
		return nil
	})
	return b, err
}

// ServerProtocol returns the protocol of api id, which decides which server
// fields its bodies may carry.
func ServerProtocol(ctx context.Context, r store.Reader, id string) (apidef.Protocol, error) {
	a, err := GetAPI(ctx, r, id)
	if err != nil {
		return "", err
	}
	return a.Protocol, nil
}

// UpdateFlowControl returns the API with its flow_control patched by body
// ({"flow_control": {...}}: fields given change, the rest stay) and the
// batch that stores it.
func UpdateFlowControl(ctx context.Context, r store.Reader, id string, body []byte) (*apidef.API, store.Batch, error) {
	return modify(ctx, r, id, func(a *apidef.API) error {
		fc, err := apidef.FlowControlPatch(a, body)
		if err != nil {
			return err
		}
		a.FlowControl = fc
		return nil
	})
}

func replace(a *apidef.API, old []byte) store.Batch {
	return store.Batch{
		Conds: []store.Cond{store.Unchanged(apiKey(a.ID), old)},
		Ops:   []store.Op{store.Put(apiKey(a.ID), compact(a))},
	}
}

// compact is the stored form of a definition: its canonical encoding,
// without the indentation.
func compact(a *apidef.API) []byte {
	var buf bytes.Buffer
	if err := json.Compact(&buf, a.Encode()); err != nil {
		panic(err) // Encode always produces valid JSON
	}
	return buf.Bytes()
}

// Setting is a firewall switch that the management API can change and
// that then wins over ase.conf.
type Setting string

// The settings.
const (
	Firewall               Setting = "firewall"
	ASEDetectedAttack      Setting = "ase_detected_attack"
	SidebandAuthentication Setting = "sideband_authentication"
	// ABS is behavioural detection (the vendor's enable_abs: traffic is
	// analysed, here in process); ABSAttack is enforcing what it finds
	// (the vendor's enable_abs_attack: the attack list is deny-listed).
	ABS       Setting = "abs"
	ABSAttack Setting = "abs_attack"
)

func settingKey(s Setting) string { return SettingPrefix + string(s) }

// GetSetting returns the stored value of s, or def when the management API
// never set it (ase.conf supplies the first value).
func GetSetting(ctx context.Context, r store.Reader, s Setting, def bool) (bool, error) {
	v, err := r.Get(ctx, settingKey(s))
	if errors.Is(err, store.ErrNotFound) {
		return def, nil
	}
	if err != nil {
		return def, err
	}
	return string(v) == "enabled", nil
}

// SetSetting returns the batch that stores s.
func SetSetting(s Setting, on bool) store.Batch {
	v := "disabled"
	if on {
		v = "enabled"
	}
	return store.Batch{Ops: []store.Op{store.Put(settingKey(s), []byte(v))}}
}
