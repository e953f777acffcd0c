package wsbridge

import (
	"bufio"
	"bytes"
	"compress/flate"
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gobwas/ws"
)

// echoServer upgrades with u and echoes messages with the Conn API until
// an error, which goes to the channel.
func echoServer(t testing.TB, u *Upgrader) (string, <-chan error) {
	results := make(chan error, 16)
	addr := listen(t, func(ctx context.Context, c net.Conn) {
		wc, err := u.Upgrade(c)
		if err != nil {
			results <- err
			return
		}
		defer wc.Close()
		var buf []byte
		for {
			var op MessageType
			op, buf, err = wc.ReadMessage(buf)
			if err != nil {
				results <- err
				return
			}
			if err := wc.WriteMessage(op, buf); err != nil {
				results <- err
				return
			}
		}
	})
	return addr, results
}

// rawFrame builds a client frame header by hand, for what ws.WriteFrame
// refuses to write.
func rawFrame(b0 byte, masked bool, payload []byte) []byte {
	b1 := byte(len(payload))
	if masked {
		b1 |= 0x80
	}
	out := []byte{b0, b1}
	if masked {
		mask := [4]byte{1, 2, 3, 4}
		out = append(out, mask[:]...)
		p := append([]byte(nil), payload...)
		ws.Cipher(p, mask, 0)
		return append(out, p...)
	}
	return append(out, payload...)
}

func TestBadFrames(t *testing.T) {
	tests := []struct {
		name   string
		frames [][]byte
		code   CloseCode
	}{
		{"unmasked frame", [][]byte{rawFrame(0x82, false, []byte("x"))}, CloseProtocolError},
		{"reserved data opcode", [][]byte{rawFrame(0x83, true, nil)}, CloseProtocolError},
		{"reserved control opcode", [][]byte{rawFrame(0x8b, true, nil)}, CloseProtocolError},
		{"RSV2 set", [][]byte{rawFrame(0xa2, true, nil)}, CloseProtocolError},
		{"RSV1 without deflate", [][]byte{rawFrame(0xc2, true, []byte("x"))}, CloseProtocolError},
		{"fragmented ping", [][]byte{rawFrame(0x09, true, nil)}, CloseProtocolError},
		{"ping over 125 bytes", [][]byte{frame(true, ws.OpPing, make([]byte, 126))}, CloseProtocolError},
		{"continuation first", [][]byte{frame(true, ws.OpContinuation, []byte("x"))}, CloseProtocolError},
		{"new message inside a fragmented one", [][]byte{frame(false, ws.OpText, []byte("a")), frame(true, ws.OpText, []byte("b"))}, CloseProtocolError},
		{"64-bit length with the top bit set", [][]byte{{0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4}}, CloseProtocolError},
		{"close frame with a 126-byte body", [][]byte{frame(true, ws.OpClose, make([]byte, 126))}, CloseProtocolError},
		{"compression bit on a continuation", [][]byte{frame(false, ws.OpBinary, []byte("a")), rawFrame(0xc0, true, []byte("b"))}, CloseProtocolError},
		{"oversize frame", [][]byte{frame(true, ws.OpBinary, make([]byte, 1025))}, CloseMessageTooBig},
		{"oversize in fragments", [][]byte{frame(false, ws.OpBinary, make([]byte, 600)), frame(true, ws.OpContinuation, make([]byte, 600))}, CloseMessageTooBig},
		{"text not UTF-8", [][]byte{frame(true, ws.OpText, []byte("ok \xff"))}, CloseInvalidPayload},
		{"text ends mid-sequence", [][]byte{frame(false, ws.OpText, []byte("a\xe2\x82")), frame(true, ws.OpContinuation, nil)}, CloseInvalidPayload},
		{"surrogate in text", [][]byte{frame(true, ws.OpText, []byte("\xed\xa0\x80"))}, CloseInvalidPayload},
		{"one-byte close body", [][]byte{frame(true, ws.OpClose, []byte{3})}, CloseProtocolError},
		{"invalid close code", [][]byte{closeFrame(1005, "")}, CloseProtocolError},
		{"close reason not UTF-8", [][]byte{closeFrame(1000, "\xff")}, CloseInvalidPayload},
	}
	u := &Upgrader{MaxMessageSize: 1024}
	addr, results := echoServer(t, u)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := dialRaw(t, addr)
			rc.upgrade("/", nil)
			rc.send(tt.frames...)
			code, reason := rc.expectClose()
			if code != tt.code {
				t.Errorf("close %d %q; want %d", code, reason, tt.code)
			}
			// The server closes the TCP connection after its close frame.
			if _, _, err := rc.next(); err == nil {
				t.Error("a frame after the close frame")
			}
			ce, ok := (<-results).(*CloseError)
			if !ok || ce.Remote || ce.Code != tt.code {
				t.Errorf("ReadMessage error %v; want a local *CloseError %d", ce, tt.code)
			}
		})
	}
}

