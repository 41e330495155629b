//go:build linux

package evloop

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"testing"
	"time"
)

// echo is a handler that writes back what it reads, and panics on "boom".
type echo struct {
	l  *Loop
	fd int
}

func (e *echo) Event(ev uint32) {
	var b [4096]byte
	for {
		n, errno := Read(e.fd, b[:])
		if errno == syscall.EAGAIN {
			return
		}
		if errno != 0 || n == 0 {
			e.l.Close(e.fd)
			return
		}
		if string(b[:n]) == "boom" {
			panic("boom")
		}
		Write(e.fd, b[:n])
	}
}

type acceptor struct {
	l  *Loop
	ln int
}

func (a acceptor) Event(uint32) {
	fd, peer, err := Accept(a.ln)
	if err != nil {
		return
	}
	if !peer.IsLoopback() {
		panic("peer " + peer.String())
	}
	a.l.Add(fd, &echo{l: a.l, fd: fd})
}

func startEcho(t *testing.T) (string, chan any) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fd, err := ListenerFD(ln.(*net.TCPListener))
	addr := ln.Addr().String()
	ln.Close()
	if err != nil {
		t.Fatal(err)
	}
	l, err := New()
	if err != nil {
		t.Fatal(err)
	}
	panics := make(chan any, 4)
	l.OnPanic = func(h Handler, v any) {
		panics <- v
		if e, ok := h.(*echo); ok {
			l.Close(e.fd)
		}
	}
	if err := l.AddListener(fd, acceptor{l: l, ln: fd}); err != nil {
		t.Fatal(err)
	}
	go l.Run(func(int64) int64 { return 0 })
	t.Cleanup(func() {
		l.Stop()
		<-l.Done()
		l.Release()
		syscall.Close(fd)
	})
	running := make(chan struct{})
	l.Post(func() { close(running) })
	select {
	case <-running:
	case <-time.After(5 * time.Second):
		t.Fatal("the loop never ran")
	}
	return addr, panics
}

func TestEchoAndPanic(t *testing.T) {
	addr, panics := startEcho(t)
	a, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	a.SetDeadline(time.Now().Add(5 * time.Second))
	big := make([]byte, 1<<20)
	for i := range big {
		big[i] = byte(i)
	}
	go a.Write(big)
	got := make([]byte, len(big))
	if _, err := io.ReadFull(a, got); err != nil || string(got) != string(big) {
		t.Fatalf("echo: %v", err)
	}
	// A panicking handler is reported and its connection closed; the loop
	// serves on.
	b, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	b.SetDeadline(time.Now().Add(5 * time.Second))
	b.Write([]byte("boom"))
	if v := <-panics; v != "boom" {
		t.Fatalf("panic %v", v)
	}
	if _, err := b.Read(make([]byte, 1)); err == nil {
		t.Fatal("the panicking connection stayed open")
	}
	a.Write([]byte("still there"))
	buf := make([]byte, 11)
	if _, err := io.ReadFull(a, buf); err != nil || string(buf) != "still there" {
		t.Fatalf("after a panic: %q %v", buf, err)
	}
}

func TestDialRefused(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	ap := netip.MustParseAddrPort(ln.Addr().String())
	ln.Close()
	fd, err := Dial(ap)
	if err != nil {
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatal(err)
		}
		return
	}
	defer syscall.Close(fd)
	// Wait for the connect to end.
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := ConnectError(fd)
		if errors.Is(err, syscall.ECONNREFUSED) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("connect to a closed port: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestReadWriteErrors(t *testing.T) {
	if _, e := Read(-1, make([]byte, 1)); e != syscall.EBADF {
		t.Fatalf("read: %v", e)
	}
	if _, e := Read(0, nil); e != syscall.ENOBUFS {
		t.Fatalf("read into nothing: %v", e)
	}
	if n, e := Write(-1, nil); n != 0 || e != 0 {
		t.Fatalf("empty write: %d %v", n, e)
	}
}

func TestPost(t *testing.T) {
	l, err := New()
	if err != nil {
		t.Fatal(err)
	}
	go l.Run(func(int64) int64 { return 0 }) // no tick: only the post wakes it
	ran := make(chan int, 10)
	for i := 0; i < 10; i++ {
		go l.Post(func() { ran <- i })
	}
	seen := map[int]bool{}
	for range 10 {
		select {
		case i := <-ran:
			seen[i] = true
		case <-time.After(5 * time.Second):
			t.Fatalf("posted work did not run: %v", seen)
		}
	}
	if len(seen) != 10 {
		t.Fatalf("ran %v", seen)
	}
	// Work posted while the loop stops either runs as it exits or is
	// refused; after it finished, it is refused.
	l.Stop()
	accepted := l.Post(func() { ran <- -1 })
	<-l.Done()
	if accepted {
		select {
		case <-ran:
		default:
			t.Fatal("work accepted at the stop never ran")
		}
	}
	if l.Post(func() { t.Error("work posted after the end ran") }) {
		t.Fatal("a finished loop accepted work")
	}
	l.Release()
}

func TestStopWakesAnIdleLoop(t *testing.T) {
	l, err := New()
	if err != nil {
		t.Fatal(err)
	}
	// Idle is asked after the loop has checked for a stop and just before
	// it waits without a timeout: a Stop from then on must wake the wait
	// itself, since the loop does not look at the flag again first.
	waiting := make(chan struct{})
	var once sync.Once
	l.Idle = func() bool {
		once.Do(func() { close(waiting) })
		return true
	}
	go l.Run(func(int64) int64 { return 0 })
	select {
	case <-waiting:
	case <-time.After(5 * time.Second):
		t.Fatal("the loop never asked whether it is idle")
	}
	l.Stop()
	select {
	case <-l.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("an idle loop did not stop")
	}
	l.Release()
}

// TestTickWhenAsked: the loop has no timer of its own; tick runs when a
// time asked for with At (by a handler, posted work, or tick's own answer)
// has come, never before it, until tick asks for nothing more.
func TestTickWhenAsked(t *testing.T) {
	l, err := New()
	if err != nil {
		t.Fatal(err)
	}
	type tick struct{ asked, now int64 }
	ticks := make(chan tick, 10)
	var asked int64
	n := 0
	go l.Run(func(now int64) int64 {
		ticks <- tick{asked, now}
		if n++; n == 3 {
			return 0
		}
		asked = now + int64(2*time.Millisecond)
		return asked
	})
	l.Post(func() {
		asked = l.Now + int64(time.Millisecond)
		l.At(asked)
		l.At(0) // asks for nothing: the earlier time stands
	})
	for i := range 3 {
		select {
		case tk := <-ticks:
			if tk.now < tk.asked {
				t.Fatalf("tick %d at %d, before the %d asked for", i, tk.now, tk.asked)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("tick %d never came", i)
		}
	}
	// tick asked for nothing more: work posted now finds no tick came
	// meanwhile, and the loop still serves.
	done := make(chan int, 1)
	l.Post(func() { done <- len(ticks) })
	if got := <-done; got != 0 {
		t.Fatalf("got %d more ticks, want 0", got)
	}
	l.Stop()
	<-l.Done()
	l.Release()
}
