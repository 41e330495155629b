package sideband

import (
	"bytes"
	"hash/maphash"
	"strconv"
	"sync"
	"time"

	"github.com/ase-project/ase/internal/behave"
	"github.com/ase-project/ase/internal/engine"
	"github.com/ase-project/ase/internal/lists"
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
	pendingLocks = 64
	pendingTTL   = int64(2 * time.Minute)
)

type pendingSlot struct {
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
	seed  maphash.Seed
	locks [pendingLocks]sync.Mutex
	slots []pendingSlot
}

func (p *pendingTable) init() {
	p.once.Do(func() {
		p.seed = maphash.MakeSeed()
		p.slots = make([]pendingSlot, pendingSlots)
	})
}

func (p *pendingTable) hash(id []byte) uint64 { return maphash.Bytes(p.seed, id) | 1 }

// put keeps t, and the values of ident, for the response call of
// correlation id.
func (p *pendingTable) put(id []byte, t *behave.Ticket, ident *lists.Identity, now int64) {
	if len(id) == 0 || !t.Observed() {
		return
	}
	p.init()
	h := p.hash(id)
	i := h % pendingSlots
	mu := &p.locks[i%pendingLocks]
	mu.Lock()
	s := &p.slots[i]
	s.hash, s.at, s.t = h, now, *t
	s.vals.Pack(ident)
	mu.Unlock()
}

// take returns the ticket (and values) kept for correlation id, once.
func (p *pendingTable) take(id []byte, now int64, out *behave.Ticket, vals *behave.Packed) bool {
	if len(id) == 0 {
		return false
	}
	p.init()
	h := p.hash(id)
	i := h % pendingSlots
	mu := &p.locks[i%pendingLocks]
	mu.Lock()
	defer mu.Unlock()
	s := &p.slots[i]
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
