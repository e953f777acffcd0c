package wsbridge

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/portmux/portmux/sniff"
)

// FuzzHandshake: no request head makes the checks panic, and an accepted
// one always has a key, one Host and the websocket upgrade. Seeds are in
// testdata/fuzz/FuzzHandshake.
func FuzzHandshake(f *testing.F) {
	f.Add([]byte(handshake("/")))
	u := &Upgrader{Compression: true, Protocols: []string{"a", "b"}}
	f.Fuzz(func(t *testing.T, head []byte) {
		var h sniff.HTTP1Head
		if h.Parse(head, 0); h.Verdict == sniff.NeedMore {
			return // Upgrade reads more
		}
		req, hs, perr := u.check(&h)
		if perr != nil {
			if perr.Status < 400 || perr.Status > 599 || perr.Err == nil {
				t.Fatalf("refusal %+v", perr)
			}
			return
		}
		if hs.key == "" || len(req.Header["Host"]) != 1 || !h.UpgradeTo("websocket") || h.WebSocket() != nil {
			t.Fatalf("accepted %q as %+v %+v", head, req, hs)
		}
	})
}

// FuzzFrames feeds arbitrary bytes after a valid handshake to a Conn
// reading messages: it must answer or fail, never panic or hang. Seeds
// are in testdata/fuzz/FuzzFrames.
func FuzzFrames(f *testing.F) {
	f.Add(frame(true, 1, []byte("hello")))
	u := &Upgrader{
		MaxMessageSize: 4096, BufferSize: 256, Compression: true,
		WriteTimeout: 100 * time.Millisecond, CloseTimeout: 100 * time.Millisecond,
		IdleTimeout: time.Second, PingInterval: -1,
	}
	hs := []byte(handshake("/", "Sec-WebSocket-Extensions: permessage-deflate"))
	f.Fuzz(func(t *testing.T, frames []byte) {
		server, client := net.Pipe()
		defer client.Close()
		go func() {
			client.Write(hs)
			client.Write(frames)
			time.Sleep(10 * time.Millisecond)
			client.Close()
		}()
		go io.Copy(io.Discard, client)
		done := make(chan struct{})
		go func() {
			defer close(done)
			c, err := u.Upgrade(server)
			if err != nil {
				t.Errorf("Upgrade: %v", err)
				return
			}
			defer c.Close()
			var buf []byte
			for {
				var err error
				if _, buf, err = c.ReadMessage(buf); err != nil {
					return
				}
			}
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("the Conn hangs on %q", frames)
		}
	})
}
