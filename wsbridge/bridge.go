package wsbridge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/portmux/portmux/internal/proxyproto"
)

// DefaultDialTimeout is the Bridge's DialTimeout when zero: 5 s, the connect
// timeout HAProxy users commonly set.
const DefaultDialTimeout = 5 * time.Second

var (
	// ErrBackendUnreachable: the Bridge could not connect to its backend
	// (or send it the PROXY header); the client got close 1014.
	ErrBackendUnreachable = errors.New("wsbridge: backend unreachable")
	// ErrBackend: the backend connection failed mid-stream, or sent text
	// that is not UTF-8 in Text mode; the client got close 1011.
	ErrBackend = errors.New("wsbridge: backend failed")
)

// Bridge connects WebSocket clients to a TCP backend, websockify style:
// the payload of each message from the client is written to the backend
// as bytes, and bytes from the backend go back as messages. The zero
// value plus Backend is ready to use; do not change fields while the
// Bridge is in use. ServeConn may be called from many goroutines.
//
// Each connection costs two goroutines (the caller's and one it starts
// and waits for) and two buffers of Upgrader.BufferSize, one per
// direction (a third, for inflating, once a client sends a compressed
// message); messages are not copied into per-message buffers. Each side
// is read only when the other has taken the previous bytes, so a slow
// reader on either side slows the writer on the other (backpressure),
// and every write is bounded by Upgrader.WriteTimeout.
//
// Closing follows the RFC both ways. Backend EOF: the bytes read before it
// are sent, then close 1000. Client close frame: the close is answered
// once the message being sent (if any) is out, and the backend's write
// side is half-closed (CloseWrite); what the backend still sends is
// discarded for up to Upgrader.CloseTimeout while it finishes. Backend
// unreachable: close 1014 "backend unreachable". Backend error
// mid-stream: close 1011.
// A client message over Upgrader.MaxMessageSize: close 1009. A protocol
// error: close 1002 (1007 for text that is not UTF-8, or bad deflate
// data). No data either way for IdleTimeout, when set: close 1001.
type Bridge struct {
	// Upgrader does the handshake and sets the client side's limits and
	// keepalive.
	Upgrader Upgrader
	// Backend is the TCP address to dial for each client, "host:port".
	Backend string
	// Dial, if not nil, connects to the backend instead of a net.Dialer;
	// network is "tcp" and address is Backend. The context carries the
	// DialTimeout. The half-close after a client's close frame needs a
	// CloseWrite method on the conn (or on the one its NetConn returns);
	// without one the backend gets CloseTimeout to finish instead of EOF.
	Dial func(ctx context.Context, network, address string) (net.Conn, error)
	// DialTimeout bounds connecting to the backend. If zero,
	// DefaultDialTimeout (5 s).
	DialTimeout time.Duration
	// Text sends the backend's bytes as text messages, for line protocols
	// read by browsers; a UTF-8 sequence split between two reads is held
	// until it completes, and bytes that are not UTF-8 end the connection
	// with close 1011. Default: binary messages. Messages from the client
	// may be text or binary either way.
	Text bool
	// ProxyHeader sends a PROXY protocol v2 header to the backend before
	// any data, carrying the client connection's RemoteAddr and LocalAddr
	// (so a *mux.Conn's trusted PROXY addresses pass through). Addresses
	// that are not TCP are sent as a LOCAL header.
	ProxyHeader bool
	// IdleTimeout, if positive, ends the bridge with close 1001 "idle
	// timeout" when no data byte has passed either way for this long;
	// zero means no such bound. It bounds a silent backend too, which
	// Upgrader.IdleTimeout does not: that one is about the client alone
	// (pongs count there), this one about the data. ServeConn then
	// returns a local *CloseError with code 1001.
	IdleTimeout time.Duration
	// Logger, if not nil, receives each bridged connection's end at debug
	// level.
	Logger *slog.Logger
}

func (b *Bridge) dialTimeout() time.Duration {
	if b.DialTimeout > 0 {
		return b.DialTimeout
	}
	return DefaultDialTimeout
}

// ServeConn completes the WebSocket handshake on c, connects to the
// backend and bridges the two until either side ends, then closes both.
// It owns c from the start and returns when both directions are done,
// having started no goroutine that outlives it. Canceling ctx sends close
// 1001 to the client and ends the bridge within Upgrader.CloseTimeout
// (plus a write in progress, bounded by WriteTimeout); the handshake
// itself does not watch ctx but is bounded by HandshakeTimeout.
//
// It returns nil when the connection closed cleanly (a close frame from
// the client, or EOF from the backend answered by the client's close),
// ctx.Err() when ctx was canceled and the client did not answer the 1001
// in time, a *HandshakeError if the handshake was refused, an error
// wrapping ErrBackendUnreachable or ErrBackend, a local *CloseError when
// the client broke the protocol or a limit (or IdleTimeout passed), or
// the network error that ended it.
func (b *Bridge) ServeConn(ctx context.Context, c net.Conn) error {
	wc, err := b.Upgrader.Upgrade(c)
	if err != nil {
		return err
	}
	err = b.serve(ctx, wc)
	if b.Logger != nil {
		b.Logger.Debug("wsbridge: connection ended", "remote", wc.RemoteAddr(), "path", wc.req.Path, "err", err)
	}
	return err
}

