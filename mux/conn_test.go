package mux

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/portmux/portmux/internal/testtool"
	"github.com/portmux/portmux/sniff"
	"golang.org/x/net/nettest"
)

// TestConnContract runs x/net's net.Conn conformance tests on Conns the mux
// delivered over loopback TCP: one that never had bytes to replay, and one
// whose replay was drained first.
func TestConnContract(t *testing.T) {
	for _, tt := range []struct {
		name  string
		match Matcher
		first string
	}{
		{"no replay", Any(), ""},
		{"drained replay", SSH(), "SSH-2.0-nettest\r\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := start(t, func(m *Mux) {})
			l := m.Listen("r", tt.match)
			nettest.TestConn(t, func() (c1, c2 net.Conn, stop func(), err error) {
				c1, err = net.Dial("tcp", m.Addr().String())
				if err != nil {
					return nil, nil, nil, err
				}
				if _, err := io.WriteString(c1, tt.first); err != nil {
					return nil, nil, nil, err
				}
				c2, err = l.Accept()
				if err != nil {
					return nil, nil, nil, err
				}
				got := make([]byte, len(tt.first))
				if _, err := io.ReadFull(c2, got); err != nil || string(got) != tt.first {
					return nil, nil, nil, errors.New("replay lost: " + string(got))
				}
				if _, ok := c2.(*Conn).NetConn().(*net.TCPConn); !ok {
					return nil, nil, nil, errors.New("NetConn is not the *net.TCPConn")
				}
				return c1, c2, func() { c1.Close(); c2.Close() }, nil
			})
		})
	}
}

func TestReplay(t *testing.T) {
	const first = "GET / HTTP/1.1\r\nHost: a\r\n\r\n"
	const rest = "and the rest"
	m := start(t, func(m *Mux) {})
	l := m.Listen("http1", HTTP1())
	c1, c := dialRoute(t, m, l, first)
	if c.Buffered() != len(first) || c.Protocol() != sniff.HTTP1 || c.Route() != "http1" {
		t.Fatalf("Buffered %d, Protocol %v, Route %q", c.Buffered(), c.Protocol(), c.Route())
	}
	// Small reads come from the replay, then from the socket.
	var got bytes.Buffer
	small := make([]byte, 5)
	for got.Len() < len(first) {
		n, err := c.Read(small)
		if err != nil {
			t.Fatal(err)
		}
		got.Write(small[:n])
	}
	if got.String() != first || c.Buffered() != 0 {
		t.Fatalf("replayed %q (buffered %d); want %q", got.String(), c.Buffered(), first)
	}
	io.WriteString(c1, rest)
	c1.(*net.TCPConn).CloseWrite()
	tail, err := io.ReadAll(c)
	if err != nil || string(tail) != rest {
		t.Fatalf("after the replay read %q, %v", tail, err)
	}
	c.Close()

	// WriteTo gives the replay then the stream.
	c1, nc := dialRoute(t, m, l, first+rest)
	c1.(*net.TCPConn).CloseWrite()
	var out bytes.Buffer
	if _, err := io.Copy(&out, nc); err != nil || out.String() != first+rest {
		t.Fatalf("io.Copy from Conn = %q, %v", out.String(), err)
	}
	nc.Close()
}

// TestDeadlinesOnPipe drives the sniff timeout with a fake clock: a partial
// HTTP head gets 408 once SniffTimeout passes, and a silent client goes to
// the Silent route.
func TestDeadlinesOnPipe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pl := testtool.NewPipeListener()
		m := new(Mux)
		m.SniffTimeout = 5 * time.Second
		m.LingerTimeout = time.Second
		m.Handle("silent", Silent(), h(func(c *Conn) {
			io.WriteString(c, "hello, silent one\n")
			c.Close()
		}))
		m.Listen("http1", HTTP1())
		go m.Serve(pl)

		start := time.Now()
		c, _ := pl.Dial()
		io.WriteString(c, "GET / HTTP/1.1\r\nHo")
		got, _ := io.ReadAll(c)
		if !strings.HasPrefix(string(got), "HTTP/1.1 408 Request Timeout\r\n") {
			t.Errorf("partial head got %q", got)
		}
		// net.Pipe has no half-close: the mux lingers for LingerTimeout.
		if d := time.Since(start); d != 6*time.Second {
			t.Errorf("408 and close after %v; want SniffTimeout + LingerTimeout", d)
		}
		c.Close()

		start = time.Now()
		c, _ = pl.Dial()
		got, _ = io.ReadAll(c)
		if string(got) != "hello, silent one\n" || time.Since(start) != 5*time.Second {
			t.Errorf("silent client got %q after %v", got, time.Since(start))
		}
		c.Close()
		m.Close()
		synctest.Wait()
	})
}

// TestConnAllocs keeps the mux's own cost per connection at no more than
// three allocations over the bare path, on loopback TCP (net.Pipe would
// count its deadline timers): the Conn, the sniffing goroutine's closure,
// and the RawConn that SyscallConn returns. Buffers and parse state are
// pooled.
func TestConnAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under the race detector")
	}
	const req = "GET / HTTP/1.1\r\nHost: a\r\n\r\n"
	measure := func(addr string, accept func() (net.Conn, error)) float64 {
		buf := make([]byte, 64)
		return testing.AllocsPerRun(300, func() {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			io.WriteString(c, req)
			s, err := accept()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(s, buf[:len(req)]); err != nil {
				t.Fatal(err)
			}
			s.Close()
			c.Close()
		})
	}
	bare, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer bare.Close()
	base := measure(bare.Addr().String(), bare.Accept)

	m := start(t, func(m *Mux) {})
	m.Listen("h2", HTTP2())
	m.Listen("ws", WebSocket())
	l := m.Listen("http1", HTTP1())
	muxed := measure(m.Addr().String(), l.Accept)
	t.Logf("allocations per connection: bare %.1f, through the mux %.1f", base, muxed)
	if muxed-base > 3 {
		t.Errorf("the mux adds %.1f allocations per connection; want at most 3", muxed-base)
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
