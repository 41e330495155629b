package sbauth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/ase-project/ase/internal/accounts"
	"github.com/ase-project/ase/internal/store"
)

// logBuffer collects what an Auth logs.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func openStore(t *testing.T) *store.Bolt {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "ase.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func openAuth(t *testing.T, st store.Store) (*Auth, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	a, err := Open(context.Background(), st, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	return a, logs
}

// commit applies the batch an operation returned; the embedded store has
// given it to the Auth when Commit returns.
func commit(t *testing.T, st store.Store, b store.Batch, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Commit(context.Background(), b); err != nil {
		t.Fatal(err)
	}
}

// unlimited lifts the slow-check limiter, for tests about something else.
func unlimited(a *Auth) { a.slow = rate.NewLimiter(rate.Inf, 0) }

func TestCheckToken(t *testing.T) {
	tests := []struct {
		name, token string
		ok          bool
	}{
		{"lower-case letters and digits", "abcdefghijklmnopqrstuvwxyz012345", true},
		{"digits only", strings.Repeat("7", 32), true},
		{"empty", "", false},
		{"31 characters", strings.Repeat("a", 31), false},
		{"33 characters", strings.Repeat("a", 33), false},
		{"upper case", "Abcdefghijklmnopqrstuvwxyz012345", false},
		{"hyphen", "abcdefghijklmnop-rstuvwxyz012345", false},
		{"space", "abcdefghijklmnop rstuvwxyz012345", false},
		{"trailing newline", strings.Repeat("a", 32) + "\n", false},
		{"leading newline", "\n" + strings.Repeat("a", 32), false},
		{"non-ASCII letter", "é" + strings.Repeat("a", 30), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckToken(tt.token)
			if tt.ok && err != nil {
				t.Fatalf("CheckToken(%q) = %v, want nil", tt.token, err)
			}
			if !tt.ok && !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("CheckToken(%q) = %v, want ErrInvalidToken", tt.token, err)
			}
		})
	}
}

// TestNewToken: every token is valid and new, and every character of the
// alphabet is equally likely. The bound is six standard deviations of the
// count of one character in 640,000 draws (a chance under 1e-7 that a
// correct generator fails it); taking b%36 of every byte, without
// rejecting 252..255, makes a..d 12.5% likelier, 17 deviations off.
func TestNewToken(t *testing.T) {
	const n = 20000
	seen := make(map[string]bool, n)
	counts := map[rune]int{}
	for range n {
		tok := NewToken()
		if err := CheckToken(tok); err != nil {
			t.Fatalf("NewToken() = %q: %v", tok, err)
		}
		if seen[tok] {
			t.Fatalf("NewToken() returned %q twice", tok)
		}
		seen[tok] = true
		for _, r := range tok {
			counts[r]++
		}
	}
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	if len(counts) != len(alphabet) {
		t.Fatalf("got %d distinct characters, want %d", len(counts), len(alphabet))
	}
	draws := float64(n * 32)
	p := 1.0 / float64(len(alphabet))
	mean, sd := draws*p, math.Sqrt(draws*p*(1-p))
	for _, r := range alphabet {
		if dev := (float64(counts[r]) - mean) / sd; math.Abs(dev) > 6 {
			t.Errorf("character %q drawn %d times, want %.0f ± %.0f (%.1f deviations off)", r, counts[r], mean, 6*sd, dev)
		}
	}
}

func TestCheckSecretName(t *testing.T) {
	tests := []struct {
		name, value string
		ok          bool
	}{
		{"one character", "a", true},
		{"64 characters", strings.Repeat("n", 64), true},
		{"spaces and punctuation", "gateway #2 (eu-west), rotated 2024/05", true},
		{"64 non-ASCII characters", strings.Repeat("é", 64), true},
		{"empty", "", false},
		{"65 characters", strings.Repeat("n", 65), false},
		{"65 non-ASCII characters", strings.Repeat("é", 65), false},
		{"tab", "a\tb", false},
		{"newline", "a\nb", false},
		{"NUL", "a\x00b", false},
		{"DEL", "a\x7fb", false},
		{"C1 control (CSI)", "a\u009b31mb", false},
		{"bidirectional override", "a\u202eb", false},
		{"invalid UTF-8", "a\xffb", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckSecretName(tt.value)
			if tt.ok && err != nil {
				t.Fatalf("CheckSecretName(%q) = %v, want nil", tt.value, err)
			}
			if !tt.ok && !errors.Is(err, ErrInvalidName) {
				t.Fatalf("CheckSecretName(%q) = %v, want ErrInvalidName", tt.value, err)
			}
		})
	}
}

