package wsbridge

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/portmux/portmux/mux"
)

// TestThroughMux: the mux has read the handshake (and the frames the
// client sent in the same write) while sniffing; the *mux.Conn replays
// them, and the bridge loses none. A PROXY v2 header to the backend
// carries the client's address as the mux saw it.
func TestThroughMux(t *testing.T) {
	gotProxy := make(chan []byte, 1)
	backend := scriptedBackend(t, func(c net.Conn) {
		hdr := make([]byte, 28)
		if _, err := c.Read(hdr); err != nil {
			t.Error(err)
		}
		gotProxy <- hdr
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			if n > 0 {
				c.Write(buf[:n])
			}
			if err != nil {
				return
			}
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := new(mux.Mux)
	b := &Bridge{Backend: backend, ProxyHeader: true}
	results := make(chan error, 1)
	m.HandleFunc("ws", mux.WebSocket(), func(ctx context.Context, c net.Conn) error {
		if c.(*mux.Conn).Buffered() == 0 {
			t.Error("the mux replays nothing")
		}
		err := b.ServeConn(ctx, c)
		results <- err
		return err
	})
	var wg sync.WaitGroup
	wg.Go(func() { m.Serve(ln) })
	defer func() {
		m.Close()
		wg.Wait()
	}()

	rc := dialRaw(t, ln.Addr().String())
	early := append(frame(true, ws.OpBinary, []byte("first")), frame(true, ws.OpText, []byte(" second"))...)
	rc.upgrade("/any", early)
	var got []byte
	for len(got) < len("first second") {
		_, msg := rc.readMessage()
		got = append(got, msg...)
	}
	if string(got) != "first second" {
		t.Errorf("echo %q", got)
	}
	hdr := <-gotProxy
	want := proxyV2For(rc.c.LocalAddr(), rc.c.RemoteAddr())
	if string(hdr) != string(want) {
		t.Errorf("PROXY header %x; want %x", hdr, want)
	}
	rc.send(closeFrame(CloseNormal, ""))
	if code, _ := rc.expectClose(); code != CloseNormal {
		t.Errorf("close %d", code)
	}
	select {
	case err := <-results:
		if err != nil {
			t.Errorf("ServeConn: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("ServeConn did not return")
	}
}
