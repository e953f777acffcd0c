package loadgen

import (
	"cmp"
	"encoding/binary"
	"io"
	"net"
	"testing"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// Tests for defects a review found; each failed (or crashed) before its fix.

// TestWSHugeContinuation: a continuation frame whose 64-bit length would
// overflow the echo's bound is a protocol error, not a panic.
func TestWSHugeContinuation(t *testing.T) {
	addr := rawServer(t, func(c net.Conn) {
		if _, err := ws.Upgrade(c); err != nil {
			return
		}
		if _, _, err := wsutil.ReadClientData(c); err != nil {
			return
		}
		c.Write(append([]byte{0x02, 8}, make([]byte, 8)...)) // binary, not final, 8 bytes
		h := []byte{0x80, 127, 0, 0, 0, 0, 0, 0, 0, 0}       // continuation, final, 2^63-4
		binary.BigEndian.PutUint64(h[2:], 1<<63-4)
		c.Write(h)
		io.Copy(io.Discard, c)
	})
	res := run(t, Config{Mode: WS, Target: "ws://" + addr + "/", Concurrency: 1, Requests: 1, Size: 16})
	if res.Requests != 0 || res.ErrorsByKind["protocol"] != 1 {
		t.Errorf("requests %d, errors %v; want one protocol error", res.Requests, res.ErrorsByKind)
	}
}

func TestWS(t *testing.T) {
	addr := rawServer(t, func(c net.Conn) {
		if _, err := ws.Upgrade(c); err != nil {
			return
		}
		for {
			msg, op, err := wsutil.ReadClientData(c)
			if err != nil {
				return
			}
			if len(msg) > 1 { // split the echo across frames, with a ping between
				wsutil.WriteServerMessage(c, ws.OpPing, []byte("p"))
				ws.WriteFrame(c, ws.NewFrame(op, false, msg[:1]))
				ws.WriteFrame(c, ws.NewFrame(ws.OpContinuation, true, msg[1:]))
				continue
			}
			wsutil.WriteServerMessage(c, op, msg)
		}
	})
	for _, size := range []int{0, 1, 200, 70000} {
		res := run(t, Config{Mode: WS, Target: "ws://" + addr + "/echo", Concurrency: 3, Requests: 30, Size: size})
		wantOK(t, res, 30)
		if res.Connections < 1 || res.Connections > 3 {
			t.Errorf("size %d: connections %d; want at most 3, one per worker", size, res.Connections)
		}
		if want := uint64(30 * cmp.Or(size, DefaultWSSize)); res.BytesSent < want || res.BytesReceived < want {
			t.Errorf("size %d: bytes %d sent, %d received; want over %d", size, res.BytesSent, res.BytesReceived, want)
		}
	}

	// A server that echoes something else, or closes.
	wrong := rawServer(t, func(c net.Conn) {
		ws.Upgrade(c)
		wsutil.ReadClientData(c)
		wsutil.WriteServerMessage(c, ws.OpBinary, []byte("not the message"))
	})
	wantErrors(t, run(t, Config{Mode: WS, Target: wrong, Requests: 3}), KindProtocol, 3)
	closing := rawServer(t, func(c net.Conn) {
		ws.Upgrade(c)
		wsutil.WriteServerMessage(c, ws.OpClose, ws.NewCloseFrameBody(ws.StatusGoingAway, ""))
	})
	wantErrors(t, run(t, Config{Mode: WS, Target: closing, Requests: 3}), KindClosed, 3)
	// Not a WebSocket server: the handshake fails.
	wantErrors(t, run(t, Config{Mode: WS, Target: httpServer(t, hello), Requests: 3}), KindDial, 3)
}
