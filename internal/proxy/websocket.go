package proxy

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/ase-project/ase/internal/accesslog"
	"github.com/ase-project/ase/internal/engine"
)

// websocket upgrades an allowed WebSocket request: it sends the upgrade to
// a healthy backend, relays the backend's answer verbatim and, on 101,
// relays bytes both ways until either side closes (close frames pass
// through, so the close handshake is the endpoints' own).
func (p *Proxy) websocket(ctx *fasthttp.RequestCtx, pl *pool, req *engine.Request, scheme string, rec *accesslog.Record) {
	var tried uint64
	var backendConn net.Conn
	var b *backend
	for {
		var i int
		b, i = p.pick(pl, req.ID.Cookie, tried)
		if b == nil {
			rec.Reason = "no_server"
			plain(ctx, fasthttp.StatusServiceUnavailable, "Error: No Server Available")
			return
		}
		tried |= 1 << i
		c, err := p.dialBackend(b, pl.api.ServerSSL)
		if err == nil {
			backendConn = c
			break
		}
		p.o.Logger.Warn("backend connection failed; trying another server", "api_id", pl.api.ID, "server", b.addr, "error", err)
	}
	rec.Backend = b.addr
	up := &ctx.Request
	peerIP := peer(ctx)
	prepareRequest(up, pl.api, ctx, scheme, peerIP)
	// prepareRequest removed the hop-by-hop headers; an upgrade needs its
	// own two back.
	up.Header.Set("Connection", "Upgrade")
	up.Header.Set("Upgrade", "websocket")
	backendConn.SetDeadline(time.Now().Add(p.o.Timeout))
	if _, err := backendConn.Write(upgradeRequest(up)); err != nil {
		backendConn.Close()
		rec.Reason = "backend_error"
		plain(ctx, fasthttp.StatusBadGateway, "Error: Bad Gateway")
		return
	}
	br := bufio.NewReader(backendConn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		backendConn.Close()
		rec.Reason = "backend_error"
		plain(ctx, fasthttp.StatusBadGateway, "Error: Bad Gateway")
		return
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		// Refused by the backend: relay its answer as a plain response.
		defer backendConn.Close()
		defer resp.Body.Close()
		ctx.SetStatusCode(resp.StatusCode)
		for k, vs := range resp.Header {
			for _, v := range vs {
				ctx.Response.Header.Add(k, v)
			}
		}
		stripHopByHop(&ctx.Response.Header)
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		ctx.SetBody(body)
		return
	}
	backendConn.SetDeadline(time.Time{})
	head := responseHead(resp)
	rec.Status = http.StatusSwitchingProtocols
	counter := p.counter(pl.api.ID)
	n := &counter.ws
	if scheme == "wss" {
		n = &counter.wss
	}
	n.Add(1)
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(client net.Conn) {
		defer n.Add(-1)
		defer backendConn.Close()
		client.SetDeadline(time.Time{})
		if _, err := client.Write(head); err != nil {
			return
		}
		relay(client, backendConn, br)
	})
}

func (p *Proxy) dialBackend(b *backend, ssl bool) (net.Conn, error) {
	d := net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	if !ssl {
		return d.Dial("tcp", b.addr)
	}
	tc := b.client.TLSConfig
	return tls.DialWithDialer(&d, "tcp", b.addr, tc)
}

// upgradeRequest serializes the upgrade request for the backend.
func upgradeRequest(r *fasthttp.Request) []byte {
	var buf bytes.Buffer
	buf.Write(r.Header.Method())
	buf.WriteByte(' ')
	buf.Write(r.URI().RequestURI())
	buf.WriteString(" HTTP/1.1\r\n")
	buf.WriteString("Host: ")
	buf.Write(r.Header.Host())
	buf.WriteString("\r\n")
	for k, v := range r.Header.All() {
		if bytes.EqualFold(k, []byte("Host")) || bytes.EqualFold(k, []byte("Content-Length")) {
			continue
		}
		buf.Write(k)
		buf.WriteString(": ")
		buf.Write(v)
		buf.WriteString("\r\n")
	}
	buf.WriteString("\r\n")
	return buf.Bytes()
}

// responseHead re-serializes the backend's 101 answer as it sent it.
func responseHead(resp *http.Response) []byte {
	var buf bytes.Buffer
	buf.WriteString("HTTP/1.1 101 Switching Protocols\r\n")
	resp.Header.Write(&buf)
	buf.WriteString("\r\n")
	return buf.Bytes()
}

// relay copies both ways until either side ends, then closes both. Bytes
// the backend sent right after its 101 (already buffered) go first.
func relay(client, backend net.Conn, backendBuf *bufio.Reader) {
	var once sync.Once
	done := make(chan struct{})
	closeBoth := func() {
		once.Do(func() {
			client.Close()
			backend.Close()
			close(done)
		})
	}
	go func() {
		io.Copy(backend, client)
		closeBoth()
	}()
	io.Copy(client, backendBuf)
	closeBoth()
	<-done
}
