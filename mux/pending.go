package mux

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/portmux/portmux/internal/h2frame"
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

// parse is one parse of a connection's bytes and the Input its routes
// judge them by. It is large (the sniff.Result is about 1.5 KiB) and
// pooled, and a connection holds one only while its bytes are judged.
type parse struct {
	res sniff.Result
	in  Input
}

var parsePool = sync.Pool{New: func() any { return new(parse) }}

// pending is one connection on its way from accept to a route: what the
// mux knows of it between reads. A connection that has sent nothing holds
// this, its Conn and its goroutine, but no buffer and no parse.
type pending struct {
	m      *Mux
	s      *settings
	c      *Conn
	routes []*route
	start  time.Time

	buf       *[]byte // the bytes read so far; nil until the first arrive
	p         *parse  // while the bytes are judged
	trusted   bool    // the peer may send a PROXY header
	holdsSlot bool    // a MaxPending slot is held
	timedOut  bool    // SniffTimeout passed
	eof       bool    // the client ended its stream

	h2 h2exchange
}

var pendingPool = sync.Pool{New: func() any { return new(pending) }}

// serveConn sniffs c, decides, and delivers or turns it away; for a
// Handler route it returns what the Handler returned. It runs in a
// goroutine of its own for each connection Serve accepted, or in
// ServeConn's caller. The connection holds a MaxPending slot, which it
// gives back once decided, and counts in m.inflight until it returns.
func (m *Mux) serveConn(c *Conn) error {
	defer m.inflight.Done()
	pd := pendingPool.Get().(*pending)
	sn := m.snapshot()
	*pd = pending{m: m, s: sn.s, c: c, routes: sn.routes, start: time.Now(), holdsSlot: true}
	r := pd.sniff()
	pd.releaseSlot()
	if pd.buf != nil {
		putBuf(pd.buf)
	}
	*pd = pending{}
	pendingPool.Put(pd)
	if r == nil {
		return nil
	}
	return m.deliver(r, c)
}

// sniff reads and judges the connection's bytes until a route takes it,
// and returns that route; or it turns the connection away, closes it and
// returns nil.
func (pd *pending) sniff() *route {
	c := pd.c
	c.nc.SetReadDeadline(pd.start.Add(pd.s.sniffTimeout))
	pd.m.track(c)
	pd.trusted = pd.s.trusts(c.nc)
	for {
		r, done := pd.judge()
		if done {
			return r
		}
		if pd.read() {
			return nil
		}
	}
}

// judge parses the bytes read so far and runs the routes over the parse.
// It returns done with the route that takes the connection, or with nil
// once the connection has been turned away; or not done, to read more.
func (pd *pending) judge() (r *route, done bool) {
	pd.p = parsePool.Get().(*parse)
	defer pd.putParse()
	var b []byte
	if pd.buf != nil {
		b = *pd.buf
	}
	res := &pd.p.res
	res.Parse(b, pd.s.maxSniffBytes)
	if reason := pd.checkProxy(); reason != ReasonNone {
		pd.reject(reason)
		return nil, true
	}
	final := pd.timedOut || pd.eof || len(b) >= pd.s.maxSniffBytes
	pd.p.in = Input{res: res, Bytes: b[min(res.Offset, len(b)):], TimedOut: pd.timedOut, Final: final}

	more := true
	// With PROXY headers expected, a connection is not routed before its
	// first bytes say whether it sent one: Any() would pass a trusted
	// header on unstripped, or an untrusted one unrefused.
	if b != nil || len(pd.s.TrustedProxies) == 0 || final {
		r, more = matchRoutes(pd.routes, &pd.p.in)
	}
	if res.HTTP2 == sniff.Match {
		var stop bool
		if r, more, stop = pd.exchangeHTTP2(r, more); stop {
			return nil, true
		}
	}
	if r != nil {
		if !pd.decided(r) {
			return nil, true
		}
		return r, true
	}
	if !more && !final {
		// No route will take it, but the mux's own answer (426, 400,
		// 431, a TLS alert) may need the rest of the head.
		_, v := res.Protocol()
		more = v == sniff.NeedMore
	}
	if !more {
		pd.reject(pd.noMatchReason())
		return nil, true
	}
	return nil, false
}

