// Command nullserver is the benchmarks' baseline: a do-nothing HTTP server
// on the same stack as ASE's data ports (fasthttp), answering every request
// 200 with a small JSON body, and optionally a net/http backend.
package main

import (
	"flag"
	"log"
	"net/http"

	"github.com/valyala/fasthttp"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9001", "listen address")
	stdlib := flag.Bool("stdlib", false, "serve with net/http instead of fasthttp (a plain backend)")
	flag.Parse()
	if *stdlib {
		log.Fatal(http.ListenAndServe(*addr, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"ok":true}`))
		})))
	}
	srv := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			ctx.SetContentType("application/json")
			ctx.SetBodyString(`{"decision":"allow"}`)
		},
		NoDefaultServerHeader: true,
	}
	log.Fatal(srv.ListenAndServe(*addr))
}