func (b *Bridge) serve(ctx context.Context, c *Conn) error {
	c.holdCloseReply = true
	dial := b.Dial
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	dctx, cancel := context.WithTimeout(ctx, b.dialTimeout())
	be, err := dial(dctx, "tcp", b.Backend)
	cancel()
	if err == nil && b.ProxyHeader {
		var hdr [proxyproto.MaxV2Len]byte
		be.SetWriteDeadline(time.Now().Add(c.writeTO))
		if _, err = be.Write(proxyproto.AppendV2(hdr[:0], c.RemoteAddr(), c.LocalAddr())); err != nil {
			be.Close()
		}
	}
	if err != nil && ctx.Err() != nil {
		c.sendClose(CloseGoingAway, "server shutting down")
		c.shutdown()
		return ctx.Err()
	}
	if err != nil {
		c.sendClose(CloseBadGateway, "backend unreachable")
		c.shutdown()
		return fmt.Errorf("%w: %s: %w", ErrBackendUnreachable, b.Backend, err)
	}
	defer be.Close()
	k := &idleClock{d: b.IdleTimeout}
	k.touch()
	var canceled atomic.Bool // our 1001 for ctx was the close frame
	stopped := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(stopped)
		if sent, _ := c.sendClose(CloseGoingAway, "server shutting down"); sent {
			canceled.Store(true)
		}
		k.stop(be, time.Now())
	})
	defer func() {
		// stop does not wait for a callback already running, whose
		// sendClose may wait for a write: wait for it, so that nothing
		// of ServeConn outlives it.
		if !stop() {
			<-stopped
		}
	}()

	out := make(chan error, 1)
	go b.toClient(c, be, k, out)
	inErr := b.toBackend(c, be, k)

	var ce *CloseError
	if errors.As(inErr, &ce) && ce.Remote {
		// The client closed: answer as soon as the message in flight is
		// sent (RFC 6455 §5.5.1; sendClose waits for it). Then the backend
		// sees EOF and has CloseTimeout to finish; toClient discards what
		// it still sends, so that it ends with a FIN rather than a reset.
		k.stop(be, time.Now().Add(c.closeTO))
		c.sendClose(ce.Code, "")
		closeWrite(be)
		outErr := <-out
		c.nc.Close()
		if outErr != nil && !isTimeout(outErr) {
			return outErr
		}
		return nil
	}
	// The client side failed or vanished, or the backend refused a
	// write: stop the backend, then let the client read our close frame.
	if errors.Is(inErr, ErrBackend) {
		c.sendClose(CloseInternalError, "backend write failed")
	}
	be.Close()
	outErr := <-out
	c.shutdown()
	if canceled.Load() {
		// We closed for ctx, and the client did not answer in time (or
		// the connection failed meanwhile): report why we closed.
		return ctx.Err()
	}
	if errors.Is(inErr, ErrCloseTimeout) && outErr != nil {
		return outErr // we closed because the backend ended or failed
	}
	return inErr
}

// toBackend copies client messages to the backend until the client
// closes or fails. It runs in ServeConn's goroutine.
func (b *Bridge) toBackend(c *Conn, be net.Conn, k *idleClock) error {
	for {
		if _, err := c.nextMessage(); err != nil {
			return err
		}
		for {
			p, err := c.nextData()
			if err == io.EOF {
				break
			}
			if err != nil {
				return err
			}
			if len(p) > 0 {
				k.touch()
			}
			be.SetWriteDeadline(time.Now().Add(c.writeTO))
			if _, err := be.Write(p); err != nil {
				return fmt.Errorf("%w: %w", ErrBackend, err)
			}
		}
	}
}

// toClient copies backend bytes to the client as messages until the
// backend ends, then sends the close frame that calls for. It runs in a
// goroutine ServeConn starts and waits for, and reports on out.
func (b *Bridge) toClient(c *Conn, be net.Conn, k *idleClock, out chan<- error) {
	out <- b.copyToClient(c, be, k)
}

