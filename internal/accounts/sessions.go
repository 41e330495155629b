package accounts

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"time"

	"github.com/ase-project/ase/internal/store"
)

// SessionPrefix is the store prefix of sessions: session/<handle>, where
// the handle is the SHA-256 of the session ID in hex. The ID itself (the
// secret in the cookie) is never stored, logged or kept: whoever reads the
// store learns no session.
const SessionPrefix = "session/"

// Session is a logged-in operator.
type Session struct {
	// ID is the secret the client holds: set only in Create's result.
	ID string `json:"-"`
	// Handle names the session everywhere else (store, transactions).
	Handle   string    `json:"-"`
	User     string    `json:"user"`
	Method   string    `json:"method"` // "password" or "x509"
	Created  time.Time `json:"created"`
	LastSeen time.Time `json:"last_seen"` // the last use recorded
	// Cred is a digest of the user's password hash at login: a new
	// password (or the user deleted and made again) ends the session on
	// every node, at the moment the change is committed (see Of).
	Cred string `json:"cred"`
}

// credDigest binds a session to the user's password hash: 64 bits of
// SHA-256, which tell nothing of the hash.
func credDigest(hash string) string {
	d := sha256.Sum256([]byte("session\x00" + hash))
	return hex.EncodeToString(d[:8])
}

// Of reports whether the session is u's, with u's password as it was at
// login.
func (s *Session) Of(u *User) bool {
	return u != nil && u.Name == s.User && s.Cred == credDigest(u.Hash)
}

// SessionHandle returns the handle of session ID id.
func SessionHandle(id string) string {
	d := sha256.Sum256([]byte(id))
	return hex.EncodeToString(d[:])
}

// Sessions are the management API's login sessions, kept in the store so
// that every node of a cluster knows them: a login on one node is good on
// all, a logout on one ends it on all. A session ends after Timeout
// without a request, on logout, and when its user's password changes or
// the user is deleted.
//
// The last use is written to the store only when more than a tenth of
// Timeout has passed since the one recorded, so a busy session costs a
// write every Timeout/10 at most, not one per request. A session so ends
// between 0.9×Timeout and Timeout after its last request (never later),
// give or take the skew between the nodes' clocks.
type Sessions struct {
	Timeout time.Duration
	Now     func() time.Time
	st      store.Store
	log     *slog.Logger
	created chan struct{} // a session was created (see Run)
}

// NewSessions returns the sessions kept in st, with the given idle timeout.
func NewSessions(st store.Store, timeout time.Duration, now func() time.Time, log *slog.Logger) *Sessions {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Sessions{Timeout: timeout, Now: now, st: st, log: log, created: make(chan struct{}, 1)}
}

func sessionKey(handle string) string { return SessionPrefix + handle }

// Create starts a session for user u: its ID is 256 random bits, hex.
func (s *Sessions) Create(ctx context.Context, u *User, method string) (*Session, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	now := s.Now().UTC()
	sess := &Session{ID: hex.EncodeToString(b[:]), User: u.Name, Method: method, Created: now, LastSeen: now, Cred: credDigest(u.Hash)}
	sess.Handle = SessionHandle(sess.ID)
	rec, _ := json.Marshal(sess)
	key := sessionKey(sess.Handle)
	if _, err := s.st.Commit(ctx, store.Batch{Conds: []store.Cond{store.Absent(key)}, Ops: []store.Op{store.Put(key, rec)}}); err != nil {
		return nil, err
	}
	select {
	case s.created <- struct{}{}:
	default:
	}
	return sess, nil
}

// get reads a session by handle: its record as stored, or nil.
func (s *Sessions) get(ctx context.Context, handle string) (*Session, []byte, error) {
	raw, err := s.st.Get(ctx, sessionKey(handle))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	var sess Session
	if err := json.Unmarshal(raw, &sess); err != nil {
		s.log.Error("ignoring a malformed session in the store", "error", err)
		return nil, nil, nil
	}
	sess.Handle = handle
	return &sess, raw, nil
}

