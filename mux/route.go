package mux

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// A Handler serves connections that a route delivered. ServeConn is called
// in the goroutine that sniffed the connection, with no hand-off between;
// it owns c and must close it. Shutdown waits for ServeConn to return.
type Handler interface {
	ServeConn(c *Conn)
}

// HandlerFunc adapts a function to a Handler.
type HandlerFunc func(c *Conn)

// ServeConn calls f(c).
func (f HandlerFunc) ServeConn(c *Conn) { f(c) }

type route struct {
	name    string
	match   Matcher
	handler Handler   // one of handler
	ln      *Listener // and ln is set
	n       atomic.Uint64
}

func (m *Mux) loadRoutes() []*route {
	if p := m.routes.Load(); p != nil {
		return *p
	}
	return nil
}

func (m *Mux) addRoute(r *route) {
	m.routeMu.Lock()
	defer m.routeMu.Unlock()
	old := m.loadRoutes()
	rs := make([]*route, len(old), len(old)+1)
	copy(rs, old)
	rs = append(rs, r)
	m.routes.Store(&rs)
}

// Listen adds a route, after those added before it, that delivers the
// connections match accepts to the returned Listener. name labels the
// route in Stats and logs.
func (m *Mux) Listen(name string, match Matcher) *Listener {
	l := &Listener{
		m:    m,
		name: name,
		ch:   make(chan *Conn, m.queueLen()),
		done: make(chan struct{}),
	}
	if m.isHardClosed() {
		l.drop()
	}
	m.addRoute(&route{name: name, match: match, ln: l})
	return l
}

// Handle adds a route, after those added before it, that calls h for the
// connections match accepts.
func (m *Mux) Handle(name string, match Matcher, h Handler) {
	m.addRoute(&route{name: name, match: match, handler: h})
}

// HandleFunc adds a route that calls f; see Handle.
func (m *Mux) HandleFunc(name string, match Matcher, f func(c *Conn)) {
	m.Handle(name, match, HandlerFunc(f))
}

// Route is one route for SetRoutes.
type Route struct {
	Name    string
	Match   Matcher
	Handler Handler
}

// SetRoutes replaces every route of m, in one step, with routes, in order;
// each must have a Handler (it panics otherwise). A connection being sniffed keeps
// the routes it started with; connections accepted after the call see the
// new ones, so that a server can change its routing (a configuration
// reload) without refusing a connection. Route Listeners among the old
// routes are closed, as by their Close.
func (m *Mux) SetRoutes(routes []Route) {
	rs := make([]*route, 0, len(routes))
	for _, r := range routes {
		if r.Handler == nil || r.Match == nil {
			panic("mux: SetRoutes: route " + r.Name + " has no Matcher or no Handler")
		}
		rs = append(rs, &route{name: r.Name, match: r.Match, handler: r.Handler})
	}
	m.routeMu.Lock()
	old := m.loadRoutes()
	m.routes.Store(&rs)
	m.routeMu.Unlock()
	for _, r := range old {
		if r.ln != nil {
			r.ln.drop()
		}
	}
}

// Listener is a route's net.Listener. Closing it closes only this route:
// connections it would have taken are then closed (ReasonRouteClosed).
type Listener struct {
	m    *Mux
	name string
	ch   chan *Conn
	done chan struct{}
	once sync.Once
}

var _ net.Listener = (*Listener)(nil)

// Accept waits for the next connection of this route. After the route or
// the Mux is closed it returns an error matching net.ErrClosed; after
// Shutdown, it first returns the connections still queued.
func (l *Listener) Accept() (net.Conn, error) {
	if l.isClosed() {
		return nil, errClosed
	}
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, errClosed
	case <-l.m.hardDone:
		return nil, errClosed
	case <-l.m.drained:
		select {
		case c := <-l.ch:
			return c, nil
		default:
			return nil, errClosed
		}
	}
}

// Close closes this route only, and the connections queued on it.
func (l *Listener) Close() error {
	l.drop()
	return nil
}

// drop closes the route and every connection still queued.
func (l *Listener) drop() {
	l.once.Do(func() { close(l.done) })
	l.closeQueued()
}

func (l *Listener) closeQueued() {
	for {
		select {
		case c := <-l.ch:
			c.Close()
		default:
			return
		}
	}
}

// isClosed checks the two channels one at a time: a one-case select is a
// lock-free poll of an open channel, where a two-case one runs selectgo,
// which locks both and, on the sniffing goroutine's first hand-off, needs
// more stack than the goroutine starts with.
func (l *Listener) isClosed() bool {
	select {
	case <-l.done:
		return true
	default:
	}
	return l.m.isHardClosed()
}

// Addr returns the Mux's listening address.
func (l *Listener) Addr() net.Addr { return l.m.Addr() }

// deliver queues c, waiting up to wait for room. It reports why it could
// not, or ReasonNone.
func (l *Listener) deliver(c *Conn, wait time.Duration) Reason {
	if l.isClosed() {
		return ReasonRouteClosed
	}
	select {
	case l.ch <- c:
	default:
		if reason := l.waitRoom(c, wait); reason != ReasonNone {
			return reason
		}
	}
	// A close that drained the queue before this send cannot have seen c:
	// drain again so that nothing stays queued on a closed route.
	if l.isClosed() {
		l.closeQueued()
	}
	return ReasonNone
}

// waitRoom is deliver's slow path, for a full queue. It is kept out of
// line so that its timer and four-case select do not enlarge deliver's
// frame on every hand-off.
//
//go:noinline
func (l *Listener) waitRoom(c *Conn, wait time.Duration) Reason {
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case l.ch <- c:
		return ReasonNone
	case <-l.done:
		return ReasonRouteClosed
	case <-l.m.hardDone:
		return ReasonShutdown
	case <-t.C:
		return ReasonQueueFull
	}
}
