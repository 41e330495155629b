package sideband

import (
	"bytes"
	"hash/maphash"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/ase-project/ase/internal/behave"
	"github.com/ase-project/ase/internal/engine"
	"github.com/ase-project/ase/internal/lists"
	"github.com/ase-project/ase/internal/prefetch"
)

// Behavioural detection counts a request's answer (its status and bytes)
// when the gateway's response call comes, paired with the request call by
// X-CorrelationID. The request's ticket waits in a fixed table: a slot per
// correlation id's hash, overwritten by a newer request that lands on it,
// and worth nothing after pendingTTL. Memory is fixed whatever the calls
// (pendingSlots tickets); a response call that finds nothing (no
// correlation id, a lost slot, a response call never made) counts no
// answer, and the request was counted already.
const (
	pendingSlots = 1 << 14
	pendingTTL   = int64(2 * time.Minute)
)

type pendingSlot struct {
	// mu is the slot's own lock, in the line put and take touch first
	// anyway (a few shared locks would bounce between the cores).
	mu   sync.Mutex
	hash uint64 // 0: empty
	at   int64
	t    behave.Ticket
	// vals is a copy of the request's identities (the response call
	// carries none), so that a detection its answer makes on a credential
	// lists the credential at once.
	vals behave.Packed
}

type pendingTable struct {
	once  sync.Once
	ready atomic.Bool // set once seed and slots are
	seed  maphash.Seed
	slots []pendingSlot
}

func (p *pendingTable) init() {
	p.once.Do(func() {
		p.seed = maphash.MakeSeed()
		p.slots = make([]pendingSlot, pendingSlots)
		p.ready.Store(true)
	})
}

// prefetch starts loading the slot of correlation id (the ticket's lines
// and the first of its values) while the call is parsed, before put or
// take reads it: the table is far bigger than the caches. It does nothing
// before the table is made (detection has counted no request yet).
func (p *pendingTable) prefetch(id []byte) {
	if len(id) == 0 || !p.ready.Load() {
		return
	}
	s := &p.slots[p.hash(id)%pendingSlots]
	prefetch.Lines(unsafe.Pointer(s), pendingLines)
}

// pendingLines is the lines of a slot put and take touch: its lock, hash,
// time and ticket, and the start of its values.
var pendingLines = uint32(1)<<((unsafe.Offsetof(pendingSlot{}.vals)+64)/64+1) - 1

func (p *pendingTable) hash(id []byte) uint64 { return maphash.Bytes(p.seed, id) | 1 }

// put keeps t, and the values of ident, for the response call of
// correlation id.
func (p *pendingTable) put(id []byte, t *behave.Ticket, ident *lists.Identity, now int64) {
	if len(id) == 0 || !t.Observed() {
		return
	}
	p.init()
	h := p.hash(id)
	s := &p.slots[h%pendingSlots]
	s.mu.Lock()
	s.hash, s.at, s.t = h, now, *t
	s.vals.Pack(ident)
	s.mu.Unlock()
}

// take returns the ticket (and values) kept for correlation id, once.
func (p *pendingTable) take(id []byte, now int64, out *behave.Ticket, vals *behave.Packed) bool {
	if len(id) == 0 {
		return false
	}
	p.init()
	h := p.hash(id)
	s := &p.slots[h%pendingSlots]
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hash != h || now-s.at > pendingTTL {
		return false
	}
	*out = s.t
	vals.CopyFrom(&s.vals)
	s.hash = 0
	return true
}

// answered counts the answer a response call describes: its code and its
// body's length (n).
func answered(eng *engine.Engine, p *pendingTable, corr []byte, code int, n int64) {
	var t behave.Ticket
	var vals behave.Packed
	if !p.take(corr, time.Now().UnixNano(), &t, &vals) {
		return
	}
	eng.AnsweredTicket(&t, code, n, &vals)
}

// contentLength is the Content-Length among headers, 0 without one.
func contentLength(headers []header) int64 {
	for _, h := range headers {
		if bytes.EqualFold(h.Name, []byte("content-length")) {
			if v, err := strconv.ParseInt(string(bytes.TrimSpace(h.Value)), 10, 64); err == nil && v > 0 {
				return v
			}
			return 0
		}
	}
	return 0
}