func TestSetHeader(t *testing.T) {
	tests := []struct {
		name, header string
		want         string // the stored value; "" with ok: the key is deleted
		ok           bool
	}{
		{"canonicalized", "x-shared-secret", "X-Shared-Secret", true},
		{"already canonical", "X-Gateway-Key", "X-Gateway-Key", true},
		{"default name", "client-token", "Client-Token", true},
		{"128 characters", strings.Repeat("x", 128), "X" + strings.Repeat("x", 127), true},
		{"reset", "", "", true},
		{"the token header", "ASE-Token", "", false},
		{"the token header in lower case", "ase-token", "", false},
		{"129 characters", strings.Repeat("x", 129), "", false},
		{"space", "X Secret", "", false},
		{"colon", "X-Secret:", "", false},
		{"newline", "X-Secret\r\nX-Other", "", false},
		{"non-ASCII", "X-Sécret", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := SetHeader(tt.header)
			if !tt.ok {
				if !errors.Is(err, ErrInvalidHeader) {
					t.Fatalf("SetHeader(%q) = %v, want ErrInvalidHeader", tt.header, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("SetHeader(%q) = %v", tt.header, err)
			}
			if len(b.Ops) != 1 || b.Ops[0].Key != headerKey {
				t.Fatalf("SetHeader(%q) = %+v, want one operation on %s", tt.header, b, headerKey)
			}
			op := b.Ops[0]
			if tt.want == "" {
				if op.Kind != store.OpDelete {
					t.Fatalf("SetHeader(%q): got %+v, want a delete", tt.header, op)
				}
				return
			}
			if op.Kind != store.OpPut || string(op.Value) != tt.want {
				t.Fatalf("SetHeader(%q): got %+v, want a put of %q", tt.header, op, tt.want)
			}
		})
	}
}

func TestTokens(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	t1 := time.Date(2024, 5, 1, 10, 0, 0, 0, time.FixedZone("CEST", 2*3600))
	t2 := t1.Add(-time.Hour) // imported second, but older
	// The newer token sorts first by value: the list must sort by time.
	newer, older := strings.Repeat("a", 32), strings.Repeat("b", 31)+"z"

	if _, err := ImportToken(ctx, st, "Not-A-Token", t1); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("importing an invalid token: got %v, want ErrInvalidToken", err)
	}
	b, err := ImportToken(ctx, st, newer, t1)
	// Built before the first commit: its condition must refuse it after.
	raced, _ := ImportToken(ctx, st, newer, t1)
	commit(t, st, b, err)
	var ce *store.ConflictError
	if _, err := st.Commit(ctx, raced); !errors.As(err, &ce) {
		t.Fatalf("a concurrent import of the same token: got %v, want a conflict", err)
	}
	var exists *TokenExistsError
	if _, err := ImportToken(ctx, st, newer, t1); !errors.As(err, &exists) || exists.Token != newer {
		t.Fatalf("importing it again: got %v, want TokenExistsError naming it", err)
	} else if err.Error() != "Sideband token "+newer+" already exists." {
		t.Fatalf("got message %q", err)
	}
	b, err = ImportToken(ctx, st, older, t2)
	commit(t, st, b, err)

	list, err := ListTokens(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	want := []TokenInfo{{older, t2.UTC()}, {newer, t1.UTC()}}
	if len(list) != len(want) {
		t.Fatalf("got %+v, want %+v", list, want)
	}
	for i := range want {
		if list[i].Token != want[i].Token || !list[i].CreatedAt.Equal(want[i].CreatedAt) {
			t.Fatalf("got %+v, want %+v (oldest first)", list, want)
		}
	}

	b, err = DeleteToken(ctx, st, older)
	commit(t, st, b, err)
	var absent *TokenAbsentError
	if _, err := DeleteToken(ctx, st, older); !errors.As(err, &absent) || absent.Token != older {
		t.Fatalf("deleting it again: got %v, want TokenAbsentError naming it", err)
	} else if err.Error() != "Sideband token "+older+" does not exist." {
		t.Fatalf("got message %q", err)
	}
	if list, _ := ListTokens(ctx, st); len(list) != 1 || list[0].Token != newer {
		t.Fatalf("after the delete: got %+v", list)
	}
}

func TestSecrets(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	now := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)

	if _, err := CreateSecret(ctx, st, "", "long enough", now); !errors.Is(err, ErrInvalidName) {
		t.Fatalf("no name: got %v, want ErrInvalidName", err)
	}
	if _, err := CreateSecret(ctx, st, "gw", "7 chars", now); !errors.Is(err, ErrSecretTooShort) {
		t.Fatalf("7 characters: got %v, want ErrSecretTooShort", err)
	}
	const value = "8 chars!"
	b, err := CreateSecret(ctx, st, "gw", value, now)
	commit(t, st, b, err)

	// Stored as an argon2id hash of the value, inactive, never the value.
	raw, err := st.Get(ctx, secretPrefix+"gw")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(value)) {
		t.Fatalf("the stored record holds the secret: %s", raw)
	}
	var rec secretRecord
	if err := json.Unmarshal(raw, &rec); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(rec.Hash, "$argon2id$") || rec.Active || !rec.CreatedAt.Equal(now) {
		t.Fatalf("stored %s, want an inactive argon2id record created at %v", raw, now)
	}
	if ok, err := accounts.CheckPassword(rec.Hash, value); !ok || err != nil {
		t.Fatalf("the stored hash does not verify the secret: %v %v", ok, err)
	}

	var exists *SecretExistsError
	if _, err := CreateSecret(ctx, st, "gw", "another one", now); !errors.As(err, &exists) || exists.Name != "gw" {
		t.Fatalf("creating it again: got %v, want SecretExistsError", err)
	}
	var absent *SecretAbsentError
	if _, err := SetActive(ctx, st, "nope", true); !errors.As(err, &absent) || absent.Name != "nope" {
		t.Fatalf("activating an absent secret: got %v, want SecretAbsentError", err)
	}
	if _, err := DeleteSecret(ctx, st, "nope"); !errors.As(err, &absent) {
		t.Fatalf("deleting an absent secret: got %v, want SecretAbsentError", err)
	}

	b, err = SetActive(ctx, st, "gw", true)
	// Built before the activation is committed: a read-modify-write that
	// must not apply over it.
	raced, _ := SetActive(ctx, st, "gw", false)
	commit(t, st, b, err)
	var ce *store.ConflictError
	if _, err := st.Commit(ctx, raced); !errors.As(err, &ce) {
		t.Fatalf("a stale change: got %v, want a conflict", err)
	}
	b, err = CreateSecret(ctx, st, "a-next", "the next one", now.Add(time.Hour))
	commit(t, st, b, err)

	list, err := ListSecrets(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Name != "a-next" || list[0].Active || list[1].Name != "gw" || !list[1].Active {
		t.Fatalf("got %+v, want a-next (inactive) then gw (active)", list)
	}

	var inUse *SecretInUseError
	if _, err := DeleteSecret(ctx, st, "gw"); !errors.As(err, &inUse) || inUse.Name != "gw" {
		t.Fatalf("deleting an active secret: got %v, want SecretInUseError", err)
	}
	b, err = SetActive(ctx, st, "gw", false)
	commit(t, st, b, err)
	b, err = DeleteSecret(ctx, st, "gw")
	commit(t, st, b, err)
	if list, _ := ListSecrets(ctx, st); len(list) != 1 || list[0].Name != "a-next" {
		t.Fatalf("after the delete: got %+v", list)
	}
}

