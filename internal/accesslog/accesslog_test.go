package accesslog

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }

func TestLinesAreJSON(t *testing.T) {
	var out syncBuf
	l := New(&out, time.UTC)
	hostile := "/a\"b\\c\n\x00\xff\u2028é"
	for i := 0; i < 100; i++ {
		l.Write(&Record{Time: time.Unix(1700000000, 0), Protocol: "inline", APIID: "shop", ClientIP: netip.MustParseAddr("2001:db8::1"),
			Method: "GET", Path: hostile, Status: 403, Decision: "block", Reason: "deny_list", Backend: "127.0.0.1:8080",
			Latency: 1500 * time.Microsecond, CorrelationID: "c1"})
	}
	l.Close()
	lines := bytes.Split(bytes.TrimSpace(out.b.Bytes()), []byte("\n"))
	if len(lines) != 100 {
		t.Fatalf("got %d lines, want 100", len(lines))
	}
	var rec map[string]any
	if err := json.Unmarshal(lines[0], &rec); err != nil {
		t.Fatalf("%v: %s", err, lines[0])
	}
	if rec["path"] != "/a\"b\\c\n\x00\ufffd\u2028é" || rec["latency_us"] != 1500.0 || rec["client_ip"] != "2001:db8::1" || rec["time"] != "2023-11-14T22:13:20.000Z" {
		t.Fatalf("got %v", rec)
	}
	var nilLog *Log
	nilLog.Write(&Record{})
	nilLog.Close()
}

func FuzzAppendString(f *testing.F) {
	f.Add("/a\"b\\c\n\x00\xff")
	f.Add("/api/é/\x7f/\xe2\x82/ok")
	f.Fuzz(func(t *testing.T, s string) {
		b := appendString(nil, s)
		var back string
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("%q encoded as invalid JSON %s: %v", s, b, err)
		}
		if want := appendStringByByte(nil, s); string(b) != string(want) {
			t.Fatalf("%q encoded as %s, the byte-at-a-time encoder as %s", s, b, want)
		}
	})
}

// appendStringByByte is appendString as it was written first, a byte at a
// time: the reference its runs-at-once version must agree with.
func appendStringByByte(b []byte, s string) []byte {
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

func BenchmarkAppendString(b *testing.B) {
	const path = "/api/v1/customers/1234567/orders?since=2026-11-01&limit=50"
	buf := make([]byte, 0, 256)
	for _, tc := range []struct {
		name string
		fn   func([]byte, string) []byte
	}{{"runs", appendString}, {"bytes", appendStringByByte}} {
		b.Run(tc.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				buf = tc.fn(buf[:0], path)
			}
		})
	}
}
