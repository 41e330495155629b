package accounts

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"sort"
	"strings"
	"time"

	"github.com/ase-project/ase/internal/store"
)

const apiKeyPrefix = "apikey/"

// APIKey is a stored API key: never its token, only the token's SHA-256
// (the token is 256 random bits, so a fast hash is as good as a slow one,
// and lookups by digest are constant-time with respect to the token).
type APIKey struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	Username    string    `json:"username"`
	LoginMethod string    `json:"login_method"`
	Digest      string    `json:"digest"`
	CreatedAt   time.Time `json:"created_at"`
}

// Errors of API key management.
var (
	ErrAdminAPIKey   = errors.New("the built-in admin cannot have API keys: log in as a local user")
	ErrAPIKeyName    = errors.New("an API key name is 1 to 128 printable characters")
	ErrUnknownAPIKey = errors.New("API key does not exist")
)

func digestHex(token string) string {
	d := sha256.Sum256([]byte(token))
	return hex.EncodeToString(d[:])
}

// newID returns a random UUID (version 4), as the vendor's keys look.
func newID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// CreateAPIKey returns a new key of user (logged in with loginMethod), its
// token (shown once, never stored) and the batch that stores it.
func CreateAPIKey(ctx context.Context, r store.Reader, user, loginMethod, name string) (*APIKey, string, store.Batch, error) {
	if user == Admin {
		return nil, "", store.Batch{}, ErrAdminAPIKey
	}
	if name == "" || len(name) > 128 || strings.ContainsAny(name, "\x00\r\n") {
		return nil, "", store.Batch{}, ErrAPIKeyName
	}
	if _, _, err := readUser(ctx, r, user); err != nil {
		return nil, "", store.Batch{}, err
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return nil, "", store.Batch{}, err
	}
	token := base64.RawURLEncoding.EncodeToString(raw[:])
	k := &APIKey{ID: newID(), Name: name, Username: user, LoginMethod: loginMethod, Digest: digestHex(token), CreatedAt: time.Now().UTC()}
	rec, _ := json.Marshal(k)
	return k, token, store.Batch{Conds: []store.Cond{store.Absent(apiKeyPrefix + k.ID)}, Ops: []store.Op{store.Put(apiKeyPrefix+k.ID, rec)}}, nil
}

// ListAPIKeys returns the keys of user, or of everyone when user is "".
func ListAPIKeys(ctx context.Context, r store.Reader, user string) ([]*APIKey, error) {
	var out []*APIKey
	err := r.Scan(ctx, apiKeyPrefix, func(key string, value []byte) error {
		var k APIKey
		if json.Unmarshal(value, &k) == nil && (user == "" || k.Username == user) {
			out = append(out, &k)
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	return out, err
}

// GetAPIKey returns one key.
func GetAPIKey(ctx context.Context, r store.Reader, id string) (*APIKey, error) {
	raw, err := r.Get(ctx, apiKeyPrefix+id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrUnknownAPIKey
	}
	if err != nil {
		return nil, err
	}
	var k APIKey
	if err := json.Unmarshal(raw, &k); err != nil {
		return nil, err
	}
	return &k, nil
}

// DeleteAPIKey returns the batch that removes a key.
func DeleteAPIKey(ctx context.Context, r store.Reader, id string) (store.Batch, error) {
	if _, err := GetAPIKey(ctx, r, id); err != nil {
		return store.Batch{}, err
	}
	return store.Batch{Ops: []store.Op{store.Delete(apiKeyPrefix + id)}}, nil
}

// AuthenticateAPIKey returns the user an API key token acts for.
func (a *Accounts) AuthenticateAPIKey(token string) (*User, *APIKey, bool) {
	if token == "" {
		return nil, nil, false
	}
	d := digestHex(token)
	a.mu.RLock()
	defer a.mu.RUnlock()
	k := a.keys[d]
	if k == nil {
		return nil, nil, false
	}
	u := a.users[k.Username]
	if u == nil {
		return nil, nil, false
	}
	c := *u
	return &c, k, true
}
