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
	loc     *time.Location
	lines   chan []byte
	pool    sync.Pool
	dropped atomic.Int64
	w       io.Writer
	done    chan struct{}
}

// New starts a log writing to w, with times in loc.
func New(w io.Writer, loc *time.Location) *Log {
	l := &Log{loc: loc, lines: make(chan []byte, 8192), w: w, done: make(chan struct{})}
	l.pool.New = func() any { b := make([]byte, 0, 512); return &b }
	go l.run()
	return l
}

// Dropped returns how many lines were dropped because the writer fell
// behind.
func (l *Log) Dropped() int64 { return l.dropped.Load() }

// Write queues r.
func (l *Log) Write(r *Record) {
	if l == nil {
		return
	}
	bp := l.pool.Get().(*[]byte)
	b := r.append((*bp)[:0], l.loc)
	*bp = b
	select {
	case l.lines <- b:
	default:
		l.dropped.Add(1)
		l.pool.Put(bp)
	}
}

func (l *Log) run() {
	defer close(l.done)
	buf := make([]byte, 0, 64<<10)
	for line := range l.lines {
		buf = append(buf, line...)
		l.release(line)
		// Batch whatever else is queued into one write.
		for more := true; more && len(buf) < 60<<10; {
			select {
			case next, ok := <-l.lines:
				if !ok {
					more = false
					break
				}
				buf = append(buf, next...)
				l.release(next)
			default:
				more = false
			}
		}
		l.w.Write(buf)
		buf = buf[:0]
	}
}

func (l *Log) release(b []byte) {
	if cap(b) <= 4096 {
		b = b[:0]
		l.pool.Put(&b)
	}
}

// Close writes what is queued and stops.
func (l *Log) Close() {
	if l == nil {
		return
	}
	close(l.lines)
	<-l.done
}

func (r *Record) append(b []byte, loc *time.Location) []byte {
	b = append(b, `{"time":"`...)
	b = r.Time.In(loc).AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
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
	b = append(b, `","method":`...)
	b = appendString(b, r.Method)
	b = append(b, `,"path":`...)
	b = appendString(b, r.Path)
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
	if r.CorrelationID != "" {
		b = append(b, `,"correlation_id":`...)
		b = appendString(b, r.CorrelationID)
	}
	return append(b, "}\n"...)
}

const hex = "0123456789abcdef"

// appendString appends s as a JSON string, escaping what JSON requires and
// replacing invalid UTF-8, so a hostile path cannot break the line.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20 || c == 0x7f:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