func TestGoodFrames(t *testing.T) {
	u := &Upgrader{MaxMessageSize: 1024}
	addr, results := echoServer(t, u)
	rc := dialRaw(t, addr)
	rc.upgrade("/", nil)

	// A ping between fragments is answered with its payload, and the
	// message is still whole; a UTF-8 sequence split across fragments is
	// fine.
	rc.send(frame(false, ws.OpText, []byte("h\xc3")), frame(true, ws.OpPing, []byte("p1")),
		frame(false, ws.OpContinuation, nil), frame(true, ws.OpContinuation, []byte("\xa9llo")))
	h, p, err := rc.next()
	if err != nil || h.OpCode != ws.OpPong || string(p) != "p1" {
		t.Fatalf("want pong p1, got %v %q %v", h.OpCode, p, err)
	}
	if op, msg := rc.readMessage(); op != ws.OpText || string(msg) != "h\u00e9llo" {
		t.Errorf("got %v %q", op, msg)
	}
	// Unsolicited pongs are ignored; an empty message and one at the
	// limit pass.
	rc.send(frame(true, ws.OpPong, []byte("x")), frame(true, ws.OpBinary, nil))
	if op, msg := rc.readMessage(); op != ws.OpBinary || len(msg) != 0 {
		t.Errorf("got %v %q", op, msg)
	}
	full := bytes.Repeat([]byte{7}, 1024)
	rc.send(frame(true, ws.OpBinary, full))
	if _, msg := rc.readMessage(); !bytes.Equal(msg, full) {
		t.Errorf("1024-byte message came back as %d bytes", len(msg))
	}
	// A close with a reason is answered with the same code.
	rc.send(closeFrame(4000, "app says bye"))
	if code, _ := rc.expectClose(); code != 4000 {
		t.Errorf("close answered with %d; want 4000", code)
	}
	ce, ok := (<-results).(*CloseError)
	if !ok || !ce.Remote || ce.Code != 4000 || ce.Reason != "app says bye" {
		t.Errorf("ReadMessage error %v", ce)
	}
}

// deflated returns p compressed as a permessage-deflate payload.
func deflated(t testing.TB, p []byte) []byte {
	var b bytes.Buffer
	fw, _ := flate.NewWriter(&b, flate.BestCompression)
	fw.Write(p)
	fw.Flush()
	return bytes.TrimSuffix(b.Bytes(), []byte{0, 0, 0xff, 0xff})
}

func TestCompressedFrames(t *testing.T) {
	u := &Upgrader{MaxMessageSize: 64 << 10, Compression: true}
	addr, results := echoServer(t, u)
	ext := "Sec-WebSocket-Extensions: permessage-deflate"

	t.Run("round trip", func(t *testing.T) {
		rc := dialRaw(t, addr)
		rc.upgrade("/", nil, ext)
		text := bytes.Repeat([]byte("caf\u00e9 au lait "), 500)
		z := deflated(t, text)
		// Compressed, split over three frames; RSV1 only on the first.
		f1, f2, f3 := frame(false, ws.OpText, z[:10]), frame(false, ws.OpContinuation, z[10:20]), frame(true, ws.OpContinuation, z[20:])
		f1[0] |= 0x40
		rc.send(f1, f2, f3)
		h, p, err := rc.next()
		if err != nil || !h.Fin || h.Rsv != 4 || h.OpCode != ws.OpText {
			t.Fatalf("reply header %+v, %v; want a compressed final text frame", h, err)
		}
		got, err := inflate(p)
		if err != nil || !bytes.Equal(got, text) {
			t.Fatalf("reply inflates to %d bytes, %v", len(got), err)
		}
		// Short messages go uncompressed; an uncompressed message is fine.
		rc.send(frame(true, ws.OpBinary, []byte("short")))
		h, p, _ = rc.next()
		if h.Rsv != 0 || string(p) != "short" {
			t.Errorf("short reply %+v %q", h, p)
		}
		rc.send(closeFrame(CloseNormal, ""))
		rc.expectClose()
		<-results
	})
	bad := []struct {
		name    string
		payload []byte
		op      ws.OpCode
		code    CloseCode
	}{
		{"deflate bomb", deflated(t, make([]byte, 1<<20)), ws.OpBinary, CloseMessageTooBig},
		{"corrupt deflate", []byte{0xff, 0xff, 0xff, 0xff}, ws.OpBinary, CloseInvalidPayload},
		{"text not UTF-8 after inflating", deflated(t, []byte("abc\xff")), ws.OpText, CloseInvalidPayload},
		// Truncated deflate data: flate reports io.ErrUnexpectedEOF when
		// the message ends mid-block; that is bad data too (RFC 7692 §8).
		{"deflate cut mid-block", func() []byte {
			z := deflated(t, bytes.Repeat([]byte("abcdefghij"), 100))
			return z[:len(z)/2]
		}(), ws.OpBinary, CloseInvalidPayload},
		{"stored block cut short", []byte{0x00, 100, 0, 155, 255, 'x'}, ws.OpBinary, CloseInvalidPayload},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			rc := dialRaw(t, addr)
			rc.upgrade("/", nil, ext)
			f := frame(true, tt.op, tt.payload)
			f[0] |= 0x40
			rc.send(f)
			if code, reason := rc.expectClose(); code != tt.code {
				t.Errorf("close %d %q; want %d", code, reason, tt.code)
			}
			var ce *CloseError
			if err := waitResult(t, results); !errors.As(err, &ce) || ce.Remote || ce.Code != tt.code {
				t.Errorf("ReadMessage: %v; want a local close %d", err, tt.code)
			}
		})
	}
	// The network ending inside a compressed message is not bad data.
	t.Run("connection ends mid-message", func(t *testing.T) {
		rc := dialRaw(t, addr)
		rc.upgrade("/", nil, ext)
		f := frame(true, ws.OpBinary, deflated(t, bytes.Repeat([]byte("abcdefghij"), 100)))
		f[0] |= 0x40
		rc.send(f[:len(f)/2])
		rc.c.(*net.TCPConn).CloseWrite()
		var ce *CloseError
		if err := waitResult(t, results); !errors.Is(err, io.ErrUnexpectedEOF) || errors.As(err, &ce) {
			t.Errorf("ReadMessage: %v; want io.ErrUnexpectedEOF", err)
		}
	})
}

