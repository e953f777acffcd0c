package mux

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portmux/portmux/sniff"
)

// Defaults for the zero values of Mux's fields.
const (
	DefaultSniffTimeout  = 3 * time.Second
	DefaultMaxSniffBytes = sniff.DefaultLimit // 16 KiB
	DefaultMaxPending    = 10000
	DefaultQueueLen      = 128
	DefaultLingerTimeout = 2 * time.Second
	DefaultLingerBytes   = 4 << 20

	DefaultHTTP2IdleTimeout = 5 * time.Minute
)

// ErrMuxClosed is returned by Serve, and by ServeConn, after Close or
// Shutdown.
var ErrMuxClosed = errors.New("mux: closed")

// errClosed is what Accept returns on a closed route listener.
var errClosed = fmt.Errorf("mux: listener closed: %w", net.ErrClosed)

// Mux accepts connections from one net.Listener, sniffs the first bytes of
// each and delivers it to the first route that matches: a route Listener
// (for http.Server, gRPC and anything else that serves a net.Listener) or a
// Handler called in the goroutine that sniffed it.
//
// Create one with New, set its fields, add routes with Listen and Handle,
// then call Serve. Fields must not change once Serve runs; routes may be
// added at any time. Methods are safe for concurrent use.
type Mux struct {
	// SniffTimeout bounds the time from accept to a routing decision.
	// If zero, DefaultSniffTimeout (3 s) is used.
	SniffTimeout time.Duration

	// MaxSniffBytes bounds the bytes read before a decision; a head that
	// does not end within it is too large (431 on HTTP). If zero,
	// DefaultMaxSniffBytes (16 KiB) is used.
	MaxSniffBytes int

	// MaxPending bounds connections being sniffed at once; past it Serve
	// stops accepting until one is decided, leaving the rest in the
	// kernel's backlog, and ServeConn waits. If zero, DefaultMaxPending
	// (10,000) is used. It is read at the first Serve or ServeConn.
	MaxPending int

	// QueueLen bounds each route Listener's queue of connections not yet
	// accepted. A connection that finds the queue full waits up to
	// SniffTimeout for room, then is closed. If zero, DefaultQueueLen (128).
	QueueLen int

	// UpgradeOnly, when not empty, makes the port upgrade-only: an HTTP/1.x
	// request that no route takes gets 426 Upgrade Required (RFC 9110
	// §15.5.22) naming these tokens, in this order of preference, in its
	// Upgrade header. Tokens are lower case, e.g. "websocket", "h2c".
	UpgradeOnly []string

	// LingerTimeout bounds writing an error response (400, 426, 431, 505)
	// and then draining what the client still sends before the close, so
	// that it reads the response instead of a reset. If zero,
	// DefaultLingerTimeout (2 s) is used.
	LingerTimeout time.Duration

	// LingerBytes bounds the bytes drained in that lingering close. If
	// zero, DefaultLingerBytes (4 MiB) is used.
	LingerBytes int64

	// HTTP2IdleTimeout bounds how long a connection routed by
	// HTTP2HeaderField (or GRPC) may wait for its first request once it
	// exchanged SETTINGS with the mux: an idle gRPC channel. It then gets
	// GOAWAY NO_ERROR and is closed (ReasonHTTP2Idle). If zero,
	// DefaultHTTP2IdleTimeout (5 min) is used.
	HTTP2IdleTimeout time.Duration

	// TrustedProxies lists the peers whose PROXY protocol header (v1 or v2)
	// is believed: it is stripped, and the Conn reports the addresses it
	// carries. A PROXY header from any other peer gets the connection
	// closed (ReasonProxyUntrusted). A connection from a trusted peer
	// without a PROXY header is served as it is. While TrustedProxies is
	// set, no route, Any() included, takes a connection before its first
	// bytes (or SniffTimeout).
	TrustedProxies []netip.Prefix

	// Logger, if set, receives a debug record for each rejected
	// connection and a warning for accept errors. Nil means quiet.
	Logger *slog.Logger

	// OnReject, if set, is called in the sniffing goroutine for every
	// connection the mux turns away, before it is closed.
	OnReject func(c net.Conn, reason Reason)

	ln      net.Listener
	routes  atomic.Pointer[[]*route]
	routeMu sync.Mutex // serializes route registration

	serving  atomic.Bool
	done     chan struct{} // closed by Close and Shutdown: stop accepting
	hardDone chan struct{} // closed by Close: drop everything
	drained  chan struct{} // closed by Shutdown once no hand-off is in flight
	closeMu  sync.Mutex
	closed   bool
	sem      chan struct{} // pending sniff slots

	pendingMu sync.Mutex
	pending   map[*Conn]struct{} // connections being sniffed, rejected or lingering
	inflight  sync.WaitGroup     // sniffs (and ServeConn calls waiting for a slot), until their hand-off ends

	stats stats
	resp  responses
}

