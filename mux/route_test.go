package mux

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/portmux/portmux/internal/testtool"
)

// TestSetRoutes: new connections see the new routes at once; a Listener
// route that was replaced is closed; SniffTime is set.
func TestSetRoutes(t *testing.T) {
	var old *Listener
	m := start(t, func(m *Mux) {
		old = m.Listen("old", Any())
	})
	got := make(chan time.Duration, 1)
	m.SetRoutes([]Route{
		{Name: "ssh", Match: SSH(), Handler: h(func(c *Conn) {
			got <- c.SniffTime()
			echoHandler("ssh")(context.Background(), c)
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

// TestSetRoutesKeepsListener: a Listener among the new routes stays open
// and keeps receiving; one left out is closed.
func TestSetRoutesKeepsListener(t *testing.T) {
	var keep, drop *Listener
	m := start(t, func(m *Mux) {
		keep = m.Listen("keep", HTTP1())
		drop = m.Listen("drop", SSH())
	})
	m.SetRoutes([]Route{{Name: "kept", Match: HTTP1(), Handler: keep}})
	if _, err := drop.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("left-out Listener: %v; want net.ErrClosed", err)
	}
	_, c := dialRoute(t, m, keep, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	if c.Route() != "kept" {
		t.Errorf("route %q; want kept (the new route's name)", c.Route())
	}
	c.Close()
}

// TestListenerServeConn: a Listener queues a connection handed to it by
// any Handler, for its server's Accept.
func TestListenerServeConn(t *testing.T) {
	var l *Listener
	m := start(t, func(m *Mux) {
		l = m.NewListener("behind")
		m.HandleFunc("wrap", Any(), func(ctx context.Context, c net.Conn) error {
			return l.ServeConn(ctx, wrapped{c})
		})
	})
	testtool.Dial(t, m.Addr().String(), "")
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c.(wrapped); !ok {
		t.Errorf("Accept returned %T; want the Handler's wrapper", c)
	}
	c.Close()
	l.Close()
	if err := l.ServeConn(context.Background(), wrapped{c}); err == nil {
		t.Error("ServeConn on a closed Listener: nil error")
	}
}

type wrapped struct{ net.Conn }