func (pd *pending) putParse() {
	if pd.p != nil {
		pd.p.in = Input{}
		parsePool.Put(pd.p)
		pd.p = nil
	}
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

// read reads more of the connection's bytes: the first time, it waits
// for them before taking a buffer. It reports whether the connection is
// done with (closed and counted).
func (pd *pending) read() (done bool) {
	nc := pd.c.nc
	limit := pd.s.maxSniffBytes
	if pd.h2.sent {
		limit += ackSlack
	}
	var err error
	if pd.buf == nil {
		pd.buf, err = firstRead(nc, limit)
		if pd.buf == nil && err != nil && pd.readFailed(err) {
			return true
		}
	} else {
		if len(*pd.buf) == cap(*pd.buf) {
			pd.buf = grow(pd.buf, limit)
		}
		b := *pd.buf
		var n int
		n, err = nc.Read(b[len(b):min(cap(b), limit)])
		*pd.buf = b[:len(b)+n]
		if err != nil && pd.readFailed(err) {
			return true
		}
	}
	if errors.Is(err, io.EOF) {
		pd.eof = true
	}
	return false
}

// firstRead waits for c's first bytes and reads them into a pooled
// buffer, which it takes only once bytes are there. On a socket the
// read(2) happens inside syscall.RawConn.Read, so the system calls are
// those of a plain Read: read, EAGAIN, wait for the poller, read. Other
// conns use a plain Read.
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

// grow returns a buffer of twice buf's capacity, up to limit, holding
// buf's bytes; buf goes back to its pool.
func grow(buf *[]byte, limit int) *[]byte {
	b := *buf
	grown := make([]byte, len(b), min(2*cap(b), limit))
	copy(grown, b)
	putBuf(buf)
	return &grown
}

// readFailed handles a read error during sniffing. A deadline is the
// sniff timeout, unless the mux is closing; anything else but the end of
// the stream ends the connection. It reports whether the connection is
// done with.
func (pd *pending) readFailed(err error) bool {
	switch {
	case pd.m.isClosing():
		pd.finish(ReasonShutdown)
		return true
	case errors.Is(err, os.ErrDeadlineExceeded) && !pd.timedOut:
		pd.timedOut = true
		return false
	case errors.Is(err, io.EOF):
		return false
	}
	pd.finish(ReasonReadError)
	return true
}

// decided prepares the Conn for its route: the replay is the sniffed
// bytes after any PROXY header, the read deadline is cleared, and the
// MaxPending slot is given back. It reports false if the Mux closed
// meanwhile, having closed the connection.
func (pd *pending) decided(r *route) bool {
	c := pd.c
	if pd.m.isClosing() {
		pd.finish(ReasonShutdown)
		return false
	}
	res := &pd.p.res
	c.route = r
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
		c.proxied = &proxyAddrs{net.TCPAddrFromAddrPort(res.Proxy.Src), net.TCPAddrFromAddrPort(res.Proxy.Dst)}
	}
	if pd.buf != nil {
		c.buf = pd.buf
		c.replay = (*pd.buf)[res.Offset:]
		if len(c.replay) == 0 {
			c.release()
		}
		pd.buf = nil
	} else {
		c.set(drained)
	}
	// Decided: from here Shutdown's interruption of sniffs must pass this
	// connection by. A Listener's connection leaves the set Close reaches
	// (the Listener closes it while queued); a Handler's stays in it, to
	// be closed by Close while the Handler runs.
	m := pd.m
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		pd.finish(ReasonShutdown)
		return false
	}
	if r.ln != nil {
		delete(m.conns, c)
	} else {
		c.set(inHandler)
	}
	m.mu.Unlock()
	c.nc.SetReadDeadline(time.Time{})
	c.sniffTime = time.Since(pd.start)
	pd.m.stats.sniffNanos.Add(uint64(c.sniffTime))
	pd.releaseSlot()
	return true
}

// releaseSlot gives back the MaxPending slot, once: it bounds sniffing,
// not the connection's life in a Handler or a queue.
func (pd *pending) releaseSlot() {
	if pd.holdsSlot {
		pd.holdsSlot = false
		pd.m.pendingSlots.release()
	}
}

