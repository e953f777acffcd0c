package wsbridge

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// flowClient sends pre-built frames (or raw chunks) and reads back the
// echoed bytes without allocating, so that allocations counted belong to
// the path under test.
type flowClient struct {
	c       net.Conn
	br      *bufio.Reader
	scratch []byte
	h       [10]byte // a frame header; here so that it does not escape per call
	ws      bool     // read WebSocket frames (else raw bytes)
}

// readPayload reads n payload bytes back: raw, or out of server frames of
// whatever sizes the bridge chose.
func (fc *flowClient) readPayload(n int) error {
	if !fc.ws {
		for n > 0 {
			m, err := fc.br.Read(fc.scratch[:min(n, len(fc.scratch))])
			if err != nil {
				return err
			}
			n -= m
		}
		return nil
	}
	h := fc.h[:]
	for n > 0 {
		if _, err := io.ReadFull(fc.br, h[:2]); err != nil {
			return err
		}
		l := int(h[1] & 0x7f)
		switch l {
		case 126:
			if _, err := io.ReadFull(fc.br, h[2:4]); err != nil {
				return err
			}
			l = int(binary.BigEndian.Uint16(h[2:4]))
		case 127:
			if _, err := io.ReadFull(fc.br, h[2:10]); err != nil {
				return err
			}
			l = int(binary.BigEndian.Uint64(h[2:10]))
		}
		if op := h[0] & 0x0f; op != byte(Binary) {
			return fmt.Errorf("server frame with opcode %d", op)
		}
		for l > 0 {
			m, err := io.ReadFull(fc.br, fc.scratch[:min(l, len(fc.scratch))])
			if err != nil {
				return err
			}
			l -= m
			n -= m
		}
	}
	return nil
}

// bridgeFlow returns a client upgraded through a Bridge to a TCP echo
// backend, and the frame for one message of size bytes.
func bridgeFlow(b testing.TB, size int) (*flowClient, []byte) {
	addr, _ := bridgeServer(b, &Bridge{Backend: echoBackend(b)})
	return wsFlow(b, addr, size)
}

// connFlow is bridgeFlow through the Conn API's echo (ReadMessage into
// a reused buffer, WriteMessage) instead of a Bridge.
func connFlow(b testing.TB, size int) (*flowClient, []byte) {
	addr, _ := echoServer(b, &Upgrader{})
	return wsFlow(b, addr, size)
}

func wsFlow(b testing.TB, addr string, size int) (*flowClient, []byte) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	fc := &flowClient{c: c, br: bufio.NewReaderSize(c, 64<<10), scratch: make([]byte, 64<<10), ws: true}
	io.WriteString(c, handshake("/"))
	for {
		line, err := fc.br.ReadSlice('\n')
		if err != nil {
			b.Fatal(err)
		}
		if len(line) <= 2 {
			break
		}
	}
	payload := make([]byte, size)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	return fc, frame(true, ws.OpBinary, payload)
}

// plainFlow returns a client connected straight to a TCP echo backend.
func plainFlow(b testing.TB, size int) (*flowClient, []byte) {
	c, err := net.Dial("tcp", echoBackend(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return &flowClient{c: c, br: bufio.NewReaderSize(c, 64<<10), scratch: make([]byte, 64<<10)}, make([]byte, size)
}

// run streams n messages through fc with the reader in another goroutine
// (a pipeline, not lockstep), and returns when all came back.
func (fc *flowClient) run(n int, msg []byte, size int) error {
	done := make(chan error, 1)
	go func() { done <- fc.readPayload(n * size) }()
	for range n {
		if _, err := fc.c.Write(msg); err != nil {
			return err
		}
	}
	return <-done
}

func BenchmarkFlow(b *testing.B) {
	for _, size := range []int{1 << 10, 64 << 10} {
		for _, path := range []struct {
			name string
			open func(testing.TB, int) (*flowClient, []byte)
		}{{"bridge", bridgeFlow}, {"connEcho", connFlow}, {"plainTCP", plainFlow}} {
			b.Run(fmt.Sprintf("%dKiB/%s", size>>10, path.name), func(b *testing.B) {
				fc, msg := path.open(b, size)
				fc.c.SetDeadline(time.Now().Add(10 * time.Minute))
				if err := fc.run(16, msg, size); err != nil { // warm up pools and buffers
					b.Fatal(err)
				}
				b.SetBytes(int64(size))
				b.ReportAllocs()
				b.ResetTimer()
				start := time.Now()
				if err := fc.run(b.N, msg, size); err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
			})
		}
	}
}

// TestBridgeAllocs keeps the bridge's copy path free of allocations per
// message, both ways (client to backend and back), on loopback TCP; and
// the Conn API's too, with ReadMessage reusing its buffer. The
// count includes the test's client and echo backend, which allocate
// nothing per message either.
func TestBridgeAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under the race detector")
	}
	for _, size := range []int{100, 1 << 10, 64 << 10} {
		for _, path := range []struct {
			name string
			open func(testing.TB, int) (*flowClient, []byte)
		}{{"bridge", bridgeFlow}, {"Conn echo", connFlow}} {
			fc, msg := path.open(t, size)
			fc.c.SetDeadline(time.Now().Add(time.Minute))
			if err := fc.run(16, msg, size); err != nil {
				t.Fatal(err)
			}
			n := testing.AllocsPerRun(200, func() {
				fc.c.Write(msg)
				if err := fc.readPayload(size); err != nil {
					t.Fatal(err)
				}
			})
			if n > 0 {
				t.Errorf("%s, %d-byte messages: %v allocations per round trip; want 0", path.name, size, n)
			}
		}
	}
}

