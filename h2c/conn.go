package h2c

import (
	"encoding/binary"
	"net"
)

// upgradedConn is a connection after the 101, as the http.Server reads
// it: the client's preface, then its first SETTINGS frame with the
// HTTP2-Settings values put in front of its own, then the frames of stream
// 1, then whatever the client sends next, untouched. Only the server's
// connection goroutine reads it; writes go straight through.
type upgradedConn struct {
	net.Conn
	pre      []byte // client bytes that net/http had buffered past the request
	settings []byte // the HTTP2-Settings payload
	stream1  []byte // HEADERS (and DATA) frames of the upgrade request
	out      []byte // rewritten bytes that Read gives out first
	err      error  // a read error met in start, returned after out
	started  bool
}

func (c *upgradedConn) Read(p []byte) (int, error) {
	if !c.started {
		c.start()
	}
	if len(c.out) > 0 {
		n := copy(p, c.out)
		c.out = c.out[n:]
		return n, nil
	}
	if c.err != nil {
		return 0, c.err
	}
	return c.Conn.Read(p)
}

// start reads the client's preface and first frame and prepares the
// rewritten bytes. If they are not a preface and a SETTINGS frame, or the
// stream ends or fails before they are complete, the bytes pass unchanged and the server answers them as it would any broken
// preface. The wait is bounded by the server's own preface timeout, which
// closes the connection.
func (c *upgradedConn) start() {
	buf := c.pre
	c.pre, c.started = nil, true // an error here ends the connection
	head := len(clientPreface) + frameHeaderLen
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
	if err := read(head); err != nil {
		c.out, c.err = buf, err
		return
	}
	h := buf[len(clientPreface):head]
	size := int(h[0])<<16 | int(h[1])<<8 | int(h[2])
	if string(buf[:len(clientPreface)]) != clientPreface || h[3] != frameSettings || h[4]&flagAck != 0 ||
		binary.BigEndian.Uint32(h[5:])&(1<<31-1) != 0 || size%6 != 0 || size > maxFrame {
		c.out = buf
		return
	}
	if err := read(head + size); err != nil {
		c.out, c.err = buf, err
		return
	}
	own := buf[head : head+size]
	first := mergeSettings(c.settings, own)
	merged := len(first) + size
	out := make([]byte, 0, len(clientPreface)+frameHeaderLen+merged+len(c.stream1)+len(buf)-head-size)
	out = append(out, clientPreface...)
	out = append(out, byte(merged>>16), byte(merged>>8), byte(merged), frameSettings, 0, 0, 0, 0, 0)
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