// New returns a Mux that will accept connections from l. The Mux owns l:
// Close and Shutdown close it.
func New(l net.Listener) *Mux {
	return &Mux{
		ln:       l,
		done:     make(chan struct{}),
		hardDone: make(chan struct{}),
		drained:  make(chan struct{}),
		pending:  make(map[*Conn]struct{}),
	}
}

func (m *Mux) sniffTimeout() time.Duration {
	if m.SniffTimeout > 0 {
		return m.SniffTimeout
	}
	return DefaultSniffTimeout
}

func (m *Mux) maxSniffBytes() int {
	if m.MaxSniffBytes > 0 {
		return m.MaxSniffBytes
	}
	return DefaultMaxSniffBytes
}

func (m *Mux) maxPending() int {
	if m.MaxPending > 0 {
		return m.MaxPending
	}
	return DefaultMaxPending
}

func (m *Mux) queueLen() int {
	if m.QueueLen > 0 {
		return m.QueueLen
	}
	return DefaultQueueLen
}

func (m *Mux) lingerTimeout() time.Duration {
	if m.LingerTimeout > 0 {
		return m.LingerTimeout
	}
	return DefaultLingerTimeout
}

func (m *Mux) http2IdleTimeout() time.Duration {
	if m.HTTP2IdleTimeout > 0 {
		return m.HTTP2IdleTimeout
	}
	return DefaultHTTP2IdleTimeout
}

func (m *Mux) lingerBytes() int64 {
	if m.LingerBytes > 0 {
		return m.LingerBytes
	}
	return DefaultLingerBytes
}

// Addr returns the address of the listener the Mux accepts from.
func (m *Mux) Addr() net.Addr { return m.ln.Addr() }

// Serve accepts connections and sniffs each in a goroutine of its own; the
// accept loop never reads. Accept errors other than a closed listener back
// off (5 ms doubling to 1 s) and are retried. Serve always returns a
// non-nil error: ErrMuxClosed after Close or Shutdown.
func (m *Mux) Serve() error {
	if !m.serving.CompareAndSwap(false, true) {
		return errors.New("mux: Serve called twice")
	}
	sem := m.slots()
	var delay time.Duration
	for {
		select {
		case sem <- struct{}{}:
		case <-m.done:
			return ErrMuxClosed
		}
		c, err := m.ln.Accept()
		if err != nil {
			<-sem
			if m.isClosing() {
				return ErrMuxClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			if m.Logger != nil {
				m.Logger.Warn("mux: accept error; retrying", "err", err, "delay", delay)
			}
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-m.done:
				t.Stop()
				return ErrMuxClosed
			}
			continue
		}
		delay = 0
		// Add under closeMu, which stop takes too: once Shutdown has
		// stopped the mux, no new hand-off can slip past its Wait.
		m.closeMu.Lock()
		if m.closed {
			m.closeMu.Unlock()
			c.Close()
			<-sem
			m.stats.rejected[ReasonShutdown].Add(1)
			if m.OnReject != nil {
				m.OnReject(c, ReasonShutdown)
			}
			return ErrMuxClosed
		}
		m.inflight.Add(1)
		m.closeMu.Unlock()
		go m.serveConn(c)
	}
}

