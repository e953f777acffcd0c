package mux

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portmux/portmux/internal/testtool"
)

// Regression tests for faults a review found.

// TestHandlerReleasesPendingSlot: MaxPending bounds sniffing, not the life
// of connections in a Handler.
func TestHandlerReleasesPendingSlot(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	m := start(t, func(m *Mux) {
		m.MaxPending = 2
		m.HandleFunc("hold", HTTP1(), func(c *Conn) {
			<-release
			c.Close()
		})
		m.HandleFunc("other", SSH(), echoHandler("other"))
	})
	for range 2 {
		c, err := net.Dial("tcp", m.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	}
	waitFor(t, func() bool { return m.Stats().Routed["hold"] == 2 })
	if got := exchange(t, m.Addr(), "SSH-2.0-x\r\n"); !strings.HasPrefix(got, "other:") {
		t.Fatalf("with 2 connections in a Handler, a third got %q", got)
	}
}

// TestWriteToDoesNotBlockClose: a WriteTo stuck writing the replay must not
// keep Close from returning.
func TestWriteToDoesNotBlockClose(t *testing.T) {
	m := start(t, func(m *Mux) {})
	l := m.Listen("http1", HTTP1())
	_, c := dialRoute(t, m, l, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	pr, pw := io.Pipe() // nobody reads pr: the write blocks
	go c.WriteTo(pw)
	time.Sleep(50 * time.Millisecond)
	closed := make(chan struct{})
	go func() {
		c.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close blocked behind WriteTo")
	}
	pr.Close()
}

// countingConn wraps a *net.TCPConn, as metrics and decoders do.
type countingConn struct {
	*net.TCPConn
	n *atomic.Int64
}

func (c countingConn) Read(p []byte) (int, error) {
	n, err := c.TCPConn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

type countingTCPListener struct {
	net.Listener
	n atomic.Int64
}

func (l *countingTCPListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return countingConn{c.(*net.TCPConn), &l.n}, nil
}

// TestWrapperReadIsUsed: the mux reads through a listener's conn wrapper,
// never around it, even though the wrapper has SyscallConn.
func TestWrapperReadIsUsed(t *testing.T) {
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := &countingTCPListener{Listener: tcp}
	startOn(t, ln, func(m *Mux) { m.HandleFunc("http1", HTTP1(), echoHandler("http1")) })
	req := "GET / HTTP/1.1\r\nHost: a\r\n\r\n"
	if got := exchange(t, tcp.Addr(), req); !strings.HasPrefix(got, "http1:") {
		t.Fatalf("got %q", got)
	}
	if n := ln.n.Load(); n < int64(len(req)) {
		t.Errorf("the wrapper's Read saw %d bytes; want the %d sent", n, len(req))
	}
}

// lateListener hands out a connection only when told, even after Close:
// a connection accepted in the instant the mux stops.
type lateListener struct {
	entered chan struct{}
	release chan net.Conn
	once    sync.Once
}

func (l *lateListener) Accept() (net.Conn, error) {
	l.once.Do(func() { close(l.entered) })
	c, ok := <-l.release
	if !ok {
		return nil, net.ErrClosed
	}
	return c, nil
}
func (l *lateListener) Close() error   { return nil }
func (l *lateListener) Addr() net.Addr { return testtool.PipeAddr{} }

// TestNoHandOffAfterShutdown: a connection accepted as Shutdown stops the
// mux is closed by Serve, not sniffed behind Shutdown's back, and reported
// to OnReject (a caller counting connections must see it end).
func TestNoHandOffAfterShutdown(t *testing.T) {
	l := &lateListener{entered: make(chan struct{}), release: make(chan net.Conn)}
	m := New(l)
	var rejected atomic.Int64
	m.OnReject = func(net.Conn, Reason) { rejected.Add(1) }
	m.HandleFunc("any", Any(), func(c *Conn) { c.Close() })
	served := make(chan error, 1)
	go func() { served <- m.Serve() }()
	<-l.entered
	if err := m.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	client, server := net.Pipe()
	l.release <- server
	if err := <-served; !errors.Is(err, ErrMuxClosed) {
		t.Errorf("Serve: %v", err)
	}
	client.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := client.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("late connection: %v; want it closed", err)
	}
	if m.Stats().Accepted != 0 || rejected.Load() != 1 || m.Stats().Rejected[ReasonShutdown] != 1 {
		t.Errorf("after Shutdown returned: %d accepted, %d reported to OnReject, stats %v; want 0, 1 (shutdown)",
			m.Stats().Accepted, rejected.Load(), m.Stats().Rejected)
	}
	close(l.release)
}

// TestHandlerPanic ends only the connection that panicked.
func TestHandlerPanic(t *testing.T) {
	m := start(t, func(m *Mux) {
		m.HandleFunc("boom", SSH(), func(c *Conn) { panic("boom") })
		m.HandleFunc("http1", HTTP1(), echoHandler("http1"))
	})
	if got := exchange(t, m.Addr(), "SSH-2.0-x\r\n"); got != "" {
		t.Errorf("panicking handler's client got %q; want a close", got)
	}
	if got := exchange(t, m.Addr(), "GET / HTTP/1.1\r\nHost: a\r\n\r\n"); !strings.HasPrefix(got, "http1:") {
		t.Errorf("after a panic the mux answered %q", got)
	}
}

// TestTrustedProxiesMapped: a prefix written as IPv4-mapped IPv6 trusts
// the IPv4 peer it names.
func TestTrustedProxiesMapped(t *testing.T) {
	peer := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 7), Port: 1}
	for _, prefix := range []string{"192.0.2.0/24", "::ffff:192.0.2.0/120"} {
		m := &Mux{TrustedProxies: []netip.Prefix{netip.MustParsePrefix(prefix)}}
		if !m.trusted(addrConn{peer}) {
			t.Errorf("%s does not trust %v", prefix, peer)
		}
	}
	m := &Mux{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}}
	if m.trusted(addrConn{peer}) {
		t.Errorf("198.51.100.0/24 trusts %v", peer)
	}
}

