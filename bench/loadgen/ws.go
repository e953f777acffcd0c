package loadgen

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/url"
	"time"

	"github.com/gobwas/ws"
)

// WebSocket opcodes (RFC 6455 §5.2).
const (
	opContinuation = 0x0
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xa
)

// wsClient is a worker's WebSocket side: one connection, opened with
// gobwas/ws's client handshake, on which each request sends one masked
// binary message of Size bytes and reads the echo, which must be equal.
// Frames are written and read by hand out of buffers kept across
// messages.
type wsClient struct {
	w       *worker
	raw     net.Conn
	conn    net.Conn // counting
	br      *bufio.Reader
	payload []byte // the message
	frame   []byte // its frame: header, masking key, masked payload
	keyAt   int    // where the masking key sits in frame
	in      []byte
	rng     *rand.Rand
}

func newWSClient(w *worker, seed uint64) *wsClient {
	s := w.r.s
	c := &wsClient{w: w, payload: pattern(s.Size, seed), in: make([]byte, 0, s.Size), rng: rand.New(rand.NewPCG(seed, uint64(time.Now().UnixNano())))}
	c.frame = appendFrameHeader(nil, opBinary, len(c.payload))
	c.keyAt = len(c.frame)
	c.frame = append(c.frame, 0, 0, 0, 0)
	c.frame = append(c.frame, c.payload...)
	return c
}

// appendFrameHeader appends a final, masked frame's header without its
// masking key (RFC 6455 §5.2).
func appendFrameHeader(b []byte, op byte, n int) []byte {
	b = append(b, 0x80|op)
	switch {
	case n < 126:
		return append(b, 0x80|byte(n))
	case n <= 0xffff:
		return binary.BigEndian.AppendUint16(append(b, 0x80|126), uint16(n))
	}
	return binary.BigEndian.AppendUint64(append(b, 0x80|127), uint64(n))
}

// mask puts a fresh masking key (RFC 6455 §5.3) into frame at keyAt and
// masks payload into the bytes after it.
func (c *wsClient) mask(frame []byte, keyAt int, payload []byte) {
	var key [4]byte
	binary.LittleEndian.PutUint32(key[:], c.rng.Uint32())
	copy(frame[keyAt:], key[:])
	data := frame[keyAt+4:]
	copy(data, payload)
	ws.Cipher(data, key, 0)
}

func (c *wsClient) connect() error {
	s := c.w.r.s
	t0 := time.Now()
	raw, err := c.w.dial()
	if err != nil {
		return err
	}
	if !c.w.track(raw) {
		raw.Close()
		c.w.track(nil)
		return net.ErrClosed
	}
	c.raw, c.conn = raw, &countConn{raw, c.w}
	u := &url.URL{Scheme: "ws", Host: s.hostHdr, Opaque: s.path} // RequestURI() gives the path as given
	if err := c.w.setDeadline(raw, s.DialTimeout); err != nil {
		c.close()
		return err
	}
	br, _, err := ws.Dialer{}.Upgrade(c.conn, u)
	if err != nil {
		c.close()
		return &Error{KindDial, fmt.Errorf("websocket handshake: %w", err)}
	}
	if br == nil {
		br = bufio.NewReaderSize(c.conn, 4<<10)
	}
	c.br = br
	c.w.connected(time.Since(t0))
	return nil
}

func (c *wsClient) do() error {
	if c.conn == nil {
		if err := c.connect(); err != nil {
			return err
		}
	}
	err := c.echo()
	if err != nil {
		c.close()
	}
	return err
}

func (c *wsClient) echo() error {
	if err := c.w.setDeadline(c.raw, c.w.r.s.Timeout); err != nil {
		return err
	}
	c.mask(c.frame, c.keyAt, c.payload)
	if _, err := c.conn.Write(c.frame); err != nil {
		return err
	}
	c.in = c.in[:0]
	started := false
	for {
		fin, op, n, err := c.readFrameHeader()
		if err != nil {
			return err
		}
		switch op {
		case opBinary, 0x1, opContinuation:
			if started == (op != opContinuation) {
				return protoErr("unexpected opcode %#x", op)
			}
			started = true
			// Compared so that no length, however large, overflows.
			if n > uint64(len(c.payload)-len(c.in)) {
				return protoErr("echo longer than the %d-byte message", len(c.payload))
			}
			m := len(c.in)
			c.in = c.in[:m+int(n)]
			if _, err := io.ReadFull(c.br, c.in[m:]); err != nil {
				return err
			}
			if fin {
				if !bytes.Equal(c.in, c.payload) {
					return protoErr("the echo differs from the message")
				}
				return nil
			}
		case opPing, opPong, opClose:
			if !fin || n > 125 {
				return protoErr("bad control frame")
			}
			var p [125]byte
			if _, err := io.ReadFull(c.br, p[:n]); err != nil {
				return err
			}
			switch op {
			case opClose:
				return &Error{KindClosed, errors.New("the server sent a close frame")}
			case opPing:
				f := appendFrameHeader(make([]byte, 0, 6+n), opPong, int(n))
				f = append(f, make([]byte, 4+n)...)
				c.mask(f, len(f)-4-int(n), p[:n])
				if _, err := c.conn.Write(f); err != nil {
					return err
				}
			}
		default:
			return protoErr("unknown opcode %#x", op)
		}
	}
}

// readFrameHeader reads a server frame's header, which must not be
// masked (RFC 6455 §5.1) nor use extension bits.
func (c *wsClient) readFrameHeader() (fin bool, op byte, n uint64, err error) {
	var h [8]byte
	if _, err = io.ReadFull(c.br, h[:2]); err != nil {
		return
	}
	fin, op = h[0]&0x80 != 0, h[0]&0x0f
	if h[0]&0x70 != 0 || h[1]&0x80 != 0 {
		return fin, op, 0, protoErr("masked frame or reserved bits from the server")
	}
	n = uint64(h[1] & 0x7f)
	switch n {
	case 126:
		if _, err = io.ReadFull(c.br, h[:2]); err != nil {
			return
		}
		n = uint64(binary.BigEndian.Uint16(h[:2]))
	case 127:
		if _, err = io.ReadFull(c.br, h[:8]); err != nil {
			return
		}
		n = binary.BigEndian.Uint64(h[:8])
		if n>>63 != 0 {
			return false, 0, 0, protoErr("frame length with its top bit set") // RFC 6455 §5.2
		}
	}
	return fin, op, n, nil
}

// close sends a close frame (1000, normal closure), best effort within a
// second, and closes the connection.
func (c *wsClient) close() {
	if c.conn == nil {
		return
	}
	if c.br != nil {
		c.raw.SetWriteDeadline(time.Now().Add(time.Second))
		f := appendFrameHeader(make([]byte, 0, 8), opClose, 2)
		f = append(f, 0, 0, 0, 0, 0, 0)
		c.mask(f, 2, []byte{0x03, 0xe8})
		c.conn.Write(f)
	}
	c.raw.Close()
	c.w.track(nil)
	c.conn, c.raw, c.br = nil, nil, nil
}