func inflate(p []byte) ([]byte, error) {
	var out bytes.Buffer
	_, err := out.ReadFrom(flate.NewReader(bytes.NewReader(append(p, deflateTail...))))
	return out.Bytes(), err
}

// TestKeepalive, on fake time: a client that answers pings stays, with a
// ping each PingInterval after it last spoke; one that stops answering is
// closed with 1001 exactly IdleTimeout after the last thing it sent.
func TestKeepalive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, cli := net.Pipe()
		defer cli.Close()
		done := make(chan error, 1)
		go func() {
			c, err := (&Upgrader{}).Upgrade(srv) // the defaults: 30 s pings, 75 s idle
			if err != nil {
				done <- err
				return
			}
			defer c.Close()
			_, _, err = c.ReadMessage(nil)
			done <- err
		}()
		rc := &rawClient{t: t, c: cli, br: bufio.NewReader(cli)}
		rc.upgrade("/", nil)
		start := time.Now()
		for i := 1; i <= 3; i++ {
			h, p, err := rc.next()
			if err != nil || h.OpCode != ws.OpPing {
				t.Fatalf("ping %d: %+v %v", i, h, err)
			}
			if d := time.Since(start); d != time.Duration(i)*DefaultPingInterval {
				t.Errorf("ping %d after %v; want %v", i, d, time.Duration(i)*DefaultPingInterval)
			}
			rc.send(frame(true, ws.OpPong, p))
		}
		lastSent := time.Now()
		// A fourth ping, unanswered; then the idle close.
		if h, _, err := rc.next(); err != nil || h.OpCode != ws.OpPing {
			t.Fatalf("fourth ping: %+v %v", h, err)
		}
		if code, reason := rc.expectClose(); code != CloseGoingAway || reason != "idle timeout" {
			t.Errorf("close %d %q; want 1001 idle timeout", code, reason)
		}
		if d := time.Since(lastSent); d != DefaultIdleTimeout {
			t.Errorf("idle close %v after the last pong; want %v", d, DefaultIdleTimeout)
		}
		go io.Copy(io.Discard, cli) // let Close finish its lingering
		if ce, ok := (<-done).(*CloseError); !ok || ce.Remote || ce.Code != CloseGoingAway {
			t.Errorf("ReadMessage: %v", ce)
		}
	})
}

// TestKeepalivePingClamped, on fake time: a PingInterval not below
// IdleTimeout is taken as half of it, so that a quiet live client is
// asked before it is dropped, and stays by answering.
func TestKeepalivePingClamped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, cli := net.Pipe()
		defer cli.Close()
		done := make(chan error, 1)
		go func() {
			c, err := (&Upgrader{PingInterval: time.Minute, IdleTimeout: 10 * time.Second}).Upgrade(srv)
			if err != nil {
				done <- err
				return
			}
			defer c.Close()
			_, _, err = c.ReadMessage(nil)
			done <- err
		}()
		rc := &rawClient{t: t, c: cli, br: bufio.NewReader(cli)}
		rc.upgrade("/", nil)
		start := time.Now()
		for i := 1; i <= 3; i++ {
			h, p, err := rc.next()
			if err != nil || h.OpCode != ws.OpPing {
				t.Fatalf("ping %d: %+v %v", i, h, err)
			}
			if d := time.Since(start); d != time.Duration(i)*5*time.Second {
				t.Errorf("ping %d after %v; want %v", i, d, time.Duration(i)*5*time.Second)
			}
			rc.send(frame(true, ws.OpPong, p))
		}
		rc.send(frame(true, ws.OpText, []byte("still here")))
		if err := <-done; err != nil {
			t.Errorf("ReadMessage: %v", err)
		}
		go io.Copy(io.Discard, cli) // the close frame from Close
		rc.send(closeFrame(CloseNormal, ""))
	})
}
