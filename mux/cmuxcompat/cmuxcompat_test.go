package cmuxcompat

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/portmux/portmux/mux"
	"github.com/soheilhy/cmux"
)

// TestWithCmux routes through a real cmux: a PATCH request (which cmux's
// HTTP1Fast misses) and a WebSocket upgrade each reach their listener.
func TestWithCmux(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := cmux.New(ln)
	m.SetReadTimeout(5 * time.Second)
	ws := m.Match(Matcher(mux.WebSocket()))
	h1 := m.Match(Matcher(mux.HTTP1()))
	// cmux's Serve does not return after Close (one of the faults package
	// mux fixes), so it is not waited for.
	go m.Serve()
	defer m.Close()

	serve := func(l net.Listener, name string) {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			b := make([]byte, 8)
			io.ReadFull(c, b)
			fmt.Fprintf(c, "%s:%s", name, b)
			c.Close()
		}
	}
	go serve(ws, "ws")
	go serve(h1, "h1")

	for _, tt := range []struct{ in, want string }{
		{"PATCH /x HTTP/1.1\r\nHost: a\r\n\r\n", "h1:PATCH /x"},
		{"GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\n" +
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", "ws:GET /cha"},
	} {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, tt.in)
		got, err := io.ReadAll(c)
		c.Close()
		if err != nil && !errors.Is(err, net.ErrClosed) {
			t.Fatal(err)
		}
		if string(got) != tt.want {
			t.Errorf("%.20q got %q; want %q", tt.in, got, tt.want)
		}
	}
}

// TestNoProxyHeader: the adapter does not match past a PROXY header, which
// cmux would hand on to the server.
func TestNoProxyHeader(t *testing.T) {
	match := Matcher(mux.HTTP1())
	if match(strings.NewReader("PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n")) {
		t.Error("matched a request behind a PROXY header")
	}
	if !match(strings.NewReader("GET / HTTP/1.1\r\nHost: a\r\n\r\n")) {
		t.Error("did not match a plain request")
	}
}
