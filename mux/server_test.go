package mux

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portmux/portmux/internal/testtool"
)

func TestLifecycle(t *testing.T) {
	t.Run("Accept after Close without Serve", func(t *testing.T) {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		m := new(Mux)
		l := m.Listen("any", Any())
		errc := make(chan error, 1)
		go func() { _, err := l.Accept(); errc <- err }()
		m.Close()
		if err := <-errc; !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept: %v; want net.ErrClosed", err)
		}
		if err := m.Serve(ln); !errors.Is(err, ErrClosed) {
			t.Errorf("Serve after Close: %v", err)
		}
	})
	t.Run("silent client does not delay Close", func(t *testing.T) {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		m := new(Mux)
		m.SniffTimeout = time.Hour
		m.Listen("http1", HTTP1())
		served := make(chan error, 1)
		go func() { served <- m.Serve(ln) }()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		waitFor(t, func() bool { return m.Stats().Accepted == 1 })
		m.Close()
		if err := <-served; !errors.Is(err, ErrClosed) {
			t.Errorf("Serve: %v", err)
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("silent client after Close: %v; want EOF", err)
		}
	})
	t.Run("Shutdown waits for handlers and drains queues", func(t *testing.T) {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		m := new(Mux)
		release := make(chan struct{})
		inHandler := make(chan struct{})
		m.Handle("slow", SSH(), h(func(c *Conn) {
			close(inHandler)
			<-release
			c.Close()
		}))
		q := m.Listen("http1", HTTP1())
		go m.Serve(ln)
		c1, _ := net.Dial("tcp", ln.Addr().String())
		defer c1.Close()
		io.WriteString(c1, "SSH-2.0-x\r\n")
		<-inHandler
		c2, _ := net.Dial("tcp", ln.Addr().String())
		defer c2.Close()
		io.WriteString(c2, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		waitFor(t, func() bool { return m.Stats().Routed["http1"] == 1 })

		done := make(chan error, 1)
		go func() { done <- m.Shutdown(context.Background()) }()
		select {
		case err := <-done:
			t.Fatalf("Shutdown returned %v with a handler running", err)
		case <-time.After(50 * time.Millisecond):
		}
		close(release)
		if err := <-done; err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		qc, err := q.Accept()
		if err != nil {
			t.Fatalf("queued connection lost in Shutdown: %v", err)
		}
		qc.Close()
		if _, err := q.Accept(); !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept after the queue drained: %v; want net.ErrClosed", err)
		}
	})
	t.Run("Shutdown bounded by ctx", func(t *testing.T) {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		m := new(Mux)
		release := make(chan struct{})
		inHandler := make(chan struct{})
		m.Handle("stuck", Any(), h(func(c *Conn) {
			close(inHandler)
			<-release
			c.Close()
		}))
		go m.Serve(ln)
		c, _ := net.Dial("tcp", ln.Addr().String())
		defer c.Close()
		<-inHandler
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := m.Shutdown(ctx); !errors.Is(err, context.Canceled) {
			t.Errorf("Shutdown: %v; want context.Canceled", err)
		}
		close(release)
	})
}

// flakyListener fails its first n Accepts with a non-closed error.
type flakyListener struct {
	net.Listener
	mu    sync.Mutex
	fails int
}

func (l *flakyListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	if l.fails > 0 {
		l.fails--
		l.mu.Unlock()
		return nil, errors.New("accept: too many open files")
	}
	l.mu.Unlock()
	return l.Listener.Accept()
}

// TestAcceptErrorsBackOff: errors that are not a closed listener neither
// end Serve nor spin; Serve goes on accepting after them.
func TestAcceptErrorsBackOff(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	startOn(t, &flakyListener{Listener: ln, fails: 4}, func(m *Mux) {
		m.Handle("http1", HTTP1(), echoHandler("http1"))
	})
	if got := exchange(t, ln.Addr(), "GET / HTTP/1.1\r\nHost: a\r\n\r\n"); !strings.HasPrefix(got, "http1:") {
		t.Fatalf("after accept errors got %q", got)
	}
}

