package dataport

import (
	"errors"
	"io"
	"net"
	"testing"
)

// chunks is a connection whose reads return the given pieces.
type chunks struct {
	net.Conn
	pieces []string
}

func (c *chunks) Read(b []byte) (int, error) {
	if len(c.pieces) == 0 {
		return 0, io.EOF
	}
	n := copy(b, c.pieces[0])
	c.pieces = c.pieces[1:]
	return n, nil
}

func (c *chunks) Write(b []byte) (int, error) { return len(b), nil }

func TestLFGuard(t *testing.T) {
	tests := []struct {
		name   string
		pieces []string
		writes []string // answers written after the first head
		bad    bool
	}{
		{"crlf", []string{"GET / HTTP/1.1\r\nHost: a\r\n\r\n"}, nil, false},
		{"bare lf", []string{"GET / HTTP/1.1\nHost: a\n\n"}, nil, true},
		{"bare lf in a later line", []string{"GET / HTTP/1.1\r\nHost: a\n\r\n"}, nil, true},
		{"split crlf", []string{"GET / HTTP/1.1\r", "\nHost: a\r\n\r", "\n"}, nil, false},
		{"split bare lf", []string{"GET / HTTP/1.1\r\nHost: a", "\n\r\n"}, nil, true},
		{"leading empty line", []string{"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"}, nil, false},
		{"body not scanned", []string{"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n", "a\nb"}, nil, false},
		{"body in the same read", []string{"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\na\nb"}, nil, false},
		{"next head after the answer", []string{"GET / HTTP/1.1\r\nHost: a\r\n\r\n", "GET / HTTP/1.1\nHost: a\n\n"}, []string{"HTTP/1.1 200 OK\r\n\r\n"}, true},
		{"body after 100-continue", []string{"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n", "a\nb"}, []string{"HTTP/1.1 100 Continue\r\n\r\n"}, false},
		{"after 101", []string{"GET / HTTP/1.1\r\nHost: a\r\n\r\n", "frame\nbytes"}, []string{"HTTP/1.1 101 Switching Protocols\r\n\r\n", "frame"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := &lfGuard{Conn: &chunks{pieces: tt.pieces}, head: true}
			buf := make([]byte, 4096)
			var err error
			for k := 0; err == nil; k++ {
				_, err = g.Read(buf)
				if k == 0 {
					for _, w := range tt.writes {
						g.Write([]byte(w))
					}
				}
			}
			if got := errors.Is(err, errBareLF); got != tt.bad {
				t.Fatalf("refused: %v (%v), want %v", got, err, tt.bad)
			}
		})
	}
}
