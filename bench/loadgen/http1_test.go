package loadgen

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
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
