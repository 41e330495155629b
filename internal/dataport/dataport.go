// Package dataport runs ASE's data ports: http_ws_port in the clear and
// https_wss_port over TLS, on fasthttp, serving the inline proxy or the
// sideband protocols. In inline mode a Fast data path (the proxy's event
// loops) owns the plain port and hands fasthttp the connections it leaves.
package dataport

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/ase-project/ase/internal/frontdoor"
	"github.com/ase-project/ase/internal/rawio"
)

// Options configure the data ports.
type Options struct {
	Address   string // listen_address
	HTTPPort  int    // http_ws_port
	HTTPSPort int    // https_wss_port; 0 = off
	CertFile  string // tls_cert_file; empty = a self-signed certificate
	KeyFile   string // tls_key_file
	DataDir   string // where a self-signed certificate is kept
	Health    bool   // enable_ase_health: GET /ase answers 200
	KeepAlive bool
	// MaxBody bounds request bodies (sideband calls carry the client's).
	MaxBody int
	// MaxHeader bounds a request's header section (431 past it).
	MaxHeader    int
	ReadTimeout  time.Duration
	WriteTimeout time.Duration
	IdleTimeout  time.Duration
	Log          *slog.Logger
	// Fast, when set, serves the plain port (inline mode's event loops):
	// it is given the listening socket and hands back, through
	// FastOptions.Handoff, the connections it leaves to fasthttp.
	Fast Fast
	// Refused, when set, is told of each request the general server could
	// not read and answered itself (status and the access log's reason),
	// so that it is logged like every other answer.
	Refused func(peer net.Addr, status int, reason string)
	// Accepted, when set, is told of each connection the general server
	// accepts (the fast path's are its own to count).
	Accepted func()
}

// Fast starts a data path that owns the plain port's socket.
type Fast func(FastOptions) (FastServer, error)

// FastOptions are what a Fast data path is given.
type FastOptions struct {
	Listener int // the listening socket, non-blocking, owned (and closed, even on failure) by the fast path
	// Handoff gives a connection to the fasthttp server, which serves it
	// from then on; its unread bytes must already be in front of it.
	Handoff                                func(net.Conn)
	Health                                 bool
	KeepAlive                              bool
	MaxBody, MaxHeader                     int
	ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	Log                                    *slog.Logger
}

// FastTLS is a fast path that serves the TLS port too (the event loops):
// it is given the port's listener, to accept from until Shutdown, and the
// TLS configuration. The connections it leaves to fasthttp come through
// FastOptions.Handoff in their TLS session, telling fasthttp so by the
// methods of *tls.Conn that it looks for (Handshake, ConnectionState).
type FastTLS interface {
	ServeTLS(ln net.Listener, cfg *tls.Config)
}

// FastServer is a running fast path.
type FastServer interface {
	// Shutdown stops accepting, lets exchanges in flight finish (until
	// ctx ends) and closes every connection.
	Shutdown(ctx context.Context) error
}

// Ports are the running data ports.
type Ports struct {
	servers   []*fasthttp.Server
	listeners []net.Listener
	log       *slog.Logger
	fast      FastServer
}

// Listen binds the data ports (so a port in use fails start-up at once)
// and returns them ready to Serve.
func Listen(o Options, handler fasthttp.RequestHandler) (*Ports, error) {
	p := &Ports{log: o.Log}
	handler = guard(handler, o.Log)
	if o.Health {
		inner := handler
		handler = func(ctx *fasthttp.RequestCtx) {
			if string(ctx.Path()) == "/ase" && (ctx.IsGet() || ctx.IsHead()) {
				ctx.SetContentType("application/json")
				ctx.SetBodyString(`{"status":"ok"}`)
				return
			}
			inner(ctx)
		}
	}
	newServer := func() *fasthttp.Server {
		return &fasthttp.Server{
			Handler:                       handler,
			Name:                          "ase",
			NoDefaultServerHeader:         true,
			NoDefaultDate:                 false,
			DisableHeaderNamesNormalizing: false,
			ReadTimeout:                   o.ReadTimeout,
			WriteTimeout:                  o.WriteTimeout,
			IdleTimeout:                   o.IdleTimeout,
			MaxRequestBodySize:            o.MaxBody,
			DisableKeepalive:              !o.KeepAlive,
			ReadBufferSize:                o.MaxHeader,
			CloseOnShutdown:               true,
			Logger:                        fasthttpLogger{o.Log},
			ErrorHandler:                  errorReply(o.Refused),
		}
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(o.Address, strconv.Itoa(o.HTTPPort)))
	if err != nil {
		return nil, fmt.Errorf("http_ws_port: %w", err)
	}
	p.servers = append(p.servers, newServer())
	if o.Fast != nil {
		fd, err := listenerFD(ln.(*net.TCPListener))
		ln.Close()
		if err != nil {
			return nil, fmt.Errorf("http_ws_port: %w", err)
		}
		hl := newHandoff(ln.Addr())
		fast, err := o.Fast(FastOptions{Listener: fd, Handoff: hl.give, Health: o.Health, KeepAlive: o.KeepAlive,
			MaxBody: o.MaxBody, MaxHeader: o.MaxHeader, ReadTimeout: o.ReadTimeout, WriteTimeout: o.WriteTimeout, IdleTimeout: o.IdleTimeout, Log: o.Log})
		if err != nil {
			return nil, fmt.Errorf("http_ws_port: %w", err) // the fast path closed fd
		}
		p.fast = fast
		p.listeners = append(p.listeners, guardListener{Listener: hl})
	} else {
		p.listeners = append(p.listeners, guardListener{Listener: rawio.Listener{Listener: ln}, accepted: o.Accepted})
	}
	if o.HTTPSPort != 0 {
		cert, err := certificate(o)
		if err != nil {
			p.closeListeners()
			return nil, err
		}
		tln, err := net.Listen("tcp", net.JoinHostPort(o.Address, strconv.Itoa(o.HTTPSPort)))
		if err != nil {
			p.closeListeners()
			return nil, fmt.Errorf("https_wss_port: %w", err)
		}
		cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		if ft, ok := p.fast.(FastTLS); ok {
			ft.ServeTLS(tln, cfg)
		} else {
			srv := newServer()
			srv.TLSConfig = cfg
			p.servers = append(p.servers, srv)
			p.listeners = append(p.listeners, guardListener{Listener: tls.NewListener(rawio.Listener{Listener: tln}, srv.TLSConfig), accepted: o.Accepted})
		}
	}
	return p, nil
}

