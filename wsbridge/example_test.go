package wsbridge_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/portmux/portmux/mux"
	"github.com/portmux/portmux/wsbridge"
)

// A mux sends WebSocket handshakes for /chat to a handler that upgrades
// the connection (the mux replays the bytes it sniffed) and echoes
// messages in upper case, and plain HTTP to an http.Server, on one port.
func Example() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	m := new(mux.Mux)
	up := &wsbridge.Upgrader{Protocols: []string{"chat.v1"}}
	m.HandleFunc("chat", mux.And(mux.WebSocket(), mux.PathPrefix("/chat")), func(ctx context.Context, c net.Conn) error {
		conn, err := up.Upgrade(c) // on error Upgrade has answered and closed c
		if err != nil {
			return err
		}
		defer conn.Close()
		var buf []byte
		for {
			var t wsbridge.MessageType
			t, buf, err = conn.ReadMessage(buf) // reuses buf
			if err != nil {
				return nil // the client closed (answered already) or broke the protocol
			}
			for i, b := range buf {
				if 'a' <= b && b <= 'z' {
					buf[i] = b - 'a' + 'A'
				}
			}
			if err := conn.WriteMessage(t, buf); err != nil {
				return err
			}
		}
	})
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(m.Listen("http", mux.HTTP1()))
	go m.Serve(ln)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		m.Shutdown(ctx)
		srv.Shutdown(ctx)
	}()

	// A client.
	d := ws.Dialer{Protocols: []string{"chat.v1"}}
	conn, _, hs, err := d.Dial(context.Background(), "ws://"+ln.Addr().String()+"/chat")
	if err != nil {
		panic(err)
	}
	defer conn.Close()
	wsutil.WriteClientText(conn, []byte("hello, mux"))
	msg, _, err := wsutil.ReadServerData(conn)
	fmt.Println(hs.Protocol, string(msg), err)
	// Output: chat.v1 HELLO, MUX <nil>
}

// A Bridge lets browsers reach a TCP service, here on /vnc.
func ExampleBridge() {
	b := &wsbridge.Bridge{
		Backend:     "127.0.0.1:5900",
		ProxyHeader: true, // the backend learns the browser's address
		Upgrader: wsbridge.Upgrader{
			Origins:   []string{"https://example.com"},
			Protocols: []string{"binary"}, // what noVNC asks for
		},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	var m mux.Mux
	// The Bridge is the route's Handler: m.Close sends close 1001 to its
	// clients (it cancels their contexts).
	m.Handle("vnc", mux.And(mux.WebSocket(), mux.PathPrefix("/vnc")), b)
	go m.Serve(ln)
	m.Close()
}