// ServeConn sniffs and routes one connection accepted elsewhere, in the
// calling goroutine, as Serve does each connection it accepts: for a
// caller with an accept loop of its own (several sockets for one Mux, or
// connections handed from one Mux to its successor on a reload). It waits
// for a MaxPending slot, and returns once c has been handed off (for a
// Handler route: once the Handler returned) or rejected. If the Mux is
// closed, or closes while ServeConn waits for a slot, ServeConn returns
// ErrMuxClosed and leaves c alone: it is the caller's to close.
func (m *Mux) ServeConn(c net.Conn) error {
	m.closeMu.Lock()
	if m.closed {
		m.closeMu.Unlock()
		return ErrMuxClosed
	}
	if m.sem == nil {
		m.sem = make(chan struct{}, m.maxPending())
	}
	sem := m.sem
	m.inflight.Add(1)
	m.closeMu.Unlock()
	select {
	case sem <- struct{}{}:
	case <-m.done:
		m.inflight.Done()
		return ErrMuxClosed
	}
	if m.isClosing() {
		<-sem
		m.inflight.Done()
		return ErrMuxClosed
	}
	m.serveConn(c)
	return nil
}

// slots returns the MaxPending semaphore, made on first use with the
// MaxPending in force then.
func (m *Mux) slots() chan struct{} {
	m.closeMu.Lock()
	defer m.closeMu.Unlock()
	if m.sem == nil {
		m.sem = make(chan struct{}, m.maxPending())
	}
	return m.sem
}

func (m *Mux) isClosing() bool {
	select {
	case <-m.done:
		return true
	default:
		return false
	}
}

func (m *Mux) isHardClosed() bool {
	select {
	case <-m.hardDone:
		return true
	default:
		return false
	}
}

// Close stops accepting, closes the listener, every route Listener (with
// the connections queued on it) and every connection still being sniffed,
// at once. Connections already accepted from a route Listener or handed to
// a Handler are their owners' to close.
func (m *Mux) Close() error {
	err := m.stop(true)
	m.interruptPending()
	for _, r := range m.loadRoutes() {
		if r.ln != nil {
			r.ln.drop()
		}
	}
	return err
}

// Shutdown stops accepting, closes the listener, ends the connections still
// being sniffed, then waits until every decided connection has been handed
// off and every Handler call has returned. Route Listeners then return the
// connections still queued and after them an error matching net.ErrClosed.
// If ctx ends first, Shutdown closes as Close does and returns ctx.Err().
func (m *Mux) Shutdown(ctx context.Context) error {
	err := m.stop(false)
	m.interruptPending()
	wait := make(chan struct{})
	go func() {
		m.inflight.Wait()
		close(wait)
	}()
	select {
	case <-wait:
		m.closeMu.Lock()
		select {
		case <-m.drained:
		default:
			close(m.drained)
		}
		m.closeMu.Unlock()
		return err
	case <-ctx.Done():
		m.Close()
		return ctx.Err()
	}
}

// stop closes done (and hardDone if hard) once, and the listener once.
func (m *Mux) stop(hard bool) error {
	m.closeMu.Lock()
	defer m.closeMu.Unlock()
	var err error
	if !m.closed {
		m.closed = true
		close(m.done)
		err = m.ln.Close()
	}
	if hard {
		select {
		case <-m.hardDone:
		default:
			close(m.hardDone)
		}
	}
	return err
}

// interruptPending makes every pending read return now; the sniffing
// goroutines see the mux closing and close their connections.
func (m *Mux) interruptPending() {
	m.pendingMu.Lock()
	for c := range m.pending {
		c.Conn.SetReadDeadline(aLongTimeAgo)
	}
	m.pendingMu.Unlock()
}

var aLongTimeAgo = time.Unix(1, 0)

func (m *Mux) track(c *Conn) {
	m.pendingMu.Lock()
	m.pending[c] = struct{}{}
	m.pendingMu.Unlock()
	// A Close between accept and track must still reach this conn.
	if m.isClosing() {
		c.Conn.SetReadDeadline(aLongTimeAgo)
	}
}

func (m *Mux) untrack(c *Conn) {
	m.pendingMu.Lock()
	delete(m.pending, c)
	m.pendingMu.Unlock()
}
