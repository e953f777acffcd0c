package mux

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestUpgradeOnlyResponses(t *testing.T) {
	m := start(t, func(m *Mux) {
		m.UpgradeOnly = []string{"websocket", "h2c"}
		m.MaxSniffBytes = 1024
		m.Handle("ws", And(WebSocket(), PathPrefix("/echo")), echoHandler("ws"))
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
		m.Handle("a", ServerName("a.example"), echoHandler("a"))
	})
	got := exchange(t, m.Addr(), string(buildHello("b.example", "h2")))
	if got != string(tlsAlertUnrecognizedName) {
		t.Errorf("got %x; want alert unrecognized_name %x", got, tlsAlertUnrecognizedName)
	}
}
