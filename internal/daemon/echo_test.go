package daemon

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// startEcho serves the built-in echo as the demo does, and returns its
// address.
func startEcho(t *testing.T) string {
	t.Helper()
	addrs, _ := startDaemon(t, "listeners:\n  - listen: 127.0.0.1:0\n    routes: [{match: websocket, serve: echo}]\n", nil)
	return addrs[0]
}

// TestEchoKeepsEarlyFrames: a frame sent in the same write as the
// handshake, before the 101, is echoed, not lost.
func TestEchoKeepsEarlyFrames(t *testing.T) {
	addr := startEcho(t)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	var frame bytes.Buffer
	f := ws.MaskFrame(ws.NewBinaryFrame([]byte("early")))
	ws.WriteFrame(&frame, f)
	io.WriteString(c, "GET /echo HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"+frame.String())
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 || resp.Header.Get("Sec-WebSocket-Accept") != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("handshake: %v %v", resp, err)
	}
	msg, _, err := wsutil.ReadServerData(struct {
		io.Reader
		io.Writer
	}{br, c})
	if err != nil || string(msg) != "early" {
		t.Fatalf("early frame echoed as %q, %v", msg, err)
	}
}

// TestEchoLimits: a message over the limit gets close 1009.
func TestEchoLimits(t *testing.T) {
	addr := startEcho(t)
	conn, br, _, err := ws.Dial(context.Background(), "ws://"+addr+"/echo")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if br != nil {
		t.Fatal("server sent bytes before the client's first frame")
	}
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	wsutil.WriteClientBinary(conn, make([]byte, maxEchoMessage+1))
	hdr, err := ws.ReadHeader(conn)
	if err != nil || hdr.OpCode != ws.OpClose {
		t.Fatalf("after an oversize message: %+v, %v", hdr, err)
	}
	body := make([]byte, hdr.Length)
	io.ReadFull(conn, body)
	if code := binary.BigEndian.Uint16(body); code != uint16(ws.StatusMessageTooBig) {
		t.Errorf("close code %d; want 1009", code)
	}
}
