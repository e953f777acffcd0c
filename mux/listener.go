package mux

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// errListenerClosed is what Accept returns on a closed route Listener.
var errListenerClosed = fmt.Errorf("mux: listener closed: %w", net.ErrClosed)

// Errors of Listener.ServeConn, for connections it could not queue.
var (
	errRouteClosed = errors.New("mux: route listener closed")
	errQueueFull   = errors.New("mux: route listener's queue stayed full")
)

// Listener is a route's net.Listener: Accept returns the connections the
// route takes, as *Conn (which replays the sniffed bytes). Closing it
// closes only this route: connections it would have taken are then closed
// (ReasonRouteClosed).
//
// A Listener is also a Handler, so that SetRoutes can keep one across
// reloads, or a Handler can pass a connection on to the server behind it.
type Listener struct {
	m    *Mux
	name string
	addr net.Addr
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

var (
	_ net.Listener = (*Listener)(nil)
	_ Handler      = (*Listener)(nil)
)

// queueLen is QueueLen, read when a Listener is made.
func (m *Mux) queueLen() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return or(m.QueueLen, DefaultQueueLen)
}

// NewListener returns a Listener of m that no route delivers to yet: add
// it to a route with Handle or SetRoutes (Listen does both).
func (m *Mux) NewListener(name string) *Listener {
	m.init()
	l := &Listener{
		m:    m,
		name: name,
		ch:   make(chan net.Conn, m.queueLen()),
		done: make(chan struct{}),
	}
	if m.isHardClosed() {
		l.drop()
	}
	return l
}

// Accept waits for the next connection of this route. After the route or
// the Mux is closed it returns an error matching net.ErrClosed; after
// Shutdown, it first returns the connections still queued.
func (l *Listener) Accept() (net.Conn, error) {
	if l.isClosed() {
		return nil, errListenerClosed
	}
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, errListenerClosed
	case <-l.m.hardDone:
		return nil, errListenerClosed
	case <-l.m.drained:
		select {
		case c := <-l.ch:
			return c, nil
		default:
			return nil, errListenerClosed
		}
	}
}

// Close closes this route only, and the connections queued on it.
func (l *Listener) Close() error {
	l.drop()
	return nil
}

// Addr returns the address of the listener the Mux last began to serve,
// or, before Serve, one that names the route.
func (l *Listener) Addr() net.Addr {
	if a := l.m.lastAddr.Load(); a != nil {
		return *a
	}
	return routeAddr(l.name)
}

// routeAddr is the Addr of a route Listener whose Mux serves no listener.
type routeAddr string

func (routeAddr) Network() string  { return "mux" }
func (a routeAddr) String() string { return "mux route " + string(a) }

// ServeConn queues c for Accept, waiting up to the Mux's SniffTimeout for
// room in a full queue; if c cannot be queued (the route is closed, or
// the queue stayed full) it closes c and returns an error.
func (l *Listener) ServeConn(_ context.Context, c net.Conn) error {
	if reason := l.deliver(c, l.m.settings().sniffTimeout); reason != ReasonNone {
		c.Close()
		if reason == ReasonQueueFull {
			return errQueueFull
		}
		return errRouteClosed
	}
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

func (l *Listener) isClosed() bool {
	select {
	case <-l.done:
		return true
	default:
	}
	return l.m.isHardClosed()
}

// deliver queues c, waiting up to wait for room. It reports why it could
// not, or ReasonNone.
func (l *Listener) deliver(c net.Conn, wait time.Duration) Reason {
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

// waitRoom is deliver's path for a full queue.
func (l *Listener) waitRoom(c net.Conn, wait time.Duration) Reason {
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
