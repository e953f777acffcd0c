package mux

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/portmux/portmux/internal/testtool"
	"github.com/portmux/portmux/sniff"
)

// startHTTPRoutes runs a Mux with an h2c route and an HTTP/1 route, each
// served by an http.Server whose handler answers "<proto> via <path>".
// The h2c server is returned so that a test can close that route.
func startHTTPRoutes(t *testing.T) (*served, *http.Server, *http.Protocols) {
	t.Helper()
	var h1, h2 *Listener
	m := start(t, func(m *Mux) {
		h2 = m.Listen("h2", HTTP2())
		h1 = m.Listen("http1", HTTP1())
	})
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s via %s", r.Proto, r.URL.Path)
	})
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	srv2 := &http.Server{Handler: handler, Protocols: p}
	srv1 := &http.Server{Handler: handler}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); srv2.Serve(h2) }()
	go func() { defer wg.Done(); srv1.Serve(h1) }()
	t.Cleanup(func() {
		srv1.Close()
		srv2.Close()
		wg.Wait()
	})
	return m, srv2, p
}

func TestHTTPServersOnRoutes(t *testing.T) {
	m, srv2, p := startHTTPRoutes(t)
	h2 := m.loadRoutes()[0].ln

	tr := &http.Transport{Protocols: p}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get("http://" + m.Addr().String() + "/two")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "HTTP/2.0 via /two" {
		t.Errorf("h2c route answered %q", b)
	}
	resp, err = http.Get("http://" + m.Addr().String() + "/one")
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "HTTP/1.1 via /one" {
		t.Errorf("http1 route answered %q", b)
	}
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()

	// Closing one route's listener closes only that route.
	srv2.Close()
	if _, err := h2.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept on closed route: %v; want net.ErrClosed", err)
	}
	resp, err = http.Get("http://" + m.Addr().String() + "/still")
	if err != nil {
		t.Fatalf("http1 after closing h2: %v", err)
	}
	resp.Body.Close()
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	if got := exchange(t, m.Addr(), sniff.Preface); got != "" {
		t.Errorf("closed route's protocol got %q; want a close", got)
	}
	if n := m.Stats().Rejected[ReasonRouteClosed]; n != 1 {
		t.Errorf("route_closed = %d; want 1", n)
	}
}

// TestQueueFull: a connection that finds its route's queue full waits up to
// SniffTimeout for room, then is closed (ReasonQueueFull); the queued one
// is kept.
func TestQueueFull(t *testing.T) {
	m := start(t, func(m *Mux) {
		m.QueueLen = 1
		m.SniffTimeout = 200 * time.Millisecond
	})
	l := m.Listen("http1", HTTP1())
	req := "GET / HTTP/1.1\r\nHost: a\r\n\r\n"
	first, err := net.Dial("tcp", m.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	io.WriteString(first, req)
	waitFor(t, func() bool { return m.Stats().Routed["http1"] == 1 })
	if got := exchange(t, m.Addr(), req); got != "" {
		t.Errorf("second connection got %q; want a close", got)
	}
	if n := m.Stats().Rejected[ReasonQueueFull]; n != 1 {
		t.Errorf("queue_full = %d; want 1", n)
	}
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

// A Listener reached through a wrapping Handler (the daemon's page route):
// Close says it closes "every route Listener (with the connections queued
// on it)", but the queued connection stays open and keeps its MaxConns slot.
func TestCloseClosesEveryListenersQueue(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	m := new(Mux)
	m.MaxConns = 10
	l := m.NewListener("page")
	m.HandleFunc("wrapped", Any(), func(ctx context.Context, c net.Conn) error {
		return l.ServeConn(ctx, c) // e.g. metrics around a Listener
	})
	go m.Serve(ln)
	c := testtool.Dial(t, ln.Addr().String(), "x")
	defer c.Close()
	waitFor(t, func() bool { return len(l.ch) == 1 })
	m.Close()
	if _, err := l.Accept(); err == nil {
		t.Fatal("Accept after Close succeeded")
	}
	c.SetReadDeadline(time.Now().Add(time.Second))
	var b [1]byte
	if _, err := c.Read(b[:]); err == nil || isTimeout(err) {
		t.Errorf("queued connection still open after Close (read: %v); MaxConns slots in use: %d", err, m.connSlots.inUse())
	}
	l.Close()
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// A connection decided before Shutdown but waiting for room in a full
// route queue gets Shutdown's "interrupt the sniff" read deadline, and is
// then handed to the server with that deadline in the past.
// TestShutdownLeavesQueuedDeadlines: a connection decided before
// Shutdown and waiting for room in its route's queue is handed over with
// no deadline of the mux's (a review found it poisoned by Shutdown's
// interruption of sniffs).
func TestShutdownLeavesQueuedDeadlines(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	m := new(Mux)
	m.QueueLen = 1
	l := m.Listen("any", Any())
	go m.Serve(ln)
	defer m.Close()
	c1 := testtool.Dial(t, ln.Addr().String(), "1")
	defer c1.Close()
	waitFor(t, func() bool { return len(l.ch) == 1 })
	c2 := testtool.Dial(t, ln.Addr().String(), "2")
	defer c2.Close()
	time.Sleep(100 * time.Millisecond) // c2 waits in waitRoom
	go m.Shutdown(context.Background())
	time.Sleep(100 * time.Millisecond)
	s1, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s1.Close()
	s2, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	c2.Write([]byte("more"))
	// Not a deadline of the test's own: that would replace the one Shutdown
	// must not have left.
	b := make([]byte, len("2more"))
	if _, err := io.ReadFull(s2, b); err != nil || string(b) != "2more" {
		t.Errorf("read of a connection handed off during Shutdown: %q, %v", b, err)
	}
}
