package mux

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// ErrListenerClosed is what a closed Listener's Accept returns, and
// ErrQueueFull what its ServeConn returns for a connection that found the
// queue full for SniffTimeout. ErrListenerClosed matches net.ErrClosed.
var (
	ErrListenerClosed = fmt.Errorf("mux: route listener closed: %w", net.ErrClosed)
	ErrQueueFull      = errors.New("mux: route listener's queue stayed full")
)

// Listener is a route's net.Listener: Accept returns the connections the
// route takes, as *Conn (which replays the sniffed bytes), or what a
// Handler passed to ServeConn. Closing it
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
	m.mu.Lock()
	m.routeLns[l] = struct{}{}
	m.mu.Unlock()
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
		return nil, ErrListenerClosed
	}
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, ErrListenerClosed
	case <-l.m.hardDone:
		return nil, ErrListenerClosed
	case <-l.m.drained:
		select {
		case c := <-l.ch:
			return c, nil
		default:
			return nil, ErrListenerClosed
		}
	}
}

// Close closes this route only, and the connections queued on it.
func (l *Listener) Close() error {
	l.drop()
	return nil
}

// Addr returns the address of the listener that the Mux's most recent
// Serve began with (for a Mux serving one listener, its address), or,
// before any Serve, a placeholder that names the route.
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
// room in a full queue; if c cannot be queued it closes c and returns
// ErrListenerClosed or ErrQueueFull.
func (l *Listener) ServeConn(_ context.Context, c net.Conn) error {
	if reason := l.deliver(c, l.m.settings().sniffTimeout); reason != ReasonNone {
		c.Close()
		if reason == ReasonQueueFull {
			return ErrQueueFull
		}
		return ErrListenerClosed
	}
	return nil
}

// drop closes the route and every connection still queued.
func (l *Listener) drop() {
	l.once.Do(func() {
		close(l.done)
		l.m.mu.Lock()
		delete(l.m.routeLns, l)
		l.m.mu.Unlock()
	})
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
