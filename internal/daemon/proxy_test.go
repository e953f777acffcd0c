package daemon

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/portmux/portmux/internal/testtool"
)

// closingBackend answers every connection's first read with a fixed
// HTTP/1.1 response and closes: the backend's side of a
// connection-per-request exchange, at the least cost to the benchmark.
func closingBackend(tb testing.TB) string {
	ln := listen(tb)
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
	var wg sync.WaitGroup
	tb.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				buf := make([]byte, 512)
				if _, err := c.Read(buf); err == nil {
					c.Write(resp)
				}
			})
		}
	})
	return ln.Addr().String()
}

// BenchmarkProxyConn measures the daemon's cost of one proxied connection:
// a client connects, sends a request, reads the response to the backend's
// close, and closes; the listener has the bench/daemon.sh routes. Its
// allocs/op are the whole process's, client and backend included.
func BenchmarkProxyConn(b *testing.B) {
	web := closingBackend(b)
	addrs, _ := startDaemon(b, `
log: { level: error }
listeners:
  - listen: 127.0.0.1:0
    routes:
      - { match: http2, to: "{{web}}" }
      - { match: websocket, to: "{{web}}" }
      - { match: http1, to: "{{web}}" }
      - { match: ssh, to: "{{web}}" }
      - { match: any, to: "{{web}}" }
`, map[string]string{"web": web})
	req := []byte("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	buf := make([]byte, 512)
	b.ReportAllocs()
	for b.Loop() {
		c, err := net.Dial("tcp", addrs[0])
		if err != nil {
			b.Fatal(err)
		}
		c.Write(req)
		n, _ := io.ReadFull(c, buf[:len("HTTP/1.1 200")])
		if !bytes.Equal(buf[:n], []byte("HTTP/1.1 200")) {
			b.Fatalf("got %q", buf[:n])
		}
		io.Copy(io.Discard, c)
		c.Close()
	}
}

// TestHAProxyInFront: HAProxy sends PROXY v2 to portmux, which trusts it
// and passes the client's address on to the backend in a PROXY v2 header
// of its own.
func TestHAProxyInFront(t *testing.T) {
	testtool.Need(t, "haproxy")
	web := httpBackend(t, "web")
	addrs, _ := startDaemon(t, `
listeners:
  - listen: 127.0.0.1:0
    proxy_protocol: { accept: true, trusted: [127.0.0.1] }
    routes:
      - match: http1
        to: {{web}}
        send_proxy: v2
`, map[string]string{"web": web})
	front := testtool.HAProxy(t, addrs[0])
	c, err := net.Dial("tcp", front)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET /ha HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if want := "web HTTP/1.1 /ha proxied=" + c.LocalAddr().String(); string(body) != want {
		t.Errorf("got %q; want %q", body, want)
	}
}

// TestDaemonBridge: a WebSocket route bridged to a TCP backend, beside a
// WebSocket route passed through untouched.
func TestDaemonBridge(t *testing.T) {
	addrs, _ := startDaemon(t, `
listeners:
  - listen: 127.0.0.1:0
    routes:
      - match: websocket
        path: /vnc
        bridge: {{line}}
      - match: websocket
        serve: echo
`, map[string]string{"line": tcpBackend(t, "line", "")})
	conn, _, _, err := ws.Dial(context.Background(), "ws://"+addrs[0]+"/vnc")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if err := wsutil.WriteClientBinary(conn, []byte("hello\n")); err != nil {
		t.Fatal(err)
	}
	msg, op, err := wsutil.ReadServerData(conn)
	if err != nil || op != ws.OpBinary || string(msg) != "line: hello\n" {
		t.Errorf("bridge: %q %v %v", msg, op, err)
	}
	echo, _, _, err := ws.Dial(context.Background(), "ws://"+addrs[0]+"/other")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	echo.SetDeadline(time.Now().Add(10 * time.Second))
	wsutil.WriteClientText(echo, []byte("hi"))
	if msg, _, err := wsutil.ReadServerData(echo); err != nil || string(msg) != "hi" {
		t.Errorf("echo: %q %v", msg, err)
	}
}

// TestActiveSessionOutlivesIdleTimeout: a proxied connection routed on
// its first bytes (ssh here) that keeps talking lives past idle_timeout
// from its start; the replay's write deadline once cut such sessions.
func TestActiveSessionOutlivesIdleTimeout(t *testing.T) {
	echo := tcpBackend(t, "echo", "")
	addrs, _ := startDaemon(t, "listeners:\n  - listen: 127.0.0.1:0\n    routes:\n      - {match: ssh, to: {{echo}}, idle_timeout: 300ms}\n",
		map[string]string{"echo": echo})
	c := testtool.Dial(t, addrs[0], "")
	r := bufio.NewReader(c)
	io.WriteString(c, "SSH-2.0-x\r\n")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if got, err := r.ReadString('\n'); err != nil || got != "echo: SSH-2.0-x\n" {
		t.Fatalf("banner echo: %q, %v", got, err)
	}
	for i := range 10 { // 1 s, three idle timeouts
		time.Sleep(100 * time.Millisecond)
		fmt.Fprintf(c, "line%d\n", i)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if got, err := r.ReadString('\n'); err != nil || got != fmt.Sprintf("echo: line%d\n", i) {
			t.Fatalf("round trip %d: %q, %v", i, got, err)
		}
	}
}

// TestBridgeLastsTheGrace: at SIGTERM a bridged WebSocket goes on until
// the grace period ends, then gets close 1001 (a review found it closed
// at once, as the listener closed).
func TestBridgeLastsTheGrace(t *testing.T) {
	line := tcpBackend(t, "line", "")
	cfg, err := ParseConfig([]byte("listeners:\n  - listen: 127.0.0.1:0\n    routes:\n      - {match: websocket, bridge: " + line + "}\n"))
	if err != nil {
		t.Fatal(err)
	}
	d := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	conn, _, _, err := ws.Dial(context.Background(), "ws://"+d.Addrs()[0]+"/vnc")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	wsutil.WriteClientBinary(conn, []byte("hello\n"))
	if msg, _, err := wsutil.ReadServerData(conn); err != nil || string(msg) != "line: hello\n" {
		t.Fatalf("bridge: %q %v", msg, err)
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- d.Shutdown(ctx) }()
	_, _, err = wsutil.ReadServerData(conn)
	var ce wsutil.ClosedError
	if since := time.Since(start); since < 900*time.Millisecond || !errors.As(err, &ce) || ce.Code != ws.StatusGoingAway {
		t.Errorf("the bridge's client read %v after %v; want close 1001 at the end of the 1 s grace", err, since)
	}
	if err := <-errc; err == nil {
		t.Error("Shutdown with a bridge open at the end of the grace: nil; want the error that says connections were closed")
	}
}

// TestDroppedListenerBridgeGoesOn: a reload that drops a listener lets
// its bridged WebSocket go on.
func TestDroppedListenerBridgeGoesOn(t *testing.T) {
	line := tcpBackend(t, "line", "")
	addrs, reload := startDaemon(t, "listeners:\n  - listen: 127.0.0.1:0\n    name: a\n    routes:\n      - {match: websocket, bridge: {{line}}}\n  - listen: 127.0.0.1:0\n    name: b\n    routes: [{match: any, to: {{line}}}]\n",
		map[string]string{"line": line})
	conn, _, _, err := ws.Dial(context.Background(), "ws://"+addrs[0]+"/vnc")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	reload("listeners:\n  - listen: 127.0.0.1:0\n    name: b\n    routes: [{match: any, to: {{line}}}]\n")
	wsutil.WriteClientBinary(conn, []byte("after\n"))
	if msg, _, err := wsutil.ReadServerData(conn); err != nil || string(msg) != "line: after\n" {
		t.Errorf("after its listener was dropped, the bridge answered %q, %v; want it to go on", msg, err)
	}
}
