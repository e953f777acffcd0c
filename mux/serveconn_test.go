package mux

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// TestServeConn: connections accepted by the caller's own loop are
// sniffed and routed as Serve's are, rejected ones get the mux's answer,
// Shutdown waits for a Handler that ServeConn runs, and a closed Mux
// leaves the connection to the caller.
func TestServeConn(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	m := New(newChanListener(ln.Addr())) // never accepted from
	m.UpgradeOnly = []string{"websocket"}
	release := make(chan struct{})
	inHandler := make(chan struct{}, 1)
	m.HandleFunc("ssh", SSH(), func(c *Conn) {
		inHandler <- struct{}{}
		<-release
		c.Write([]byte("routed " + c.Route()))
		c.Close()
	})
	served := make(chan error, 4)
	accept := func() {
		c, err := ln.Accept()
		if err != nil {
			served <- err
			return
		}
		served <- m.ServeConn(c)
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

	// Closed: the conn is the caller's, untouched.
	late, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer late.Close()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	if err := m.ServeConn(c); !errors.Is(err, ErrMuxClosed) {
		t.Errorf("ServeConn after Shutdown: %v; want ErrMuxClosed", err)
	}
	if _, err := c.Write([]byte("still mine")); err != nil {
		t.Errorf("conn after a refused ServeConn: %v; want it open", err)
	}
	c.Close()
}

// chanListener accepts nothing: Accept waits for Close.
type chanListener struct {
	addr net.Addr
	done chan struct{}
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, done: make(chan struct{})}
}

func (l *chanListener) Accept() (net.Conn, error) {
	<-l.done
	return nil, net.ErrClosed
}

func (l *chanListener) Close() error {
	select {
	case <-l.done:
	default:
		close(l.done)
	}
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }
