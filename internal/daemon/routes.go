package daemon

import (
	"context"
	"errors"
	"net"
	"sync"

	"github.com/VictoriaMetrics/metrics"

	"github.com/portmux/portmux/mux"
)

// routes builds a listener's mux routes from its configuration. d.mu is
// held.
func (d *Daemon) routes(p *port, lc *ListenerConfig) []mux.Route {
	var rs []mux.Route
	if lc.OnTimeout != "" {
		rc := &RouteConfig{Name: "on_timeout", Match: "silent", To: lc.OnTimeout}
		rs = append(rs, mux.Route{Name: rc.Name, Match: mux.Silent(), Handler: d.handler(p, lc, rc)})
	}
	for _, rc := range lc.Routes {
		rs = append(rs, mux.Route{Name: rc.Name, Match: matcher(rc), Handler: d.handler(p, lc, rc)})
	}
	return rs
}

// matcher is a route's match, path and TLS filters as one mux.Matcher.
func matcher(rc *RouteConfig) mux.Matcher {
	var m mux.Matcher
	switch rc.Match {
	case "http1":
		m = mux.HTTP1()
	case "http2":
		m = mux.HTTP2()
	case "grpc":
		m = mux.GRPC()
	case "websocket":
		m = mux.WebSocket()
	case "upgrade":
		m = mux.Upgrade(rc.Upgrade...)
	case "ssh":
		m = mux.SSH()
	case "any":
		m = mux.Any()
	case "tls":
		ms := []mux.Matcher{mux.TLS()}
		if len(rc.SNI) > 0 {
			ms = append(ms, mux.ServerName(rc.SNI...))
		}
		if len(rc.ALPN) > 0 {
			ms = append(ms, mux.ALPN(rc.ALPN...))
		}
		m = mux.And(ms...)
	}
	if rc.Path != "" {
		m = mux.And(m, mux.PathPrefix(rc.Path))
	}
	return m
}

// handler makes the Handler of one route: the route's limit and metrics
// around the Handler that serves its connections.
func (d *Daemon) handler(p *port, lc *ListenerConfig, rc *RouteConfig) *route {
	r := &route{
		listener: lc.Name,
		name:     rc.Name,
		sniffs:   d.met.sniffTimes(lc.Name),
		active:   d.met.active(lc.Name, rc.Name),
		outcomes: d.met.outcomes(lc.Name, rc.Name),
	}
	if rc.MaxConnections > 0 {
		r.limit = d.routeLimit(lc.Name+"\x00"+rc.Name, rc.MaxConnections)
	}
	switch {
	case rc.Serve == "page":
		r.h, r.handsOn = p.page, true
	case rc.Serve == "echo":
		r.h = p.echo
	case rc.Bridge != "":
		r.h = d.bridge(rc)
	default:
		r.h = d.proxy(lc, rc)
	}
	return r
}

// route counts and limits the connections of one configured route, and
// hands them to the Handler that serves them.
type route struct {
	listener, name string
	sniffs         *metrics.PrometheusHistogram
	active         gauge
	outcomes       *outcomeCounters
	limit          *limiter // nil: no max_connections of its own

	h mux.Handler
	// handsOn: h hands the connection on and returns at once (a page
	// server's Listener): the route's count ends when it is closed.
	handsOn bool
}

// ServeConn serves one connection of the route.
func (r *route) ServeConn(ctx context.Context, c net.Conn) error {
	mc := c.(*mux.Conn)
	r.sniffs.Update(mc.SniffTime().Seconds())
	if r.limit != nil && !r.limit.tryAcquire() {
		c.Close()
		r.outcomes.add(outcomeRouteLimit)
		return nil
	}
	r.active.Inc()
	if r.handsOn {
		var once sync.Once
		pc := &ownedConn{Conn: mc, closed: func() { once.Do(r.done) }}
		err := r.h.ServeConn(ctx, pc)
		switch {
		case err == nil:
			r.outcomes.add(outcomeOK)
		case errors.Is(err, mux.ErrQueueFull):
			r.outcomes.add(outcomeQueueFull)
		default:
			r.outcomes.add(outcomeShutdown)
		}
		return err
	}
	// Deferred, so that a Handler's panic (which the mux recovers) still
	// ends the count.
	err := errPanicked
	defer func() {
		r.done()
		r.outcomes.add(outcomeOf(err))
	}()
	err = r.h.ServeConn(ctx, c)
	return err
}

// errPanicked is the outcome of a Handler that did not return.
var errPanicked = errors.New("daemon: the route's handler panicked")

// done ends a connection's count.
func (r *route) done() {
	r.active.Dec()
	if r.limit != nil {
		r.limit.release()
	}
}

// ownedConn is a connection that a server behind a Listener owns: the
// route's count ends when the server closes it.
type ownedConn struct {
	*mux.Conn
	closed func()
}

func (c *ownedConn) Close() error {
	err := c.Conn.Close()
	c.closed()
	return err
}

// routeLimit returns the route's connection limiter, kept across reloads
// so that established connections still count, with its limit set to n.
// d.mu is held.
func (d *Daemon) routeLimit(key string, n int) *limiter {
	l, ok := d.limits[key]
	if !ok {
		l = &limiter{}
		d.limits[key] = l
	}
	l.setLimit(n)
	return l
}

// limiter is a counting semaphore whose limit a reload can change while
// connections hold it.
type limiter struct {
	mu    sync.Mutex
	limit int
	used  int
}

// tryAcquire takes room if there is some, without waiting.
func (l *limiter) tryAcquire() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.used >= l.limit {
		return false
	}
	l.used++
	return true
}

func (l *limiter) release() {
	l.mu.Lock()
	l.used--
	l.mu.Unlock()
}

func (l *limiter) setLimit(n int) {
	l.mu.Lock()
	l.limit = n
	l.mu.Unlock()
}