func TestHeaderFollowsStore(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	a, _ := openAuth(t, st)
	if h, err := GetHeader(ctx, st); h != DefaultHeader || err != nil || a.Header() != DefaultHeader {
		t.Fatalf("got %q %v, live %q; want %s", h, err, a.Header(), DefaultHeader)
	}
	b, err := SetHeader("x-shared-secret")
	commit(t, st, b, err)
	if h, _ := GetHeader(ctx, st); h != "X-Shared-Secret" || a.Header() != "X-Shared-Secret" {
		t.Fatalf("got %q, live %q; want X-Shared-Secret", h, a.Header())
	}
	// A second Auth (another node, a restart) reads it at start.
	if b, _ := openAuth(t, st); b.Header() != "X-Shared-Secret" {
		t.Fatalf("loaded at open: got %q", b.Header())
	}
	b, err = SetHeader("")
	commit(t, st, b, err)
	if h, _ := GetHeader(ctx, st); h != DefaultHeader || a.Header() != DefaultHeader {
		t.Fatalf("after a reset: got %q, live %q; want %s", h, a.Header(), DefaultHeader)
	}
}

// TestCheck: a call passes with a valid token or an active secret, loaded
// at open and followed live.
func TestCheck(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	now := time.Now()
	token, other := NewToken(), NewToken()
	b, err := ImportToken(ctx, st, token, now)
	commit(t, st, b, err)
	const active, inactive = "active secret 1", "inactive secret"
	b, err = CreateSecret(ctx, st, "one", active, now)
	commit(t, st, b, err)
	b, err = SetActive(ctx, st, "one", true)
	commit(t, st, b, err)
	b, err = CreateSecret(ctx, st, "off", inactive, now)
	commit(t, st, b, err)

	a, _ := openAuth(t, st)
	unlimited(a)
	check := func(tok, secret string) bool { return a.Check(ctx, []byte(tok), []byte(secret)) }
	tests := []struct {
		name, token, secret string
		want                bool
	}{
		{"nothing", "", "", false},
		{"token", token, "", true},
		{"token, wrong secret", token, "wrong secret", true},
		{"unknown token", other, "", false},
		{"token with a byte changed", token[:31] + string(token[31]^1), "", false},
		{"token as the secret", "", token, false},
		{"active secret", "", active, true},
		{"unknown token, active secret", other, active, true},
		{"active secret with a byte changed", "", active[:len(active)-1] + "2", false},
		{"active secret as the token", active, "", false},
		{"inactive secret", "", inactive, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := check(tt.token, tt.secret); got != tt.want {
				t.Fatalf("Check(%q, %q) = %v, want %v", tt.token, tt.secret, got, tt.want)
			}
		})
	}

	// Followed live: rotation, deactivation, deletion.
	b, err = SetActive(ctx, st, "off", true)
	commit(t, st, b, err)
	if !check("", inactive) || !check("", active) {
		t.Fatal("with two secrets active, both must pass")
	}
	b, err = SetActive(ctx, st, "one", false)
	commit(t, st, b, err)
	if check("", active) {
		t.Fatal("a deactivated secret passed (it had been verified before)")
	}
	b, err = SetActive(ctx, st, "one", true)
	commit(t, st, b, err)
	if !check("", active) {
		t.Fatal("a reactivated secret was refused")
	}
	b, err = DeleteToken(ctx, st, token)
	commit(t, st, b, err)
	if check(token, "") {
		t.Fatal("a deleted token passed")
	}
	b, err = ImportToken(ctx, st, other, now)
	commit(t, st, b, err)
	if !check(other, "") {
		t.Fatal("a token imported after open was refused")
	}

	// Once closed, the Auth follows the store no more.
	a.Close()
	b, err = DeleteToken(ctx, st, other)
	commit(t, st, b, err)
	if !check(other, "") {
		t.Fatal("a closed Auth still follows the store")
	}
}

