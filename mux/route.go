package mux

import (
	"context"
	"net"
	"sync/atomic"
)

// A Handler serves the connections a route delivers. ServeConn is called
// in the goroutine that sniffed c, with no hand-off between, and with the
// connection's context (see Mux.BaseContext and Mux.ConnContext). It owns
// c: it must close it, or hand it to an owner that will. Shutdown waits
// for ServeConn to return; Close closes c. A non-nil error is logged at
// debug level and otherwise ignored.
//
// c is a *Conn: it replays the sniffed bytes on its first reads.
// wsbridge.Bridge is a Handler, and so is a *Mux (which sniffs c again
// with routes of its own) and a *Listener (which queues c for Accept).
type Handler interface {
	ServeConn(ctx context.Context, c net.Conn) error
}

// HandlerFunc adapts a function to a Handler.
type HandlerFunc func(ctx context.Context, c net.Conn) error

// ServeConn calls f(ctx, c).
func (f HandlerFunc) ServeConn(ctx context.Context, c net.Conn) error { return f(ctx, c) }

// Route is one route for SetRoutes.
type Route struct {
	// Name labels the route in Stats, logs and Conn.Route.
	Name string
	// Match decides which connections the route takes.
	Match Matcher
	// Handler serves them; it may be a *Listener of this Mux.
	Handler Handler
}

type route struct {
	name  string
	match Matcher
	h     Handler
	ln    *Listener // h, when it is a Listener of this Mux
	n     atomic.Uint64
}

func (m *Mux) loadRoutes() []*route {
	if sn := m.snap.Load(); sn != nil {
		return sn.routes
	}
	return nil
}

func (m *Mux) newRoute(name string, match Matcher, h Handler) *route {
	if match == nil || h == nil {
		panic("mux: route " + name + " has no Matcher or no Handler")
	}
	r := &route{name: name, match: match, h: h}
	if l, ok := h.(*Listener); ok && l.m == m {
		r.ln = l
	}
	return r
}

// Handle adds a route, after those added before it, that calls h for the
// connections match accepts. name labels the route in Stats and logs.
func (m *Mux) Handle(name string, match Matcher, h Handler) {
	m.init()
	r := m.newRoute(name, match, h)
	m.mu.Lock()
	defer m.mu.Unlock()
	old := m.loadSnapLocked().routes
	rs := make([]*route, len(old), len(old)+1)
	copy(rs, old)
	rs = append(rs, r)
	m.swapLocked(nil, rs)
}

// HandleFunc adds a route that calls f; see Handle.
func (m *Mux) HandleFunc(name string, match Matcher, f func(ctx context.Context, c net.Conn) error) {
	m.Handle(name, match, HandlerFunc(f))
}

// Listen adds a route, after those added before it, that delivers the
// connections match accepts to the returned Listener, for a server that
// serves a net.Listener (http.Server, grpc.Server). name labels the route.
func (m *Mux) Listen(name string, match Matcher) *Listener {
	l := m.NewListener(name)
	m.Handle(name, match, l)
	return l
}

// SetRoutes replaces every route of m, in one step, with routes, in
// order (it panics if one lacks a Matcher or a Handler). A connection
// being sniffed keeps the routes it started with; connections accepted
// after the call see the new ones, so that a server can change its
// routing (a configuration reload) without refusing a connection. Route
// Listeners of this Mux among the old routes that are not among the new
// ones are closed, as by their Close.
func (m *Mux) SetRoutes(routes []Route) {
	m.init()
	rs, kept := m.newRoutes(routes)
	m.mu.Lock()
	old := m.loadSnapLocked().routes
	m.swapLocked(nil, rs)
	m.mu.Unlock()
	dropReplaced(old, kept)
}

// newRoutes makes the routes of SetRoutes and Reload, and the set of
// Listeners among them.
func (m *Mux) newRoutes(routes []Route) ([]*route, map[*Listener]bool) {
	rs := make([]*route, 0, len(routes))
	kept := map[*Listener]bool{}
	for _, r := range routes {
		nr := m.newRoute(r.Name, r.Match, r.Handler)
		if nr.ln != nil {
			kept[nr.ln] = true
		}
		rs = append(rs, nr)
	}
	return rs, kept
}

// dropReplaced closes the Listeners of old routes that are not kept.
func dropReplaced(old []*route, kept map[*Listener]bool) {
	for _, r := range old {
		if r.ln != nil && !kept[r.ln] {
			r.ln.drop()
		}
	}
}
