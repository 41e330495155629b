package flow

import (
	"encoding/binary"
	"errors"
	"math"
	"time"
)

// Summary is what a node tells the others of its load, once per interval:
// enough for each to take its part of every cluster-wide limit, with no
// message per request. It is small and bounded whatever the traffic: one
// entry per API with server limits (the configuration bounds them), and
// at most Options.MaxClients client entries, the clients nearest to or
// over their threshold (a flood of distinct clients fills the list, never
// grows it).
type Summary struct {
	Node    string        // the publishing node's id (its cluster uuid)
	Seq     uint64        // changes at every publish; a summary that stops changing goes stale
	Span    time.Duration // the time the counts below cover (since the node's previous summary)
	APIs    []APILoad
	Clients []ClientLoad
}

// APILoad is a node's load on one API's servers.
type APILoad struct {
	Key     uint64  // KeyString(seed, api_id)
	Demand  float32 // requests per second offered to the API's servers, smoothed
	Servers []ServerLoad
}

// ServerLoad is a node's load on one backend server of an API.
type ServerLoad struct {
	Key      uint64 // KeyString(seed, host:port)
	InFlight uint32 // requests in flight when the summary was made
	Sent     uint32 // requests sent during Span
	Slots    uint32 // of the server's connection quota, what the node may hold now: its part, or more while requests over it finish
}

// ClientLoad is a node's load from one client of one API.
type ClientLoad struct {
	Key      uint64  // the client's cluster key (API and strongest identity, hashed)
	Demand   float32 // requests per second, smoothed (admitted or not)
	Admitted uint32  // requests admitted during Span
}

// Wire format (version 1), all integers little-endian or unsigned
// varints:
//
//	version      byte (1)
//	node         uvarint length, bytes (at most MaxNodeID)
//	seq          uvarint
//	span         uvarint, nanoseconds
//	apis         uvarint count, then per API:
//	  key        8 bytes
//	  demand     4 bytes (float32 bits)
//	  servers    uvarint count, then per server: key 8 bytes, in flight, sent, slots uvarints
//	clients      uvarint count, then per client:
//	  key        8 bytes
//	  demand     4 bytes (float32 bits)
//	  admitted   uvarint
//
// A client entry takes 13 to 17 bytes, a server entry 11 to 23, an API 13
// to 17 plus its servers: with the default 1,000 clients a summary is at
// most about 17 KB plus 40 bytes per API server with limits, far under
// etcd's 1.5 MiB request limit. SummarySizeBound says it exactly.
const (
	summaryVersion = 1
	// MaxNodeID is the longest node id a summary carries.
	MaxNodeID = 128
)

// ErrSummary means bytes that are not a summary.
var ErrSummary = errors.New("flow: malformed load summary")

// SummarySizeBound is the largest encoding of a summary with that many
// API entries, server entries (all APIs together) and client entries.
func SummarySizeBound(apis, servers, clients int) int {
	return 1 + binary.MaxVarintLen64 + MaxNodeID + 2*binary.MaxVarintLen64 +
		binary.MaxVarintLen32 + apis*(12+binary.MaxVarintLen32) + servers*(8+3*binary.MaxVarintLen32) +
		binary.MaxVarintLen32 + clients*(12+binary.MaxVarintLen32)
}

// MarshalBinary encodes s in the wire format.
func (s Summary) MarshalBinary() ([]byte, error) {
	return s.AppendBinary(nil)
}