// TestMaxPending: with every pending slot taken by silent clients, the
// mux stops accepting (the kernel's backlog holds the next client) until
// a slot frees, then serves it.
func TestMaxPending(t *testing.T) {
	m := start(t, func(m *Mux) {
		m.MaxPending = 2
		m.SniffTimeout = time.Hour
		m.Handle("http1", HTTP1(), echoHandler("http1"))
	})
	var silent []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", m.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		silent = append(silent, c)
	}
	waitFor(t, func() bool { return m.Stats().Accepted == 2 })
	got := make(chan string, 1)
	go func() { got <- exchange(t, m.Addr(), "GET / HTTP/1.1\r\nHost: a\r\n\r\n") }()
	time.Sleep(100 * time.Millisecond)
	if n := m.Stats().Accepted; n != 2 {
		t.Fatalf("accepted %d connections with 2 pending slots", n)
	}
	io.WriteString(silent[0], "SSH-2.0-x\r\n") // no route: rejected, slot freed
	if g := <-got; !strings.HasPrefix(g, "http1:") {
		t.Fatalf("waiting client got %q", g)
	}
}

// Regression tests for faults a review found.

// TestHandlerReleasesPendingSlot: MaxPending bounds sniffing, not the life
// of connections in a Handler.
func TestHandlerReleasesPendingSlot(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	m := start(t, func(m *Mux) {
		m.MaxPending = 2
		m.Handle("hold", HTTP1(), h(func(c *Conn) {
			<-release
			c.Close()
		}))
		m.Handle("other", SSH(), echoHandler("other"))
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

func (l *lateListener) Close() error { return nil }

func (l *lateListener) Addr() net.Addr { return testtool.PipeAddr{} }

// TestNoHandOffAfterShutdown: a connection accepted as Shutdown stops the
// mux is closed by Serve, not sniffed behind Shutdown's back, and reported
// to OnReject (a caller counting connections must see it end).
func TestNoHandOffAfterShutdown(t *testing.T) {
	l := &lateListener{entered: make(chan struct{}), release: make(chan net.Conn)}
	m := new(Mux)
	var rejected atomic.Int64
	m.OnReject = func(net.Conn, Reason) { rejected.Add(1) }
	m.Handle("any", Any(), h(func(c *Conn) { c.Close() }))
	served := make(chan error, 1)
	go func() { served <- m.Serve(l) }()
	<-l.entered
	if err := m.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	client, server := net.Pipe()
	l.release <- server
	if err := <-served; !errors.Is(err, ErrClosed) {
		t.Errorf("Serve: %v", err)
	}
	client.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := client.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("late connection: %v; want it closed", err)
	}
	if m.Stats().Accepted != 1 || rejected.Load() != 1 || m.Stats().Rejected[ReasonShutdown] != 1 {
		t.Errorf("after Shutdown returned: %d accepted, %d reported to OnReject, stats %v; want 1, 1 (shutdown)",
			m.Stats().Accepted, rejected.Load(), m.Stats().Rejected)
	}
	close(l.release)
}

// TestHandlerPanic ends only the connection that panicked.
func TestHandlerPanic(t *testing.T) {
	m := start(t, func(m *Mux) {
		m.Handle("boom", SSH(), h(func(c *Conn) { panic("boom") }))
		m.Handle("http1", HTTP1(), echoHandler("http1"))
	})
	if got := exchange(t, m.Addr(), "SSH-2.0-x\r\n"); got != "" {
		t.Errorf("panicking handler's client got %q; want a close", got)
	}
	if got := exchange(t, m.Addr(), "GET / HTTP/1.1\r\nHost: a\r\n\r\n"); !strings.HasPrefix(got, "http1:") {
		t.Errorf("after a panic the mux answered %q", got)
	}
}

// TestServeConn: connections accepted by the caller's own loop are
// sniffed and routed as Serve's are, rejected ones get the mux's answer,
// Shutdown waits for a Handler that ServeConn runs, and a closed Mux
// closes the connection and says so.
func TestServeConn(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var m Mux // the zero value, never given a listener
	m.UpgradeOnly = []string{"websocket"}
	release := make(chan struct{})
	inHandler := make(chan struct{}, 1)
	m.Handle("ssh", SSH(), h(func(c *Conn) {
		inHandler <- struct{}{}
		<-release
		c.Write([]byte("routed " + c.Route()))
		c.Close()
	}))
	served := make(chan error, 4)
	accept := func() {
		c, err := ln.Accept()
		if err != nil {
			served <- err
			return
		}
		served <- m.ServeConn(context.Background(), c)
	}

	// Routed to the Handler, which Shutdown then waits for.
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	go accept()
	client.Write([]byte("SSH-2.0-test\r\n"))
	<-inHandler

	// Rejected with the mux's 426 on this upgrade-only mux.
	plain, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	go accept()
	plain.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	plain.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, _ := io.ReadAll(plain)
	if want := "HTTP/1.1 426 "; len(resp) < len(want) || string(resp[:len(want)]) != want {
		t.Errorf("plain request: %q; want a 426", resp)
	}
	if err := <-served; err != nil {
		t.Errorf("ServeConn of a rejected conn: %v", err)
	}

	shut := make(chan error, 1)
	go func() { shut <- m.Shutdown(context.Background()) }()
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned with a Handler running: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if err := <-served; err != nil {
		t.Errorf("ServeConn of a routed conn: %v", err)
	}
	client.SetReadDeadline(time.Now().Add(10 * time.Second))
	if b, _ := io.ReadAll(client); string(b) != "routed ssh" {
		t.Errorf("routed client got %q", b)
	}

	// Closed: ServeConn closes the conn, as a Handler must.
	late := testtool.Dial(t, ln.Addr().String(), "")
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	if err := m.ServeConn(context.Background(), c); !errors.Is(err, ErrClosed) {
		t.Errorf("ServeConn after Shutdown: %v; want ErrClosed", err)
	}
	if _, err := late.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("client of a refused ServeConn: %v; want EOF", err)
	}
	if n := m.Stats().Rejected[ReasonShutdown]; n != 1 {
		t.Errorf("shutdown rejections %d; want 1", n)
	}
}

// TestZeroValueServesSeveralListeners: a zero Mux serves any number of
// listeners with one set of routes, and Close ends every Serve.
func TestZeroValueServesSeveralListeners(t *testing.T) {
	var m Mux
	m.Handle("http1", HTTP1(), echoHandler("http1"))
	var lns []net.Listener
	served := make(chan error, 2)
	for range 2 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		go func() { served <- m.Serve(ln) }()
	}
	for _, ln := range lns {
		if got := exchange(t, ln.Addr(), "GET / HTTP/1.1\r\nHost: a\r\n\r\n"); !strings.HasPrefix(got, "http1:") {
			t.Errorf("%v: got %q", ln.Addr(), got)
		}
	}
	m.Close()
	for range lns {
		if err := <-served; !errors.Is(err, ErrClosed) {
			t.Errorf("Serve: %v; want ErrClosed", err)
		}
	}
	for _, ln := range lns {
		if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
			t.Errorf("%v still accepts after Close", ln.Addr())
		}
	}
}

