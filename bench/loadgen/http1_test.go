package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/portmux/portmux/mux"
)

// feedAll drives p over in, split at split, the way a reader would: it
// keeps what feed did not consume in front of the next bytes.
func feedAll(p *h1Parser, in string, split int) (consumed int, done bool, err error) {
	var buf []byte
	for _, part := range []string{in[:split], in[split:]} {
		buf = append(buf, part...)
		n, d, err := p.feed(buf)
		consumed += n
		if err != nil || d {
			return consumed, d, err
		}
		buf = buf[n:]
	}
	return consumed, false, nil
}

func TestH1Parser(t *testing.T) {
	for _, tc := range []struct {
		name, in   string
		status     int
		framed     bool
		toEOF      bool // complete only at the end of the connection
		extra      int  // bytes after the response
		close, upg bool
	}{
		{name: "content-length", in: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", status: 200, framed: true},
		{name: "zero length", in: "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n", status: 200, framed: true},
		{name: "pipelined extra", in: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhiHTTP/1.1", status: 200, framed: true, extra: 8},
		{name: "chunked with trailer", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\nA\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\n", status: 200, framed: true},
		// Content-Length with Transfer-Encoding is no longer "chunked
		// wins": RFC 9112 §6.3 says to handle it as an error, and a
		// connection that carried it must not be kept (TestH1ParserFraming).
		{name: "chunked after gzip", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", status: 200, framed: true},
		{name: "interim 100 then 200", in: "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx", status: 200, framed: true},
		{name: "204 has no body", in: "HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n", status: 204, framed: true},
		{name: "to EOF", in: "HTTP/1.0 200 OK\r\n\r\nbody until the end", status: 200, toEOF: true},
		{name: "426", in: "HTTP/1.1 426 Upgrade Required\r\nUpgrade: WebSocket, h2c\r\nConnection: Upgrade, close\r\nContent-Length: 3\r\n\r\nno\n", status: 426, framed: true, close: true, upg: true},
	} {
		for split := 0; split <= len(tc.in); split++ {
			var p h1Parser
			p.reset([]string{"websocket", "h2c"})
			n, done, err := feedAll(&p, tc.in, split)
			if err != nil {
				t.Fatalf("%s, split %d: %v", tc.name, split, err)
			}
			if tc.toEOF {
				if done || !p.eof() {
					t.Fatalf("%s, split %d: done %v before EOF, or not at EOF", tc.name, split, done)
				}
			} else if !done {
				t.Fatalf("%s, split %d: not done", tc.name, split)
			} else if n != len(tc.in)-tc.extra {
				t.Fatalf("%s, split %d: consumed %d; want %d", tc.name, split, n, len(tc.in)-tc.extra)
			}
			h := p.head
			if h.status != tc.status || h.framed != tc.framed || h.connClose != tc.close || h.connUpgrade != tc.upg {
				t.Fatalf("%s, split %d: head %+v", tc.name, split, h)
			}
			if tc.upg && h.upgradeFound != 3 {
				t.Fatalf("%s: upgrade tokens found %b; want both", tc.name, h.upgradeFound)
			}
		}
	}
}

func TestH1ParserMalformed(t *testing.T) {
	for _, in := range []string{
		"HTTP/2 200 OK\r\n\r\n",
		"HTTP/1.1 20 OK\r\n\r\n",
		"HTTP/1.1 200OK\r\n\r\n",
		"FOO\r\n\r\n",
		"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n0\r\n\r\n",
	} {
		var p h1Parser
		p.reset(nil)
		_, _, err := p.feed([]byte(in))
		if kindOf(err) != KindProtocol {
			t.Errorf("%q: err %v; want a protocol error", in, err)
		}
	}
	var p h1Parser
	p.reset(nil)
	_, _, err := p.feed([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + strings.Repeat("1", maxLine+1)))
	if !errors.Is(err, errTooLong) {
		t.Errorf("long chunk line: err %v; want errTooLong", err)
	}
}

func TestCheck426(t *testing.T) {
	s := &settings{Config: Config{Mode: Upgrade426, UpgradeTokens: []string{"websocket", "h2c"}}}
	for _, tc := range []struct {
		in   string
		want ErrorKind // numKinds: no error
	}{
		{"HTTP/1.1 426 Upgrade Required\r\nUpgrade: h2c, websocket\r\nConnection: close, upgrade\r\nContent-Length: 0\r\n\r\n", numKinds},
		{"HTTP/1.1 426 Upgrade Required\r\nUpgrade: websocket\r\nUpgrade: h2c\r\nConnection: Upgrade, close\r\nContent-Length: 0\r\n\r\n", numKinds},
		{"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", KindBadStatus},
		{"HTTP/1.1 426 Upgrade Required\r\nConnection: Upgrade, close\r\nContent-Length: 0\r\n\r\n", KindBadHeader},
		{"HTTP/1.1 426 Upgrade Required\r\nUpgrade: websocket\r\nConnection: Upgrade, close\r\nContent-Length: 0\r\n\r\n", KindBadHeader},
		{"HTTP/1.1 426 Upgrade Required\r\nUpgrade: websocket, h2c\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", KindBadHeader},
		{"HTTP/1.1 426 Upgrade Required\r\nUpgrade: websocket, h2c\r\nConnection: upgrade\r\nContent-Length: 0\r\n\r\n", KindBadHeader},
	} {
		var p h1Parser
		p.reset(s.UpgradeTokens)
		if _, done, err := p.feed([]byte(tc.in)); err != nil || !done {
			t.Fatalf("%q: %v, done %v", tc.in, err, done)
		}
		_, err := p.check(s)
		if got := kindOf(err); (err == nil) != (tc.want == numKinds) || err != nil && got != tc.want {
			t.Errorf("%q: err %v; want kind %v", tc.in, err, tc.want)
		}
	}
}

// TestH1ParserAllocs holds the parse of a response to no allocation.
func TestH1ParserAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	in := []byte("HTTP/1.1 200 OK\r\nDate: x\r\nContent-Type: text/plain\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
	tokens := []string{"websocket"}
	var p h1Parser
	allocs := testing.AllocsPerRun(100, func() {
		p.reset(tokens)
		if _, done, err := p.feed(in); !done || err != nil {
			t.Fatal(done, err)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per response; want 0", allocs)
	}
}

// TestKeepAliveAllocs holds a request on an open HTTP/1.1 connection
// (write, read, parse, account) to no allocation. The server answers
// from a constant, so that it allocates nothing either.
func TestKeepAliveAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
	addr := rawServer(t, func(c net.Conn) {
		b := make([]byte, 4096)
		for {
			if _, err := c.Read(b); err != nil {
				return
			}
			if _, err := c.Write(resp); err != nil {
				return
			}
		}
	})
	s, err := (&Config{Mode: HTTP1KeepAlive, Target: addr}).resolve(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	r := &runner{s: s}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	defer r.cancel()
	w := &worker{r: r, status: map[int]uint64{}}
	c := newH1Client(w, buildHTTP1Request(s))
	defer c.close()
	if err := c.do(); err != nil { // connects
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(200, func() {
		if err := c.do(); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per request; want 0", allocs)
	}
	if w.conns.Load() != 1 {
		t.Errorf("%d connections; want 1", w.conns.Load())
	}
}

// TestKeepAliveBadStatus: a 4xx or 5xx that is well framed, on a
// connection the server keeps open, is a bad_status error but does not
// cost the connection (as wrk counts it).
func TestKeepAliveBadStatus(t *testing.T) {
	url := httpServer(t, http.NotFoundHandler())
	engines(t, func(t *testing.T) {
		res := run(t, Config{Mode: HTTP1KeepAlive, Target: url, Concurrency: 1, Requests: 10})
		wantErrors(t, res, KindBadStatus, 10)
		if res.Connections != 1 || res.Status["404"] != 10 {
			t.Errorf("connections %d, status %v; want 1 connection for 10 x 404", res.Connections, res.Status)
		}
	})
	// One that closes after the error still costs a connection each.
	closing := httpServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		http.Error(w, "no", http.StatusServiceUnavailable)
	}))
	engines(t, func(t *testing.T) {
		res := run(t, Config{Mode: HTTP1KeepAlive, Target: closing, Concurrency: 1, Requests: 5})
		wantErrors(t, res, KindBadStatus, 5)
		if res.Connections != 5 {
			t.Errorf("connections %d; want 5", res.Connections)
		}
	})
}

func TestHTTP1(t *testing.T) {
	url := httpServer(t, hello)
	engines(t, func(t *testing.T) {
		res := run(t, Config{Mode: HTTP1, Target: url + "/x?y=1", Concurrency: 4, Requests: 200})
		wantOK(t, res, 200)
		if res.Connections != 200 {
			t.Errorf("connections %d; want 200, one per request", res.Connections)
		}
		req := "GET /x?y=1 HTTP/1.1\r\nHost: " + strings.TrimPrefix(url, "http://") + "\r\nUser-Agent: portmux-bench\r\nConnection: close\r\n\r\n"
		if res.BytesSent != 200*uint64(len(req)) {
			t.Errorf("bytes sent %d; want 200 x %d", res.BytesSent, len(req))
		}
		if res.BytesReceived < 200*uint64(len("HTTP/1.1 200 OK\r\n\r\nhello\n")) {
			t.Errorf("bytes received %d: too few", res.BytesReceived)
		}
		if res.Status["200"] != 200 {
			t.Errorf("status %v", res.Status)
		}
	})
}

func TestHTTP1Body(t *testing.T) {
	var mu sync.Mutex
	var got []string
	url := httpServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, r.Method+" "+r.Host+" "+fmt.Sprint(len(b)))
		mu.Unlock()
		w.(http.Flusher).Flush() // a chunked response
		io.WriteString(w, "ok")
	}))
	engines(t, func(t *testing.T) {
		mu.Lock()
		got = nil
		mu.Unlock()
		res := run(t, Config{Mode: HTTP1, Target: url, Host: "example.test", Size: 1000, Requests: 10})
		wantOK(t, res, 10)
		mu.Lock()
		defer mu.Unlock()
		if want := "POST example.test 1000"; len(got) != 10 || got[0] != want {
			t.Errorf("server saw %q; want 10 x %q", got, want)
		}
	})
}

func TestHTTP1KeepAlive(t *testing.T) {
	engines(t, testHTTP1KeepAlive)
}

func testHTTP1KeepAlive(t *testing.T) {
	url := httpServer(t, hello)
	res := run(t, Config{Mode: HTTP1KeepAlive, Target: url, Concurrency: 3, Requests: 300})
	wantOK(t, res, 300)
	if res.Connections < 1 || res.Connections > 3 {
		t.Errorf("connections %d; want at most 3, one per worker", res.Connections)
	}

	// A server that closes after every response makes each worker reconnect.
	url = httpServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		io.WriteString(w, "bye")
	}))
	res = run(t, Config{Mode: HTTP1KeepAlive, Target: url, Concurrency: 2, Requests: 20})
	wantOK(t, res, 20)
	if res.Connections != 20 {
		t.Errorf("connections %d; want 20", res.Connections)
	}

	// A server that closes a kept-alive connection without saying so:
	// the request that finds it closed is retried once on a new one.
	once := rawServer(t, func(c net.Conn) {
		c.Read(make([]byte, 4096))
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	})
	res = run(t, Config{Mode: HTTP1KeepAlive, Target: once, Concurrency: 1, Requests: 10})
	wantOK(t, res, 10)
	if res.Connections != 10 {
		t.Errorf("connections %d; want 10", res.Connections)
	}
}

