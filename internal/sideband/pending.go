package sideband

import (
	"bytes"
	"hash/maphash"
	"strconv"
	"sync"
	"time"

	"github.com/ase-project/ase/internal/behave"
	"github.com/ase-project/ase/internal/engine"
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

// put keeps t for the response call of correlation id.
func (p *pendingTable) put(id []byte, t *behave.Ticket, now int64) {
	if len(id) == 0 || !t.Observed() {
		return
	}
	p.init()
	h := p.hash(id)
	i := h % pendingSlots
	mu := &p.locks[i%pendingLocks]
	mu.Lock()
	p.slots[i] = pendingSlot{hash: h, at: now, t: *t}
	mu.Unlock()
}

// take returns the ticket kept for correlation id, once.
func (p *pendingTable) take(id []byte, now int64, out *behave.Ticket) bool {
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
	*s = pendingSlot{}
	return true
}

// answered counts the answer a response call describes: its code and its
// body's length (n).
func answered(eng *engine.Engine, p *pendingTable, corr []byte, code int, n int64) {
	var t behave.Ticket
	if !p.take(corr, time.Now().UnixNano(), &t) {
		return
	}
	eng.AnsweredTicket(&t, code, n)
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
