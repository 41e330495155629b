package behave

import (
	"encoding/binary"

	"github.com/ase-project/ase/internal/lists"
)

// Values gives End the values of its ticket's identities, which the
// ticket does not hold (it holds no pointer: see Ticket), so that a
// detection an answer makes on a credential lists the credential at once,
// on every node, instead of at its next request on this node.
type Values interface {
	// Identity returns the i-th identity Begin counted, in eachIdentity's
	// order: its kind, name and value; ok is false when it is not known.
	Identity(i int) (kind lists.Kind, name, value string, ok bool)
}

// IdentityValues returns the values of id, the identity Begin was given,
// still valid when End is called.
func IdentityValues(id *lists.Identity) Values { return idValues{id} }

type idValues struct{ id *lists.Identity }

func (v idValues) Identity(i int) (kind lists.Kind, name, value string, ok bool) {
	if v.id == nil {
		return 0, "", "", false
	}
	j := 0
	eachIdentity(v.id, func(k lists.Kind, n, val string) bool {
		if j == i {
			kind, name, value, ok = k, n, val, true
			return false
		}
		j++
		return true
	})
	return kind, name, value, ok
}

// PackedBytes is how many bytes of credential names and values a Packed
// holds: a signed JWT as a bearer token fits.
const PackedBytes = 1022

// Packed is a copy of a request's identities in fixed memory, without a
// pointer, for a table of requests waiting for their answer (sideband's:
// the response call carries no credential). Identities past the first that
// does not fit (or past maxIDs) are not known: a detection on one of them
// is reported at its next request instead.
type Packed struct {
	n   uint16 // bytes used
	buf [PackedBytes]byte
}

// Pack copies id's identities into p (p's previous content is dropped).
// Each is a kind byte, the name's and the value's lengths (2 bytes each),
// then the name and the value.
func (p *Packed) Pack(id *lists.Identity) {
	p.n = 0
	count := 0
	eachIdentity(id, func(kind lists.Kind, name, value string) bool {
		need := 5 + len(name) + len(value)
		if count == maxIDs || int(p.n)+need > PackedBytes {
			return false
		}
		b := p.buf[p.n:]
		b[0] = byte(kind)
		binary.LittleEndian.PutUint16(b[1:], uint16(len(name)))
		binary.LittleEndian.PutUint16(b[3:], uint16(len(value)))
		copy(b[5:], name)
		copy(b[5+len(name):], value)
		p.n += uint16(need)
		count++
		return true
	})
}

// CopyFrom copies q into p (the bytes q uses only).
func (p *Packed) CopyFrom(q *Packed) {
	p.n = q.n
	copy(p.buf[:q.n], q.buf[:q.n])
}

// Identity implements Values (the strings it returns are new: p may be
// reused).
func (p *Packed) Identity(i int) (kind lists.Kind, name, value string, ok bool) {
	b := p.buf[:p.n]
	for j := 0; len(b) >= 5; j++ {
		nl, vl := int(binary.LittleEndian.Uint16(b[1:])), int(binary.LittleEndian.Uint16(b[3:]))
		if len(b) < 5+nl+vl {
			return 0, "", "", false
		}
		if j == i {
			return lists.Kind(b[0]), string(b[5 : 5+nl]), string(b[5+nl : 5+nl+vl]), true
		}
		b = b[5+nl+vl:]
	}
	return 0, "", "", false
}