type ctxKey struct{}

// TestConnContext: the context from BaseContext and ConnContext reaches
// Handlers and Conn.Context, and Close cancels it.
func TestConnContext(t *testing.T) {
	got := make(chan context.Context, 1)
	var base net.Listener
	m := start(t, func(m *Mux) {
		m.BaseContext = func(l net.Listener) context.Context {
			base = l
			return context.WithValue(context.Background(), ctxKey{}, "base")
		}
		m.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, ctxKey{}, ctx.Value(ctxKey{}).(string)+"+"+c.RemoteAddr().Network())
		}
		m.HandleFunc("any", Any(), func(ctx context.Context, c net.Conn) error {
			if ctx != c.(*Conn).Context() {
				t.Error("the Handler's ctx is not the Conn's Context")
			}
			got <- ctx
			<-ctx.Done()
			return c.Close()
		})
	})
	testtool.Dial(t, m.Addr().String(), "")
	ctx := <-got
	if base == nil || base.Addr().String() != m.Addr().String() {
		t.Errorf("BaseContext got listener %v", base)
	}
	if v := ctx.Value(ctxKey{}); v != "base+tcp" {
		t.Errorf("context value %q; want base+tcp", v)
	}
	if ctx.Err() != nil {
		t.Fatalf("context done before Close: %v", ctx.Err())
	}
	m.Close()
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not cancel the connection's context")
	}
}