// deliver hands a decided connection to its route's Listener, or calls
// the route's Handler. A panic in a Handler ends only this connection,
// as net/http does for a request.
func (m *Mux) deliver(r *route, c *Conn) (err error) {
	if r.ln != nil {
		if reason := r.ln.deliver(c, m.settings().sniffTimeout); reason != ReasonNone {
			m.count(c, reason)
			c.Close()
			return nil
		}
		r.n.Add(1)
		return nil
	}
	r.n.Add(1)
	defer func() {
		m.untrack(c)
		if p := recover(); p != nil {
			if m.Logger != nil {
				m.Logger.Error("mux: handler panicked", "route", r.name, "remote", c.RemoteAddr(), "panic", p)
			}
			c.Close()
			err = nil
		}
	}()
	err = r.h.ServeConn(c.ctx, c)
	if err != nil && m.Logger != nil {
		m.Logger.Debug("mux: handler ended with an error", "route", r.name, "remote", c.RemoteAddr(), "err", err)
	}
	return err
}

// trusts reports whether c's peer may send a PROXY header.
func (s *settings) trusts(c net.Conn) bool {
	if len(s.TrustedProxies) == 0 {
		return false
	}
	ta, ok := c.RemoteAddr().(*net.TCPAddr)
	if !ok {
		return false
	}
	a := ta.AddrPort().Addr().Unmap()
	mapped := netip.AddrFrom16(a.As16()) // ::ffff:a.b.c.d, for prefixes written that way
	for _, p := range s.TrustedProxies {
		if p.Contains(a) || p.Contains(mapped) {
			return true
		}
	}
	return false
}

// checkProxy rejects a PROXY header from an untrusted peer, or a broken one.
func (pd *pending) checkProxy() Reason {
	switch pd.p.res.Proxy.Verdict {
	case sniff.NoMatch, sniff.NeedMore:
		return ReasonNone
	case sniff.Malformed, sniff.TooLarge:
		if !pd.trusted {
			return ReasonProxyUntrusted
		}
		return ReasonProxyMalformed
	}
	if !pd.trusted {
		return ReasonProxyUntrusted
	}
	return ReasonNone
}

// ackSlack is how far past MaxSniffBytes the mux reads while it waits for
// the ACK of its SETTINGS: a client that did not wait for them may send
// its requests first, with up to 65,535 bytes of DATA (the initial
// flow-control window, RFC 9113 §6.9.2) plus frame headers.
const ackSlack = 80 << 10

// h2exchange is the mux's side of an HTTP/2 connection it sent its own
// SETTINGS on.
type h2exchange struct {
	sent bool // the mux sent its SETTINGS
	idle bool // waiting out HTTP2IdleTimeout for a first request
}

// exchangeHTTP2 runs after the routes judged an HTTP/2 prior-knowledge
// connection. Clients such as gRPC's send nothing after their SETTINGS
// until the server's arrive, so a route that waits for more of such a
// connection (HTTP2HeaderField and GRPC wait for the first request's
// headers) would wait in vain: once the client's SETTINGS are in and no
// request has begun, the mux sends an empty SETTINGS frame (the server
// preface, RFC 9113 §3.4). The client acknowledges it; the mux holds the
// decision until that ACK is in and takes it out of the bytes the chosen
// route's server reads, for that server never sent those settings and
// would treat the ACK as a protocol error (RFC 9113 §6.5).
//
// A connection that exchanged SETTINGS but sends no request (an idle gRPC
// channel) is no later route's: it waits up to HTTP2IdleTimeout without
// holding a MaxPending slot, then gets GOAWAY NO_ERROR, after which a
// client retries on a new connection. stop reports that the connection
// was turned away.
func (pd *pending) exchangeHTTP2(r *route, more bool) (*route, bool, bool) {
	b := *pd.buf
	frames := b[pd.p.res.Offset+len(sniff.Preface):]
	settled := awaitsServerSettings(frames)
	switch {
	case !pd.h2.sent:
		if more && settled && !pd.timedOut {
			if err := pd.sendSettings(); err != nil {
				pd.reject(ReasonReadError)
				return nil, false, true
			}
			pd.h2.sent = true
		}
		return r, more, false
	case pd.timedOut && settled && hasSettingsAck(frames):
		if !pd.h2.idle {
			pd.h2.idle, pd.timedOut = true, false
			pd.c.nc.SetReadDeadline(time.Now().Add(pd.s.http2IdleTimeout))
			pd.releaseSlot()
			return nil, true, false
		}
		pd.sendGoAway(goAwayNoError)
		pd.reject(ReasonHTTP2Idle)
		return nil, false, true
	case r == nil && !more && !hasSettingsAck(frames):
		// No route takes it, and it never acknowledged the mux's SETTINGS.
		pd.sendGoAway(goAwaySettingsTimeout)
		pd.reject(ReasonHTTP2Settings)
		return nil, false, true
	case r == nil:
		return r, more, false
	}
	// The client's ACK of the mux's SETTINGS must not reach the route's
	// server, which never sent them.
	var acked bool
	if *pd.buf, acked = dropSettingsAck(b, len(b)-len(frames)); !acked {
		if pd.timedOut || pd.eof || len(b) >= pd.s.maxSniffBytes+ackSlack {
			pd.sendGoAway(goAwaySettingsTimeout)
			pd.reject(ReasonHTTP2Settings)
			return nil, false, true
		}
		return nil, true, false
	}
	return r, false, false
}

