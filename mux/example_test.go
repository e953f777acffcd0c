package mux_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"

	"github.com/portmux/portmux/mux"
)

// One port serves HTTP/1.1 and h2c from one handler, and WebSocket
// upgrades from a connection handler.
func Example() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	var m mux.Mux // the zero value is ready to use
	h2 := m.Listen("h2c", mux.HTTP2())
	m.HandleFunc("websocket", mux.WebSocket(), func(ctx context.Context, c net.Conn) error {
		defer c.Close()
		// A real handler completes the handshake: a wsbridge.Upgrader, or
		// a wsbridge.Bridge in place of this function.
		_, err := io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\n\r\n")
		return err
	})
	h1 := m.Listen("http1", mux.HTTP1())

	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s", r.Proto)
	})
	srv2 := &http.Server{Handler: handler, Protocols: &p}
	srv1 := &http.Server{Handler: handler}
	go srv2.Serve(h2)
	go srv1.Serve(h1)
	go m.Serve(ln)
	defer func() {
		m.Close()
		srv1.Close()
		srv2.Close()
	}()

	get := func(c *http.Client) string {
		defer c.CloseIdleConnections()
		resp, err := c.Get("http://" + ln.Addr().String() + "/")
		if err != nil {
			return err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	fmt.Println(get(&http.Client{Transport: &http.Transport{}}))
	fmt.Println(get(&http.Client{Transport: &http.Transport{Protocols: &p}}))

	c, _ := net.Dial("tcp", ln.Addr().String())
	defer c.Close()
	io.WriteString(c, "GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	status, _ := io.ReadAll(c)
	fmt.Println(strings.TrimSpace(string(status)))
	// Output:
	// HTTP/1.1
	// HTTP/2.0
	// HTTP/1.1 101 Switching Protocols
}

// An upgrade-only port answers plain requests with 426.
func ExampleConfig_upgradeOnly() {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	m := &mux.Mux{Config: mux.Config{UpgradeOnly: []string{"websocket"}}}
	m.HandleFunc("websocket", mux.WebSocket(), func(ctx context.Context, c net.Conn) error { return c.Close() })
	go m.Serve(ln)
	defer m.Close()

	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	resp, err := client.Get("http://" + ln.Addr().String() + "/")
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	fmt.Println(resp.Status, resp.Header.Get("Upgrade"))
	// Output: 426 Upgrade Required websocket
}
