package h1

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"net/http/httputil"
	"strings"
	"testing"
)

func TestParseRequestTakes(t *testing.T) {
	raw := "POST /v1/items/7?x=%41&y HTTP/1.1\r\nHost: api.example.com:8080\r\nContent-Length: 4\r\n" +
		"Cookie: SID=a\r\nX-Empty:\r\nConnection: keep-alive, Close, X-Drop\r\nX-Drop:  gone \t\r\n\r\nbodyNEXT"
	var r Request
	if st := ParseRequest([]byte(raw), &r); st != Done {
		t.Fatalf("status %v", st)
	}
	if string(r.Method) != "POST" || string(r.Path) != "/v1/items/7" || string(r.Query) != "x=%41&y" || string(r.Host) != "api.example.com:8080" {
		t.Fatalf("request line: %q %q %q %q", r.Method, r.Path, r.Query, r.Host)
	}
	if !r.HasLength || r.ContentLength != 4 || !r.Close || r.HeadLen != strings.Index(raw, "body") {
		t.Fatalf("framing: %+v", r)
	}
	if v, n := r.Get("x-drop"); string(v) != "gone" || n != 1 {
		t.Fatalf("x-drop %q %d", v, n)
	}
	if v, n := r.Get("X-Empty"); len(v) != 0 || n != 1 {
		t.Fatalf("x-empty %q %d", v, n)
	}
	if _, n := r.Get("Missing"); n != 0 {
		t.Fatal("found a missing field")
	}
}

func TestParseRequestMore(t *testing.T) {
	full := "GET / HTTP/1.1\r\nHost: a\r\n\r\n"
	for i := 0; i < len(full)-1; i++ {
		var r Request
		if st := ParseRequest([]byte(full[:i]), &r); st != More {
			t.Fatalf("%q: status %v, want More", full[:i], st)
		}
	}
}

// TestParseRequestOther lists shapes this parser leaves to the general
// server: every smuggling and malformed shape, and the unusual ones.
func TestParseRequestOther(t *testing.T) {
	for _, raw := range []string{
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +4\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4 4\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1234567890123456789\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nX A: b\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nX-A : b\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x00c\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\rc\r\n\r\n",
		"GET / HTTP/1.1\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n",
		"GET / HTTP/1.0\r\nHost: a\r\n\r\n",
		"GET / HTTP/2.0\r\nHost: a\r\n\r\n",
		"GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET * HTTP/1.1\r\nHost: a\r\n\r\n",
		"CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n",
		"BREW / HTTP/1.1\r\nHost: a\r\n\r\n",
		"get / HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET / HTTP/1.1 \r\nHost: a\r\n\r\n",
		"GET /a%2e%2e/b HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /a/../b HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /a/./b HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /a//b HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /a/.. HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /a\\b HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /a#f HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /\xff HTTP/1.1\r\nHost: a\r\n\r\n",
		"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET / HTTP/1.1\nHost: a\n\n",
		"GET / HTTP/1.1\r\nHost: a\n\r\n",
		"GET / HTTP/1.1\nHost: a\r\n", // unfinished, but with a bare LF already
	} {
		var r Request
		if st := ParseRequest([]byte(raw), &r); st != Other {
			t.Errorf("%q: status %v, want Other", raw, st)
		}
	}
}

func TestParseRequestFieldLimit(t *testing.T) {
	var b strings.Builder
	b.WriteString("GET / HTTP/1.1\r\nHost: a\r\n")
	for i := 1; i < MaxFields; i++ {
		b.WriteString("X-F: v\r\n")
	}
	var r Request
	if st := ParseRequest([]byte(b.String()+"\r\n"), &r); st != Done {
		t.Fatalf("%d fields: %v", MaxFields, st)
	}
	if st := ParseRequest([]byte(b.String()+"X-F: v\r\n\r\n"), &r); st != Other {
		t.Fatalf("%d fields: %v", MaxFields+1, st)
	}
}

