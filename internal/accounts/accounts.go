// Package accounts holds the operators who may use the management API:
// the built-in admin (the x-ase-access-key user) and, later, local users,
// with salted slow password hashes and a cache of successful checks.
package accounts

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ase-project/ase/internal/store"
)

// UserPrefix is the store prefix of user records.
const UserPrefix = "user/"

// Admin is the built-in administrator: the only x-ase-access-key.
const Admin = "admin"

// DefaultPassword is the vendor's factory password of Admin.
const DefaultPassword = "admin"

// Role is what a user may do.
type Role string

// The roles.
const (
	RoleAdmin Role = "admin"
	RoleWrite Role = "write"
	RoleRead  Role = "read"
)

// User is a stored operator account.
type User struct {
	Name      string    `json:"name"`
	Role      Role      `json:"role"`
	Hash      string    `json:"hash"`
	Default   bool      `json:"default_password,omitempty"` // still the factory password
	CreatedAt time.Time `json:"created_at"`
	ChangedAt time.Time `json:"password_changed_at"`
}

// Errors of account operations.
var (
	ErrWrongPassword = errors.New("the current password is not correct")
	ErrUnknownUser   = errors.New("user does not exist")
)

func userKey(name string) string { return UserPrefix + name }

// Accounts follows the stored users and checks credentials.
type Accounts struct {
	log *slog.Logger

	mu    sync.RWMutex
	users map[string]*User
	keys  map[string]*APIKey // by token digest
	// verified caches successful password checks, keyed by a digest of the
	// stored hash and the password, so a correct password costs one argon2
	// run per process rather than one per request. Any change to a user
	// clears it.
	verified map[[32]byte]struct{}

	// hashing bounds concurrent argon2 runs (19 MiB each), so a flood of
	// wrong passwords cannot exhaust memory or starve the data path.
	hashing chan struct{}
	// waited counts checks that found every slot taken and had to wait:
	// how a test sees the bound hold.
	waited atomic.Int64
	stop   func()
}

// Open loads the users from st, creating the built-in admin with the
// factory password on first start, and follows later changes.
func Open(ctx context.Context, st store.Store, log *slog.Logger) (*Accounts, error) {
	if _, err := st.Get(ctx, userKey(Admin)); errors.Is(err, store.ErrNotFound) {
		hash, err := HashPassword(DefaultPassword)
		if err != nil {
			return nil, err
		}
		now := time.Now().UTC()
		rec, _ := json.Marshal(User{Name: Admin, Role: RoleAdmin, Hash: hash, Default: true, CreatedAt: now, ChangedAt: now})
		// Absent: a cluster peer may create it at the same moment.
		_, err = st.Commit(ctx, store.Batch{Conds: []store.Cond{store.Absent(userKey(Admin))}, Ops: []store.Op{store.Put(userKey(Admin), rec)}})
		var ce *store.ConflictError
		if err != nil && !errors.As(err, &ce) {
			return nil, fmt.Errorf("accounts: create admin: %w", err)
		}
	} else if err != nil {
		return nil, err
	}
	a := &Accounts{log: log, users: map[string]*User{}, keys: map[string]*APIKey{}, verified: map[[32]byte]struct{}{}, hashing: make(chan struct{}, 2)}
	stop, err := st.Subscribe(ctx, UserPrefix, func(key string, value []byte) error {
		a.apply(key, value, false)
		return nil
	}, func(e store.Event) {
		for _, c := range e.Changes {
			a.apply(c.Key, c.Value, c.Deleted)
		}
	})
	if err != nil {
		return nil, err
	}
	stopKeys, err := st.Subscribe(ctx, apiKeyPrefix, func(key string, value []byte) error {
		a.applyKey(key, value, false)
		return nil
	}, func(e store.Event) {
		for _, c := range e.Changes {
			a.applyKey(c.Key, c.Value, c.Deleted)
		}
	})
	if err != nil {
		stop()
		return nil, err
	}
	a.stop = func() { stop(); stopKeys() }
	return a, nil
}

func (a *Accounts) applyKey(key string, value []byte, deleted bool) {
	id := strings.TrimPrefix(key, apiKeyPrefix)
	a.mu.Lock()
	defer a.mu.Unlock()
	for d, k := range a.keys {
		if k.ID == id {
			delete(a.keys, d)
		}
	}
	if deleted {
		return
	}
	var k APIKey
	if err := json.Unmarshal(value, &k); err != nil {
		a.log.Error("ignoring a malformed API key in the store", "key", id, "error", err)
		return
	}
	a.keys[k.Digest] = &k
}