// TestDigestsOnly: what the Auth keeps in memory are SHA-256 digests of
// tokens and of verified secrets, never their values.
func TestDigestsOnly(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	token := NewToken()
	b, err := ImportToken(ctx, st, token, time.Now())
	commit(t, st, b, err)
	const secret = "gateway secret"
	b, err = CreateSecret(ctx, st, "gw", secret, time.Now())
	commit(t, st, b, err)
	b, err = SetActive(ctx, st, "gw", true)
	commit(t, st, b, err)
	a, _ := openAuth(t, st)
	unlimited(a)
	if !a.Check(ctx, nil, []byte(secret)) {
		t.Fatal("the active secret was refused")
	}
	a.mu.RLock()
	defer a.mu.RUnlock()
	if len(a.tokens) != 1 || !a.tokens[sha256.Sum256([]byte(token))] {
		t.Fatalf("tokens kept as %v, want the one token's digest", a.tokens)
	}
	if len(a.verified) != 1 || a.verified[sha256.Sum256([]byte(secret))] != "gw" {
		t.Fatalf("verified secrets kept as %v, want the secret's digest", a.verified)
	}
	if strings.Contains(a.secrets["gw"].Hash, secret) {
		t.Fatal("the secret's value is in memory")
	}
}

// TestSlowChecksLimited: a secret not verified before costs a slow check
// only while the limiter allows one; past it, every such secret is
// refused unchecked (a correct one too: it fails closed), while tokens and
// verified secrets still pass. The limiter is replaced by one that never
// refills, so what it allows does not depend on the time the test takes.
func TestSlowChecksLimited(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	token := NewToken()
	b, err := ImportToken(ctx, st, token, time.Now())
	commit(t, st, b, err)
	const first, second = "first secret", "second secret"
	for name, value := range map[string]string{"first": first, "second": second} {
		b, err := CreateSecret(ctx, st, name, value, time.Now())
		commit(t, st, b, err)
		b, err = SetActive(ctx, st, name, true)
		commit(t, st, b, err)
	}
	a, _ := openAuth(t, st)

	// The README's figure: 20 slow checks a second, 20 at once.
	if a.slow.Limit() != 20 || a.slow.Burst() != 20 {
		t.Fatalf("slow checks limited to %v a second, burst %d; want 20 and 20", a.slow.Limit(), a.slow.Burst())
	}

	a.slow = rate.NewLimiter(0, 2)
	if !a.Check(ctx, nil, []byte(first)) {
		t.Fatal("the first secret was refused with checks to spare")
	}
	if a.Check(ctx, nil, []byte("wrong secret")) {
		t.Fatal("a wrong secret passed")
	}
	// Both allowed checks are spent.
	if a.Check(ctx, nil, []byte(second)) {
		t.Fatal("a secret not verified before passed past the limit: it was checked")
	}
	if a.Check(ctx, nil, []byte("another wrong one")) {
		t.Fatal("a wrong secret passed")
	}
	for range 3 {
		if !a.Check(ctx, nil, []byte(first)) {
			t.Fatal("a verified secret was refused past the limit")
		}
		if !a.Check(ctx, []byte(token), nil) {
			t.Fatal("a token was refused past the limit")
		}
	}
	// Counted: two checked, two refused; tokens and verified secrets are
	// neither.
	if checked, refused := a.SlowChecks(); checked != 2 || refused != 2 {
		t.Fatalf("got %d checked, %d refused; want 2 and 2", checked, refused)
	}

	// Any change to a secret forgets what was verified against it: it
	// costs a check again (and, none being left, is refused).
	b, err = SetActive(ctx, st, "first", false)
	commit(t, st, b, err)
	b, err = SetActive(ctx, st, "first", true)
	commit(t, st, b, err)
	if a.Check(ctx, nil, []byte(first)) {
		t.Fatal("a secret changed since its verification passed without a check")
	}
	a.slow = rate.NewLimiter(0, 1)
	if !a.Check(ctx, nil, []byte(first)) {
		t.Fatal("the changed secret was refused with a check to spare")
	}
	if checked, refused := a.SlowChecks(); checked != 3 || refused != 3 {
		t.Fatalf("got %d checked, %d refused; want 3 and 3", checked, refused)
	}
}

