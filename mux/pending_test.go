package mux

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portmux/portmux/sniff"
)

func TestRouting(t *testing.T) {
	socks5 := func(in *Input) sniff.Verdict {
		switch {
		case len(in.Bytes) == 0:
			return sniff.NeedMore
		case in.Bytes[0] == 5:
			return sniff.Match
		}
		return sniff.NoMatch
	}
	m := start(t, func(m *Mux) {
		m.SniffTimeout = time.Hour // a decision must never wait for it
		m.Handle("h2", HTTP2(), echoHandler("h2"))
		m.Handle("ws", WebSocket(), echoHandler("ws"))
		m.Handle("http1", HTTP1(), echoHandler("http1"))
		m.Handle("tls-a", And(ServerName("*.a.example"), ALPN("h2")), echoHandler("tls-a"))
		m.Handle("tls", TLS(), echoHandler("tls"))
		m.Handle("ssh", SSH(), echoHandler("ssh"))
		m.Handle("socks5", socks5, echoHandler("socks5"))
	})
	ws := "GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	for _, tt := range []struct{ in, route string }{
		{sniff.Preface, "h2"},
		{ws, "ws"},
		{"PATCH /x HTTP/1.1\r\nHost: a\r\n\r\n", "http1"},
		{"SSH-2.0-OpenSSH_9.2p1\r\n", "ssh"},
		{"\x05\x01\x00", "socks5"}, // behind routes that need more bytes of their own protocols
		{string(buildHello("x.a.example", "h2")), "tls-a"},
		{string(buildHello("x.y.a.example", "h2")), "tls"},
		{string(buildHello("x.a.example", "http/1.1")), "tls"},
	} {
		got := exchange(t, m.Addr(), tt.in)
		if !strings.HasPrefix(got, tt.route+":") {
			t.Errorf("%.20q went to %q; want route %s", tt.in, got, tt.route)
			continue
		}
		// The route reads the sniffed bytes first: nothing is lost.
		want := tt.in
		if len(want) > 64 {
			want = want[:64]
		}
		if got != fmt.Sprintf("%s:%q", tt.route, want) {
			t.Errorf("route %s read %q; want the first bytes %q", tt.route, got, want)
		}
	}
	st := m.Stats()
	if st.Routed["socks5"] != 1 || st.Routed["tls"] != 2 || st.Routed["h2"] != 1 {
		t.Errorf("Stats.Routed = %v", st.Routed)
	}
}

func TestTimeouts(t *testing.T) {
	m := start(t, func(m *Mux) {
		m.SniffTimeout = 200 * time.Millisecond
		m.Handle("http1", HTTP1(), echoHandler("http1"))
		m.Handle("silent", Silent(), h(func(c *Conn) {
			defer c.Close()
			io.WriteString(c, "220 server speaks first\r\n")
		}))
	})
	if got := exchange(t, m.Addr(), ""); got != "220 server speaks first\r\n" {
		t.Errorf("silent client got %q", got)
	}
	if got := exchange(t, m.Addr(), "GET / HTTP/1.1\r\nHost:"); !strings.HasPrefix(got, "HTTP/1.1 408 ") {
		t.Errorf("partial head got %q; want 408", got)
	}
	if got := exchange(t, m.Addr(), "\x01\x02"); got != "" {
		t.Errorf("unknown bytes got %q; want a close", got)
	}
	if n := m.Stats().Rejected[ReasonNoMatch]; n != 1 {
		t.Errorf("no_match = %d; want 1", n)
	}
}

func TestProxyProtocol(t *testing.T) {
	remote := make(chan string, 1)
	m := start(t, func(m *Mux) {
		m.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
		m.Handle("http1", HTTP1(), h(func(c *Conn) {
			remote <- c.RemoteAddr().String()
			echoHandler("http1")(context.Background(), c)
		}))
	})
	got := exchange(t, m.Addr(), "PROXY TCP4 192.0.2.1 198.51.100.2 56324 80\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n")
	if !strings.HasPrefix(got, `http1:"GET / HTTP/1.1`) {
		t.Errorf("got %q; want the request without the PROXY line", got)
	}
	if r := <-remote; r != "192.0.2.1:56324" {
		t.Errorf("RemoteAddr = %s; want the PROXY source", r)
	}

	strict := start(t, func(m *Mux) {
		m.Handle("http1", HTTP1(), echoHandler("http1"))
	})
	if got := exchange(t, strict.Addr(), "PROXY TCP4 192.0.2.1 198.51.100.2 56324 80\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"); got != "" {
		t.Errorf("untrusted PROXY header got %q; want a close", got)
	}
	if n := strict.Stats().Rejected[ReasonProxyUntrusted]; n != 1 {
		t.Errorf("proxy_untrusted = %d; want 1", n)
	}
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
	startOn(t, ln, func(m *Mux) { m.Handle("http1", HTTP1(), echoHandler("http1")) })
	req := "GET / HTTP/1.1\r\nHost: a\r\n\r\n"
	if got := exchange(t, tcp.Addr(), req); !strings.HasPrefix(got, "http1:") {
		t.Fatalf("got %q", got)
	}
	if n := ln.n.Load(); n < int64(len(req)) {
		t.Errorf("the wrapper's Read saw %d bytes; want the %d sent", n, len(req))
	}
}

// TestTrustedProxiesMapped: a prefix written as IPv4-mapped IPv6 trusts
// the IPv4 peer it names.
func TestTrustedProxiesMapped(t *testing.T) {
	peer := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 7), Port: 1}
	for _, prefix := range []string{"192.0.2.0/24", "::ffff:192.0.2.0/120"} {
		s := newSettings(Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix(prefix)}})
		if !s.trusts(addrConn{peer}) {
			t.Errorf("%s does not trust %v", prefix, peer)
		}
	}
	s := newSettings(Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}})
	if s.trusts(addrConn{peer}) {
		t.Errorf("198.51.100.0/24 trusts %v", peer)
	}
}

type addrConn struct{ remote net.Addr }

func (c addrConn) RemoteAddr() net.Addr { return c.remote }

func (addrConn) Read([]byte) (int, error) { return 0, io.EOF }

func (addrConn) Write(b []byte) (int, error) { return len(b), nil }

func (addrConn) Close() error { return nil }

func (addrConn) LocalAddr() net.Addr { return nil }

func (addrConn) SetDeadline(time.Time) error { return nil }

func (addrConn) SetReadDeadline(time.Time) error { return nil }

func (addrConn) SetWriteDeadline(time.Time) error { return nil }
