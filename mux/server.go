package mux

import (
	"context"
	"errors"
	"net"
	"time"
)

// Serve accepts connections on l and sniffs each in a goroutine of its
// own; the accept loop never reads. Each connection takes a MaxPending
// slot (and a MaxConns one): while they are all taken, the loop holds the
// connection it accepted last and accepts no other, so that the rest wait
// in the kernel's backlog. Accept errors other than a closed
// listener back off (5 ms doubling to 1 s) and are retried. Serve may be
// called for several listeners at once; Close and Shutdown close them
// all, and Serve closes l when it returns. It always returns a non-nil
// error: ErrClosed after Close or Shutdown, or the error of a listener
// closed by someone else.
func (m *Mux) Serve(l net.Listener) error {
	m.settings()
	defer l.Close()
	base := context.Background()
	if m.BaseContext != nil {
		if base = m.BaseContext(l); base == nil {
			panic("mux: BaseContext returned a nil context")
		}
	}
	// The connections' context ends with the Mux (Close), not with this
	// Serve: a listener closed, or Shutdown's closing of it, leaves the
	// connections it accepted to finish.
	ctx, cancel := context.WithCancel(base)
	if !m.trackListener(&l, cancel) {
		cancel()
		return ErrClosed
	}
	defer m.untrackListener(&l)
	addr := l.Addr()
	m.lastAddr.Store(&addr)

	var delay time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			if m.isClosing() {
				return ErrClosed
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
				return ErrClosed
			}
			continue
		}
		delay = 0
		if !m.acquireSlots(nil) {
			nc.Close()
			m.stats.accepted.Add(1)
			m.count(nc, ReasonShutdown)
			return ErrClosed
		}
		if !m.startConn() {
			m.refuse(nc)
			return ErrClosed
		}
		m.stats.accepted.Add(1)
		c := &Conn{nc: nc, ctx: ctx, slot: &m.connSlots}
		if m.ConnContext != nil {
			c.ctx = m.ConnContext(ctx, nc)
		}
		go m.serveConn(c)
	}
}

// ServeConn sniffs and routes one connection accepted elsewhere, in the
// calling goroutine, as Serve does each connection it accepts: for a
// caller with an accept loop of its own (several sockets for one Mux, a
// connection handed over by another process), or as the Handler of
// another Mux's route. It waits for a MaxPending slot (and a MaxConns
// one), and returns once c has been handed to a route Listener, the
// route's Handler has returned (with the Handler's error), or c was
// turned away (nil). ctx reaches the Handler (through ConnContext, if
// set). If the Mux is closed, or closes while ServeConn waits for a slot,
// ServeConn closes c and returns ErrClosed.
func (m *Mux) ServeConn(ctx context.Context, c net.Conn) error {
	m.settings()
	m.stats.accepted.Add(1)
	if !m.startConn() {
		c.Close()
		m.count(c, ReasonShutdown)
		return ErrClosed
	}
	if !m.acquireSlots(ctx.Done()) {
		m.inflight.Done()
		c.Close()
		if err := ctx.Err(); err != nil && !m.isClosing() {
			return err
		}
		m.count(c, ReasonShutdown)
		return ErrClosed
	}
	if m.ConnContext != nil {
		ctx = m.ConnContext(ctx, c)
	}
	return m.serveConn(&Conn{nc: c, ctx: ctx, slot: &m.connSlots})
}

// startConn counts a connection about to be sniffed in m.inflight, unless
// the Mux is closed. Both happen under mu, which stop takes too: once
// Shutdown has stopped the Mux, no new connection slips past its wait.
func (m *Mux) startConn() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return false
	}
	m.inflight.Add(1)
	return true
}

// refuse closes a connection accepted as the Mux closed, giving back its
// slots.
func (m *Mux) refuse(nc net.Conn) {
	nc.Close()
	m.releaseSlots()
	m.stats.accepted.Add(1)
	m.count(nc, ReasonShutdown)
}

// acquireSlots takes a MaxPending slot and, with MaxConns set, a
// connection slot; false if the Mux closes, or cancel is closed, first.
func (m *Mux) acquireSlots(cancel <-chan struct{}) bool {
	if !m.connSlots.acquire(m.done, cancel) {
		return false
	}
	if !m.pendingSlots.acquire(m.done, cancel) {
		m.connSlots.release()
		return false
	}
	return true
}

func (m *Mux) releaseSlots() {
	m.pendingSlots.release()
	m.connSlots.release()
}

func (m *Mux) trackListener(l *net.Listener, cancel context.CancelFunc) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return false
	}
	m.listeners[l] = struct{}{}
	m.cancels = append(m.cancels, cancel)
	return true
}