// closeListeners undoes a Listen that fails half-way.
func (p *Ports) closeListeners() {
	if p.fast != nil {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		p.fast.Shutdown(ctx)
	}
	for _, ln := range p.listeners {
		ln.Close()
	}
}

// Addrs returns the bound addresses, HTTP first.
func (p *Ports) Addrs() []net.Addr {
	out := make([]net.Addr, len(p.listeners))
	for i, ln := range p.listeners {
		out[i] = ln.Addr()
	}
	return out
}

// Serve serves every port until Shutdown; it returns the first error.
func (p *Ports) Serve() error {
	errc := make(chan error, len(p.servers))
	for i := range p.servers {
		srv, ln := p.servers[i], p.listeners[i]
		go func() { errc <- srv.Serve(ln) }()
	}
	for range p.servers {
		if err := <-errc; err != nil {
			return err
		}
	}
	return nil
}

// Shutdown stops accepting, lets requests in flight finish (until ctx
// ends) and closes the ports.
func (p *Ports) Shutdown(ctx context.Context) error {
	var errs []error
	if p.fast != nil {
		if err := p.fast.Shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	for _, srv := range p.servers {
		if err := srv.ShutdownWithContext(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// certificate loads tls_cert_file/tls_key_file, or makes (once, kept in
// data_dir/tls) a self-signed certificate so that HTTPS works out of the
// box, as the vendor's ships one; start-up warns about it.
func certificate(o Options) (tls.Certificate, error) {
	if o.CertFile != "" {
		c, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return c, fmt.Errorf("tls_cert_file/tls_key_file: %w", err)
		}
		return c, nil
	}
	dir := filepath.Join(o.DataDir, "tls")
	certPath, keyPath := filepath.Join(dir, "selfsigned.crt"), filepath.Join(dir, "selfsigned.key")
	if c, err := tls.LoadX509KeyPair(certPath, keyPath); err == nil {
		o.Log.Warn("https_wss_port serves a self-signed certificate; set tls_cert_file and tls_key_file", "cert", certPath)
		return c, nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	host, _ := os.Hostname()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "ase self-signed", Organization: []string{"ASE"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().AddDate(5, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost", host},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return tls.Certificate{}, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return tls.Certificate{}, err
	}
	if err := os.WriteFile(keyPath, keyPEM, 0o600); err != nil {
		return tls.Certificate{}, err
	}
	if err := os.WriteFile(certPath, certPEM, 0o644); err != nil {
		return tls.Certificate{}, err
	}
	o.Log.Warn("https_wss_port serves a self-signed certificate made now; set tls_cert_file and tls_key_file", "cert", certPath)
	return tls.X509KeyPair(certPEM, keyPEM)
}

// fasthttpLogger routes fasthttp's messages to the management log at
// debug level: they are per-connection noise (timeouts, resets).
type fasthttpLogger struct{ log *slog.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) {
	l.log.Debug(fmt.Sprintf(format, args...))
}

// guard keeps one request's panic from taking the process (and every other
// client) down: fasthttp does not recover handlers. The request gets a 500
// and the panic is logged with its stack.
func guard(next fasthttp.RequestHandler, log *slog.Logger) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		defer func() {
			if v := recover(); v != nil {
				log.Error("data path panic", "panic", fmt.Sprint(v), "path", string(ctx.Path()), "stack", string(debug.Stack()))
				ctx.ResetBody()
				ctx.SetStatusCode(fasthttp.StatusInternalServerError)
				ctx.SetConnectionClose()
			}
		}()
		next(ctx)
	}
}

// errorReply answers a request fasthttp could not read with the status
// that says why (fasthttp's default is 400 for all of them), from the
// front door's table, and closes the connection: after a framing error
// nothing more on it can be trusted. refused (if set) logs it.
func errorReply(refused func(net.Addr, int, string)) func(*fasthttp.RequestCtx, error) {
	return func(ctx *fasthttp.RequestCtx, err error) {
		f := frontdoor.BadRequest
		var ne net.Error
		var small *fasthttp.ErrSmallBuffer
		switch {
		case errors.Is(err, fasthttp.ErrBodyTooLarge):
			f = frontdoor.TooLarge
		case errors.As(err, &small):
			f = frontdoor.HeaderTooLarge
		case errors.Is(err, fasthttp.ErrUnsupportedTransferEncoding):
			f = frontdoor.NotImplemented
		case errors.Is(err, errBareLF):
		case errors.As(err, &ne) && ne.Timeout():
			f = frontdoor.RequestTimeout
		}
		r := f.Reply()
		ctx.SetConnectionClose()
		ctx.SetStatusCode(r.Code)
		ctx.SetContentType("text/plain; charset=utf-8")
		ctx.SetBodyString(r.Body)
		if refused != nil {
			refused(ctx.RemoteAddr(), r.Code, f.LogReason())
		}
	}
}

// errBareLF refuses a request head with a line ended by a bare LF.
var errBareLF = errors.New("a request head line ends with a bare LF")

// guardListener wraps the general server's connections in lfGuard, and
// counts them (accepted, when set).
type guardListener struct {
	net.Listener
	accepted func()
}

func (l guardListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if l.accepted != nil {
		l.accepted()
	}
	g := &lfGuard{Conn: c, head: true}
	if tc, ok := c.(tlsConn); ok {
		return tlsGuard{g, tc}, nil // fasthttp tells TLS by these methods
	}
	return g, nil
}

// tlsConn is what fasthttp looks for to tell a TLS connection: a *tls.Conn,
// or a TLS connection a fast path hands over (FastTLS).
type tlsConn interface {
	Handshake() error
	ConnectionState() tls.ConnectionState
}

// tlsGuard is an lfGuard over TLS.
type tlsGuard struct {
	*lfGuard
	tc tlsConn
}

func (g tlsGuard) Handshake() error                     { return g.tc.Handshake() }
func (g tlsGuard) ConnectionState() tls.ConnectionState { return g.tc.ConnectionState() }

// lfGuard refuses at once a request head whose lines end with a bare LF:
// fasthttp would wait for a CRLF that never comes and answer 408 only
// after read_timeout (the event loops refuse the same heads at once). It
// watches the bytes of each head that arrives after the previous answer
// (a head pipelined behind a body still gets its 408 in time).
type lfGuard struct {
	net.Conn
	head  bool // the next bytes read belong to a request head
	off   bool // the connection switched protocols: no more HTTP on it
	last  byte // the last byte looked at
	line  int  // bytes of the current line so far
	lines int  // non-empty lines of the head so far
}

func (g *lfGuard) Read(b []byte) (int, error) {
	n, err := g.Conn.Read(b)
	if !g.head || g.off || n == 0 {
		return n, err
	}
	data := b[:n]
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			g.line += len(data)
			g.last = data[len(data)-1]
			break
		}
		prev := g.last
		if i > 0 {
			prev = data[i-1]
		}
		if prev != '\r' {
			return n, errBareLF
		}
		if g.line+i == 1 { // an empty line
			if g.lines > 0 {
				g.head = false // the head ended; a body may follow
				break
			}
		} else {
			g.lines++
		}
		g.line, g.last = 0, '\n'
		data = data[i+1:]
	}
	return n, err
}

func (g *lfGuard) Write(b []byte) (int, error) {
	// An answer (not an interim 1xx) ends the exchange: what comes next
	// is a head. After a 101, the bytes are another protocol's.
	switch {
	case g.off:
	case bytes.HasPrefix(b, []byte("HTTP/1.1 101")):
		g.off = true
	case !bytes.HasPrefix(b, []byte("HTTP/1.1 1")):
		g.head, g.last, g.line, g.lines = true, 0, 0, 0
	}
	return g.Conn.Write(b)
}

// handoff is the listener the plain port's fasthttp server accepts from
// when a fast path owns the socket: it yields the connections the fast
// path hands over.
type handoff struct {
	addr net.Addr
	ch   chan net.Conn
	mu   sync.Mutex
	done chan struct{}
	shut bool
}

func newHandoff(addr net.Addr) *handoff {
	return &handoff{addr: addr, ch: make(chan net.Conn, 256), done: make(chan struct{})}
}

// give passes c to the server; once the server has stopped, c is closed.
func (h *handoff) give(c net.Conn) {
	select {
	case h.ch <- c:
	case <-h.done:
		c.Close()
	}
}

func (h *handoff) Accept() (net.Conn, error) {
	select {
	case c := <-h.ch:
		return c, nil
	case <-h.done:
		return nil, net.ErrClosed
	}
}

func (h *handoff) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.shut {
		h.shut = true
		close(h.done)
	}
	return nil
}

func (h *handoff) Addr() net.Addr { return h.addr }