// readFrame reads one whole server frame, whatever its length.
func (fc *flowClient) readFrame() error {
	h := fc.h[:]
	if _, err := io.ReadFull(fc.br, h[:2]); err != nil {
		return err
	}
	l := int(h[1] & 0x7f)
	switch l {
	case 126:
		if _, err := io.ReadFull(fc.br, h[2:4]); err != nil {
			return err
		}
		l = int(binary.BigEndian.Uint16(h[2:4]))
	case 127:
		return fmt.Errorf("unexpected 64-bit frame length")
	}
	_, err := io.ReadFull(fc.br, fc.scratch[:l])
	return err
}

// TestDeflateAllocs: with permessage-deflate, a compressed 1 KiB message
// through the Conn echo and through the bridge (inflated on the way in,
// deflated on the way out, one frame back) allocates nothing either:
// compressors come from pools and buffers are kept per connection.
func TestDeflateAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under the race detector")
	}
	text := bytes.Repeat([]byte("some text that compresses "), 40)
	for _, path := range []string{"Conn echo", "bridge"} {
		var addr string
		if path == "bridge" {
			addr, _ = bridgeServer(t, &Bridge{Backend: echoBackend(t), Upgrader: Upgrader{Compression: true}})
		} else {
			addr, _ = echoServer(t, &Upgrader{Compression: true})
		}
		rc := dialRaw(t, addr)
		rc.upgrade("/", nil, "Sec-WebSocket-Extensions: permessage-deflate")
		fc := &flowClient{c: rc.c, br: rc.br, scratch: make([]byte, 64<<10), ws: true}
		msg := frame(true, ws.OpBinary, deflated(t, text))
		msg[0] |= 0x40 // RSV1: compressed
		round := func() {
			fc.c.Write(msg)
			if err := fc.readFrame(); err != nil {
				t.Fatal(err)
			}
		}
		for range 16 {
			round()
		}
		if n := testing.AllocsPerRun(200, round); n > 0 {
			t.Errorf("%s: %v allocations per compressed round trip; want 0", path, n)
		}
	}
}

// replayConn is a net.Conn that serves its bytes to Read and discards
// writes, so that a handshake benchmark measures Upgrade, not a network.
type replayConn struct {
	in    []byte
	off   int
	chunk int // bytes per Read at most; 0 for no limit
}

func (c *replayConn) Read(p []byte) (int, error) {
	if c.off == len(c.in) {
		return 0, io.EOF
	}
	if c.chunk > 0 && len(p) > c.chunk {
		p = p[:c.chunk]
	}
	n := copy(p, c.in[c.off:])
	c.off += n
	return n, nil
}

func (c *replayConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *replayConn) Close() error                     { return nil }
func (c *replayConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *replayConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *replayConn) SetDeadline(time.Time) error      { return nil }
func (c *replayConn) SetReadDeadline(time.Time) error  { return nil }
func (c *replayConn) SetWriteDeadline(time.Time) error { return nil }

// BenchmarkHandshake measures Upgrade on a minimal handshake and on the
// bytes Chromium sent (with permessage-deflate offered and accepted),
// arriving in one read, and in reads of 64 bytes: the head is parsed
// again after each read, as sniff parses all or nothing.
func BenchmarkHandshake(b *testing.B) {
	chromium, err := os.ReadFile("../sniff/testdata/captures/chromium_websocket.bin")
	if err != nil {
		b.Fatal(err)
	}
	for _, in := range []struct {
		name  string
		head  []byte
		chunk int
		u     *Upgrader
	}{
		{"minimal", []byte(handshake("/")), 0, &Upgrader{}},
		{"chromium", chromium, 0, &Upgrader{Compression: true}},
		{"chromium_64B_reads", chromium, 64, &Upgrader{Compression: true}},
	} {
		b.Run(in.name, func(b *testing.B) {
			c := &replayConn{in: in.head, chunk: in.chunk}
			b.ReportAllocs()
			b.SetBytes(int64(len(in.head)))
			for b.Loop() {
				c.off = 0
				if _, err := in.u.Upgrade(c); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