func (a *Accounts) apply(key string, value []byte, deleted bool) {
	name := strings.TrimPrefix(key, UserPrefix)
	a.mu.Lock()
	defer a.mu.Unlock()
	clear(a.verified)
	if deleted {
		delete(a.users, name)
		return
	}
	var u User
	if err := json.Unmarshal(value, &u); err != nil {
		a.log.Error("stored user record is invalid; ignoring it", "user", name, "error", err)
		delete(a.users, name)
		return
	}
	a.users[name] = &u
}

// Close stops following the store.
func (a *Accounts) Close() { a.stop() }

// Authenticate returns the user if password is theirs. It costs one argon2
// run the first time a given password is checked, and a digest after that.
func (a *Accounts) Authenticate(ctx context.Context, name, password string) (*User, bool) {
	a.mu.RLock()
	u := a.users[name]
	a.mu.RUnlock()
	if u == nil {
		// Spend the same work as a real check, so timing does not tell
		// which user names exist.
		a.check(ctx, dummyHash(), password)
		return nil, false
	}
	digest := sha256.Sum256([]byte(u.Hash + "\x00" + password))
	a.mu.RLock()
	_, hit := a.verified[digest]
	a.mu.RUnlock()
	if hit {
		return u, true
	}
	if !a.check(ctx, u.Hash, password) {
		return nil, false
	}
	a.mu.Lock()
	if cur := a.users[name]; cur != nil && cur.Hash == u.Hash && len(a.verified) < 4096 {
		a.verified[digest] = struct{}{}
	}
	a.mu.Unlock()
	return u, true
}

// checkPassword is CheckPassword; a test replaces it with a run it can
// hold open.
var checkPassword = CheckPassword

func (a *Accounts) check(ctx context.Context, hash, password string) bool {
	select {
	case a.hashing <- struct{}{}:
	default:
		a.waited.Add(1)
		select {
		case a.hashing <- struct{}{}:
		case <-ctx.Done():
			return false
		}
	}
	defer func() { <-a.hashing }()
	ok, err := checkPassword(hash, password)
	if err != nil {
		a.log.Error("stored password hash is invalid", "error", err)
	}
	return ok
}

// dummyHash is checked against for unknown users; its password is random
// and unknown. Made on first use, so that CLI runs do not pay for it.
var dummyHash = sync.OnceValue(func() string {
	h, err := HashPassword(fmt.Sprint(time.Now().UnixNano()))
	if err != nil {
		panic(err)
	}
	return h
})

// User returns a copy of the named user's record, or nil.
func (a *Accounts) User(name string) *User {
	a.mu.RLock()
	defer a.mu.RUnlock()
	if u := a.users[name]; u != nil {
		c := *u
		return &c
	}
	return nil
}

// DefaultPasswordInUse reports whether the built-in admin still has the
// factory password.
func (a *Accounts) DefaultPasswordInUse() bool {
	u := a.User(Admin)
	return u == nil || u.Default
}

// ChangePassword returns the batch that sets user name's password, after
// checking the current one.
func (a *Accounts) ChangePassword(ctx context.Context, r store.Reader, name, current, next string) (store.Batch, error) {
	raw, err := r.Get(ctx, userKey(name))
	if errors.Is(err, store.ErrNotFound) {
		return store.Batch{}, ErrUnknownUser
	}
	if err != nil {
		return store.Batch{}, err
	}
	var u User
	if err := json.Unmarshal(raw, &u); err != nil {
		return store.Batch{}, fmt.Errorf("accounts: stored user %s is invalid: %w", name, err)
	}
	if !a.check(ctx, u.Hash, current) {
		return store.Batch{}, ErrWrongPassword
	}
	if len(next) < MinPasswordLen {
		return store.Batch{}, ErrPasswordTooShort
	}
	if u.Hash, err = HashPassword(next); err != nil {
		return store.Batch{}, err
	}
	u.Default = false
	u.ChangedAt = time.Now().UTC()
	rec, _ := json.Marshal(u)
	return store.Batch{
		Conds: []store.Cond{store.Unchanged(userKey(name), raw)},
		Ops:   []store.Op{store.Put(userKey(name), rec)},
	}, nil
}