func (b *Bridge) copyToClient(c *Conn, be net.Conn, k *idleClock) error {
	op := Binary
	if b.Text {
		op = Text
	}
	buf := make([]byte, maxHeader+len(c.rb))
	var cw appendWriter
	carry := 0 // bytes of an incomplete UTF-8 sequence held at buf[maxHeader:]
	for {
		k.arm(be)
		n, err := be.Read(buf[maxHeader+carry:])
		if n > 0 {
			k.touch()
			end := maxHeader + carry + n
			send := end - maxHeader
			if b.Text {
				send = completeUTF8(buf[maxHeader:end])
				if !utf8.Valid(buf[maxHeader : maxHeader+send]) {
					c.sendClose(CloseInternalError, "backend sent text that is not UTF-8")
					return fmt.Errorf("%w: text that is not UTF-8", ErrBackend)
				}
			}
			if send > 0 {
				if werr := c.writeData(op, buf[:maxHeader+send], &cw); werr != nil {
					if errors.Is(werr, ErrClosed) && c.peerClose.Load() != nil {
						return drain(be, buf) // we answered the client's close
					}
					return werr // a failed write closed the client connection
				}
			}
			carry = copy(buf[maxHeader:], buf[maxHeader+send:end])
		}
		if err == nil {
			continue
		}
		if isTimeout(err) && k.running() {
			// Our own idle deadline, not a stop: see whether data passed
			// the other way meanwhile.
			if k.idle() {
				ce := localClose(CloseGoingAway, "idle timeout")
				c.sendClose(ce.Code, ce.Reason)
				return ce
			}
			continue
		}
		if pc := c.peerClose.Load(); pc != nil {
			c.sendClose(pc.Code, "") // the client closed first: answer it now
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if errors.Is(err, io.EOF) {
			if carry > 0 {
				c.sendClose(CloseInternalError, "backend sent text that is not UTF-8")
				return fmt.Errorf("%w: text that is not UTF-8", ErrBackend)
			}
			c.sendClose(CloseNormal, "")
			return nil
		}
		c.sendClose(CloseInternalError, "backend connection failed")
		return fmt.Errorf("%w: %w", ErrBackend, err)
	}
}

// idleClock keeps Bridge.IdleTimeout: the time of the last data byte
// either way, and the backend read deadline that the stopping paths set
// (ctx canceled, client closed), which the idle deadline must not undo.
type idleClock struct {
	d      time.Duration
	last   atomic.Int64 // UnixNano of the last data byte either way
	stopAt atomic.Int64 // UnixNano of a stopping read deadline, or 0
}

// touch records data passing.
func (k *idleClock) touch() {
	if k.d > 0 {
		k.last.Store(time.Now().UnixNano())
	}
}

// stop sets the backend read deadline that ends the copy to the client.
func (k *idleClock) stop(be net.Conn, at time.Time) {
	k.stopAt.Store(at.UnixNano())
	be.SetReadDeadline(at)
}

// running reports whether the idle deadline is in use and no stop was set.
func (k *idleClock) running() bool { return k.d > 0 && k.stopAt.Load() == 0 }

// idle reports whether no data passed for d.
func (k *idleClock) idle() bool {
	return time.Since(time.Unix(0, k.last.Load())) >= k.d
}

// arm sets the backend read deadline to the idle limit, unless a stop is
// set: it re-checks after setting, as stop may have run meanwhile.
func (k *idleClock) arm(be net.Conn) {
	if !k.running() {
		return
	}
	be.SetReadDeadline(time.Unix(0, k.last.Load()).Add(k.d))
	if at := k.stopAt.Load(); at != 0 {
		be.SetReadDeadline(time.Unix(0, at))
	}
}

// drain discards what the backend sends after the client closed, up to
// its EOF, the read deadline ServeConn set, or 256 KiB.
func drain(be net.Conn, buf []byte) error {
	for total := 0; total < 256<<10; {
		n, err := be.Read(buf)
		total += n
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// writeData sends frame[maxHeader:] as one data message, compressed into
// cw when permessage-deflate was negotiated and it is long enough.
func (c *Conn) writeData(op MessageType, frame []byte, cw *appendWriter) error {
	rsv1 := false
	if c.deflate && len(frame)-maxHeader >= minCompress {
		cw.b = append(cw.b[:0], frame[:maxHeader]...)
		if err := compress(cw, frame[maxHeader:]); err != nil {
			return err
		}
		frame, rsv1 = cw.b, true
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.werr != nil {
		return c.werr
	}
	if c.closeSent {
		return ErrClosed
	}
	c.nc.SetWriteDeadline(time.Now().Add(c.writeTO))
	return c.writeFrameLocked(byte(op), rsv1, frame, maxHeader)
}

// completeUTF8 returns the length of p without an incomplete UTF-8
// sequence at its end.
func completeUTF8(p []byte) int {
	for i := len(p) - 1; i >= 0 && i >= len(p)-3; i-- {
		if c := p[i]; c&0xc0 != 0x80 {
			if l := seqLen(c); l > 1 && len(p)-i < l {
				return i
			}
			break
		}
	}
	return len(p)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
