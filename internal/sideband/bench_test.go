package sideband

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/ase-project/ase/internal/accesslog"
	"github.com/ase-project/ase/internal/apidef"
	"github.com/ase-project/ase/internal/catalog"
	"github.com/ase-project/ase/internal/engine"
	"github.com/ase-project/ase/internal/lists"
	"github.com/ase-project/ase/internal/sbauth"
	"github.com/ase-project/ase/internal/store"
)

func newBenchHandler(b *testing.B) *Handler {
	ctx := context.Background()
	st, err := store.Open(filepath.Join(b.TempDir(), "ase.db"))
	if err != nil {
		b.Fatal(err)
	}
	a, _ := apidef.Decode("shop", []byte(`{"api_metadata": {"url": "/shop", "cookie": "SID", "oauth2_access_token": true}}`))
	st.Commit(ctx, store.Batch{Ops: []store.Op{store.Put("api/shop", a.Encode())}})
	l, _ := lists.Open(ctx, st, lists.Options{Limit: 1 << 30, Log: slog.Default()})
	live, _ := catalog.NewLive(ctx, st, catalog.Defaults{catalog.Firewall: true}, slog.Default())
	auth, _ := sbauth.Open(ctx, st, slog.Default())
	b.Cleanup(func() { auth.Close(); live.Close(); l.Close(); st.Close() })
	return &Handler{Engine: engine.New(l, live, nil), Auth: auth, Live: live, Log: accesslog.New(io.Discard, time.UTC), KeepAlive: true}
}

func BenchmarkASERequest(b *testing.B) {
	h := newBenchHandler(b)
	body := []byte(`{"source_ip": "198.51.100.7", "source_port": "40000", "method": "GET", "url": "/shop/items/42?x=1", "http_version": "1.1", "headers": [{"Host": "shop.example.com"}, {"User-Agent": "bench"}, {"Accept": "*/*"}, {"Cookie": "SID=clean-session"}, {"Authorization": "Bearer clean-token"}]}`)
	var req fasthttp.Request
	req.Header.SetMethod("POST")
	req.SetRequestURI("/ase/request")
	req.Header.SetContentType("application/json")
	req.SetBody(body)
	addr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5555}
	var ctx fasthttp.RequestCtx
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		ctx.Init(&req, addr, nil)
		h.Serve(&ctx)
		if ctx.Response.StatusCode() != 200 {
			b.Fatalf("got %d %s", ctx.Response.StatusCode(), ctx.Response.Body())
		}
	}
}

// BenchmarkForwardAuth is one nginx auth_request call (the guide's
// headers plus the client's cookie and token), allowed, answered with no
// body.
func BenchmarkForwardAuth(b *testing.B) {
	h := newBenchHandler(b)
	h.IdentityHeaders = true
	// Read from the wire, as the data port does: forward-auth reads the
	// raw header section.
	raw := "GET /ase/authz HTTP/1.1\r\nHost: shop.example.com\r\nX-Original-URI: /shop/items/42?x=1\r\nX-Original-Method: GET\r\n" +
		"X-Forwarded-Proto: http\r\nX-Real-IP: 198.51.100.7\r\nUser-Agent: bench\r\nAccept: */*\r\n" +
		"Cookie: SID=clean-session\r\nAuthorization: Bearer clean-token\r\n\r\n"
	var req fasthttp.Request
	if err := req.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
		b.Fatal(err)
	}
	addr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5555}
	var ctx fasthttp.RequestCtx
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		ctx.Init(&req, addr, nil)
		h.Serve(&ctx)
		if ctx.Response.StatusCode() != 200 || len(ctx.Response.Body()) != 0 {
			b.Fatalf("got %d %q, reason %q", ctx.Response.StatusCode(), ctx.Response.Body(), ctx.Response.Header.Peek("X-ASE-Reason"))
		}
	}
}