func TestBadStatus(t *testing.T) {
	url := httpServer(t, http.NotFoundHandler())
	engines(t, func(t *testing.T) {
		res := run(t, Config{Mode: HTTP1, Target: url, Requests: 7})
		wantErrors(t, res, KindBadStatus, 7)
		if res.Status["404"] != 7 {
			t.Errorf("status %v", res.Status)
		}
	})
}

// upgradeOnly serves an upgrade-only portmux port.
func upgradeOnly(t *testing.T, tokens ...string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := new(mux.Mux)
	m.UpgradeOnly = tokens
	m.HandleFunc("websocket", mux.WebSocket(), func(_ context.Context, c net.Conn) error { return c.Close() })
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.Serve(ln)
	}()
	t.Cleanup(func() {
		m.Close()
		<-done
	})
	return "http://" + ln.Addr().String() + "/"
}

func Test426(t *testing.T) {
	port := upgradeOnly(t, "websocket", "h2c")
	plain := httpServer(t, hello)
	engines(t, func(t *testing.T) {
		res := run(t, Config{Mode: Upgrade426, Target: port, Concurrency: 3, Requests: 30, UpgradeTokens: []string{"H2C", "websocket"}})
		wantOK(t, res, 30)
		if res.Status["426"] != 30 || res.Connections != 30 {
			t.Errorf("status %v, connections %d; want 30 x 426 on 30 connections", res.Status, res.Connections)
		}
		wantErrors(t, run(t, Config{Mode: Upgrade426, Target: port, Requests: 4, UpgradeTokens: []string{"websocket", "foo"}}), KindBadHeader, 4)
		wantErrors(t, run(t, Config{Mode: Upgrade426, Target: plain, Requests: 4}), KindBadStatus, 4)
	})
}

// TestHTTP1Large sends and receives bodies far larger than the socket
// buffers, so that writes and reads resume across many readiness edges.
func TestHTTP1Large(t *testing.T) {
	big := strings.Repeat("x", 3<<20)
	url := httpServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		if n != 4<<20 {
			http.Error(w, fmt.Sprint("body of ", n), http.StatusBadRequest)
			return
		}
		if r.URL.Path == "/chunked" {
			w.(http.Flusher).Flush()
		}
		io.WriteString(w, big)
	}))
	for _, path := range []string{"/length", "/chunked"} {
		engines(t, func(t *testing.T) {
			for _, mode := range []Mode{HTTP1, HTTP1KeepAlive} {
				res := run(t, Config{Mode: mode, Target: url + path, Concurrency: 2, Requests: 4, Size: 4 << 20})
				wantOK(t, res, 4)
				if res.BytesSent < 4*4<<20 || res.BytesReceived < 4*3<<20 {
					t.Errorf("%s %s: bytes %d sent, %d received; want over %d and %d", mode, path, res.BytesSent, res.BytesReceived, 4*4<<20, 4*3<<20)
				}
			}
		})
	}
}
