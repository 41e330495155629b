package admin

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// watch feeds stream to a fresh framing watch in pieces of size step (all
// at once when step is 0).
func watch(stream string, step int) *framing {
	f := &framing{bad: -1}
	if step == 0 {
		step = len(stream) + 1
	}
	for len(stream) > 0 {
		k := min(step, len(stream))
		f.feed([]byte(stream[:k]))
		stream = stream[k:]
	}
	return f
}

const (
	get     = "GET /v5/ase/api HTTP/1.1\r\nHost: x\r\n\r\n"
	options = "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n"
	// inside is header-like text that a body may carry.
	inside = "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
)

func clBody(body string) string {
	return "POST /v5/ase/firewall/blacklist HTTP/1.1\r\nHost: x\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
}

func TestFramingWatch(t *testing.T) {
	both := "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
	tests := []struct {
		name   string
		stream string
		heads  int
		bad    int
	}{
		{"three requests", get + get + get, 3, -1},
		{"bare LF line endings", "GET / HTTP/1.1\nHost: x\n\n" + get, 2, -1},
		{"a length-framed body holding a head", clBody(inside) + get, 2, -1},
		{"a chunked body holding a head", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
			strconv.FormatInt(int64(len(inside)), 16) + ";ext=1 \r\n" + inside + "\r\n3\r\nabc\r\n0\r\nX-Trailer: 1\r\nContent-Length: 9\r\n\r\n" + get, 2, -1},
		{"a folded transfer-encoding", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n" + get, 2, -1},
		{"a fold is not a field", "GET / HTTP/1.1\r\nHost: x\r\nX-A: b\r\n Transfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n" + get, 2, -1},
		{"HTTP/1.0 ignores transfer-encoding", "GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n" + get, 2, -1},
		{"the same length twice", "POST / HTTP/1.1\r\nContent-Length: 3\r\ncontent-length: 3\r\n\r\nabc" + get, 2, -1},
		{"both", both + get, 1, 0},
		{"both, lower case, reversed", "POST /x HTTP/1.1\r\ntransfer-encoding: chunked\r\ncontent-length: 5\r\n\r\n0\r\n\r\n", 1, 0},
		{"both on HTTP/1.0", "POST /x HTTP/1.0\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n", 1, 0},
		{"both after two requests", get + clBody("{}") + both, 3, 2},
		{"both on OPTIONS *", get + strings.Replace(both, "POST /x", "OPTIONS *", 1) + get, 1, 1},
		{"OPTIONS * is not counted", options + get, 1, -1},
		{"a bare LF in a chunk line", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n" + get, 1, 1},
		{"no CRLF after a chunk", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n0\r\n\r\n" + get, 1, 1},
		{"a continued length", "POST / HTTP/1.1\r\nContent-Length: 3\r\n 4\r\n\r\nabc", 1, 0},
		{"two lengths", "POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabc", 1, 0},
		{"not HTTP/1", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 0, 0},
	}
	for _, tt := range tests {
		for _, step := range []int{0, 1, 2, 7} {
			f := watch(tt.stream, step)
			if f.heads != tt.heads || f.bad != tt.bad {
				t.Errorf("%s (in pieces of %d): %d heads, first refused %d; want %d, %d", tt.name, step, f.heads, f.bad, tt.heads, tt.bad)
			}
		}
	}
	// Requests are admitted in order, up to the first refused.
	f := watch(get+get+both+get, 0)
	for i, want := range []bool{true, true, false, false} {
		if f.admit() != want {
			t.Fatalf("request %d: admitted %v", i, !want)
		}
	}
}

// goRequests reads stream as net/http's server does, one request after
// the other with its body, until it refuses something. For each request
// it reports whether "OPTIONS *" (which the handler never sees) and
// whether its head has both Content-Length and Transfer-Encoding (which
// net/http hides from the handler).
func goRequests(stream []byte) (options, ambiguous []bool) {
	src := &countingReader{r: bytes.NewReader(stream)}
	br := bufio.NewReader(src)
	for {
		start := src.n - br.Buffered()
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		end := src.n - br.Buffered()
		options = append(options, req.Method == "OPTIONS" && req.RequestURI == "*")
		ambiguous = append(ambiguous, hasBoth(stream[start:end]))
		if _, err := io.Copy(io.Discard, req.Body); err != nil {
			return
		}
	}
}

// countingReader counts the bytes read through it: with the bufio
// reader's Buffered, where in the stream net/http is.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func hasBoth(head []byte) bool {
	cl, te := false, false
	for _, line := range strings.Split(string(head), "\n") {
		name, _, ok := strings.Cut(line, ":")
		if !ok || strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t") {
			continue
		}
		switch strings.ToLower(name) {
		case "content-length":
			cl = true
		case "transfer-encoding":
			te = true
		}
	}
	return cl && te
}

// FuzzFramingWatch checks the watch against net/http: whatever the bytes,
// the first request net/http reads with both Content-Length and
// Transfer-Encoding is refused by the watch (it may refuse earlier, never
// later).
func FuzzFramingWatch(f *testing.F) {
	f.Add([]byte(get+clBody(inside)+get), uint8(0))
	f.Add([]byte("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n42;e\r\n"+inside+"\r\n0\r\nT: 1\r\n\r\n"+get), uint8(3))
	f.Add([]byte(options+"POST /x HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), uint8(1))
	f.Add([]byte("GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"+get), uint8(5))
	f.Fuzz(func(t *testing.T, stream []byte, step uint8) {
		options, ambiguous := goRequests(stream)
		first := -1 // index of the first ambiguous request among those the handler sees
		seen := 0
		for i := range ambiguous {
			if ambiguous[i] {
				first = seen
				break
			}
			if !options[i] {
				seen++
			}
		}
		if first < 0 {
			return
		}
		w := watch(string(stream), int(step))
		if w.bad < 0 || w.bad > first {
			t.Fatalf("net/http reads an ambiguous request at %d; the watch refuses from %d (heads %d)", first, w.bad, w.heads)
		}
	})
}