func TestParseResponse(t *testing.T) {
	for _, tt := range []struct {
		raw           string
		st            Status
		code          int
		length        int64
		chunked, cls  bool
		reason, field string
	}{
		{"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", Done, 200, 5, false, false, "OK", ""},
		{"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n", Done, 404, -1, true, false, "Not Found", ""},
		{"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 9\r\n\r\n", Done, 200, -1, true, false, "OK", ""},
		{"HTTP/1.1 200 OK\r\n\r\n", Done, 200, -1, false, true, "OK", ""},
		{"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", Done, 200, 1, false, true, "OK", ""},
		{"HTTP/1.0 200 OK\r\nContent-Length: 1\r\nConnection: keep-alive\r\n\r\n", Done, 200, 1, false, false, "OK", ""},
		{"HTTP/1.1 204\r\nConnection: close\r\n\r\n", Done, 204, -1, false, true, "", ""},
		{"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", Done, 200, 5, false, false, "OK", ""},
		{"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", Other, 0, 0, false, false, "", ""},
		{"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", Other, 0, 0, false, false, "", ""},
		{"HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", Other, 0, 0, false, false, "", ""},
		{"HTTP/1.1 20 OK\r\n\r\n", Other, 0, 0, false, false, "", ""},
		{"HTTP/1.1 200OK\r\n\r\n", Other, 0, 0, false, false, "", ""},
		{"HTTP/2 200 OK\r\n\r\n", Other, 0, 0, false, false, "", ""},
		{"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n", More, 0, 0, false, false, "", ""},
	} {
		var r Response
		st := ParseResponse([]byte(tt.raw), &r)
		if st != tt.st {
			t.Errorf("%q: status %v, want %v", tt.raw, st, tt.st)
			continue
		}
		if st != Done {
			continue
		}
		if r.Code != tt.code || r.ContentLength != tt.length || r.Chunked != tt.chunked || r.Close != tt.cls || string(r.Reason) != tt.reason {
			t.Errorf("%q: got %+v", tt.raw, r)
		}
	}
}

func TestChunksAnySplit(t *testing.T) {
	body := "4\r\nwiki\r\n5;ext=1\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nTrailer: x\r\n\r\n"
	rest := "HTTP/1.1 200 OK\r\n"
	in := body + rest
	for split := 0; split <= len(in); split++ {
		var c Chunks
		n1, done, bad := c.Scan([]byte(in[:split]))
		if bad {
			t.Fatalf("split %d: bad", split)
		}
		total := n1
		if !done {
			n2, d2, b2 := c.Scan([]byte(in[split:]))
			if b2 || !d2 {
				t.Fatalf("split %d: done %v bad %v", split, d2, b2)
			}
			total += n2
		}
		if total != len(body) {
			t.Fatalf("split %d: body ends at %d, want %d", split, total, len(body))
		}
	}
}

func TestChunksBad(t *testing.T) {
	for _, in := range []string{"x\r\n", "\r\n", "4\nwiki\r\n", "4\r\nwikiX\r\n", "1234567890abcdef0\r\n", "0\r\nbad\nline\r\n\r\n", "4 x\r\n"} {
		var c Chunks
		if _, _, bad := c.Scan([]byte(in)); !bad {
			t.Errorf("%q: not found bad", in)
		}
	}
}

// FuzzParseRequest checks that a request this parser takes means the same
// to net/http: method, target, Host, every field and the body length.
func FuzzParseRequest(f *testing.F) {
	f.Add([]byte("GET /a?b HTTP/1.1\r\nHost: a\r\nX: y\r\n\r\n"))
	f.Add([]byte("POST /x HTTP/1.1\r\nHost: h:1\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc"))
	f.Add([]byte("GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Request
		if ParseRequest(b, &r) != Done {
			return
		}
		hr, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(b)))
		if err != nil {
			t.Fatalf("taken here, refused by net/http: %v", err)
		}
		if hr.Method != string(r.Method) || hr.RequestURI != string(r.Target) || hr.Host != string(r.Host) ||
			hr.URL.Path != string(r.Path) || hr.URL.RawQuery != string(r.Query) {
			t.Fatalf("request line differs: %q %q %q %q vs %q %q", hr.Method, hr.RequestURI, hr.Host, hr.URL.Path, r.Method, r.Target)
		}
		if hr.ContentLength != r.ContentLength || hr.Close != r.Close {
			t.Fatalf("framing differs: %d %v vs %d %v", hr.ContentLength, hr.Close, r.ContentLength, r.Close)
		}
		for _, fl := range r.Fields {
			if equalFold(fl.Name, "host") {
				continue
			}
			vals := hr.Header.Values(string(fl.Name))
			found := false
			for _, v := range vals {
				found = found || v == string(fl.Value)
			}
			if !found {
				t.Fatalf("field %q: %q not among %q", fl.Name, fl.Value, vals)
			}
		}
	})
}

