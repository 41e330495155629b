package accounts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"time"

	"github.com/ase-project/ase/internal/store"
)

// Errors of user management.
var (
	ErrUserExists     = errors.New("user already exists")
	ErrBuiltinAdmin   = errors.New("the built-in admin cannot be deleted or renamed, nor lose its admin role")
	ErrInvalidRole    = errors.New("role must be admin, write or read")
	ErrInvalidName    = errors.New("a user name is 1 to 64 letters, digits, '.', '_', '-' or '@', starting with a letter or digit")
	ErrNothingChanged = errors.New("give a new password or a new role")
)

var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)

// CheckRole validates a role.
func CheckRole(r Role) error {
	switch r {
	case RoleAdmin, RoleWrite, RoleRead:
		return nil
	}
	return ErrInvalidRole
}

// CanWrite reports whether a role may change configuration.
func (r Role) CanWrite() bool { return r == RoleAdmin || r == RoleWrite }

func readUser(ctx context.Context, r store.Reader, name string) (*User, []byte, error) {
	raw, err := r.Get(ctx, userKey(name))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, ErrUnknownUser
	}
	if err != nil {
		return nil, nil, err
	}
	var u User
	if err := json.Unmarshal(raw, &u); err != nil {
		return nil, nil, fmt.Errorf("accounts: stored user %s is invalid: %w", name, err)
	}
	return &u, raw, nil
}

// GetUser returns a stored user (as the view r sees it).
func GetUser(ctx context.Context, r store.Reader, name string) (*User, error) {
	u, _, err := readUser(ctx, r, name)
	return u, err
}

// ListUsers returns every user by name.
func ListUsers(ctx context.Context, r store.Reader) ([]*User, error) {
	var out []*User
	err := r.Scan(ctx, UserPrefix, func(key string, value []byte) error {
		var u User
		if err := json.Unmarshal(value, &u); err == nil {
			out = append(out, &u)
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, err
}

// CreateUser returns the batch that stores a new local user.
func CreateUser(ctx context.Context, r store.Reader, name, password string, role Role) (store.Batch, error) {
	if !namePattern.MatchString(name) {
		return store.Batch{}, ErrInvalidName
	}
	if err := CheckRole(role); err != nil {
		return store.Batch{}, err
	}
	if len(password) < MinPasswordLen {
		return store.Batch{}, ErrPasswordTooShort
	}
	if _, _, err := readUser(ctx, r, name); err == nil {
		return store.Batch{}, ErrUserExists
	} else if !errors.Is(err, ErrUnknownUser) {
		return store.Batch{}, err
	}
	hash, err := HashPassword(password)
	if err != nil {
		return store.Batch{}, err
	}
	now := time.Now().UTC()
	rec, _ := json.Marshal(User{Name: name, Role: role, Hash: hash, CreatedAt: now, ChangedAt: now})
	return store.Batch{Conds: []store.Cond{store.Absent(userKey(name))}, Ops: []store.Op{store.Put(userKey(name), rec)}}, nil
}

// UpdateUser returns the batch that sets a user's password and/or role
// (empty: unchanged).
func UpdateUser(ctx context.Context, r store.Reader, name, password string, role Role) (store.Batch, error) {
	u, raw, err := readUser(ctx, r, name)
	if err != nil {
		return store.Batch{}, err
	}
	if password == "" && role == "" {
		return store.Batch{}, ErrNothingChanged
	}
	if role != "" {
		if err := CheckRole(role); err != nil {
			return store.Batch{}, err
		}
		if name == Admin && role != RoleAdmin {
			return store.Batch{}, ErrBuiltinAdmin
		}
		u.Role = role
	}
	if password != "" {
		if len(password) < MinPasswordLen {
			return store.Batch{}, ErrPasswordTooShort
		}
		if u.Hash, err = HashPassword(password); err != nil {
			return store.Batch{}, err
		}
		u.Default = false
		u.ChangedAt = time.Now().UTC()
	}
	rec, _ := json.Marshal(u)
	return store.Batch{Conds: []store.Cond{store.Unchanged(userKey(name), raw)}, Ops: []store.Op{store.Put(userKey(name), rec)}}, nil
}

// DeleteUser returns the batch that deletes a local user and their API
// keys. The built-in admin cannot be deleted.
func DeleteUser(ctx context.Context, r store.Reader, name string) (store.Batch, error) {
	if name == Admin {
		return store.Batch{}, ErrBuiltinAdmin
	}
	if _, _, err := readUser(ctx, r, name); err != nil {
		return store.Batch{}, err
	}
	b := store.Batch{Conds: []store.Cond{store.Present(userKey(name))}, Ops: []store.Op{store.Delete(userKey(name))}}
	keys, err := ListAPIKeys(ctx, r, name)
	if err != nil {
		return store.Batch{}, err
	}
	for _, k := range keys {
		b.Ops = append(b.Ops, store.Delete(apiKeyPrefix+k.ID))
	}
	return b, nil
}