func (m *Mux) untrackListener(l *net.Listener) {
	m.mu.Lock()
	delete(m.listeners, l)
	m.mu.Unlock()
}

// RegisterOnShutdown registers f to be called, in a goroutine of its own,
// when Shutdown begins: to tell the connections in long-lived Handlers
// (WebSocket sessions, say) to finish, as http.Server's hook does for
// hijacked connections.
func (m *Mux) RegisterOnShutdown(f func()) {
	m.init()
	m.mu.Lock()
	m.onShutdown = append(m.onShutdown, f)
	m.mu.Unlock()
}

// Close stops accepting and closes every listener that Serve was given,
// every Listener of the Mux (with the connections queued on it), every
// connection still being sniffed and every connection in a Handler, at
// once, and cancels the contexts of the connections Serve accepted.
// Connections already accepted from a route Listener are their servers'
// to close.
func (m *Mux) Close() error {
	m.init()
	err := m.stop(true)
	m.closeConns(true)
	m.mu.Lock()
	lns := make([]*Listener, 0, len(m.routeLns))
	for l := range m.routeLns {
		lns = append(lns, l)
	}
	m.mu.Unlock()
	for _, l := range lns {
		l.drop()
	}
	return err
}

// Shutdown stops accepting, closes every listener that Serve was given,
// ends the connections still being sniffed, calls the functions given to
// RegisterOnShutdown, then waits until every decided connection has been
// handed off and every Handler call has returned. Route Listeners then
// return the connections still queued and after them an error matching
// net.ErrClosed. If ctx ends first, Shutdown cancels the connections'
// contexts, so that Handlers can say goodbye (a wsbridge.Bridge sends
// close 1001), waits up to LingerTimeout more for them, then closes as
// Close does, and returns ctx.Err().
func (m *Mux) Shutdown(ctx context.Context) error {
	m.init()
	err := m.stop(false)
	m.closeConns(false)
	m.mu.Lock()
	hooks := m.onShutdown
	m.mu.Unlock()
	for _, f := range hooks {
		go f()
	}
	wait := make(chan struct{})
	go func() {
		m.inflight.Wait()
		close(wait)
	}()
	select {
	case <-wait:
		m.mu.Lock()
		select {
		case <-m.drained:
		default:
			close(m.drained)
		}
		m.mu.Unlock()
		return err
	case <-ctx.Done():
		m.cancelContexts()
		t := time.NewTimer(m.settings().lingerTimeout)
		select {
		case <-wait:
		case <-t.C:
		}
		t.Stop()
		m.Close()
		return ctx.Err()
	}
}

// cancelContexts cancels the contexts of every connection Serve accepted.
func (m *Mux) cancelContexts() {
	m.mu.Lock()
	cancels := m.cancels
	m.mu.Unlock()
	for _, cancel := range cancels {
		cancel()
	}
}

// stop closes done (and hardDone if hard) once, and the listeners.
func (m *Mux) stop(hard bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var err error
	if !m.closed {
		m.closed = true
		close(m.done)
		for l := range m.listeners {
			if cerr := (*l).Close(); cerr != nil && err == nil {
				err = cerr
			}
		}
	}
	if hard {
		select {
		case <-m.hardDone:
		default:
			close(m.hardDone)
			for _, cancel := range m.cancels {
				cancel()
			}
		}
	}
	return err
}

// track and untrack keep the set of connections that Close reaches.
func (m *Mux) track(c *Conn) {
	m.mu.Lock()
	m.conns[c] = struct{}{}
	m.mu.Unlock()
	// A Close between accept and track must still reach this conn.
	if m.isClosing() {
		c.nc.SetReadDeadline(aLongTimeAgo)
	}
}

func (m *Mux) untrack(c *Conn) {
	m.mu.Lock()
	delete(m.conns, c)
	m.mu.Unlock()
}

var aLongTimeAgo = time.Unix(1, 0)

// closeConns makes every read of a connection being sniffed or answered
// return now (its goroutine then sees the Mux closing and closes it) and,
// if hard, closes the connections in Handlers.
func (m *Mux) closeConns(hard bool) {
	var owned []*Conn
	m.mu.Lock()
	for c := range m.conns {
		if c.is(inHandler) {
			if hard {
				owned = append(owned, c)
			}
			continue
		}
		c.nc.SetReadDeadline(aLongTimeAgo)
	}
	m.mu.Unlock()
	// Outside the lock: a *tls.Conn's Close may wait to send close_notify.
	for _, c := range owned {
		c.Close()
	}
}
