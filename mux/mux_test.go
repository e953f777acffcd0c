package mux

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portmux/portmux/sniff"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// start runs a Mux on 127.0.0.1:0 with the routes setup adds, and stops it
// when the test ends.
func start(t testing.TB, setup func(m *Mux)) *Mux {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return startOn(t, ln, setup)
}

// startOn is start over a listener of the test's own.
func startOn(t testing.TB, ln net.Listener, setup func(m *Mux)) *Mux {
	t.Helper()
	m := New(ln)
	setup(m)
	done := make(chan error, 1)
	go func() { done <- m.Serve() }()
	t.Cleanup(func() {
		m.Close()
		if err := <-done; !errors.Is(err, ErrMuxClosed) {
			t.Errorf("Serve returned %v; want ErrMuxClosed", err)
		}
	})
	return m
}

// dialRoute sends first on a new connection to m and returns the client
// side and the Conn that route Listener l delivered.
func dialRoute(t testing.TB, m *Mux, l *Listener, first string) (net.Conn, *Conn) {
	t.Helper()
	c, err := net.Dial("tcp", m.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	io.WriteString(c, first)
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
	c, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("reading response to %q: %v (got %q)", req, err, got)
	}
	return string(got)
}

// echoHandler answers with the route name and what it read first.
func echoHandler(name string) HandlerFunc {
	return func(c *Conn) {
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		var b [64]byte
		n, _ := c.Read(b[:])
		fmt.Fprintf(c, "%s:%q", name, b[:n])
	}
}

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
		m.HandleFunc("h2", HTTP2(), echoHandler("h2"))
		m.HandleFunc("ws", WebSocket(), echoHandler("ws"))
		m.HandleFunc("http1", HTTP1(), echoHandler("http1"))
		m.HandleFunc("tls-a", And(ServerName("*.a.example"), ALPN("h2")), echoHandler("tls-a"))
		m.HandleFunc("tls", TLS(), echoHandler("tls"))
		m.HandleFunc("ssh", SSH(), echoHandler("ssh"))
		m.HandleFunc("socks5", socks5, echoHandler("socks5"))
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

func TestUpgradeOnlyResponses(t *testing.T) {
	m := start(t, func(m *Mux) {
		m.UpgradeOnly = []string{"websocket", "h2c"}
		m.MaxSniffBytes = 1024
		m.HandleFunc("ws", And(WebSocket(), PathPrefix("/echo")), echoHandler("ws"))
	})
	ws := func(path, version string) string {
		return "GET " + path + " HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: " + version + "\r\n\r\n"
	}
	tests := []struct {
		name, in, status string
		headers          []string
		noBody           bool
	}{
		{"plain GET", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", "426 Upgrade Required",
			[]string{"Upgrade: websocket, h2c", "Connection: Upgrade, close", "Content-Type: text/plain; charset=utf-8"}, false},
		{"HEAD", "HEAD / HTTP/1.1\r\nHost: a\r\n\r\n", "426 Upgrade Required", []string{"Upgrade: websocket, h2c"}, true},
		{"HTTP/1.0", "GET / HTTP/1.0\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n", "426 Upgrade Required", []string{"Upgrade: websocket, h2c"}, false},
		{"upgrade to another protocol", "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: foo\r\nConnection: upgrade\r\n\r\n", "426 Upgrade Required", []string{"Upgrade: websocket, h2c"}, false},
		{"websocket version 8", ws("/echo", "8"), "426 Upgrade Required", []string{"Sec-WebSocket-Version: 13"}, false},
		{"websocket bad key", strings.Replace(ws("/echo", "13"), "dGhlIHNhbXBsZSBub25jZQ==", "short", 1), "400 Bad Request", nil, false},
		{"websocket on an unrouted path", ws("/other", "13"), "404 Not Found", nil, false},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX: y\r\n z\r\n\r\n", "400 Bad Request", nil, false},
		{"HTTP/2.0 in text", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", "505 HTTP Version Not Supported", nil, false},
		{"head too large", "GET / HTTP/1.1\r\nHost: a\r\nCookie: " + strings.Repeat("c", 2000) + "\r\n\r\n", "431 Request Header Fields Too Large", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := exchange(t, m.Addr(), tt.in)
			resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(got)), nil)
			if err != nil {
				t.Fatalf("response %q: %v", got, err)
			}
			if resp.Status != tt.status {
				t.Fatalf("status %q; want %q (%q)", resp.Status, tt.status, got)
			}
			for _, h := range tt.headers {
				if !strings.Contains(got, "\r\n"+h+"\r\n") {
					t.Errorf("no %q in %q", h, got)
				}
			}
			body, _ := io.ReadAll(resp.Body)
			if tt.noBody != (len(body) == 0) || (!tt.noBody && int64(len(body)) != resp.ContentLength) {
				t.Errorf("body %q with Content-Length %d (noBody %v)", body, resp.ContentLength, tt.noBody)
			}
		})
	}
	if got := exchange(t, m.Addr(), ws("/echo", "13")); !strings.HasPrefix(got, "ws:") {
		t.Errorf("valid handshake got %q", got)
	}
	st := m.Stats()
	if st.Rejected[ReasonUpgradeRequired] != 4 || st.Rejected[ReasonWebSocketVersion] != 1 || st.Rejected[ReasonBadRequest] != 2 {
		t.Errorf("Stats.Rejected = %v", st.Rejected)
	}
}

