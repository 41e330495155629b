// Package sbauth authenticates API gateways to ASE's sideband protocols:
// sideband tokens (sent as ASE-Token, the vendor's model) and named shared
// secrets (sent in a configurable header, CLIENT-TOKEN by default: seed
// 002's model, with rotation through several active secrets).
//
// Secrets are stored only as argon2id hashes and never read back. A
// secret presented on the data path is looked up by its SHA-256 digest in
// an in-memory set of verified secrets; only a digest not seen before
// costs an argon2id check, and those checks are rate-limited, so a flood
// of wrong secrets can neither exhaust the CPU nor learn anything.
package sbauth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/time/rate"

	"github.com/ase-project/ase/internal/accounts"
	"github.com/ase-project/ase/internal/rfc9110"
	"github.com/ase-project/ase/internal/store"
)

// Store layout.
const (
	Prefix       = "sideband/"
	tokenPrefix  = "sideband/token/"
	secretPrefix = "sideband/secret/"
	headerKey    = "sideband/header"
)

// DefaultHeader carries shared secrets unless configured otherwise.
const DefaultHeader = "CLIENT-TOKEN"

// TokenHeader carries sideband tokens.
const TokenHeader = "ASE-Token"

// Errors of the operations.
var (
	ErrInvalidToken   = errors.New("the token must be 32 characters of lower-case letters and digits")
	ErrSecretTooShort = errors.New("the secret must have at least 8 characters")
	ErrInvalidName    = errors.New("the secret name must be 1 to 64 printable characters")
	ErrInvalidHeader  = errors.New("the header must be a valid HTTP header name")
)

// TokenExistsError, TokenAbsentError, SecretExistsError, SecretAbsentError
// and SecretInUseError name the token or secret concerned.
type (
	TokenExistsError  struct{ Token string }
	TokenAbsentError  struct{ Token string }
	SecretExistsError struct{ Name string }
	SecretAbsentError struct{ Name string }
	SecretInUseError  struct{ Name string }
)

func (e *TokenExistsError) Error() string {
	return "Sideband token " + e.Token + " already exists."
}
func (e *TokenAbsentError) Error() string {
	return "Sideband token " + e.Token + " does not exist."
}
func (e *SecretExistsError) Error() string {
	return "shared secret " + e.Name + " already exists"
}
func (e *SecretAbsentError) Error() string {
	return "shared secret " + e.Name + " does not exist"
}
func (e *SecretInUseError) Error() string {
	return "shared secret " + e.Name + " is active: deactivate it before deleting it"
}

var tokenPattern = regexp.MustCompile(`^[a-z0-9]{32}$`)

// CheckToken validates an imported token.
func CheckToken(t string) error {
	if !tokenPattern.MatchString(t) {
		return ErrInvalidToken
	}
	return nil
}

// NewToken returns 32 characters of [a-z0-9], uniformly drawn from the
// operating system's cryptographic source.
func NewToken() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	out := make([]byte, 0, 32)
	var buf [64]byte
	for len(out) < 32 {
		if _, err := rand.Read(buf[:]); err != nil {
			panic(err) // the OS source does not fail on Linux
		}
		for _, b := range buf {
			// Reject 252..255 so every character is equally likely.
			if b < 252 && len(out) < 32 {
				out = append(out, alphabet[b%36])
			}
		}
	}
	return string(out)
}

type tokenRecord struct {
	CreatedAt time.Time `json:"created_at"`
}

type secretRecord struct {
	Hash      string    `json:"hash"`
	Active    bool      `json:"active"`
	CreatedAt time.Time `json:"created_at"`
}

// Auth holds the live tokens and secrets.
type Auth struct {
	log *slog.Logger

	mu       sync.RWMutex
	tokens   map[[32]byte]bool        // digests of tokens
	secrets  map[string]*secretRecord // by name
	verified map[[32]byte]string      // digest of a verified secret -> its name
	header   atomic.Value             // string

	// slow bounds argon2id checks of secrets not yet verified.
	slow    *rate.Limiter
	hashing chan struct{}
	// Secrets not verified before: checked (against the active hashes),
	// and refused unchecked because slow had no check to spare.
	checked, refused atomic.Int64
	stop             func()
}

