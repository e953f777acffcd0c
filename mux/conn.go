package mux

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portmux/portmux/sniff"
)

// Conn is a connection the mux delivered. Its first Reads return the bytes
// the mux read while sniffing (after any trusted PROXY header, which is
// stripped), then it reads the socket directly. It keeps the whole
// net.Conn contract, and once the replay is drained it gets out of the
// way: NetConn returns the accepted connection, and io.Copy to or from a
// Conn reaches *net.TCPConn, so Linux can splice.
type Conn struct {
	nc  net.Conn // the accepted connection
	ctx context.Context

	mu     sync.Mutex
	replay []byte  // sniffed bytes not yet read
	buf    *[]byte // the pooled buffer replay points into
	flags  atomic.Uint32
	proto  sniff.Protocol
	slot   *limiter // the MaxConns slot, given back by the first Close

	route      *route
	serverName string
	alpn       []string
	proxied    *proxyAddrs // from a trusted PROXY header
	sniffTime  time.Duration
}

// Conn flags.
const (
	drained   = 1 << iota // the replay is read: Read goes to the socket
	closed                // Close gave back the MaxConns slot
	inHandler             // a Handler owns it: the Mux's Close closes it
)

func (c *Conn) is(f uint32) bool { return c.flags.Load()&f != 0 }
func (c *Conn) set(f uint32)     { c.flags.Or(f) }

// proxyAddrs are the addresses a trusted PROXY header carried.
type proxyAddrs struct{ remote, local net.Addr }

var (
	_ net.Conn      = (*Conn)(nil)
	_ io.WriterTo   = (*Conn)(nil)
	_ io.ReaderFrom = (*Conn)(nil)
)

// Read reads the sniffed bytes first, then from the connection.
func (c *Conn) Read(p []byte) (int, error) {
	if !c.is(drained) {
		c.mu.Lock()
		if len(c.replay) > 0 {
			n := copy(p, c.replay)
			c.replay = c.replay[n:]
			if len(c.replay) == 0 {
				c.release()
			}
			c.mu.Unlock()
			return n, nil
		}
		c.mu.Unlock()
	}
	return c.nc.Read(p)
}

// release returns the sniff buffer to its pool; c.mu is held.
func (c *Conn) release() {
	c.replay = nil
	if c.buf != nil {
		putBuf(c.buf)
		c.buf = nil
	}
	c.set(drained)
}

// Write writes to the connection.
func (c *Conn) Write(p []byte) (int, error) { return c.nc.Write(p) }

// Close closes the connection and frees the sniffed bytes not yet read.
func (c *Conn) Close() error {
	c.mu.Lock()
	c.release()
	c.mu.Unlock()
	err := c.nc.Close()
	if c.flags.Or(closed)&closed == 0 && c.slot != nil {
		c.slot.release()
	}
	return err
}

// SetDeadline, SetReadDeadline and SetWriteDeadline set the accepted
// connection's deadlines; the replayed bytes are read without waiting.
func (c *Conn) SetDeadline(t time.Time) error      { return c.nc.SetDeadline(t) }
func (c *Conn) SetReadDeadline(t time.Time) error  { return c.nc.SetReadDeadline(t) }
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.nc.SetWriteDeadline(t) }

// Buffered returns how many sniffed bytes are still to be read.
func (c *Conn) Buffered() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.replay)
}

// NetConn returns the accepted connection. Read from it only once
// Buffered is zero, or the sniffed bytes are skipped; close the Conn, not
// it, so that a MaxConns slot is given back.
func (c *Conn) NetConn() net.Conn { return c.nc }

// WriteTo writes the sniffed bytes to w, then copies the connection to w
// until EOF. Between two TCP connections the copy is a splice.
func (c *Conn) WriteTo(w io.Writer) (int64, error) {
	// Take the replay out under the lock and write it without: a write that
	// blocks must not block Close.
	c.mu.Lock()
	replay, buf := c.replay, c.buf
	c.replay, c.buf = nil, nil
	c.set(drained)
	c.mu.Unlock()
	var total int64
	if len(replay) > 0 {
		n, err := w.Write(replay)
		total += int64(n)
		if buf != nil {
			putBuf(buf)
		}
		if err != nil {
			return total, err
		}
	} else if buf != nil {
		putBuf(buf)
	}
	if rf, ok := unwrapWriter(w).(io.ReaderFrom); ok {
		n, err := rf.ReadFrom(c.nc)
		return total + n, err
	}
	n, err := io.Copy(w, struct{ io.Reader }{c.nc})
	return total + n, err
}

// ReadFrom copies r to the connection, unwrapping a drained *Conn source
// so that TCP to TCP is a splice.
func (c *Conn) ReadFrom(r io.Reader) (int64, error) {
	if src, ok := r.(*Conn); ok && src.is(drained) {
		r = src.nc
	}
	if rf, ok := c.nc.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.nc}, r)
}

func unwrapWriter(w io.Writer) io.Writer {
	if c, ok := w.(*Conn); ok {
		return c.nc
	}
	return w
}

// RemoteAddr is the client's address: the source in a trusted PROXY
// header if there was one, else the peer's.
func (c *Conn) RemoteAddr() net.Addr {
	if c.proxied != nil {
		return c.proxied.remote
	}
	return c.nc.RemoteAddr()
}

// LocalAddr is the destination in a trusted PROXY header if there was one,
// else the socket's own address.
func (c *Conn) LocalAddr() net.Addr {
	if c.proxied != nil {
		return c.proxied.local
	}
	return c.nc.LocalAddr()
}

// Context returns the connection's context: the one Serve or ServeConn
// gave it, through Mux.ConnContext if set. For a connection Serve
// accepted it is cancelled by the Mux's Close.
func (c *Conn) Context() context.Context {
	if c.ctx == nil {
		return context.Background()
	}
	return c.ctx
}

// Protocol is what the sniffed bytes were recognised as.
func (c *Conn) Protocol() sniff.Protocol { return c.proto }

// SniffTime is how long the connection took from accept to the routing
// decision.
func (c *Conn) SniffTime() time.Duration { return c.sniffTime }

// Route is the name of the route that took the connection.
func (c *Conn) Route() string {
	if c.route == nil {
		return ""
	}
	return c.route.name
}

// ServerName is the TLS SNI host name, or "".
func (c *Conn) ServerName() string { return c.serverName }

// ALPN is the list of ALPN protocols the TLS client offered, or nil.
func (c *Conn) ALPN() []string { return c.alpn }

// Proxied reports whether the addresses came from a trusted PROXY header.
func (c *Conn) Proxied() bool { return c.proxied != nil }

// ConnectionState returns the TLS state when the accepted connection is a
// *tls.Conn (a Mux over a TLS listener), and false otherwise.
func (c *Conn) ConnectionState() (tls.ConnectionState, bool) {
	if tc, ok := c.nc.(*tls.Conn); ok {
		return tc.ConnectionState(), true
	}
	return tls.ConnectionState{}, false
}