// TestCloseClosesHandlerConns: Close reaches connections in Handlers,
// which then return, as http.Server.Close does for its connections.
func TestCloseClosesHandlerConns(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var m Mux
	returned := make(chan error, 1)
	m.HandleFunc("any", Any(), func(ctx context.Context, c net.Conn) error {
		_, err := c.Read(make([]byte, 1)) // the client never writes
		returned <- err
		return err
	})
	go m.Serve(ln)
	client := testtool.Dial(t, ln.Addr().String(), "")
	waitFor(t, func() bool { return m.Stats().Routed["any"] == 1 })
	m.Close()
	select {
	case err := <-returned:
		if err == nil {
			t.Error("the Handler's Read succeeded after Close")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close left a connection in its Handler")
	}
	if _, err := client.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("client after Close: %v; want EOF", err)
	}
}

// TestRegisterOnShutdown: the hooks run when Shutdown begins, so that a
// long-lived Handler can finish and Shutdown return.
func TestRegisterOnShutdown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var m Mux
	goAway := make(chan struct{})
	m.RegisterOnShutdown(func() { close(goAway) })
	m.HandleFunc("session", Any(), func(ctx context.Context, c net.Conn) error {
		<-goAway
		io.WriteString(c, "going away\n")
		return c.Close()
	})
	go m.Serve(ln)
	client := testtool.Dial(t, ln.Addr().String(), "")
	waitFor(t, func() bool { return m.Stats().Routed["session"] == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if b, _ := io.ReadAll(client); string(b) != "going away\n" {
		t.Errorf("client got %q; want the hook's goodbye", b)
	}
}

// TestMaxConns: with MaxConns connections open, the next waits in the
// backlog until one of them is closed, whether a Handler or the server
// behind a route Listener closes it.
func TestMaxConns(t *testing.T) {
	var l *Listener
	m := start(t, func(m *Mux) {
		m.MaxConns = 2
		l = m.Listen("http1", HTTP1())
		m.Handle("ssh", SSH(), echoHandler("ssh"))
	})
	req := "GET / HTTP/1.1\r\nHost: a\r\n\r\n"
	_, c1 := dialRoute(t, m, l, req)
	_, c2 := dialRoute(t, m, l, req)
	got := make(chan string, 1)
	go func() { got <- exchange(t, m.Addr(), "SSH-2.0-x\r\n") }()
	select {
	case g := <-got:
		t.Fatalf("a third connection was served with MaxConns 2 open: %q", g)
	case <-time.After(200 * time.Millisecond):
	}
	if n := m.Stats().Accepted; n != 2 {
		t.Fatalf("accepted %d with MaxConns 2", n)
	}
	c1.Close()
	c1.Close() // a second Close gives back nothing more
	if g := <-got; !strings.HasPrefix(g, "ssh:") {
		t.Fatalf("after a Close the waiting client got %q", g)
	}
	// The Handler closed its connection: room for one more.
	if g := exchange(t, m.Addr(), "SSH-2.0-y\r\n"); !strings.HasPrefix(g, "ssh:") {
		t.Fatalf("after the Handler's close, got %q", g)
	}
	c2.Close()
}

// TestReconfigure: new limits apply at once both ways, and new settings
// reach the connections accepted afterwards.
func TestReconfigure(t *testing.T) {
	m := start(t, func(m *Mux) {
		m.MaxPending = 1
		m.SniffTimeout = time.Hour
		m.Handle("http1", HTTP1(), echoHandler("http1"))
	})
	testtool.Dial(t, m.Addr().String(), "") // silent: holds the only slot
	waitFor(t, func() bool { return m.Stats().Accepted == 1 })
	got := make(chan string, 1)
	go func() { got <- exchange(t, m.Addr(), "GET / HTTP/1.1\r\nHost: a\r\n\r\n") }()
	select {
	case g := <-got:
		t.Fatalf("served past MaxPending 1: %q", g)
	case <-time.After(200 * time.Millisecond):
	}
	cfg := m.Config
	cfg.MaxPending = 10
	cfg.UpgradeOnly = []string{"websocket"}
	m.Reconfigure(cfg)
	if g := <-got; !strings.HasPrefix(g, "http1:") {
		t.Fatalf("after raising MaxPending the waiting client got %q", g)
	}
	// HTTP1 still routes it; an unrouted upgrade-only request now gets 426.
	cfg.SniffTimeout = 100 * time.Millisecond
	m.Reconfigure(cfg)
	m.SetRoutes([]Route{{Name: "ssh", Match: SSH(), Handler: echoHandler("ssh")}})
	if g := exchange(t, m.Addr(), "GET / HTTP/1.1\r\nHost: a\r\n\r\n"); !strings.HasPrefix(g, "HTTP/1.1 426 ") {
		t.Errorf("after Reconfigure with UpgradeOnly: %q; want 426", g)
	}
	// With the old hour-long SniffTimeout this would outlast exchange's
	// patience.
	if g := exchange(t, m.Addr(), "GET / HTTP/1.1\r\nHo"); !strings.HasPrefix(g, "HTTP/1.1 408 ") {
		t.Errorf("partial head after the new SniffTimeout: %q; want 408", g)
	}
	// Lowered to what is held (the silent client's slot): nothing new is
	// admitted.
	cfg.MaxPending = 1
	cfg.SniffTimeout = time.Hour
	m.Reconfigure(cfg)
	go func() { got <- exchange(t, m.Addr(), "SSH-2.0-x\r\n") }()
	select {
	case g := <-got:
		t.Fatalf("served with 1 pending and MaxPending lowered to 1: %q", g)
	case <-time.After(200 * time.Millisecond):
	}
	m.Reconfigure(Config{})
	if g := <-got; !strings.HasPrefix(g, "ssh:") {
		t.Errorf("after restoring the default, got %q", g)
	}
}

// TestMuxAsHandler: a route's Handler may be another Mux, which sniffs
// the replayed bytes again with routes of its own.
func TestMuxAsHandler(t *testing.T) {
	var inner Mux
	inner.Handle("inner-ws", WebSocket(), echoHandler("inner-ws"))
	inner.Handle("inner-http1", HTTP1(), echoHandler("inner-http1"))
	m := start(t, func(m *Mux) {
		m.Handle("ssh", SSH(), echoHandler("ssh"))
		m.Handle("rest", Any(), &inner)
	})
	defer inner.Close()
	if g := exchange(t, m.Addr(), "GET / HTTP/1.1\r\nHost: a\r\n\r\n"); g != `inner-http1:"GET / HTTP/1.1\r\nHost: a\r\n\r\n"` {
		t.Errorf("through the inner Mux: %q", g)
	}
	if g := exchange(t, m.Addr(), "SSH-2.0-x\r\n"); !strings.HasPrefix(g, "ssh:") {
		t.Errorf("outer route: %q", g)
	}
	if n := inner.Stats().Routed["inner-http1"]; n != 1 {
		t.Errorf("inner Mux routed %d; want 1", n)
	}
}

// Shutdown must let Handlers finish; their contexts should end at Close
// (docs: "Close cancels it"), not as soon as Shutdown begins.
// TestShutdownKeepsHandlerContexts: Shutdown closes the listeners, but
// the contexts of connections in Handlers last until its ctx ends (a
// review found them cancelled as Serve returned).
func TestShutdownKeepsHandlerContexts(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	m := new(Mux)
	in := make(chan struct{})
	cancelled := make(chan time.Time, 1)
	m.HandleFunc("any", Any(), func(ctx context.Context, c net.Conn) error {
		defer c.Close()
		close(in)
		<-ctx.Done()
		cancelled <- time.Now()
		return nil
	})
	go m.Serve(ln)
	c := testtool.Dial(t, ln.Addr().String(), "x")
	defer c.Close()
	<-in
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	go m.Shutdown(ctx)
	select {
	case at := <-cancelled:
		if d := at.Sub(start); d < time.Second {
			t.Errorf("Handler's context cancelled %v after Shutdown began; want it to last until Close (grace 2s)", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("never cancelled")
	}
	m.Close()
}

// A listener closed by someone else ends Serve; the connections it
// accepted lose their contexts although the Mux is not closed.
func TestListenerCloseKeepsContexts(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	m := new(Mux)
	defer m.Close()
	in := make(chan struct{})
	cancelled := make(chan struct{})
	m.HandleFunc("any", Any(), func(ctx context.Context, c net.Conn) error {
		defer c.Close()
		close(in)
		select {
		case <-ctx.Done():
			close(cancelled)
		case <-time.After(2 * time.Second):
		}
		return nil
	})
	go m.Serve(ln)
	c := testtool.Dial(t, ln.Addr().String(), "x")
	defer c.Close()
	<-in
	ln.Close()
	select {
	case <-cancelled:
		t.Error("closing one listener cancelled the contexts of connections in Handlers; the Mux is not closed")
	case <-time.After(3 * time.Second):
	}
}

func TestReconfigureRacesFirstServe(t *testing.T) {
	nils := 0
	for range 20000 {
		m := new(Mux)
		m.init()
		var wg sync.WaitGroup
		start := make(chan struct{})
		wg.Go(func() {
			<-start
			m.Reconfigure(Config{SniffTimeout: time.Second, UpgradeOnly: []string{"websocket", "h2c"}})
		})
		wg.Go(func() {
			<-start
			for j := 0; j < 50; j++ {
				if m.settings() == nil {
					nils++
					return
				}
			}
		})
		close(start)
		wg.Wait()
	}
	if nils > 0 {
		t.Errorf("settings() returned nil in %d of 20000 runs: Reconfigure marks cfgOnce done before cfg is stored", nils)
	}
}

// MaxConns 1, two listeners, no connection open: a client of the second
// listener should be served. Each idle Serve loop holds a slot in Accept.
func TestIdleAcceptLoopHoldsNoSlot(t *testing.T) {
	m := new(Mux)
	m.MaxConns = 1
	m.HandleFunc("any", Any(), func(ctx context.Context, c net.Conn) error {
		c.Write([]byte("hi"))
		return c.Close()
	})
	l1, _ := net.Listen("tcp", "127.0.0.1:0")
	l2, _ := net.Listen("tcp", "127.0.0.1:0")
	go m.Serve(l1)
	time.Sleep(50 * time.Millisecond) // l1's loop takes the slot and waits in Accept
	go m.Serve(l2)
	defer m.Close()
	c := testtool.Dial(t, l2.Addr().String(), "x")
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	var b [2]byte
	if _, err := c.Read(b[:]); err != nil {
		t.Errorf("client of the second listener, with no connection open anywhere, got %v; want it served (MaxConns=1)", err)
	}
}

// ServeConn waiting for a MaxConns slot ignores its ctx.
func TestServeConnCtxWhileWaiting(t *testing.T) {
	m := new(Mux)
	m.MaxConns = 1
	hold := make(chan struct{})
	m.HandleFunc("any", Any(), func(ctx context.Context, c net.Conn) error {
		<-hold
		return c.Close()
	})
	defer m.Close()
	defer close(hold)
	a1, b1 := net.Pipe()
	defer a1.Close()
	go m.ServeConn(context.Background(), b1)
	// Any() takes it at once
	time.Sleep(50 * time.Millisecond)
	a2, b2 := net.Pipe()
	defer a2.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- m.ServeConn(ctx, b2) }()
	select {
	case err := <-done:
		t.Logf("ServeConn returned %v", err)
	case <-time.After(time.Second):
		t.Error("ServeConn still waiting for a slot 900ms after its ctx ended")
	}
}
