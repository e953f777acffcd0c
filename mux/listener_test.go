package mux

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/portmux/portmux/sniff"
)

// startHTTPRoutes runs a Mux with an h2c route and an HTTP/1 route, each
// served by an http.Server whose handler answers "<proto> via <path>".
// The h2c server is returned so that a test can close that route.
func startHTTPRoutes(t *testing.T) (*served, *http.Server, *http.Protocols) {
	t.Helper()
	var h1, h2 *Listener
	m := start(t, func(m *Mux) {
		h2 = m.Listen("h2", HTTP2())
		h1 = m.Listen("http1", HTTP1())
	})
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s via %s", r.Proto, r.URL.Path)
	})
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	srv2 := &http.Server{Handler: handler, Protocols: p}
	srv1 := &http.Server{Handler: handler}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); srv2.Serve(h2) }()
	go func() { defer wg.Done(); srv1.Serve(h1) }()
	t.Cleanup(func() {
		srv1.Close()
		srv2.Close()
		wg.Wait()
	})
	return m, srv2, p
}

func TestHTTPServersOnRoutes(t *testing.T) {
	m, srv2, p := startHTTPRoutes(t)
	h2 := m.loadRoutes()[0].ln

	tr := &http.Transport{Protocols: p}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get("http://" + m.Addr().String() + "/two")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "HTTP/2.0 via /two" {
		t.Errorf("h2c route answered %q", b)
	}
	resp, err = http.Get("http://" + m.Addr().String() + "/one")
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "HTTP/1.1 via /one" {
		t.Errorf("http1 route answered %q", b)
	}
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()

	// Closing one route's listener closes only that route.
	srv2.Close()
	if _, err := h2.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept on closed route: %v; want net.ErrClosed", err)
	}
	resp, err = http.Get("http://" + m.Addr().String() + "/still")
	if err != nil {
		t.Fatalf("http1 after closing h2: %v", err)
	}
	resp.Body.Close()
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	if got := exchange(t, m.Addr(), sniff.Preface); got != "" {
		t.Errorf("closed route's protocol got %q; want a close", got)
	}
	if n := m.Stats().Rejected[ReasonRouteClosed]; n != 1 {
		t.Errorf("route_closed = %d; want 1", n)
	}
}

// TestQueueFull: a connection that finds its route's queue full waits up to
// SniffTimeout for room, then is closed (ReasonQueueFull); the queued one
// is kept.
func TestQueueFull(t *testing.T) {
	m := start(t, func(m *Mux) {
		m.QueueLen = 1
		m.SniffTimeout = 200 * time.Millisecond
	})
	l := m.Listen("http1", HTTP1())
	req := "GET / HTTP/1.1\r\nHost: a\r\n\r\n"
	first, err := net.Dial("tcp", m.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	io.WriteString(first, req)
	waitFor(t, func() bool { return m.Stats().Routed["http1"] == 1 })
	if got := exchange(t, m.Addr(), req); got != "" {
		t.Errorf("second connection got %q; want a close", got)
	}
	if n := m.Stats().Rejected[ReasonQueueFull]; n != 1 {
		t.Errorf("queue_full = %d; want 1", n)
	}
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}
