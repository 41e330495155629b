//go:build linux && !ase_portable

package rawio

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// pair returns a wrapped server-side connection and its plain client peer.
func pair(t *testing.T) (*Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peer, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c, err := Listener{ln}.Accept()
	if err != nil {
		t.Fatal(err)
	}
	w, ok := c.(*Conn)
	if !ok {
		t.Fatalf("Accept returned %T, want *rawio.Conn", c)
	}
	t.Cleanup(func() { w.Close(); peer.Close() })
	return w, peer
}

// TestRoundTrip moves more than the socket buffers hold both ways at once,
// so that reads and writes wait on the poller (EAGAIN) many times.
func TestRoundTrip(t *testing.T) {
	c, peer := pair(t)
	data := make([]byte, 8<<20)
	for i := range data {
		data[i] = byte(i * 7)
	}
	errc := make(chan error, 2)
	go func() { _, err := c.Write(data); errc <- err }()
	go func() { _, err := peer.Write(data); errc <- err }()
	got := make([]byte, len(data))
	echo := make([]byte, len(data))
	readc := make(chan error, 1)
	go func() { _, err := io.ReadFull(peer, got); readc <- err }()
	if _, err := io.ReadFull(c, echo); err != nil {
		t.Fatalf("wrapped read: %v", err)
	}
	if err := <-readc; err != nil {
		t.Fatalf("peer read: %v", err)
	}
	for range 2 {
		if err := <-errc; err != nil {
			t.Fatalf("write: %v", err)
		}
	}
	if !bytes.Equal(got, data) || !bytes.Equal(echo, data) {
		t.Fatal("bytes differ after the round trip")
	}
}

func TestEOF(t *testing.T) {
	c, peer := pair(t)
	peer.Write([]byte("last"))
	peer.Close()
	b, err := io.ReadAll(c)
	if err != nil || string(b) != "last" {
		t.Fatalf("ReadAll = %q, %v; want \"last\", nil", b, err)
	}
	if n, err := c.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("Read after EOF = %d, %v; want 0, io.EOF", n, err)
	}
	if n, err := c.Read(nil); n != 0 || err != nil {
		t.Fatalf("Read(nil) = %d, %v; want 0, nil", n, err)
	}
}

func TestReadDeadline(t *testing.T) {
	c, peer := pair(t)
	c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	_, err := c.Read(make([]byte, 10))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read past its deadline = %v; want a timeout", err)
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "read" || oe.Net != "tcp" {
		t.Fatalf("error %#v; want a *net.OpError for read on tcp", err)
	}
	// The connection stays usable once the deadline is lifted.
	c.SetReadDeadline(time.Time{})
	peer.Write([]byte("on"))
	if b, err := io.ReadAll(io.LimitReader(c, 2)); string(b) != "on" || err != nil {
		t.Fatalf("Read after the deadline was lifted = %q, %v", b, err)
	}
}

func TestWriteDeadline(t *testing.T) {
	c, _ := pair(t) // nobody reads: the socket buffers fill up
	c.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
	n, err := c.Write(make([]byte, 64<<20))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Write past its deadline = %d, %v; want a timeout", n, err)
	}
	if n < 0 || n >= 64<<20 {
		t.Fatalf("Write reported %d bytes written; want the part the buffers took", n)
	}
}

func TestCloseUnblocksRead(t *testing.T) {
	c, peer := pair(t)
	errc := make(chan error, 1)
	go func() { _, err := c.Read(make([]byte, 10)); errc <- err }()
	// Close while the Read waits in the poller, not before it began (a
	// closed Conn refuses a Read at once, whatever the waiting does).
	waitParked(t, "rawio.(*Conn).Read", "IO wait")
	go c.Close() // a Close that waited for the Read would hang the test, not fail it
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Read on a closed conn = %v; want net.ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		peer.Close() // ends the Read, and a Close waiting for it
		t.Fatal("Read still blocked after Close")
	}
}

func TestWriteToReset(t *testing.T) {
	c, peer := pair(t)
	peer.(*net.TCPConn).SetLinger(0) // close with RST
	peer.Close()
	// The reset arrives when it does: write until it is seen.
	var err error
	for deadline := time.Now().Add(10 * time.Second); err == nil && time.Now().Before(deadline); {
		if _, err = c.Write([]byte("x")); err == nil {
			time.Sleep(time.Millisecond)
		}
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "write" || !(errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)) {
		t.Fatalf("Write to a reset peer = %v; want a write *net.OpError with ECONNRESET or EPIPE", err)
	}
}

func TestWrapLeavesOthers(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if Wrap(a) != a {
		t.Fatal("Wrap changed a connection that is not TCP")
	}
}

func BenchmarkReadWrite(b *testing.B) {
	for _, raw := range []bool{false, true} {
		name := "net"
		if raw {
			name = "raw"
		}
		b.Run(name, func(b *testing.B) {
			ln, _ := net.Listen("tcp", "127.0.0.1:0")
			defer ln.Close()
			peer, _ := net.Dial("tcp", ln.Addr().String())
			defer peer.Close()
			c, _ := ln.Accept()
			if raw {
				c = Wrap(c)
			}
			defer c.Close()
			go io.Copy(peer, peer) // echo
			msg, buf := make([]byte, 256), make([]byte, 256)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, err := c.Write(msg); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(c, buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// waitParked waits until a goroutine running fn is parked in state (as
// runtime.Stack names it, e.g. "IO wait").
func waitParked(t *testing.T, fn, state string) {
	t.Helper()
	buf := make([]byte, 1<<20)
	for deadline := time.Now().Add(10 * time.Second); ; {
		for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
			head, _, _ := strings.Cut(g, "\n")
			if strings.Contains(head, "["+state) && strings.Contains(g, fn+"(") {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no goroutine in %s is parked in %q", fn, state)
		}
		time.Sleep(time.Millisecond)
	}
}
