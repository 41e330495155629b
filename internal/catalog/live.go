package catalog

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/ase-project/ase/internal/apidef"
	"github.com/ase-project/ase/internal/store"
)

// Snapshot is an immutable view of every API, as enforced now.
type Snapshot struct {
	Rev  int64
	APIs map[string]*apidef.API
}

// Live is the catalog as enforced: built from a store snapshot and kept
// current by the store's change stream. Readers never block writers.
type Live struct {
	log      *slog.Logger
	snap     atomic.Pointer[Snapshot]
	settings map[Setting]*atomic.Bool
	// firewall and abs are settings[Firewall] and settings[ABS], which
	// every decision reads: a field is one load, the map a string hash.
	firewall, abs *atomic.Bool

	mu        sync.Mutex // serializes event handling and watcher registration
	watchers  []func(*Snapshot)
	stopFuncs []func()
}

// Defaults are the settings' values from ase.conf, used until the
// management API sets them.
type Defaults map[Setting]bool

// NewLive loads the catalog from st and follows its changes until Close.
func NewLive(ctx context.Context, st store.Store, defaults Defaults, log *slog.Logger) (*Live, error) {
	l := &Live{log: log, settings: map[Setting]*atomic.Bool{}}
	for _, s := range []Setting{Firewall, ASEDetectedAttack, SidebandAuthentication, ABS, ABSAttack} {
		b := &atomic.Bool{}
		b.Store(defaults[s])
		l.settings[s] = b
	}
	l.firewall, l.abs = l.settings[Firewall], l.settings[ABS]
	l.snap.Store(&Snapshot{APIs: map[string]*apidef.API{}})

	apis := map[string]*apidef.API{}
	stop, err := st.Subscribe(ctx, APIPrefix, func(key string, value []byte) error {
		if a := l.decode(key, value); a != nil {
			apis[a.ID] = a
		}
		return nil
	}, l.onAPIEvent)
	if err != nil {
		return nil, err
	}
	l.stopFuncs = append(l.stopFuncs, stop)
	l.snap.Store(&Snapshot{Rev: st.Rev(), APIs: apis})

	stop, err = st.Subscribe(ctx, SettingPrefix, func(key string, value []byte) error {
		l.setSetting(key, value, false)
		return nil
	}, func(e store.Event) {
		for _, c := range e.Changes {
			l.setSetting(c.Key, c.Value, c.Deleted)
		}
	})
	if err != nil {
		l.Close()
		return nil, err
	}
	l.stopFuncs = append(l.stopFuncs, stop)
	return l, nil
}

func (l *Live) decode(key string, value []byte) *apidef.API {
	id := strings.TrimPrefix(key, APIPrefix)
	a, err := apidef.Decode(id, value)
	if err != nil {
		// Only valid definitions are ever committed; a bad one means the
		// store was edited by hand. Keep serving the others.
		l.log.Error("stored API definition is invalid; ignoring it", "api_id", id, "error", err)
		return nil
	}
	return a
}

func (l *Live) onAPIEvent(e store.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	old := l.snap.Load()
	apis := make(map[string]*apidef.API, len(old.APIs)+1)
	for id, a := range old.APIs {
		apis[id] = a
	}
	for _, c := range e.Changes {
		id := strings.TrimPrefix(c.Key, APIPrefix)
		if c.Deleted {
			delete(apis, id)
			continue
		}
		if a := l.decode(c.Key, c.Value); a != nil {
			apis[id] = a
		}
	}
	snap := &Snapshot{Rev: e.Rev, APIs: apis}
	l.snap.Store(snap)
	for _, w := range l.watchers {
		w(snap)
	}
}

func (l *Live) setSetting(key string, value []byte, deleted bool) {
	b, ok := l.settings[Setting(strings.TrimPrefix(key, SettingPrefix))]
	if !ok || deleted {
		return
	}
	b.Store(string(value) == "enabled")
}

// Snapshot returns the current view of every API.
func (l *Live) Snapshot() *Snapshot { return l.snap.Load() }

// Setting returns the enforced value of s.
func (l *Live) Setting(s Setting) bool {
	switch s {
	case Firewall:
		return l.firewall.Load()
	case ABS:
		return l.abs.Load()
	}
	return l.settings[s].Load()
}

// Watch calls fn with the current snapshot and then with every new one, in
// order. fn runs on the store's commit path and must be quick.
func (l *Live) Watch(fn func(*Snapshot)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.watchers = append(l.watchers, fn)
	fn(l.snap.Load())
}

// Close stops following the store.
func (l *Live) Close() {
	for _, stop := range l.stopFuncs {
		stop()
	}
}
