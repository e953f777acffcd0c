package mux

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/portmux/portmux/sniff"
)

// bufSize is the first read's buffer: a post-quantum ClientHello (about
// 1.8 KiB) and a browser's WebSocket handshake fit with room to spare.
const bufSize = 4 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, bufSize); return &b }}

func getBuf() *[]byte { return bufPool.Get().(*[]byte) }

// putBuf pools buffers of the standard size; grown ones go to the GC.
func putBuf(b *[]byte) {
	if cap(*b) == bufSize {
		*b = (*b)[:0]
		bufPool.Put(b)
	}
}

// state is what sniffing needs once bytes have arrived; pooled.
type state struct {
	res sniff.Result
	in  Input
}

var statePool = sync.Pool{New: func() any { return new(state) }}

// firstRead waits for c's first bytes and reads them into a pooled
// buffer, which it takes only once bytes are there: a silent connection
// holds no buffer. On a socket the read(2) happens inside
// syscall.RawConn.Read, so the system calls are those of a plain Read:
// read, EAGAIN, wait for the poller, read. Other conns use a plain Read.
func firstRead(c net.Conn, limit int) (*[]byte, error) {
	if buf, ok, err := rawFirstRead(c, limit); ok {
		return buf, err
	}
	buf := getBuf()
	n, err := c.Read((*buf)[:min(cap(*buf), limit)])
	*buf = (*buf)[:n]
	if n == 0 && err != nil {
		putBuf(buf)
		return nil, err
	}
	return buf, err
}

// serveConn sniffs c, decides, and delivers or rejects it. It runs in a
// goroutine of its own per connection that Serve accepted, or in the
// caller's for ServeConn. Until the first byte arrives it holds no buffer
// and no parse state.
func (m *Mux) serveConn(nc net.Conn) {
	m.stats.accepted.Add(1)
	start := time.Now()
	c := &Conn{Conn: nc, pending: true}
	defer m.sniffDone(c)
	nc.SetReadDeadline(start.Add(m.sniffTimeout()))
	m.track(c)

	var buf *[]byte // nil until bytes arrive
	var timedOut, eof bool
	var h2 *h2Wait // for HTTP2HeaderField: the mux's own SETTINGS
	limit := m.maxSniffBytes()
	routes := m.loadRoutes()
	trusted := m.trusted(nc)
	for {
		st := statePool.Get().(*state)
		var b []byte
		if buf != nil {
			b = *buf
		}
		st.res.Parse(b, limit)
		if reason := m.checkProxy(&st.res, trusted); reason != ReasonNone {
			m.reject(c, st, buf, reason)
			return
		}
		final := timedOut || eof || len(b) >= limit
		// Field by field: an Input literal is built on the stack and
		// copied, and serveConn's frame is on every path that blocks.
		st.in.Result, st.in.Bytes = &st.res, b[min(st.res.Offset, len(b)):]
		st.in.TimedOut, st.in.Final = timedOut, final
		st.in.wantSettings = false
		var r *route
		more := true
		// With PROXY headers expected, a connection is not routed before
		// its first bytes say whether it sent one: Any() would pass a
		// trusted header on unstripped, or an untrusted one unrefused.
		if b != nil || len(m.TrustedProxies) == 0 || final {
			r, more = matchRoutes(routes, &st.in)
		}
		if h2 != nil || st.in.wantSettings {
			var done bool
			if h2 == nil {
				h2 = new(h2Wait)
			}
			if r, more, done = m.settleHTTP2(c, st, buf, h2, r, more, &timedOut, eof, limit); done {
				return
			}
		}
		if r != nil {
			m.handOff(c, r, st, buf, start)
			return
		}
		if !more && !final {
			// No route will take it, but the mux's own answer (426, 400,
			// 431, a TLS alert) may need the rest of the head.
			_, v := st.res.Protocol()
			more = v == sniff.NeedMore
		}
		if !more {
			m.reject(c, st, buf, m.noMatchReason(&st.res, timedOut, eof))
			return
		}
		statePool.Put(st)

		// Read more: the first time, wait for bytes before taking a buffer.
		var err error
		if buf == nil {
			buf, err = firstRead(nc, limit)
			if buf == nil && err != nil && m.readFailed(c, err, &timedOut) {
				return
			}
		} else {
			rl := limit
			if h2 != nil && h2.sent {
				rl += ackSlack // see settleHTTP2
			}
			if len(*buf) == cap(*buf) {
				buf = grow(buf, rl)
			}
			b = *buf
			var n int
			n, err = nc.Read(b[len(b):min(cap(b), rl)])
			*buf = b[:len(b)+n]
			if err != nil && m.readFailed(c, err, &timedOut) {
				putBuf(buf)
				return
			}
		}
		if errors.Is(err, io.EOF) {
			eof = true
		}
	}
}

// sniffDone gives back c's MaxPending slot if handOff has not, and ends
// the connection's hand-off: one deferred call, where two defers took more
// of serveConn's frame.
func (m *Mux) sniffDone(c *Conn) {
	m.releaseSlot(c)
	m.inflight.Done()
}

