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
	"github.com/ase-project/ase/internal/apidef"
	"github.com/ase-project/ase/internal/flow"
	"github.com/ase-project/ase/internal/frontdoor"
	"github.com/ase-project/ase/internal/units"
)

// websocket upgrades an allowed WebSocket request: it sends the upgrade to
// a healthy backend, relays the backend's answer verbatim and, on 101,
// relays bytes both ways until either side closes (close frames pass
// through, so the close handshake is the endpoints' own).
func (p *Proxy) websocket(ctx *fasthttp.RequestCtx, pl *pool, x *frontdoor.Inline, rec *accesslog.Record) {
	// A WebSocket connection holds its server's quota for its lifetime.
	var tried uint64
	var backendConn net.Conn
	var b *backend
	for {
		var i int
		var err error
		b, i, err = p.acquire(pl, x.Req.ID.Cookie, tried)
		if err != nil {
			fail(ctx, rec, frontdoor.NoServer)
			return
		}
		tried |= 1 << i
		c, err := p.dialBackend(b, pl.api.ServerSSL)
		if err == nil {
			backendConn = c
			break
		}
		p.release(pl, b)
		p.o.Logger.Warn("backend connection failed; trying another server", "api_id", pl.api.ID, "server", b.addr, "error", err)
	}
	held := true
	defer func() {
		if held {
			p.release(pl, b)
		}
	}()
	rec.Backend = b.addr
	// The upgrade's own two hop-by-hop headers go with it.
	head := frontdoor.AppendHead(nil, &x.Reading, &frontdoor.Head{Method: x.Method, Fields: x.Fields, API: x.API, Peer: x.Peer, TLS: x.TLS, Upgrade: true, RequestID: x.RequestID[:]})
	backendConn.SetDeadline(time.Now().Add(p.o.Timeout))
	if _, err := backendConn.Write(head); err != nil {
		backendConn.Close()
		fail(ctx, rec, frontdoor.BadGateway)
		return
	}
	br := bufio.NewReader(backendConn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		backendConn.Close()
		fail(ctx, rec, frontdoor.BadGateway)
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
	head = responseHead(resp)
	rec.Status = http.StatusSwitchingProtocols
	counter := p.counter(pl.api.ID)
	n := &counter.ws
	if x.Req.Scheme == "wss" {
		n = &counter.wss
	}
	n.Add(1)
	b.inflight.Add(1)
	held = false // the relay releases the quota when the connection ends
	apiID := pl.api.ID
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(client net.Conn) {
		defer n.Add(-1)
		defer b.inflight.Add(-1)
		defer p.release(pl, b)
		defer backendConn.Close()
		client.SetDeadline(time.Time{})
		if _, err := client.Write(head); err != nil {
			return
		}
		// The byte thresholds are read from the live API at every chunk, so
		// a change applies to open connections at once.
		in := func() units.Rate { return p.flowControl(apiID).BytesInThreshold }
		out := func() units.Rate { return p.flowControl(apiID).BytesOutThreshold }
		relay(client, backendConn, br, in, out, p.o.Clock)
	})
}

// flowControl returns an API's current flow control.
func (p *Proxy) flowControl(apiID string) apidef.FlowControl {
	if pl := (*p.pools.Load())[apiID]; pl != nil {
		return pl.api.FlowControl
	}
	return apidef.FlowControl{}
}

func (p *Proxy) dialBackend(b *backend, ssl bool) (net.Conn, error) {
	d := net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	if !ssl {
		return d.Dial("tcp", b.addr)
	}
	tc := b.client.TLSConfig
	return tls.DialWithDialer(&d, "tcp", b.addr, tc)
}

// responseHead re-serializes the backend's 101 answer as it sent it.
func responseHead(resp *http.Response) []byte {
	var buf bytes.Buffer
	buf.WriteString("HTTP/1.1 101 Switching Protocols\r\n")
	resp.Header.Write(&buf)
	buf.WriteString("\r\n")
	return buf.Bytes()
}

// relay copies both ways until either side ends, then closes both, holding
// each direction to its byte rate (bytes_in_threshold: client to backend;
// bytes_out_threshold: backend to client). Bytes the backend sent right
// after its 101 (already buffered) go first.
func relay(client, backend net.Conn, backendBuf *bufio.Reader, in, out func() units.Rate, clock flow.Clock) {
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
		flow.CopyThrottled(backend, client, in, clock)
		closeBoth()
	}()
	flow.CopyThrottled(client, backendBuf, out, clock)
	closeBoth()
	<-done
}
