package mux

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/portmux/portmux/internal/testtool"
)

// TestCurl: real curl and nghttp against one port that serves h2c and
// HTTP/1.1, and curl against an upgrade-only port.
func TestCurl(t *testing.T) {
	testtool.Need(t, "curl")
	m, _, _ := startHTTPRoutes(t)
	url := "http://" + m.Addr().String()
	if got := testtool.Run(t, "curl", "-sS", "--max-time", "10", "--http2-prior-knowledge", url+"/h2"); got != "HTTP/2.0 via /h2" {
		t.Errorf("curl --http2-prior-knowledge got %q", got)
	}
	if got := testtool.Run(t, "curl", "-sS", "--max-time", "10", url+"/h1"); got != "HTTP/1.1 via /h1" {
		t.Errorf("curl got %q", got)
	}
	// nghttp2's client with prior knowledge, the way gRPC clients connect.
	if got := testtool.Run(t, "nghttp", "-t", "10", url+"/nghttp"); got != "HTTP/2.0 via /nghttp" {
		t.Errorf("nghttp got %q", got)
	}

	up := start(t, func(m *Mux) { m.UpgradeOnly = []string{"websocket"} })
	got := testtool.Run(t, "curl", "-sS", "-i", "--max-time", "10", "http://"+up.Addr().String()+"/")
	for _, want := range []string{"HTTP/1.1 426 Upgrade Required\r\n", "\r\nUpgrade: websocket\r\n", "\r\nConnection: Upgrade, close\r\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("curl -i on the upgrade-only port: no %q in %q", want, got)
		}
	}
}

// TestHAProxyProxyV2: HAProxy in front of the mux sends PROXY v2; the mux
// trusts loopback, strips the header and reports the client's address.
func TestHAProxyProxyV2(t *testing.T) {
	testtool.Need(t, "haproxy")
	got := make(chan string, 4)
	m := start(t, func(m *Mux) {
		m.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
		m.Handle("http1", HTTP1(), h(func(c *Conn) {
			defer c.Close()
			got <- fmt.Sprintf("%s proxied=%v", c.RemoteAddr(), c.Proxied())
			c.Write([]byte("HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"))
		}))
	})
	front := testtool.HAProxy(t, m.Addr().String())
	c, err := net.Dial("tcp", front)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	want := c.LocalAddr().String() + " proxied=true"
	select {
	case g := <-got:
		if g != want {
			t.Errorf("handler saw %s; want %s", g, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no connection reached the mux through haproxy")
	}
}