// TestSlowCheckGivesUp: a slow check waiting for the hashing slot gives up
// when its caller does.
func TestSlowCheckGivesUp(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	const secret = "gateway secret"
	b, err := CreateSecret(ctx, st, "gw", secret, time.Now())
	commit(t, st, b, err)
	b, err = SetActive(ctx, st, "gw", true)
	commit(t, st, b, err)
	a, _ := openAuth(t, st)
	unlimited(a)

	a.hashing <- struct{}{} // another check holds the slot
	gone, cancel := context.WithCancel(ctx)
	cancel()
	if a.Check(gone, nil, []byte(secret)) {
		t.Fatal("a check whose caller gave up passed")
	}
	<-a.hashing
	if !a.Check(ctx, nil, []byte(secret)) {
		t.Fatal("the secret was refused once the slot was free")
	}
}

// TestMalformedSecretIgnored: a record that does not decode is logged and
// ignored, and a good one for the same name replaces it.
func TestMalformedSecretIgnored(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	commit(t, st, store.Batch{Ops: []store.Op{store.Put(secretPrefix+"bad", []byte("not json"))}}, nil)
	a, logs := openAuth(t, st)
	unlimited(a)
	if !strings.Contains(logs.String(), "ignoring a malformed shared secret in the store") || !strings.Contains(logs.String(), "name=bad") {
		t.Fatalf("got log %q, want the malformed record named", logs.String())
	}
	if a.Check(ctx, nil, []byte("not json")) {
		t.Fatal("a malformed record let a secret pass")
	}
	hash, err := accounts.HashPassword("now a good one")
	if err != nil {
		t.Fatal(err)
	}
	rec, _ := json.Marshal(secretRecord{Hash: hash, Active: true, CreatedAt: time.Now()})
	commit(t, st, store.Batch{Ops: []store.Op{store.Put(secretPrefix+"bad", rec)}}, nil)
	if !a.Check(ctx, nil, []byte("now a good one")) {
		t.Fatal("the record that replaced the malformed one is not followed")
	}
}
