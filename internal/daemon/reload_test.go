package daemon

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portmux/portmux/internal/testtool"
)

// TestDaemonReloadUnderLoad: while clients keep opening connections,
// reloads change routes, change a listener's own settings and add a
// listener; no request fails, and each change
// shows at once.
func TestDaemonReloadUnderLoad(t *testing.T) {
	a, b := httpBackend(t, "A"), httpBackend(t, "B")
	const base = `
listeners:
  - listen: 127.0.0.1:{{port}}
    sniff_timeout: {{timeout}}
    routes:
      - match: http1
        to: {{to}}
`
	port := testtool.FreePort(t)
	vars := map[string]string{"A": a, "B": b, "port": port}
	cfg := func(to, timeout string, extra string) string {
		s := strings.NewReplacer("{{to}}", to, "{{timeout}}", timeout).Replace(base)
		return s + extra
	}
	addrs, reload := startDaemon(t, cfg(a, "3s", ""), vars)
	url := "http://" + addrs[0] + "/"

	var failures, total atomic.Int64
	var last atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			tr := &http.Transport{DisableKeepAlives: true}
			c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := c.Get(url)
				total.Add(1)
				if err != nil {
					failures.Add(1)
					last.Store(err.Error())
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				last.Store(string(body))
			}
		})
	}
	time.Sleep(300 * time.Millisecond)
	reload(cfg(b, "3s", "")) // routes only
	waitBody := func(want string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			if s, _ := last.Load().(string); strings.HasPrefix(s, want) {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Errorf("after reload, still %v; want %q", last.Load(), want)
	}
	waitBody("B ")
	time.Sleep(200 * time.Millisecond)
	reload(cfg(a, "2s", "")) // the listener's own settings
	waitBody("A ")
	time.Sleep(200 * time.Millisecond)
	reload(cfg(a, "2s", "  - listen: 127.0.0.1:0\n    routes: [{match: any, to: "+b+"}]\n")) // a new listener
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()
	if failures.Load() != 0 || total.Load() < 20 {
		t.Errorf("%d of %d requests failed across reloads (last: %v)", failures.Load(), total.Load(), last.Load())
	}
	// A bad configuration leaves the running one in place.
	reload("listeners: [}")
	if got := testtool.Curl(t, url); !strings.HasPrefix(got, "A ") {
		t.Errorf("after a bad reload: %q", got)
	}
}

// TestReloadDropsListener: a listener that a reload drops stops
// accepting at once, while the connection it had established goes on to
// its end.
func TestReloadDropsListener(t *testing.T) {
	be := tcpBackend(t, "b", "hello")
	two := `listeners:
  - listen: 127.0.0.1:0
    name: stays
    routes: [{match: any, to: "{{b}}"}]
  - listen: 127.0.0.1:0
    name: goes
    routes: [{match: any, to: "{{b}}"}]
`
	addrs, reload := startDaemon(t, two, map[string]string{"b": be})
	c, greeting := dialGreet(t, addrs[1], 2*time.Second)
	if !strings.Contains(greeting, "hello") {
		t.Fatalf("before the reload: %q", greeting)
	}
	reload(strings.Split(two, "  - listen: 127.0.0.1:0\n    name: goes")[0])
	if c, err := net.Dial("tcp", addrs[1]); err == nil {
		c.Close()
		t.Errorf("the dropped listener %s still accepts", addrs[1])
	}
	io.WriteString(c, "still here\n")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if line == "b: x\n" { // the answer to dialGreet's line, unless its reader took it
		line, err = r.ReadString('\n')
	}
	if err != nil || line != "b: still here\n" {
		t.Errorf("the established connection after the reload: %q, %v", line, err)
	}
	if _, g := dialGreet(t, addrs[0], 2*time.Second); !strings.Contains(g, "hello") {
		t.Errorf("the listener that stays: %q", g)
	}
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
	addr := "127.0.0.1:" + testtool.FreePort(t)
	mk := func(name string) (*Config, error) {
		return ParseConfig([]byte(fmt.Sprintf("listeners:\n  - listen: %s\n    %s\n    routes:\n      - {match: any, to: 127.0.0.1:1}\n", addr, name)))
	}
	cfg, err := mk("")
	if err != nil {
		t.Fatal(err)
	}
	d := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	defer d.Shutdown(context.Background())
	if err := d.Reload(func() (*Config, error) { return mk("name: public") }); err != nil {
		t.Errorf("reload adding name: %v", err)
	}
}