// grow returns a buffer of twice buf's capacity, up to limit, holding
// buf's bytes; buf goes back to its pool.
func grow(buf *[]byte, limit int) *[]byte {
	b := *buf
	grown := make([]byte, len(b), min(2*cap(b), limit))
	copy(grown, b)
	putBuf(buf)
	return &grown
}

// readFailed handles a read error during sniffing. A deadline is the sniff
// timeout, unless the mux is closing; anything else ends the connection.
// It reports whether the connection is done with.
func (m *Mux) readFailed(c *Conn, err error, timedOut *bool) bool {
	if m.isClosing() {
		m.finish(c, ReasonShutdown)
		return true
	}
	if errors.Is(err, os.ErrDeadlineExceeded) && !*timedOut {
		*timedOut = true
		return false
	}
	if errors.Is(err, io.EOF) {
		return false
	}
	m.finish(c, ReasonReadError)
	return true
}

// matchRoutes returns the first route that matches, once every route
// before it said no; or more=true if one before any match needs bytes.
func matchRoutes(routes []*route, in *Input) (r *route, more bool) {
	for _, r := range routes {
		switch r.match(in) {
		case sniff.Match:
			return r, false
		case sniff.NeedMore:
			if !in.Final {
				return nil, true
			}
		}
	}
	return nil, false
}

// handOff delivers c to r: the replay is the sniffed bytes after any PROXY
// header, and the read deadline is cleared.
func (m *Mux) handOff(c *Conn, r *route, st *state, buf *[]byte, start time.Time) {
	if m.isClosing() {
		statePool.Put(st)
		if buf != nil {
			putBuf(buf)
		}
		m.finish(c, ReasonShutdown)
		return
	}
	res := &st.res
	c.route = r.name
	c.proto, _ = res.Protocol()
	if res.TLS.Verdict == sniff.Match {
		if len(res.TLS.ServerName) > 0 {
			c.serverName = string(res.TLS.ServerName)
		}
		for _, a := range res.TLS.ALPN() {
			c.alpn = append(c.alpn, string(a))
		}
	}
	if res.Proxy.Verdict == sniff.Match && !res.Proxy.Local && res.Proxy.Src.IsValid() {
		c.remote = net.TCPAddrFromAddrPort(res.Proxy.Src)
		c.local = net.TCPAddrFromAddrPort(res.Proxy.Dst)
	}
	if buf != nil {
		c.buf = buf
		c.replay = (*buf)[res.Offset:]
		if len(c.replay) == 0 {
			c.release()
		}
	} else {
		c.drained.Store(true)
	}
	statePool.Put(st)
	c.Conn.SetReadDeadline(time.Time{})
	m.untrack(c)
	if m.isClosing() {
		// Close raced with the decision; its deadline may have been
		// cleared above.
		m.finish(c, ReasonShutdown)
		return
	}
	c.sniffTime = time.Since(start)
	m.stats.sniffNanos.Add(uint64(c.sniffTime))
	// Decided: the MaxPending slot bounds sniffing, not the connection's
	// life in a Handler or a queue.
	m.releaseSlot(c)
	if r.ln != nil {
		if reason := r.ln.deliver(c, m.sniffTimeout()); reason != ReasonNone {
			m.finish(c, reason)
			return
		}
		r.n.Add(1)
		return
	}
	r.n.Add(1)
	m.serveHandler(r, c)
}

// serveHandler calls the route's Handler. A panic in it ends only this
// connection, as net/http does for a request.
func (m *Mux) serveHandler(r *route, c *Conn) {
	defer func() {
		if err := recover(); err != nil {
			if m.Logger != nil {
				m.Logger.Error("mux: handler panicked", "route", r.name, "remote", c.Conn.RemoteAddr(), "panic", err)
			}
			c.Close()
		}
	}()
	r.handler.ServeConn(c)
}

// releaseSlot gives back c's MaxPending slot, once.
func (m *Mux) releaseSlot(c *Conn) {
	if c.pending {
		c.pending = false
		<-m.sem
	}
}

// trusted reports whether c's peer may send a PROXY header.
func (m *Mux) trusted(c net.Conn) bool {
	if len(m.TrustedProxies) == 0 {
		return false
	}
	ta, ok := c.RemoteAddr().(*net.TCPAddr)
	if !ok {
		return false
	}
	a := ta.AddrPort().Addr().Unmap()
	mapped := netip.AddrFrom16(a.As16()) // ::ffff:a.b.c.d, for prefixes written that way
	for _, p := range m.TrustedProxies {
		if p.Contains(a) || p.Contains(mapped) {
			return true
		}
	}
	return false
}

// checkProxy rejects a PROXY header from an untrusted peer, or a broken one.
func (m *Mux) checkProxy(res *sniff.Result, trusted bool) Reason {
	switch res.Proxy.Verdict {
	case sniff.NoMatch, sniff.NeedMore:
		return ReasonNone
	case sniff.Malformed, sniff.TooLarge:
		if !trusted {
			return ReasonProxyUntrusted
		}
		return ReasonProxyMalformed
	}
	if !trusted {
		return ReasonProxyUntrusted
	}
	return ReasonNone
}
