package sniff_test

import (
	"fmt"

	"github.com/portmux/portmux/sniff"
)

func Example() {
	// What a browser sends to open a WebSocket; a mux accumulates reads
	// like these in one buffer and parses after each.
	buf := []byte("GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n" +
		"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
		"Sec-WebSocket-Version: 13\r\n\r\n")

	var r sniff.Result
	r.Parse(buf[:20], sniff.DefaultLimit)
	fmt.Println(r.Protocol())

	r.Parse(buf, sniff.DefaultLimit)
	fmt.Println(r.Protocol())
	fmt.Printf("%s %s upgrade to websocket: %v, handshake error: %v\n",
		r.HTTP1.Method, r.HTTP1.Target, r.HTTP1.UpgradeTo("websocket"), r.HTTP1.WebSocket())
	// Output:
	// unknown need more
	// http1 match
	// GET /chat upgrade to websocket: true, handshake error: <nil>
}

func ExampleClientHello() {
	// A minimal ClientHello for "example.com" offering h2 and http/1.1.
	var r sniff.Result
	r.Parse(buildHello("example.com", "h2", "http/1.1"), 0)
	fmt.Println(r.Protocol())
	fmt.Printf("SNI %s, ALPN %q\n", r.TLS.ServerName, r.TLS.ALPN())
	// Output:
	// tls match
	// SNI example.com, ALPN ["h2" "http/1.1"]
}

// buildHello writes a minimal ClientHello with server_name and ALPN.
func buildHello(sni string, alpn ...string) []byte {
	u16 := func(n int) []byte { return []byte{byte(n >> 8), byte(n)} }
	var protos []byte
	for _, p := range alpn {
		protos = append(append(protos, byte(len(p))), p...)
	}
	var ext []byte
	name := append(append([]byte{0}, u16(len(sni))...), sni...)
	ext = append(append(append(append(ext, 0, 0), u16(len(name)+2)...), u16(len(name))...), name...)
	ext = append(append(append(append(ext, 0, 16), u16(len(protos)+2)...), u16(len(protos))...), protos...)
	body := []byte{3, 3}
	body = append(body, make([]byte, 32)...)              // random
	body = append(body, 0, 0, 2, 0x13, 0x01, 1, 0)        // session id, suites, compression
	body = append(append(body, u16(len(ext))...), ext...) // extensions
	hs := append([]byte{1, 0, byte(len(body) >> 8), byte(len(body))}, body...)
	return append(append([]byte{22, 3, 1}, u16(len(hs))...), hs...)
}
