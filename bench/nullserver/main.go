// Command nullserver is the benchmarks' baseline: a do-nothing HTTP server,
// on the same stack as ASE's data ports (fasthttp) or on net/http
// (-stdlib), answering every request 200. Under /ase/authz it answers as a
// forward-auth service that lets everything through: no body
// (Content-Length: 0), as ASE's forward-auth answers; elsewhere a small JSON
// body. GET /_nullserver/connections tells how many connections it
// accepted, for the benchmarks' connections per request;
// GET /_nullserver/bytes?n=N streams N bytes.
package main

import (
	"bytes"
	"flag"
	"io"
	"log"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/valyala/fasthttp"
)

const (
	authzPrefix = "/ase/authz"
	connsPath   = "/_nullserver/connections"
	bytesPath   = "/_nullserver/bytes"
)

// pattern is what GET /_nullserver/bytes?n=N streams: N bytes of a
// repeating pattern, generated as they are written (the server holds none
// of them), for the streaming benchmarks' large downloads.
type pattern struct{ left int64 }

func (p *pattern) Read(b []byte) (int, error) {
	if p.left <= 0 {
		return 0, io.EOF
	}
	n := int64(len(b))
	if n > p.left {
		n = p.left
	}
	for i := range b[:n] {
		b[i] = byte('a' + i%26)
	}
	p.left -= n
	return int(n), nil
}

var accepted atomic.Int64

// counting counts the connections it accepts: nothing per request, so the
// baseline does no more than it did.
type counting struct{ net.Listener }

func (l counting) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		accepted.Add(1)
	}
	return c, err
}

func main() {
	addr := flag.String("addr", "127.0.0.1:9001", "listen address")
	stdlib := flag.Bool("stdlib", false, "serve with net/http instead of fasthttp")
	flag.Parse()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	ln = counting{ln}
	if *stdlib {
		log.Fatal(http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch {
			case strings.HasPrefix(r.URL.Path, authzPrefix):
				// Nothing written: 200 with Content-Length: 0.
			case r.URL.Path == bytesPath:
				n, err := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
				if err != nil || n < 0 {
					http.Error(w, "n: a byte count", http.StatusBadRequest)
					return
				}
				w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
				io.Copy(w, &pattern{left: n})
			case r.URL.Path == connsPath:
				w.Write(strconv.AppendInt(nil, accepted.Load(), 10))
			default:
				w.Header().Set("Content-Type", "application/json")
				w.Write([]byte(`{"ok":true}`))
			}
		})))
	}
	srv := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			path := ctx.Path()
			switch {
			case bytes.HasPrefix(path, []byte(authzPrefix)):
			case string(path) == bytesPath:
				n, err := strconv.ParseInt(string(ctx.QueryArgs().Peek("n")), 10, 64)
				if err != nil || n < 0 {
					ctx.Error("n: a byte count", fasthttp.StatusBadRequest)
					return
				}
				ctx.SetBodyStream(&pattern{left: n}, int(n))
			case string(path) == connsPath:
				ctx.SetBody(strconv.AppendInt(nil, accepted.Load(), 10))
			default:
				ctx.SetContentType("application/json")
				ctx.SetBodyString(`{"decision":"allow"}`)
			}
		},
		NoDefaultServerHeader: true,
	}
	log.Fatal(srv.Serve(ln))
}
