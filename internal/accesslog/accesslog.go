// Package accesslog writes one JSON line per data-path request: when,
// which API, which client, what was asked, what ASE decided and why, where
// it went and how long it took. Lines are encoded without reflection and
// written by a background goroutine, so logging never blocks a request; if
// the writer falls behind, lines are dropped and counted rather than
// slowing traffic.
package accesslog

import (
	"io"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Record is one request.
type Record struct {
	Time          time.Time
	Protocol      string // inline, ase, authorize, forward_auth
	APIID         string
	ClientIP      netip.Addr
	Host          string // the host the request was decided on; "" = none
	Query         string // the raw query string, as sent (at most MaxQuery bytes logged)
	UserAgent     string // the first User-Agent field (at most MaxUserAgent bytes logged)
	BytesIn       int64  // request body bytes received
	BytesOut      int64  // response body bytes sent to the client
	RequestID     string // the id ASE gave the request and passed to the backend (X-Request-ID); "" = none
	Username      string // the request's username (username_header, a JWT, sideband user_info); "" = none
	ClientID      string // the client id claim of the request's JWT; "" = none
	Method        string
	Path          string
	Status        int
	Decision      string // allow, block, reject, redirect, decoy, limit
	Reason        string
	Monitor       bool // the API is monitor-only: Reason would have blocked
	Backend       string
	Latency       time.Duration
	CorrelationID string
	Call          string // sideband: request or response
}

// Log is an access log. A nil *Log logs nothing.
type Log struct {
	loc *time.Location
	w   io.Writer

	// Requests append their lines to cur under mu; the writer swaps it
	// for an empty buffer flushEvery after the first line of a batch and
	// writes the full one. A request never waits for I/O; only the first
	// line after an empty buffer wakes the writer, whose timer is armed
	// only while lines wait: an idle log wakes nothing.
	mu      sync.Mutex
	stamp   stamp // the formatted time of the current second, under mu
	cur     []byte
	spare   []byte
	dropped atomic.Int64
	pending chan struct{} // a line came into an empty buffer
	stop    chan struct{}
	done    chan struct{}
}

const (
	flushEvery = 50 * time.Millisecond
	// maxPending bounds the memory of lines not yet written; past it, new
	// lines are dropped (and counted) until the writer catches up.
	maxPending = 8 << 20
)

// New starts a log writing to w, with times in loc.
func New(w io.Writer, loc *time.Location) *Log {
	l := &Log{loc: loc, w: w, cur: make([]byte, 0, 256<<10), spare: make([]byte, 0, 256<<10),
		pending: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go l.run()
	return l
}

// Dropped returns how many lines were dropped because the writer fell
// behind.
func (l *Log) Dropped() int64 {
	if l == nil {
		return 0
	}
	return l.dropped.Load()
}

// Write appends r's line.
func (l *Log) Write(r *Record) {
	if l == nil {
		return
	}
	l.mu.Lock()
	if len(l.cur) > maxPending {
		l.mu.Unlock()
		l.dropped.Add(1)
		return
	}
	first := len(l.cur) == 0
	l.cur = r.append(l.cur, &l.stamp, l.loc)
	l.mu.Unlock()
	if first {
		select {
		case l.pending <- struct{}{}:
		default:
		}
	}
}

func (l *Log) run() {
	defer close(l.done)
	timer := time.NewTimer(flushEvery)
	timer.Stop()
	for {
		select {
		case <-l.pending:
		case <-l.stop:
			l.flush()
			return
		}
		// Lines wait: they are written flushEvery from now, with those
		// that join them meanwhile, and so on while lines keep coming.
		for more := true; more; {
			timer.Reset(flushEvery)
			select {
			case <-timer.C:
			case <-l.stop:
				timer.Stop()
				l.flush()
				return
			}
			more = l.flush()
		}
	}
}

// flush writes the lines pending and reports whether there were any.
func (l *Log) flush() bool {
	l.mu.Lock()
	full := l.cur
	l.cur = l.spare[:0]
	l.mu.Unlock()
	if len(full) > 0 {
		l.w.Write(full)
	}
	l.spare = full[:0]
	return len(full) > 0
}

// Close writes what is pending and stops.
func (l *Log) Close() {
	if l == nil {
		return
	}
	close(l.stop)
	<-l.done
}

// stamp caches the formatting of one second: most lines of a busy second
// only need their milliseconds appended.
type stamp struct {
	sec    int64
	prefix []byte // "2006-01-02T15:04:05."
	zone   []byte // "Z" or "+01:00"
}

func (s *stamp) append(b []byte, t time.Time, loc *time.Location) []byte {
	t = t.In(loc)
	if sec := t.Unix(); sec != s.sec || s.prefix == nil {
		s.sec = sec
		s.prefix = t.AppendFormat(s.prefix[:0], "2006-01-02T15:04:05.")
		s.zone = t.AppendFormat(s.zone[:0], "Z07:00")
	}
	b = append(b, s.prefix...)
	ms := t.Nanosecond() / 1e6
	b = append(b, byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10))
	return append(b, s.zone...)
}

func (r *Record) append(b []byte, st *stamp, loc *time.Location) []byte {
	b = append(b, `{"time":"`...)
	b = st.append(b, r.Time, loc)
	b = append(b, `","protocol":`...)
	b = appendString(b, r.Protocol)
	if r.Call != "" {
		b = append(b, `,"call":`...)
		b = appendString(b, r.Call)
	}
	b = append(b, `,"api_id":`...)
	b = appendString(b, r.APIID)
	b = append(b, `,"client_ip":"`...)
	if r.ClientIP.IsValid() {
		b = r.ClientIP.AppendTo(b)
	}
	b = append(b, '"')
	if r.Username != "" {
		b = append(b, `,"username":`...)
		b = appendString(b, r.Username)
	}
	if r.ClientID != "" {
		b = append(b, `,"client_id":`...)
		b = appendString(b, r.ClientID)
	}
	b = append(b, `,"method":`...)
	b = appendString(b, r.Method)
	b = append(b, `,"path":`...)
	b = appendString(b, r.Path)
	if r.Query != "" {
		b = append(b, `,"query":`...)
		b = appendString(b, clip(r.Query, MaxQuery))
	}
	if r.Host != "" {
		b = append(b, `,"host":`...)
		b = appendString(b, r.Host)
	}
	if r.UserAgent != "" {
		b = append(b, `,"user_agent":`...)
		b = appendString(b, clip(r.UserAgent, MaxUserAgent))
	}
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(r.Status), 10)
	b = append(b, `,"decision":`...)
	b = appendString(b, r.Decision)
	b = append(b, `,"reason":`...)
	b = appendString(b, r.Reason)
	if r.Monitor {
		b = append(b, `,"monitor":true`...)
	}
	b = append(b, `,"backend":`...)
	b = appendString(b, r.Backend)
	b = append(b, `,"latency_us":`...)
	b = strconv.AppendInt(b, r.Latency.Microseconds(), 10)
	if r.Protocol == "inline" {
		b = append(b, `,"bytes_in":`...)
		b = strconv.AppendInt(b, r.BytesIn, 10)
		b = append(b, `,"bytes_out":`...)
		b = strconv.AppendInt(b, r.BytesOut, 10)
	}
	if r.RequestID != "" {
		b = append(b, `,"request_id":`...)
		b = appendString(b, r.RequestID)
	}
	if r.CorrelationID != "" {
		b = append(b, `,"correlation_id":`...)
		b = appendString(b, r.CorrelationID)
	}
	return append(b, "}\n"...)
}

// What a client can make long is logged up to a bound: a line stays
// bounded whatever the request (its head is bounded anyway).
const (
	MaxQuery     = 2048
	MaxUserAgent = 512
)

// clip cuts s to n bytes, marking the cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

const hex = "0123456789abcdef"

// appendString appends s as a JSON string, escaping what JSON requires and
// replacing invalid UTF-8, so a hostile path cannot break the line.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	// Runs of bytes that need no escaping (nearly every byte of a path or
	// a user agent) are copied whole, not a byte at a time.
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if plain[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			if c == '"' || c == '\\' {
				b = append(b, '\\', c)
			} else {
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// plain holds the ASCII bytes a JSON string carries as they are: not a
// control character, DEL, a quote or a backslash.
var plain = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()