// Touch returns the live session with id and records the request (at
// most every Timeout/10): the idle timeout counts from the last request.
// An expired session is ended.
func (s *Sessions) Touch(ctx context.Context, id string) (Session, bool) {
	if id == "" || len(id) > 128 {
		return Session{}, false
	}
	handle := SessionHandle(id)
	for attempt := 0; attempt < 3; attempt++ {
		sess, raw, err := s.get(ctx, handle)
		if err != nil {
			s.log.Warn("reading a session from the store failed", "error", err)
			return Session{}, false
		}
		if sess == nil {
			return Session{}, false
		}
		now := s.Now().UTC()
		idle := now.Sub(sess.LastSeen)
		if idle >= s.Timeout {
			s.end(ctx, sess.Handle, raw)
			return Session{}, false
		}
		if idle <= s.Timeout/10 {
			return *sess, true
		}
		next := *sess
		next.LastSeen = now
		rec, _ := json.Marshal(next)
		key := sessionKey(handle)
		_, err = s.st.Commit(ctx, store.Batch{Conds: []store.Cond{store.Unchanged(key, raw)}, Ops: []store.Op{store.Put(key, rec)}})
		var ce *store.ConflictError
		switch {
		case err == nil:
			return next, true
		case errors.As(err, &ce):
			continue // another request recorded it, or the session ended: read again
		default:
			// The store cannot be written (a cluster cut off from etcd):
			// the session still works, its last use is recorded later.
			s.log.Debug("recording a session's last use failed", "error", err)
			return *sess, true
		}
	}
	// Others keep recording it at the same moment: it exists.
	sess, _, err := s.get(ctx, handle)
	if err != nil || sess == nil {
		return Session{}, false
	}
	return *sess, true
}

// end deletes a session if it is still as read (raw).
func (s *Sessions) end(ctx context.Context, handle string, raw []byte) bool {
	key := sessionKey(handle)
	_, err := s.st.Commit(ctx, store.Batch{Conds: []store.Cond{store.Unchanged(key, raw)}, Ops: []store.Op{store.Delete(key)}})
	return err == nil
}

// End ends the session with handle (logout).
func (s *Sessions) End(ctx context.Context, handle string) error {
	_, err := s.st.Commit(ctx, store.Batch{Ops: []store.Op{store.Delete(sessionKey(handle))}})
	return err
}

// EndUser deletes every session of a user (deleted, or their password
// changed). Those sessions no longer work anyway (Of): this is cleanup.
func (s *Sessions) EndUser(ctx context.Context, user string) error {
	var ops []store.Op
	err := s.st.Scan(ctx, SessionPrefix, func(key string, value []byte) error {
		var sess Session
		if json.Unmarshal(value, &sess) == nil && sess.User == user {
			ops = append(ops, store.Delete(key))
		}
		return nil
	})
	if err != nil {
		return err
	}
	// Each delete stands alone: they need not apply at once.
	for _, b := range s.st.Limits().Split(ops) {
		if _, err := s.st.Commit(ctx, b); err != nil {
			return err
		}
	}
	return nil
}

// Sweep ends expired sessions and returns how many. Each is deleted only
// if it is still as read, so nodes sweeping at the same time, or a
// request recording a session's use meanwhile, do no harm.
func (s *Sessions) Sweep(ctx context.Context) (int, error) {
	n, _, err := s.sweep(ctx)
	return n, err
}

// sweep is Sweep; it also returns when the first session left expires
// (zero: none is left).
func (s *Sessions) sweep(ctx context.Context) (int, time.Time, error) {
	type item struct {
		handle string
		raw    []byte
	}
	var expired []item
	var next time.Time
	now := s.Now()
	err := s.st.Scan(ctx, SessionPrefix, func(key string, value []byte) error {
		var sess Session
		if err := json.Unmarshal(value, &sess); err != nil || now.Sub(sess.LastSeen) >= s.Timeout {
			expired = append(expired, item{key[len(SessionPrefix):], slices.Clone(value)})
		} else if at := sess.LastSeen.Add(s.Timeout); next.IsZero() || at.Before(next) {
			next = at
		}
		return nil
	})
	if err != nil {
		return 0, time.Time{}, err
	}
	n := 0
	for _, it := range expired {
		if s.end(ctx, it.handle, it.raw) {
			n++
		}
	}
	return n, next, nil
}

// Run sweeps expired sessions until ctx ends: when the first known
// session expires (or later, if it was used meanwhile), and with none
// known, not until one is created here. With shared, the store is shared
// with other nodes, whose new sessions this one learns of only by
// sweeping: it then sweeps at least every minute as well. A failed sweep
// is retried a minute later.
func (s *Sessions) Run(ctx context.Context, shared bool) {
	timer := time.NewTimer(time.Minute)
	defer timer.Stop()
	for {
		_, next, err := s.sweep(ctx)
		if ctx.Err() != nil {
			return
		}
		var due <-chan time.Time
		wait := time.Duration(0)
		switch {
		case err != nil:
			s.log.Warn("sweeping expired sessions failed", "error", err)
			wait = time.Minute
		case !next.IsZero():
			wait = max(next.Sub(s.Now()), time.Second)
		}
		if shared && (wait == 0 || wait > time.Minute) {
			wait = time.Minute
		}
		timer.Stop()
		if wait > 0 {
			timer.Reset(wait)
			due = timer.C
		}
		select {
		case <-ctx.Done():
			return
		case <-due:
		case <-s.created:
		}
	}
}