// AppendBinary appends s in the wire format to b.
func (s Summary) AppendBinary(b []byte) ([]byte, error) {
	if len(s.Node) > MaxNodeID {
		return b, ErrSummary
	}
	b = append(b, summaryVersion)
	b = binary.AppendUvarint(b, uint64(len(s.Node)))
	b = append(b, s.Node...)
	b = binary.AppendUvarint(b, s.Seq)
	b = binary.AppendUvarint(b, uint64(max(s.Span, 0)))
	b = binary.AppendUvarint(b, uint64(len(s.APIs)))
	for _, a := range s.APIs {
		b = binary.LittleEndian.AppendUint64(b, a.Key)
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(a.Demand))
		b = binary.AppendUvarint(b, uint64(len(a.Servers)))
		for _, sv := range a.Servers {
			b = binary.LittleEndian.AppendUint64(b, sv.Key)
			b = binary.AppendUvarint(b, uint64(sv.InFlight))
			b = binary.AppendUvarint(b, uint64(sv.Sent))
			b = binary.AppendUvarint(b, uint64(sv.Slots))
		}
	}
	b = binary.AppendUvarint(b, uint64(len(s.Clients)))
	for _, c := range s.Clients {
		b = binary.LittleEndian.AppendUint64(b, c.Key)
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(c.Demand))
		b = binary.AppendUvarint(b, uint64(c.Admitted))
	}
	return b, nil
}

// UnmarshalBinary decodes a summary written by MarshalBinary. It reads
// what another node wrote, so it trusts nothing: counts are checked
// against the bytes left before anything is allocated, demands must be
// finite and not negative, and trailing bytes are an error.
func (s *Summary) UnmarshalBinary(b []byte) error {
	d := decoder{b: b}
	if d.byte() != summaryVersion {
		return ErrSummary
	}
	n := d.count(1)
	if n > MaxNodeID {
		return ErrSummary
	}
	node := string(d.bytes(n))
	seq := d.uvarint()
	span := d.uvarint()
	if span > math.MaxInt64 {
		d.err = true
	}
	out := Summary{Node: node, Seq: seq, Span: time.Duration(span)}
	if na := d.count(13); na > 0 {
		out.APIs = make([]APILoad, na)
		for i := range out.APIs {
			a := &out.APIs[i]
			a.Key = d.uint64()
			a.Demand = d.demand()
			if ns := d.count(11); ns > 0 {
				a.Servers = make([]ServerLoad, ns)
				for j := range a.Servers {
					a.Servers[j] = ServerLoad{Key: d.uint64(), InFlight: d.uint32(), Sent: d.uint32(), Slots: d.uint32()}
				}
			}
		}
	}
	if nc := d.count(13); nc > 0 {
		out.Clients = make([]ClientLoad, nc)
		for i := range out.Clients {
			out.Clients[i] = ClientLoad{Key: d.uint64(), Demand: d.demand(), Admitted: d.uint32()}
		}
	}
	if d.err || len(d.b) != 0 {
		return ErrSummary
	}
	*s = out
	return nil
}

// decoder reads the wire format; the first error sticks and every later
// read returns zero.
type decoder struct {
	b   []byte
	err bool
}

func (d *decoder) byte() byte {
	if d.err || len(d.b) < 1 {
		d.err = true
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) bytes(n int) []byte {
	if d.err || len(d.b) < n {
		d.err = true
		return nil
	}
	p := d.b[:n]
	d.b = d.b[n:]
	return p
}

func (d *decoder) uvarint() uint64 {
	if d.err {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = true
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) uint32() uint32 {
	v := d.uvarint()
	if v > math.MaxUint32 {
		d.err = true
		return 0
	}
	return uint32(v)
}

func (d *decoder) uint64() uint64 {
	if p := d.bytes(8); p != nil {
		return binary.LittleEndian.Uint64(p)
	}
	return 0
}

func (d *decoder) demand() float32 {
	p := d.bytes(4)
	if p == nil {
		return 0
	}
	f := math.Float32frombits(binary.LittleEndian.Uint32(p))
	if !(f >= 0) || math.IsInf(float64(f), 0) { // NaN fails f >= 0
		d.err = true
		return 0
	}
	return f
}

// count reads an element count and checks that that many elements of at
// least minSize bytes each fit in what is left.
func (d *decoder) count(minSize int) int {
	v := d.uvarint()
	if v > uint64(len(d.b)/minSize) {
		d.err = true
		return 0
	}
	return int(v)
}
