package accounts

import (
	"crypto/rand"
	"encoding/hex"
	"sync"
	"time"
)

// Session is a logged-in operator.
type Session struct {
	ID       string
	User     string
	Method   string // "password" or "x509"
	Created  time.Time
	LastSeen time.Time
}

// Sessions are the management API's login sessions: kept in memory on
// this node (a restart logs everyone out), ended after Timeout without a
// request or on logout.
type Sessions struct {
	Timeout time.Duration
	Now     func() time.Time

	mu sync.Mutex
	m  map[string]*Session
}

// NewSessions returns a session table with the given idle timeout.
func NewSessions(timeout time.Duration, now func() time.Time) *Sessions {
	if now == nil {
		now = time.Now
	}
	return &Sessions{Timeout: timeout, Now: now, m: map[string]*Session{}}
}

// Create starts a session for user: its ID is 256 random bits, hex.
func (s *Sessions) Create(user, method string) *Session {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	now := s.Now()
	sess := &Session{ID: hex.EncodeToString(b[:]), User: user, Method: method, Created: now, LastSeen: now}
	s.mu.Lock()
	s.m[sess.ID] = sess
	s.mu.Unlock()
	return sess
}

// Touch returns the live session with id and records the request: the
// idle timeout counts from the last request. An expired session is ended.
func (s *Sessions) Touch(id string) (Session, bool) {
	now := s.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	sess := s.m[id]
	if sess == nil {
		return Session{}, false
	}
	if now.Sub(sess.LastSeen) >= s.Timeout {
		delete(s.m, id)
		return Session{}, false
	}
	sess.LastSeen = now
	return *sess, true
}

// Delete ends a session.
func (s *Sessions) Delete(id string) {
	s.mu.Lock()
	delete(s.m, id)
	s.mu.Unlock()
}

// EndUser ends every session of a user (deleted, or their password changed).
func (s *Sessions) EndUser(user string) {
	s.mu.Lock()
	for id, sess := range s.m {
		if sess.User == user {
			delete(s.m, id)
		}
	}
	s.mu.Unlock()
}

// Sweep ends expired sessions and returns how many.
func (s *Sessions) Sweep() int {
	now := s.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for id, sess := range s.m {
		if now.Sub(sess.LastSeen) >= s.Timeout {
			delete(s.m, id)
			n++
		}
	}
	return n
}

// Remaining returns how long session id has left, or 0.
func (s *Sessions) Remaining(id string) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sess := s.m[id]; sess != nil {
		return max(s.Timeout-s.Now().Sub(sess.LastSeen), 0)
	}
	return 0
}
