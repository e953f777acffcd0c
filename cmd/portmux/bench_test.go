package main

import (
	"bytes"
	"io"
	"net"
	"sync"
	"testing"
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
