package wsbridge

import (
	"bytes"
	"testing"

	"github.com/gobwas/ws"
)

func TestBridgeEchoSmoke(t *testing.T) {
	addr, results := bridgeServer(t, &Bridge{Backend: echoBackend(t)})
	rc := dialRaw(t, addr)
	rc.upgrade("/", frame(true, ws.OpBinary, []byte("early")))
	if op, msg := rc.readMessage(); op != ws.OpBinary || string(msg) != "early" {
		t.Fatalf("got %v %q", op, msg)
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), 8192)
	rc.send(frame(false, ws.OpText, big[:100]), frame(true, ws.OpContinuation, big[100:]))
	var got []byte
	for len(got) < len(big) {
		_, msg := rc.readMessage()
		got = append(got, msg...)
	}
	if !bytes.Equal(got, big) {
		t.Fatalf("echo differs")
	}
	rc.send(closeFrame(CloseNormal, "bye"))
	if code, _ := rc.expectClose(); code != CloseNormal {
		t.Errorf("close code %d", code)
	}
	if err := waitResult(t, results); err != nil {
		t.Errorf("ServeConn: %v", err)
	}
}
