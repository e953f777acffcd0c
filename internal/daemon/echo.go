package daemon

import (
	"context"
	"net"
	"sync"
	"time"

	"github.com/portmux/portmux/wsbridge"
)

// Limits of the demo's WebSocket echo.
const (
	maxEchoMessage = 64 << 10        // bytes in one message
	echoIdle       = 2 * time.Minute // without a frame from the client (pings go every 30 s)
)

// echoServer serves the echo with wsbridge's message API and, at
// shutdown, tells its clients it is going away (close 1001) instead of
// keeping the drain waiting on them.
type echoServer struct {
	up       wsbridge.Upgrader
	mu       sync.Mutex
	conns    map[*wsbridge.Conn]struct{}
	stopping bool
}

func newEchoServer() *echoServer {
	return &echoServer{
		up: wsbridge.Upgrader{
			MaxMessageSize: maxEchoMessage,
			IdleTimeout:    echoIdle,
			Compression:    true,
		},
		conns: map[*wsbridge.Conn]struct{}{},
	}
}

// ServeConn completes the handshake the mux routed here (the Conn replays
// the sniffed bytes, and frames sent right behind the handshake are kept)
// and echoes every message until the client leaves or goAway.
func (e *echoServer) ServeConn(_ context.Context, c net.Conn) error {
	if e.isStopping() {
		return c.Close()
	}
	conn, err := e.up.Upgrade(c) // on error it answered and closed c
	if err != nil {
		return err
	}
	defer conn.Close()
	e.mu.Lock()
	if e.stopping {
		e.mu.Unlock()
		conn.CloseWith(wsbridge.CloseGoingAway, "server shutting down")
		return nil
	}
	e.conns[conn] = struct{}{}
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		delete(e.conns, conn)
		e.mu.Unlock()
	}()
	var buf []byte
	for {
		var t wsbridge.MessageType
		if t, buf, err = conn.ReadMessage(buf); err != nil {
			return nil // closed (and answered), or the close code the defect calls for was sent
		}
		if err := conn.WriteMessage(t, buf); err != nil {
			return err
		}
	}
}

func (e *echoServer) isStopping() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stopping
}

// goAway sends close 1001 to every echo (the listener's mux calls it when
// its Shutdown begins); each one's ReadMessage then
// returns with the client's answer, or after the close timeout.
func (e *echoServer) goAway() {
	e.mu.Lock()
	e.stopping = true
	conns := make([]*wsbridge.Conn, 0, len(e.conns))
	for c := range e.conns {
		conns = append(conns, c)
	}
	e.mu.Unlock()
	for _, c := range conns {
		c.CloseWith(wsbridge.CloseGoingAway, "server shutting down")
	}
}