// FuzzParseResponse checks response heads against net/http's reading.
func FuzzParseResponse(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"))
	f.Add([]byte("HTTP/1.0 404 Not Found\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Response
		if ParseResponse(b, &r) != Done {
			return
		}
		hr, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(b)), nil)
		if err != nil {
			t.Fatalf("taken here, refused by net/http: %v", err)
		}
		if hr.StatusCode != r.Code {
			t.Fatalf("code %d vs %d", hr.StatusCode, r.Code)
		}
		if r.Code < 200 || r.Code == 204 || r.Code == 304 {
			return // no body, whatever the head says (the proxy knows)
		}
		chunked := len(hr.TransferEncoding) > 0 && hr.TransferEncoding[len(hr.TransferEncoding)-1] == "chunked"
		if chunked != r.Chunked || !r.Chunked && r.ContentLength >= 0 && hr.ContentLength != r.ContentLength {
			t.Fatalf("framing: chunked %v/%v length %d/%d", chunked, r.Chunked, hr.ContentLength, r.ContentLength)
		}
	})
}

// FuzzChunks checks the scanner against net/http's chunked reader, split
// anywhere.
func FuzzChunks(f *testing.F) {
	f.Add([]byte("4\r\nwiki\r\n0\r\n\r\n"), 3)
	f.Add([]byte("1;a=b\r\nx\r\n0\r\nT: v\r\n\r\nrest"), 9)
	f.Fuzz(func(t *testing.T, b []byte, split int) {
		var whole Chunks
		n, done, bad := whole.Scan(b)
		if split < 0 || split > len(b) {
			split = len(b) / 2
		}
		var parts Chunks
		n1, d1, b1 := parts.Scan(b[:split])
		if !d1 && !b1 {
			n2, d2, b2 := parts.Scan(b[split:])
			n1, d1, b1 = n1+n2, d2, b2
		}
		if bad != b1 || !bad && (done != d1 || n != n1) {
			t.Fatalf("whole: %d %v %v; split at %d: %d %v %v", n, done, bad, split, n1, d1, b1)
		}
		if !done || bad {
			return
		}
		// What the scanner took as one body, net/http decodes to its end.
		if _, err := io.ReadAll(httputil.NewChunkedReader(bytes.NewReader(b[:n]))); err != nil {
			t.Fatalf("body %q: net/http: %v", b[:n], err)
		}
	})
}

// FuzzHeadEnd checks that looking for the end of a head piece by piece
// finds what looking at it whole finds, and agrees with ParseRequest.
func FuzzHeadEnd(f *testing.F) {
	f.Add([]byte("GET / HTTP/1.1\r\nHost: a\r\n\r\nbody"), uint8(3))
	f.Add([]byte("GET / HTTP/1.1\nHost: a\r\n\r\n"), uint8(1))
	f.Fuzz(func(t *testing.T, b []byte, step uint8) {
		wholeEnd, wholeBad := HeadEnd(b, 0)
		n := int(step%7) + 1
		end, bad, scanned := -1, false, 0
		for i := n; ; i += n {
			i = min(i, len(b))
			if end, bad = HeadEnd(b[:i], scanned); bad || end >= 0 || i == len(b) {
				break
			}
			scanned = i
		}
		// Pieces see an early bare LF that the whole, finding its CRLFCRLF
		// first, leaves to the parser.
		if end != wholeEnd && !bad || bad && !wholeBad && wholeEnd < 0 {
			t.Fatalf("pieces of %d: end %d bad %v; whole: end %d bad %v", n, end, bad, wholeEnd, wholeBad)
		}
		if end >= 0 {
			var r Request
			if st := ParseRequest(b, &r); st == Done && r.HeadLen != end {
				t.Fatalf("head ends at %d, ParseRequest says %d", end, r.HeadLen)
			}
		}
		if bad {
			var r Request
			if st := ParseRequest(b, &r); st == Done {
				t.Fatalf("a head with a bare LF was taken")
			}
		}
	})
}
