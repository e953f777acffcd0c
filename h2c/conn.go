package h2c

import (
	"encoding/binary"
	"errors"
	"net"
	"sync"

	"github.com/portmux/portmux/internal/h2frame"
)

// errPreface ends an upgraded connection whose client did not send the
// HTTP/2 preface and SETTINGS after the 101 (RFC 9113 §3.4).
var errPreface = errors.New("h2c: no HTTP/2 connection preface after 101 Switching Protocols")

// upgradedConn is a connection after the 101, as the http.Server reads
// it: the client's preface, then its first SETTINGS frame with the
// HTTP2-Settings values put in front of its own, then the frames of stream
// 1, then whatever the client sends next, untouched. Only the server's
// connection goroutine reads it; writes go straight through.
type upgradedConn struct {
	net.Conn
	pre      []byte // client bytes that net/http had buffered past the request
	settings []byte // the HTTP2-Settings payload
	stream1  []byte // the HEADERS of the upgrade request
	out      []byte // rewritten bytes that Read gives out first
	err      error  // why start failed; every Read returns it
	started  bool
	forget   func() // drops the held body if stream 1 was never served
	once     sync.Once
}

func (c *upgradedConn) Close() error {
	c.once.Do(c.forget)
	return c.Conn.Close()
}

func (c *upgradedConn) Read(p []byte) (int, error) {
	if !c.started {
		c.start()
	}
	if c.err != nil {
		return 0, c.err
	}
	if len(c.out) > 0 {
		n := copy(p, c.out)
		c.out = c.out[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// start reads the client's preface and first frame and prepares the
// rewritten bytes. Anything else after the 101 (say, another HTTP/1.1
// request, the stuff of h2c smuggling) ends the connection with GOAWAY
// PROTOCOL_ERROR and is never read as HTTP/1: net/http would serve it so.
// The wait is bounded by the read deadline set after the 101.
func (c *upgradedConn) start() {
	buf := c.pre
	c.pre, c.started = nil, true
	head := len(h2frame.ClientPreface) + h2frame.HeaderLen
	read := func(n int) error {
		for len(buf) < n {
			if cap(buf) < n {
				grown := make([]byte, len(buf), n)
				copy(grown, buf)
				buf = grown
			}
			m, err := c.Conn.Read(buf[len(buf):n])
			buf = buf[:len(buf)+m]
			if err != nil && len(buf) < n {
				return err
			}
		}
		return nil
	}
	fail := func(code uint32) {
		c.Conn.Write(h2frame.AppendGoAway(nil, 0, code))
		// As a read error, so that net/http closes without a word; any
		// other error it answers with an HTTP/1.1 400.
		c.err = &net.OpError{Op: "read", Net: "tcp", Addr: c.Conn.RemoteAddr(), Err: errPreface}
	}
	if err := read(len(h2frame.ClientPreface)); err != nil {
		c.err = err
		return
	}
	if string(buf[:len(h2frame.ClientPreface)]) != h2frame.ClientPreface {
		fail(h2frame.CodeProtocol)
		return
	}
	if err := read(head); err != nil {
		c.err = err
		return
	}
	h := buf[len(h2frame.ClientPreface):head]
	size := int(h[0])<<16 | int(h[1])<<8 | int(h[2])
	switch {
	case h[3] != h2frame.TypeSettings || h[4]&h2frame.FlagAck != 0 || binary.BigEndian.Uint32(h[5:])&(1<<31-1) != 0:
		fail(h2frame.CodeProtocol)
		return
	case size%6 != 0 || size > h2frame.InitialMaxFrameSize:
		fail(h2frame.CodeFrameSize)
		return
	}
	if err := read(head + size); err != nil {
		c.err = err
		return
	}
	own := buf[head : head+size]
	first := mergeSettings(c.settings, own)
	merged := len(first) + size
	out := make([]byte, 0, len(h2frame.ClientPreface)+h2frame.HeaderLen+merged+len(c.stream1)+len(buf)-head-size)
	out = append(out, h2frame.ClientPreface...)
	out = append(out, byte(merged>>16), byte(merged>>8), byte(merged), h2frame.TypeSettings, 0, 0, 0, 0, 0)
	out = append(out, first...)
	out = append(out, own...)
	out = append(out, c.stream1...)
	out = append(out, buf[head+size:]...)
	c.out, c.settings, c.stream1 = out, nil, nil
}

// mergeSettings returns the HTTP2-Settings values that go in front of the
// client's own SETTINGS payload: applied in order, a later value of a
// setting replaces an earlier one, so each setting is kept only at its
// last place. One frame must not name a setting twice for net/http, which
// rejects that as a PROTOCOL_ERROR.
func mergeSettings(upgrade, own []byte) []byte {
	var out []byte
	for i := 0; i < len(upgrade); i += 6 {
		id := upgrade[i : i+2]
		if !namesSetting(upgrade[i+6:], id) && !namesSetting(own, id) {
			out = append(out, upgrade[i:i+6]...)
		}
	}
	return out
}

func namesSetting(payload, id []byte) bool {
	for i := 0; i+6 <= len(payload); i += 6 {
		if payload[i] == id[0] && payload[i+1] == id[1] {
			return true
		}
	}
	return false
}
