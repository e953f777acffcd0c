package mux

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/portmux/portmux/internal/testtool"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// served is a Mux that a test started on a listener of its own.
type served struct {
	*Mux
	addr net.Addr
}

// Addr is the address of the listener the test's Mux serves.
func (m *served) Addr() net.Addr { return m.addr }

// start serves a zero Mux, set up by setup, on 127.0.0.1:0, and closes it
// when the test ends.
func start(t testing.TB, setup func(m *Mux)) *served {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return startOn(t, ln, setup)
}

// startOn is start over a listener of the test's own.
func startOn(t testing.TB, ln net.Listener, setup func(m *Mux)) *served {
	t.Helper()
	m := new(Mux)
	setup(m)
	done := make(chan error, 1)
	go func() { done <- m.Serve(ln) }()
	t.Cleanup(func() {
		m.Close()
		if err := <-done; !errors.Is(err, ErrClosed) {
			t.Errorf("Serve returned %v; want ErrClosed", err)
		}
	})
	return &served{m, ln.Addr()}
}

// dialRoute sends first on a new connection to m and returns the client
// side and the Conn that route Listener l delivered.
func dialRoute(t testing.TB, m *served, l *Listener, first string) (net.Conn, *Conn) {
	t.Helper()
	c := testtool.Dial(t, m.Addr().String(), first)
	s, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	return c, s.(*Conn)
}

// exchange sends req on a new connection and returns all the server sent
// until it closed (or the test's patience ran out, a failure).
func exchange(t testing.TB, addr net.Addr, req string) string {
	t.Helper()
	return testtool.Exchange(t, addr.String(), req)
}

// h adapts a test's func(*Conn) to a Handler.
func h(f func(c *Conn)) HandlerFunc {
	return func(_ context.Context, c net.Conn) error {
		f(c.(*Conn))
		return nil
	}
}

// echoHandler answers with the route name and what it read first.
func echoHandler(name string) HandlerFunc {
	return h(func(c *Conn) {
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		var b [64]byte
		n, _ := c.Read(b[:])
		fmt.Fprintf(c, "%s:%q", name, b[:n])
	})
}

// buildHello writes a minimal ClientHello with server_name and ALPN.
func buildHello(sni string, alpn ...string) []byte {
	u16 := func(n int) []byte { return []byte{byte(n >> 8), byte(n)} }
	var protos []byte
	for _, p := range alpn {
		protos = append(append(protos, byte(len(p))), p...)
	}
	name := append(append([]byte{0}, u16(len(sni))...), sni...)
	var ext []byte
	ext = append(append(append(append(ext, 0, 0), u16(len(name)+2)...), u16(len(name))...), name...)
	ext = append(append(append(append(ext, 0, 16), u16(len(protos)+2)...), u16(len(protos))...), protos...)
	body := append([]byte{3, 3}, make([]byte, 32)...)
	body = append(body, 0, 0, 2, 0x13, 0x01, 1, 0)
	body = append(append(body, u16(len(ext))...), ext...)
	hs := append([]byte{1, 0, byte(len(body) >> 8), byte(len(body))}, body...)
	return append(append([]byte{22, 3, 1}, u16(len(hs))...), hs...)
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for range 1000 {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("condition not reached in 10 s")
}