// TestLargeBodyGets426: a client that sends a 1 MiB body to an
// upgrade-only port still reads the whole 426, every time, thanks to the
// lingering close.
func TestLargeBodyGets426(t *testing.T) {
	m := start(t, func(m *Mux) { m.UpgradeOnly = []string{"websocket"} })
	body := bytes.Repeat([]byte("x"), 1<<20)
	for i := range 20 {
		c, err := net.Dial("tcp", m.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		errc := make(chan error, 1)
		go func() {
			_, err := fmt.Fprintf(c, "POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
			errc <- err
		}()
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("try %d: %v", i, err)
		}
		got, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != 426 || int64(len(got)) != resp.ContentLength {
			t.Fatalf("try %d: status %d, body %q, err %v", i, resp.StatusCode, got, err)
		}
		<-errc // the upload may end in a reset after the response; that is fine
		c.Close()
	}
}

func TestTLSWithoutRouteGetsAlert(t *testing.T) {
	m := start(t, func(m *Mux) {
		m.HandleFunc("a", ServerName("a.example"), echoHandler("a"))
	})
	got := exchange(t, m.Addr(), string(buildHello("b.example", "h2")))
	if got != string(tlsAlertUnrecognizedName) {
		t.Errorf("got %x; want alert unrecognized_name %x", got, tlsAlertUnrecognizedName)
	}
}

func TestTimeouts(t *testing.T) {
	m := start(t, func(m *Mux) {
		m.SniffTimeout = 200 * time.Millisecond
		m.HandleFunc("http1", HTTP1(), echoHandler("http1"))
		m.HandleFunc("silent", Silent(), func(c *Conn) {
			defer c.Close()
			io.WriteString(c, "220 server speaks first\r\n")
		})
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
		m.HandleFunc("http1", HTTP1(), func(c *Conn) {
			remote <- c.RemoteAddr().String()
			echoHandler("http1")(c)
		})
	})
	got := exchange(t, m.Addr(), "PROXY TCP4 192.0.2.1 198.51.100.2 56324 80\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n")
	if !strings.HasPrefix(got, `http1:"GET / HTTP/1.1`) {
		t.Errorf("got %q; want the request without the PROXY line", got)
	}
	if r := <-remote; r != "192.0.2.1:56324" {
		t.Errorf("RemoteAddr = %s; want the PROXY source", r)
	}

	strict := start(t, func(m *Mux) {
		m.HandleFunc("http1", HTTP1(), echoHandler("http1"))
	})
	if got := exchange(t, strict.Addr(), "PROXY TCP4 192.0.2.1 198.51.100.2 56324 80\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"); got != "" {
		t.Errorf("untrusted PROXY header got %q; want a close", got)
	}
	if n := strict.Stats().Rejected[ReasonProxyUntrusted]; n != 1 {
		t.Errorf("proxy_untrusted = %d; want 1", n)
	}
}

// startHTTPRoutes runs a Mux with an h2c route and an HTTP/1 route, each
// served by an http.Server whose handler answers "<proto> via <path>".
// The h2c server is returned so that a test can close that route.
func startHTTPRoutes(t *testing.T) (*Mux, *http.Server, *http.Protocols) {
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

func TestLifecycle(t *testing.T) {
	t.Run("Accept after Close without Serve", func(t *testing.T) {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		m := New(ln)
		l := m.Listen("any", Any())
		errc := make(chan error, 1)
		go func() { _, err := l.Accept(); errc <- err }()
		m.Close()
		if err := <-errc; !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept: %v; want net.ErrClosed", err)
		}
		if err := m.Serve(); !errors.Is(err, ErrMuxClosed) {
			t.Errorf("Serve after Close: %v", err)
		}
	})
	t.Run("silent client does not delay Close", func(t *testing.T) {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		m := New(ln)
		m.SniffTimeout = time.Hour
		m.Listen("http1", HTTP1())
		served := make(chan error, 1)
		go func() { served <- m.Serve() }()
		c, err := net.Dial("tcp", m.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		waitFor(t, func() bool { return m.Stats().Accepted == 1 })
		m.Close()
		if err := <-served; !errors.Is(err, ErrMuxClosed) {
			t.Errorf("Serve: %v", err)
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("silent client after Close: %v; want EOF", err)
		}
	})
	t.Run("Shutdown waits for handlers and drains queues", func(t *testing.T) {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		m := New(ln)
		release := make(chan struct{})
		inHandler := make(chan struct{})
		m.HandleFunc("slow", SSH(), func(c *Conn) {
			close(inHandler)
			<-release
			c.Close()
		})
		q := m.Listen("http1", HTTP1())
		go m.Serve()
		c1, _ := net.Dial("tcp", m.Addr().String())
		defer c1.Close()
		io.WriteString(c1, "SSH-2.0-x\r\n")
		<-inHandler
		c2, _ := net.Dial("tcp", m.Addr().String())
		defer c2.Close()
		io.WriteString(c2, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		waitFor(t, func() bool { return m.Stats().Routed["http1"] == 1 })

		done := make(chan error, 1)
		go func() { done <- m.Shutdown(context.Background()) }()
		select {
		case err := <-done:
			t.Fatalf("Shutdown returned %v with a handler running", err)
		case <-time.After(50 * time.Millisecond):
		}
		close(release)
		if err := <-done; err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		qc, err := q.Accept()
		if err != nil {
			t.Fatalf("queued connection lost in Shutdown: %v", err)
		}
		qc.Close()
		if _, err := q.Accept(); !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept after the queue drained: %v; want net.ErrClosed", err)
		}
	})
	t.Run("Shutdown bounded by ctx", func(t *testing.T) {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		m := New(ln)
		release := make(chan struct{})
		inHandler := make(chan struct{})
		m.HandleFunc("stuck", Any(), func(c *Conn) {
			close(inHandler)
			<-release
			c.Close()
		})
		go m.Serve()
		c, _ := net.Dial("tcp", m.Addr().String())
		defer c.Close()
		<-inHandler
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := m.Shutdown(ctx); !errors.Is(err, context.Canceled) {
			t.Errorf("Shutdown: %v; want context.Canceled", err)
		}
		close(release)
	})
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

// flakyListener fails its first n Accepts with a non-closed error.
type flakyListener struct {
	net.Listener
	mu    sync.Mutex
	fails int
}

func (l *flakyListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	if l.fails > 0 {
		l.fails--
		l.mu.Unlock()
		return nil, errors.New("accept: too many open files")
	}
	l.mu.Unlock()
	return l.Listener.Accept()
}

// TestAcceptErrorsBackOff: errors that are not a closed listener neither
// end Serve nor spin; Serve goes on accepting after them.
func TestAcceptErrorsBackOff(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	startOn(t, &flakyListener{Listener: ln, fails: 4}, func(m *Mux) {
		m.HandleFunc("http1", HTTP1(), echoHandler("http1"))
	})
	if got := exchange(t, ln.Addr(), "GET / HTTP/1.1\r\nHost: a\r\n\r\n"); !strings.HasPrefix(got, "http1:") {
		t.Fatalf("after accept errors got %q", got)
	}
}

// TestMaxPending: with every pending slot taken by silent clients, the
// mux stops accepting (the kernel's backlog holds the next client) until
// a slot frees, then serves it.
func TestMaxPending(t *testing.T) {
	m := start(t, func(m *Mux) {
		m.MaxPending = 2
		m.SniffTimeout = time.Hour
		m.HandleFunc("http1", HTTP1(), echoHandler("http1"))
	})
	var silent []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", m.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		silent = append(silent, c)
	}
	waitFor(t, func() bool { return m.Stats().Accepted == 2 })
	got := make(chan string, 1)
	go func() { got <- exchange(t, m.Addr(), "GET / HTTP/1.1\r\nHost: a\r\n\r\n") }()
	time.Sleep(100 * time.Millisecond)
	if n := m.Stats().Accepted; n != 2 {
		t.Fatalf("accepted %d connections with 2 pending slots", n)
	}
	io.WriteString(silent[0], "SSH-2.0-x\r\n") // no route: rejected, slot freed
	if g := <-got; !strings.HasPrefix(g, "http1:") {
		t.Fatalf("waiting client got %q", g)
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
