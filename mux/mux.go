package mux

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portmux/portmux/sniff"
)

// Defaults for the zero values of Config's fields.
const (
	DefaultSniffTimeout     = 3 * time.Second
	DefaultMaxSniffBytes    = sniff.DefaultLimit // 16 KiB
	DefaultMaxPending       = 10000
	DefaultQueueLen         = 128
	DefaultLingerTimeout    = 2 * time.Second
	DefaultLingerBytes      = 4 << 20
	DefaultHTTP2IdleTimeout = 5 * time.Minute
)

// ErrClosed is returned by Serve and ServeConn after Close or Shutdown.
var ErrClosed = errors.New("mux: closed")

// Config holds the limits and policies of a Mux. Every zero value means
// the documented default. Change them on a serving Mux with Reconfigure.
type Config struct {
	// SniffTimeout bounds the time from accept to a routing decision.
	// If zero, DefaultSniffTimeout (3 s) is used.
	SniffTimeout time.Duration

	// MaxSniffBytes bounds the bytes read before a decision; a head that
	// does not end within it is too large (431 on HTTP). If zero,
	// DefaultMaxSniffBytes (16 KiB) is used.
	MaxSniffBytes int

	// MaxPending bounds the connections being sniffed at once; past it
	// Serve stops accepting until one is decided, leaving the rest in the
	// kernel's backlog, and ServeConn waits. If zero, DefaultMaxPending
	// (10,000) is used.
	MaxPending int

	// MaxConns, if positive, bounds the connections open at once, from
	// accept until the delivered Conn is closed (or the mux turns it
	// away): past it Serve stops accepting, and ServeConn waits, until one
	// closes. Zero means no bound beyond MaxPending's.
	MaxConns int

	// QueueLen bounds each route Listener's queue of connections not yet
	// accepted. A connection that finds the queue full waits up to
	// SniffTimeout for room, then is closed (ReasonQueueFull). If zero,
	// DefaultQueueLen (128). It is read when the Listener is made.
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

	// HTTP2IdleTimeout bounds how long an HTTP/2 connection that exchanged
	// SETTINGS with the mux may wait for its first request (an idle gRPC
	// channel; see GRPC). It then gets GOAWAY NO_ERROR and is closed
	// (ReasonHTTP2Idle). If zero, DefaultHTTP2IdleTimeout (5 min) is used.
	HTTP2IdleTimeout time.Duration

	// TrustedProxies lists the peers whose PROXY protocol header (v1 or v2)
	// is believed: it is stripped, and the Conn reports the addresses it
	// carries. A PROXY header from any other peer gets the connection
	// closed (ReasonProxyUntrusted). A connection from a trusted peer
	// without a PROXY header is served as it is. While TrustedProxies is
	// set, no route, Any() included, takes a connection before its first
	// bytes (or SniffTimeout).
	TrustedProxies []netip.Prefix
}

// settings is a Config with its defaults resolved and its responses
// built: what one connection reads, from accept to decision.
type settings struct {
	Config
	sniffTimeout, lingerTimeout, http2IdleTimeout time.Duration
	maxSniffBytes, maxPending                     int
	lingerBytes                                   int64
	upgrade                                       response // 426 naming UpgradeOnly
}

func newSettings(c Config) *settings {
	s := &settings{Config: c}
	s.Config.UpgradeOnly = append([]string(nil), c.UpgradeOnly...)
	s.Config.TrustedProxies = append([]netip.Prefix(nil), c.TrustedProxies...)
	s.sniffTimeout = or(c.SniffTimeout, DefaultSniffTimeout)
	s.lingerTimeout = or(c.LingerTimeout, DefaultLingerTimeout)
	s.http2IdleTimeout = or(c.HTTP2IdleTimeout, DefaultHTTP2IdleTimeout)
	s.maxSniffBytes = or(c.MaxSniffBytes, DefaultMaxSniffBytes)
	s.maxPending = or(c.MaxPending, DefaultMaxPending)
	s.lingerBytes = or(c.LingerBytes, DefaultLingerBytes)
	tokens := strings.Join(c.UpgradeOnly, ", ")
	s.upgrade = newResponse("426 Upgrade Required",
		[]string{"Upgrade: " + tokens, "Connection: Upgrade, close"},
		"This port accepts only protocol upgrades: "+tokens+".\n")
	return s
}

func or[T time.Duration | int | int64](v, def T) T {
	if v > 0 {
		return v
	}
	return def
}

// acceptsUpgrade reports whether the port takes upgrades to token: listed
// in UpgradeOnly, or (with no UpgradeOnly) asked for by any client at all,
// since the WebSocket defects get their RFC 6455 answers either way.
func (s *settings) acceptsUpgrade(token string) bool {
	if len(s.UpgradeOnly) == 0 {
		return true
	}
	for _, t := range s.UpgradeOnly {
		if sniff.EqualFold([]byte(t), token) {
			return true
		}
	}
	return false
}

