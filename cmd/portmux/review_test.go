package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"
)

// gateLn returns one conn from Accept once gate is closed, then ErrClosed.
type gateLn struct {
	gate chan struct{}
	c    net.Conn
	used bool
}

func (l *gateLn) Accept() (net.Conn, error) {
	<-l.gate
	if l.used {
		select {}
	}
	l.used = true
	return l.c, nil
}
func (l *gateLn) Close() error   { return nil }
func (l *gateLn) Addr() net.Addr { return &net.TCPAddr{} }

// TestAcceptAfterQueueClosed: a conn accepted just as the port stops is
// closed and its slot given back; the accept loop ends (it spun before).
func TestAcceptAfterQueueClosed(t *testing.T) {
	cfg, err := parseConfig([]byte("listeners:\n  - listen: 127.0.0.1:0\n    routes:\n      - {match: any, to: 127.0.0.1:1}\n"))
	if err != nil {
		t.Fatal(err)
	}
	d := newDaemon(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	a, b := net.Pipe()
	defer b.Close()
	ln := &gateLn{gate: make(chan struct{}), c: a}
	p := &port{cfg: cfg.Listeners[0], ln: ln, slots: newLimiter(10), idle: make(chan net.Conn), done: make(chan struct{})}
	p.cur.Store(d.newGeneration(p, cfg.Listeners[0]))
	d.servePort(p)
	// As reload's dropping of a port (and shutdown) does:
	close(p.done)
	p.cur.Load().q.Close()
	close(ln.gate) // the Accept that was already returning
	done := make(chan struct{})
	go func() {
		// The accept loop, and the goroutine it handed the conn to.
		d.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Errorf("accept loop still running 10 s after its port stopped (it spun on push before)")
	}
	b.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if _, err := b.Read(make([]byte, 1)); err != nil && strings.Contains(err.Error(), "timeout") {
		t.Errorf("the accepted conn was never closed")
	}
}

// dialGreet connects, sends a line (so that match: any takes it) and
// returns the backend's greeting, if it comes within wait.
func dialGreet(t *testing.T, addr string, wait time.Duration) (net.Conn, string) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	io.WriteString(c, "x\n")
	c.SetReadDeadline(time.Now().Add(wait))
	line, _ := bufio.NewReader(c).ReadString('\n')
	return c, line
}

const limCfg = `listeners:
  - listen: 127.0.0.1:0
    name: l
    sniff_timeout: 200ms
    max_connections: %d
    routes:
      - match: any
        max_connections: %d
        to: {{b}}
`

// TestReloadListenerLimit: a reload that raises a listener's
// max_connections applies it at once.
func TestReloadListenerLimit(t *testing.T) {
	be := tcpBackend(t, "b", "hello")
	addrs, reload := startDaemon(t, fmt.Sprintf(limCfg, 1, 0), map[string]string{"b": be})
	_, l1 := dialGreet(t, addrs[0], 2*time.Second)
	if !strings.Contains(l1, "hello") {
		t.Fatalf("first conn: %q", l1)
	}
	reload(fmt.Sprintf(limCfg, 5, 0))
	_, l2 := dialGreet(t, addrs[0], 2*time.Second)
	if !strings.Contains(l2, "hello") {
		t.Errorf("after raising max_connections 1 -> 5, a 2nd conn got %q; want hello", l2)
	}
}

// TestRouteLimitAcrossReload: established connections still count
// against a route's max_connections after a reload.
func TestRouteLimitAcrossReload(t *testing.T) {
	be := tcpBackend(t, "b", "hello")
	addrs, reload := startDaemon(t, fmt.Sprintf(limCfg, 100, 1), map[string]string{"b": be})
	_, l1 := dialGreet(t, addrs[0], 2*time.Second)
	if !strings.Contains(l1, "hello") {
		t.Fatalf("first conn: %q", l1)
	}
	reload(fmt.Sprintf(limCfg, 100, 1)) // same file
	_, l2 := dialGreet(t, addrs[0], 2*time.Second)
	if strings.Contains(l2, "hello") {
		t.Errorf("route max_connections 1: a 2nd conn was proxied after a no-op reload")
	}
}

// TestRenameListener: naming a listener on reload keeps its socket.
func TestRenameListener(t *testing.T) {
	addr := "127.0.0.1:" + freePort(t)
	mk := func(name string) *Config {
		cfg, err := parseConfig([]byte(fmt.Sprintf("listeners:\n  - listen: %s\n    %s\n    routes:\n      - {match: any, to: 127.0.0.1:1}\n", addr, name)))
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	d := newDaemon(mk(""), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := d.start(); err != nil {
		t.Fatal(err)
	}
	defer d.shutdown(context.Background())
	if err := d.reload(mk("name: public")); err != nil {
		t.Errorf("reload adding name: %v", err)
	}
}

// TestAnyAndProxyIn: with proxy_protocol, match: any waits for the first
// bytes, so a trusted PROXY header is stripped, not passed on.
func TestAnyAndProxyIn(t *testing.T) {
	be := tcpBackend(t, "b", "")
	addrs, _ := startDaemon(t, `listeners:
  - listen: 127.0.0.1:0
    proxy_protocol: { accept: true, trusted: [127.0.0.1/32] }
    routes:
      - match: any
        to: {{b}}
`, map[string]string{"b": be})
	c, err := net.Dial("tcp", addrs[0])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	time.Sleep(50 * time.Millisecond) // a proxy that connects, then writes
	io.WriteString(c, "PROXY TCP4 1.2.3.4 5.6.7.8 1111 2222\r\nhello\n")
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	line, _ := bufio.NewReader(c).ReadString('\n')
	if strings.Contains(line, "PROXY") {
		t.Errorf("backend got the PROXY header: %q", line)
	}
}

// TestActiveSessionOutlivesIdleTimeout: a proxied connection routed on
// its first bytes (ssh here) that keeps talking lives past idle_timeout
// from its start; the replay's write deadline once cut such sessions.
func TestActiveSessionOutlivesIdleTimeout(t *testing.T) {
	echo := tcpBackend(t, "echo", "")
	cfg, err := parseConfig([]byte(fmt.Sprintf("listeners:\n  - listen: 127.0.0.1:0\n    routes:\n      - {match: ssh, to: %q, idle_timeout: 300ms}\n", echo)))
	if err != nil {
		t.Fatal(err)
	}
	d := newDaemon(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := d.start(); err != nil {
		t.Fatal(err)
	}
	defer d.shutdown(context.Background())
	c, err := net.Dial("tcp", d.addrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
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