type addrConn struct{ remote net.Addr }

func (c addrConn) RemoteAddr() net.Addr           { return c.remote }
func (addrConn) Read([]byte) (int, error)         { return 0, io.EOF }
func (addrConn) Write(b []byte) (int, error)      { return len(b), nil }
func (addrConn) Close() error                     { return nil }
func (addrConn) LocalAddr() net.Addr              { return nil }
func (addrConn) SetDeadline(time.Time) error      { return nil }
func (addrConn) SetReadDeadline(time.Time) error  { return nil }
func (addrConn) SetWriteDeadline(time.Time) error { return nil }

// TestSetRoutes: new connections see the new routes at once; a Listener
// route that was replaced is closed; SniffTime is set.
func TestSetRoutes(t *testing.T) {
	var old *Listener
	m := start(t, func(m *Mux) {
		old = m.Listen("old", Any())
	})
	got := make(chan time.Duration, 1)
	m.SetRoutes([]Route{
		{Name: "ssh", Match: SSH(), Handler: HandlerFunc(func(c *Conn) {
			got <- c.SniffTime()
			echoHandler("ssh")(c)
		})},
		{Name: "any", Match: Any(), Handler: echoHandler("any")},
	})
	if _, err := old.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("replaced Listener's Accept: %v; want net.ErrClosed", err)
	}
	if got := exchange(t, m.Addr(), "SSH-2.0-x\r\n"); got != `ssh:"SSH-2.0-x\r\n"` {
		t.Errorf("ssh route: %q", got)
	}
	if d := <-got; d <= 0 {
		t.Errorf("SniffTime %v", d)
	}
	if got := exchange(t, m.Addr(), "hello"); got != `any:"hello"` {
		t.Errorf("any route: %q", got)
	}
}