// Mux sniffs the first bytes of every connection it serves and delivers
// it to the first route that matches: a route Listener (for http.Server,
// gRPC and anything else that serves a net.Listener), or a Handler called
// in the goroutine that sniffed it.
//
// The zero value is ready to use: add routes with Listen and Handle, then
// call Serve with a listener (or ServeConn with each connection of an
// accept loop of your own). Config's fields are read when the Mux first
// serves (the first Serve or ServeConn); change them afterwards with
// Reconfigure. Routes may be added or replaced at any time. Methods are
// safe for concurrent use.
type Mux struct {
	Config

	// BaseContext, if set, returns the base context of the connections
	// Serve accepts from l; if nil, context.Background(). Close cancels
	// it. It must not return nil.
	BaseContext func(l net.Listener) context.Context

	// ConnContext, if set, returns the context of a connection, derived
	// from ctx: the one BaseContext made (Serve) or the caller's
	// (ServeConn). Matchers do not see it; Handlers get it, and so does
	// the Conn's Context method.
	ConnContext func(ctx context.Context, c net.Conn) context.Context

	// Logger, if set, receives a debug record for each rejected
	// connection and each Handler that returned an error, and a warning
	// for accept errors and Handler panics. Nil means quiet.
	Logger *slog.Logger

	// OnReject, if set, is called in the sniffing goroutine for every
	// connection the mux turns away, before it is closed.
	OnReject func(c net.Conn, reason Reason)

	initOnce sync.Once
	// snap is the settings and routes a connection starts with, swapped
	// whole (under mu) so that no connection sees a reload's settings
	// with the routes it replaces.
	snap     atomic.Pointer[snapshot]
	lastAddr atomic.Pointer[net.Addr] // of the listener Serve last began with

	mu         sync.Mutex
	closed     bool
	listeners  map[*net.Listener]struct{}
	cancels    []context.CancelFunc   // of the base contexts Serve made
	conns      map[*Conn]struct{}     // being sniffed, answered, or in a Handler
	routeLns   map[*Listener]struct{} // every Listener made, until it is closed
	onShutdown []func()
	done       chan struct{} // closed by Close and Shutdown: stop accepting
	hardDone   chan struct{} // closed by Close: drop everything
	drained    chan struct{} // closed by Shutdown once no hand-off is in flight
	inflight   sync.WaitGroup

	pendingSlots limiter // MaxPending
	connSlots    limiter // MaxConns

	stats stats
}

// init makes what the zero value lacks.
func (m *Mux) init() {
	m.initOnce.Do(func() {
		m.done = make(chan struct{})
		m.hardDone = make(chan struct{})
		m.drained = make(chan struct{})
		m.listeners = make(map[*net.Listener]struct{})
		m.conns = make(map[*Conn]struct{})
		m.routeLns = make(map[*Listener]struct{})
	})
}

// settings returns the Config in force: the fields as they are when the
// Mux first serves, or what Reconfigure gave it.
func (m *Mux) settings() *settings {
	return m.snapshot().s
}

// snapshot is what a connection starts with: the settings in force (the
// fields as they are when the Mux first serves, or what Reconfigure
// gave it) and the routes.
type snapshot struct {
	s      *settings // nil before the Mux first serves
	routes []*route
}

// snapshot returns the snapshot in force, taking the settings from the
// fields the first time.
func (m *Mux) snapshot() *snapshot {
	if sn := m.snap.Load(); sn != nil && sn.s != nil {
		return sn
	}
	m.init()
	m.mu.Lock()
	defer m.mu.Unlock()
	sn := m.loadSnapLocked()
	if sn.s == nil {
		sn = m.swapLocked(newSettings(m.Config), sn.routes)
	}
	return sn
}

func (m *Mux) loadSnapLocked() *snapshot {
	if sn := m.snap.Load(); sn != nil {
		return sn
	}
	return &snapshot{}
}

// swapLocked puts new settings (if s is not nil) and routes in force;
// m.mu is held.
func (m *Mux) swapLocked(s *settings, routes []*route) *snapshot {
	old := m.loadSnapLocked()
	if s == nil {
		s = old.s
	}
	sn := &snapshot{s: s, routes: routes}
	m.snap.Store(sn)
	if s != nil && s != old.s {
		m.pendingSlots.setLimit(s.maxPending)
		m.connSlots.setLimit(s.MaxConns)
	}
	return sn
}

// Reconfigure replaces the Config of a Mux that may be serving. The
// connections accepted from then on use c; those being sniffed finish
// with the settings they started with. New MaxPending and MaxConns bounds
// apply at once, either way: a raised one lets waiting accepts go on, a
// lowered one admits no connection until enough have ended. QueueLen
// applies to Listeners made afterwards. It also sets m.Config, so it must
// not run at the same time as code that reads those fields directly.
func (m *Mux) Reconfigure(c Config) {
	m.init()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.Config = c
	m.swapLocked(newSettings(c), m.loadSnapLocked().routes)
}

// Reload is Reconfigure and SetRoutes in one step: no connection starts
// with the new settings and the old routes, or the other way round.
func (m *Mux) Reload(c Config, routes []Route) {
	m.init()
	rs, kept := m.newRoutes(routes)
	m.mu.Lock()
	m.Config = c
	old := m.loadSnapLocked().routes
	m.swapLocked(newSettings(c), rs)
	m.mu.Unlock()
	dropReplaced(old, kept)
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