// emptySettings is the server preface the mux sends.
var emptySettings = h2frame.Append(nil, h2frame.TypeSettings, 0, 0, nil)

// GOAWAY frames, last stream 0, with SETTINGS_TIMEOUT and NO_ERROR (RFC
// 9113 §6.8, §7).
var (
	goAwaySettingsTimeout = h2frame.AppendGoAway(nil, 0, h2frame.CodeSettingsTimeout)
	goAwayNoError         = h2frame.AppendGoAway(nil, 0, h2frame.CodeNo)
)

func (pd *pending) sendSettings() error {
	nc := pd.c.nc
	nc.SetWriteDeadline(time.Now().Add(pd.s.sniffTimeout))
	_, err := nc.Write(emptySettings)
	nc.SetWriteDeadline(time.Time{})
	return err
}

func (pd *pending) sendGoAway(frame []byte) {
	nc := pd.c.nc
	nc.SetWriteDeadline(time.Now().Add(pd.s.lingerTimeout))
	nc.Write(frame)
}

// awaitsServerSettings reports whether the frames after the preface are
// the client's complete SETTINGS, then whole frames none of which begins
// a request: a client in that state may be waiting for the server's
// SETTINGS.
func awaitsServerSettings(frames []byte) bool {
	f, rest, ok := h2frame.Next(frames)
	if !ok || f.Type != h2frame.TypeSettings || f.Flags&h2frame.FlagAck != 0 || f.Stream != 0 {
		return false
	}
	for len(rest) > 0 {
		if len(rest) >= 4 && rest[3] == h2frame.TypeHeaders {
			return false
		}
		if _, rest, ok = h2frame.Next(rest); !ok {
			return false // a frame is on its way
		}
	}
	return true
}

// hasSettingsAck reports whether frames hold the client's ACK of the
// mux's SETTINGS.
func hasSettingsAck(frames []byte) bool {
	_, _, found := findSettingsAck(frames)
	return found
}

// findSettingsAck finds the first SETTINGS ACK among frames: its offset,
// and whether it is a well-formed (empty) one.
func findSettingsAck(frames []byte) (at int, empty, found bool) {
	rest := frames
	for {
		f, next, ok := h2frame.Next(rest)
		if !ok {
			return 0, false, false
		}
		if f.Type == h2frame.TypeSettings && f.Flags&h2frame.FlagAck != 0 {
			return len(frames) - len(rest), len(f.Payload) == 0, true
		}
		rest = next
	}
}

// dropSettingsAck removes the client's first SETTINGS ACK from b, whose
// frames start at off; found is false while it has not arrived. An ACK
// with a payload, a FRAME_SIZE_ERROR (RFC 9113 §6.5), is left for the
// server to answer.
func dropSettingsAck(b []byte, off int) (out []byte, found bool) {
	at, empty, found := findSettingsAck(b[off:])
	if !found || !empty {
		return b, found
	}
	at += off
	return append(b[:at], b[at+h2frame.HeaderLen:]...), true
}