// Open loads the tokens, secrets and header from st and follows changes.
func Open(ctx context.Context, st store.Store, log *slog.Logger) (*Auth, error) {
	a := &Auth{
		log: log, tokens: map[[32]byte]bool{}, secrets: map[string]*secretRecord{}, verified: map[[32]byte]string{},
		slow: rate.NewLimiter(rate.Limit(20), 20), hashing: make(chan struct{}, 1),
	}
	a.header.Store(DefaultHeader)
	stop, err := st.Subscribe(ctx, Prefix, func(key string, value []byte) error {
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
	a.stop = stop
	return a, nil
}

// Close stops following the store.
func (a *Auth) Close() { a.stop() }

func (a *Auth) apply(key string, value []byte, deleted bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case key == headerKey:
		if deleted {
			a.header.Store(DefaultHeader)
		} else {
			a.header.Store(string(value))
		}
	case strings.HasPrefix(key, tokenPrefix):
		d := sha256.Sum256([]byte(key[len(tokenPrefix):]))
		if deleted {
			delete(a.tokens, d)
		} else {
			a.tokens[d] = true
		}
	case strings.HasPrefix(key, secretPrefix):
		name := key[len(secretPrefix):]
		// Any change to a secret forgets what was verified against it.
		for d, n := range a.verified {
			if n == name {
				delete(a.verified, d)
			}
		}
		if deleted {
			delete(a.secrets, name)
			return
		}
		var rec secretRecord
		if err := json.Unmarshal(value, &rec); err != nil {
			a.log.Error("ignoring a malformed shared secret in the store", "name", name, "error", err)
			delete(a.secrets, name)
			return
		}
		a.secrets[name] = &rec
	}
}

// Header returns the header that carries shared secrets.
func (a *Auth) Header() string { return a.header.Load().(string) }

// Check reports whether a sideband call presenting token (the ASE-Token
// header) and secret (the shared-secret header) may pass: either must be
// valid. Empty values are absent.
func (a *Auth) Check(ctx context.Context, token, secret []byte) bool {
	if len(token) > 0 {
		d := sha256.Sum256(token)
		a.mu.RLock()
		ok := a.tokens[d]
		a.mu.RUnlock()
		if ok {
			return true
		}
	}
	if len(secret) == 0 {
		return false
	}
	d := sha256.Sum256(secret)
	a.mu.RLock()
	name, seen := a.verified[d]
	active := seen && a.secrets[name] != nil && a.secrets[name].Active
	a.mu.RUnlock()
	if seen {
		return active
	}
	return a.verifySlow(ctx, d, string(secret))
}

// verifySlow checks secret against every active secret's hash, at most a
// few times a second overall; past that, it fails closed.
func (a *Auth) verifySlow(ctx context.Context, d [32]byte, secret string) bool {
	if !a.slow.Allow() {
		a.refused.Add(1)
		return false
	}
	a.checked.Add(1)
	select {
	case a.hashing <- struct{}{}:
	case <-ctx.Done():
		return false
	}
	defer func() { <-a.hashing }()
	a.mu.RLock()
	type cand struct{ name, hash string }
	var cands []cand
	for name, rec := range a.secrets {
		if rec.Active {
			cands = append(cands, cand{name, rec.Hash})
		}
	}
	a.mu.RUnlock()
	for _, c := range cands {
		if ok, _ := accounts.CheckPassword(c.hash, secret); ok {
			a.mu.Lock()
			if cur := a.secrets[c.name]; cur != nil && cur.Hash == c.hash && len(a.verified) < 1024 {
				a.verified[d] = c.name
			}
			a.mu.Unlock()
			return true
		}
	}
	return false
}

// SlowChecks returns how many presented secrets not verified before were
// checked against the active secrets' hashes, and how many were refused
// unchecked, past the rate of such checks (a flood of wrong secrets).
func (a *Auth) SlowChecks() (checked, refused int64) {
	return a.checked.Load(), a.refused.Load()
}

// --- operations, as store batches ---

// TokenInfo is a listed token.
type TokenInfo struct {
	Token     string
	CreatedAt time.Time
}

// ImportToken returns the batch that adds token.
func ImportToken(ctx context.Context, r store.Reader, token string, now time.Time) (store.Batch, error) {
	if err := CheckToken(token); err != nil {
		return store.Batch{}, err
	}
	if _, err := r.Get(ctx, tokenPrefix+token); err == nil {
		return store.Batch{}, &TokenExistsError{token}
	} else if !errors.Is(err, store.ErrNotFound) {
		return store.Batch{}, err
	}
	rec, _ := json.Marshal(tokenRecord{CreatedAt: now.UTC()})
	return store.Batch{Conds: []store.Cond{store.Absent(tokenPrefix + token)}, Ops: []store.Op{store.Put(tokenPrefix+token, rec)}}, nil
}

// DeleteToken returns the batch that removes token.
func DeleteToken(ctx context.Context, r store.Reader, token string) (store.Batch, error) {
	if _, err := r.Get(ctx, tokenPrefix+token); errors.Is(err, store.ErrNotFound) {
		return store.Batch{}, &TokenAbsentError{token}
	} else if err != nil {
		return store.Batch{}, err
	}
	return store.Batch{Ops: []store.Op{store.Delete(tokenPrefix + token)}}, nil
}

// ListTokens returns every token, oldest first.
func ListTokens(ctx context.Context, r store.Reader) ([]TokenInfo, error) {
	var out []TokenInfo
	err := r.Scan(ctx, tokenPrefix, func(key string, value []byte) error {
		var rec tokenRecord
		json.Unmarshal(value, &rec)
		out = append(out, TokenInfo{Token: key[len(tokenPrefix):], CreatedAt: rec.CreatedAt})
		return nil
	})
	sort.SliceStable(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	return out, err
}

// SecretInfo is a listed secret: never its value.
type SecretInfo struct {
	Name      string
	Active    bool
	CreatedAt time.Time
}

// CheckSecretName validates a secret's name: 1 to 64 printable
// characters (counted as characters, not bytes). Control characters (C1
// included), invisible formatting such as a bidirectional override, and
// invalid UTF-8 are refused: a name is shown in listings, replies and the
// audit log, where they could disguise it or drive a terminal.
func CheckSecretName(name string) error {
	if name == "" || !utf8.ValidString(name) || utf8.RuneCountInString(name) > 64 {
		return ErrInvalidName
	}
	for _, r := range name {
		if !unicode.IsPrint(r) {
			return ErrInvalidName
		}
	}
	return nil
}

// CreateSecret returns the batch that stores a new, inactive secret.
func CreateSecret(ctx context.Context, r store.Reader, name, secret string, now time.Time) (store.Batch, error) {
	if err := CheckSecretName(name); err != nil {
		return store.Batch{}, err
	}
	if len(secret) < 8 {
		return store.Batch{}, ErrSecretTooShort
	}
	if _, err := r.Get(ctx, secretPrefix+name); err == nil {
		return store.Batch{}, &SecretExistsError{name}
	} else if !errors.Is(err, store.ErrNotFound) {
		return store.Batch{}, err
	}
	hash, err := accounts.HashPassword(secret)
	if err != nil {
		return store.Batch{}, err
	}
	rec, _ := json.Marshal(secretRecord{Hash: hash, CreatedAt: now.UTC()})
	return store.Batch{Conds: []store.Cond{store.Absent(secretPrefix + name)}, Ops: []store.Op{store.Put(secretPrefix+name, rec)}}, nil
}

func getSecret(ctx context.Context, r store.Reader, name string) (*secretRecord, []byte, error) {
	raw, err := r.Get(ctx, secretPrefix+name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, &SecretAbsentError{name}
	}
	if err != nil {
		return nil, nil, err
	}
	var rec secretRecord
	if err := json.Unmarshal(raw, &rec); err != nil {
		return nil, nil, fmt.Errorf("sbauth: stored secret %s is invalid: %w", name, err)
	}
	return &rec, raw, nil
}

// SetActive returns the batch that adds the secret to (or removes it from)
// the accepted set.
func SetActive(ctx context.Context, r store.Reader, name string, active bool) (store.Batch, error) {
	rec, raw, err := getSecret(ctx, r, name)
	if err != nil {
		return store.Batch{}, err
	}
	rec.Active = active
	b, _ := json.Marshal(rec)
	return store.Batch{Conds: []store.Cond{store.Unchanged(secretPrefix+name, raw)}, Ops: []store.Op{store.Put(secretPrefix+name, b)}}, nil
}

// DeleteSecret returns the batch that deletes an inactive secret.
func DeleteSecret(ctx context.Context, r store.Reader, name string) (store.Batch, error) {
	rec, raw, err := getSecret(ctx, r, name)
	if err != nil {
		return store.Batch{}, err
	}
	if rec.Active {
		return store.Batch{}, &SecretInUseError{name}
	}
	return store.Batch{Conds: []store.Cond{store.Unchanged(secretPrefix+name, raw)}, Ops: []store.Op{store.Delete(secretPrefix + name)}}, nil
}

// ListSecrets returns every secret's name and state, by name.
func ListSecrets(ctx context.Context, r store.Reader) ([]SecretInfo, error) {
	var out []SecretInfo
	err := r.Scan(ctx, secretPrefix, func(key string, value []byte) error {
		var rec secretRecord
		json.Unmarshal(value, &rec)
		out = append(out, SecretInfo{Name: key[len(secretPrefix):], Active: rec.Active, CreatedAt: rec.CreatedAt})
		return nil
	})
	return out, err
}

// GetHeader returns the configured shared-secret header.
func GetHeader(ctx context.Context, r store.Reader) (string, error) {
	v, err := r.Get(ctx, headerKey)
	if errors.Is(err, store.ErrNotFound) {
		return DefaultHeader, nil
	}
	return string(v), err
}

// SetHeader returns the batch that sets the shared-secret header; ""
// resets it to the default.
func SetHeader(header string) (store.Batch, error) {
	if header == "" {
		return store.Batch{Ops: []store.Op{store.Delete(headerKey)}}, nil
	}
	if !validHeaderName(header) || strings.EqualFold(header, TokenHeader) {
		return store.Batch{}, ErrInvalidHeader
	}
	return store.Batch{Ops: []store.Op{store.Put(headerKey, []byte(http.CanonicalHeaderKey(header)))}}, nil
}

func validHeaderName(s string) bool { return len(s) <= 128 && rfc9110.IsToken(s) }
