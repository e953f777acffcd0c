package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portmux/portmux/h2c"
	"github.com/portmux/portmux/internal/proxyproto"
	"github.com/portmux/portmux/internal/relay"
	"github.com/portmux/portmux/mux"
	"github.com/portmux/portmux/wsbridge"
)

// daemon runs a configuration: one port per listener, each with a mux
// whose routes proxy, bridge or serve. It reloads by swapping routes (or,
// when a listener's own settings changed, the mux behind its socket)
// without closing a socket that stays in the configuration.
type daemon struct {
	log *slog.Logger
	met *daemonMetrics
	// ctx ends when the grace period does: bridges close their WebSockets.
	ctx    context.Context
	cancel context.CancelFunc

	limMu       sync.Mutex
	routeLimits map[string]*limiter // by listener and route name

	mu      sync.Mutex
	cfg     *Config
	ports   map[string]*port // by listener name
	retired []*mux.Mux       // muxes replaced by a reload, shut down last
	conns   map[net.Conn]struct{}
	wg      sync.WaitGroup // accept loops and the connections they hand off

	page       *h2c.Server // the built-in page, shared by every listener
	pageQueue  *queue
	echo       *echoServer
	inherited  map[string]net.Listener // systemd socket activation, by address
	metricsLn  net.Listener
	metricsSrv *http.Server
}

// port is one listening socket. Its accept loop hands connections to the
// current generation's mux.
type port struct {
	cfg   *ListenerConfig // under daemon.mu
	ln    net.Listener
	cur   atomic.Pointer[generation]
	slots *limiter      // max_connections, for the port's whole life
	idle  chan net.Conn // to a worker waiting for a connection (unbuffered)
	done  chan struct{} // closed when the port stops for good
	once  sync.Once
}

// stop ends the port's accept loop and its idle workers; a connection
// accepted as it stops is closed.
func (p *port) stop() {
	p.once.Do(func() {
		close(p.done)
		p.slots.close()
		p.ln.Close()
	})
}

// generation is the mux that serves a port's connections until a reload
// with other listener settings replaces it. The port's accept loop hands
// it each connection (ServeConn); its queue is the mux's listener in name
// only, for its address, and is never pushed to.
type generation struct {
	m    *mux.Mux
	q    *queue
	name string // the listener's, for metrics
}

func newDaemon(cfg *Config, log *slog.Logger) *daemon {
	d := &daemon{
		log:   log,
		met:   newMetrics(),
		cfg:   cfg,
		ports: map[string]*port{},
		conns: map[net.Conn]struct{}{},
		echo:  newEchoServer(),

		routeLimits: map[string]*limiter{},
	}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	d.pageQueue = newQueue(nil)
	d.page = &h2c.Server{Server: &http.Server{Handler: site(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}}
	return d
}

// start opens every listener and the metrics server, and serves.
func (d *daemon) start() error {
	inh, err := inheritedListeners()
	if err != nil {
		return err
	}
	d.inherited = inh
	d.wg.Go(func() { d.page.Serve(d.pageQueue) })
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, lc := range d.cfg.Listeners {
		p, err := d.openPort(lc)
		if err != nil {
			d.closePortsLocked()
			return err
		}
		d.ports[lc.Name] = p
	}
	for _, p := range d.ports {
		d.servePort(p)
	}
	for addr, ln := range d.inherited {
		// Clients would wait in its backlog for nobody: refuse them.
		d.log.Error("socket activation: no listener of the configuration matches this socket; closing it", "address", addr)
		ln.Close()
	}
	if d.cfg.Metrics != "" {
		ln, err := net.Listen("tcp", d.cfg.Metrics)
		if err != nil {
			d.closePortsLocked()
			return fmt.Errorf("metrics: %w", err)
		}
		d.metricsLn = ln
		d.metricsSrv = &http.Server{Handler: d.met.handler(), ReadHeaderTimeout: 5 * time.Second}
		d.wg.Go(func() { d.metricsSrv.Serve(ln) })
	}
	d.met.ready.Store(true)
	return nil
}

func (d *daemon) currentConfig() *Config {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfg
}

// addrs returns the bound address of each listener, in configuration order.
func (d *daemon) addrs() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for _, lc := range d.cfg.Listeners {
		if p := d.ports[lc.Name]; p != nil {
			out = append(out, p.ln.Addr().String())
		}
	}
	return out
}

func (d *daemon) closePortsLocked() {
	for _, p := range d.ports {
		p.stop()
	}
}

// openPort binds a listener's socket: one inherited from systemd if its
// address matches, else a new one (with SO_REUSEPORT if asked).
func (d *daemon) openPort(lc *ListenerConfig) (*port, error) {
	ln := d.takeInherited(lc.Listen)
	if ln == nil {
		lcfg := net.ListenConfig{KeepAlive: -1} // see dialBackend
		if lc.ReusePort {
			lcfg.Control = reusePort
		}
		var err error
		ln, err = lcfg.Listen(context.Background(), "tcp", lc.Listen)
		if err != nil {
			return nil, err
		}
	}
	p := &port{cfg: lc, ln: ln, slots: newLimiter(maxConns(lc)), idle: make(chan net.Conn), done: make(chan struct{})}
	p.cur.Store(d.newGeneration(p, lc))
	return p, nil
}

func maxConns(lc *ListenerConfig) int {
	if lc.MaxConnections > 0 {
		return lc.MaxConnections
	}
	return defaultMaxConnections
}

// newGeneration builds a mux with lc's settings and routes.
func (d *daemon) newGeneration(p *port, lc *ListenerConfig) *generation {
	q := newQueue(p.ln.Addr())
	m := mux.New(q)
	m.SniffTimeout = lc.SniffTimeout.or(defaultSniffTimeout)
	m.MaxSniffBytes = int(lc.MaxSniffBytes)
	m.MaxPending = maxConns(lc)
	m.LingerTimeout = time.Duration(lc.LingerTimeout)
	m.UpgradeOnly = lc.UpgradeOnly
	if lc.ProxyProtocol.Accept {
		m.TrustedProxies = lc.ProxyProtocol.prefixes
	}
	m.Logger = d.log
	name := lc.Name
	m.OnReject = func(_ net.Conn, reason mux.Reason) {
		d.met.conn(name, "", reason.String())
		p.slots.release()
	}
	m.SetRoutes(d.routes(p, lc))
	return &generation{m: m, q: q, name: name}
}

// servePort runs the accept loop: take a slot, accept, and hand the
// connection to an idle worker (or a new one), which sniffs and routes it
// with the current generation's mux. A reload's retired mux finishes what
// it was handed; none is closed before shutdown. Accept errors back off as
// the mux's own loop does.
func (d *daemon) servePort(p *port) {
	addr := p.ln.Addr().String()
	d.wg.Go(func() {
		var delay time.Duration
		for {
			if !p.slots.acquire() {
				return
			}
			c, err := p.ln.Accept()
			if err != nil {
				p.slots.release()
				if errors.Is(err, net.ErrClosed) {
					return
				}
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				d.log.Warn("accept error; retrying", "listener", addr, "err", err, "delay", delay)
				select {
				case <-time.After(delay):
				case <-p.done:
				}
				continue
			}
			delay = 0
			select {
			case <-p.done: // accepted as the port stopped
				c.Close()
				p.slots.release()
				return
			default:
			}
			select {
			case p.idle <- c: // a worker waiting for its next connection
			default:
				d.wg.Go(func() { d.work(p, c) })
			}
		}
	})
}

// workerIdle is how long a port's worker goroutine waits for another
// connection once it has served one.
const workerIdle = 10 * time.Second

// work serves c, then every connection the accept loop hands it, until
// none comes for workerIdle or the port stops. A worker's goroutine keeps
// the stack that dialing a backend grew, which a goroutine started per
// connection would grow (and copy) anew every time.
func (d *daemon) work(p *port, c net.Conn) {
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		g := p.cur.Load()
		if g.m.ServeConn(c) != nil {
			// Shutdown closed the mux first.
			c.Close()
			p.slots.release()
			d.met.conn(g.name, "", "shutdown")
		}
		idle.Reset(workerIdle)
		select {
		case c = <-p.idle:
		case <-idle.C:
			return
		case <-p.done:
			return
		}
	}
}

// routes builds a listener's mux routes from its configuration.
func (d *daemon) routes(p *port, lc *ListenerConfig) []mux.Route {
	var rs []mux.Route
	if lc.OnTimeout != "" {
		rc := &RouteConfig{Name: "on_timeout", Match: "silent", To: lc.OnTimeout}
		rs = append(rs, mux.Route{Name: rc.Name, Match: mux.Silent(), Handler: d.handler(p, rc)})
	}
	for _, rc := range lc.Routes {
		rs = append(rs, mux.Route{Name: rc.Name, Match: matcher(rc), Handler: d.handler(p, rc)})
	}
	return rs
}

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

// handler serves one route's connections. Every connection gives back its
// listener slot when it ends.
func (d *daemon) handler(p *port, rc *RouteConfig) mux.Handler {
	listener := p.cfg.Name
	active := d.met.active(listener, rc.Name)
	var routeSlots *limiter
	if rc.MaxConnections > 0 {
		routeSlots = d.routeLimiter(listener+"\x00"+rc.Name, rc.MaxConnections)
	}
	var dialer *net.Dialer
	var r *relay.Relay
	if rc.Serve == "" && rc.Bridge == "" { // a proxy route
		// No TCP keepalive probes (three setsockopt calls a connection):
		// the relay's idle timeout ends dead connections.
		dialer = &net.Dialer{Timeout: rc.DialTimeout.or(defaultDialTimeout), KeepAlive: -1}
		up := d.met.counter(metricKey{"portmux_bytes_total", listener, rc.Name, "up"})
		down := d.met.counter(metricKey{"portmux_bytes_total", listener, rc.Name, "down"})
		r = &relay.Relay{
			IdleTimeout: rc.IdleTimeout.or(defaultIdleTimeout),
			Moved: func(isUp bool, n int64) {
				if isUp {
					up.AddInt64(n)
				} else {
					down.AddInt64(n)
				}
			},
		}
	}
	return mux.HandlerFunc(func(c *mux.Conn) {
		d.met.sniff(listener, c.SniffTime())
		var once sync.Once
		done := func() {
			once.Do(func() {
				active.Dec()
				if routeSlots != nil {
					routeSlots.release()
				}
				p.slots.release()
			})
		}
		if routeSlots != nil && !routeSlots.tryAcquire() {
			c.Close()
			p.slots.release()
			d.met.conn(listener, rc.Name, "route_limit")
			return
		}
		active.Inc()
		if rc.Serve == "page" {
			// The page server owns it from here, and closes it.
			if d.pageQueue.push(&pageConn{Conn: c, done: done}) {
				d.met.conn(listener, rc.Name, "ok")
				return
			}
			c.Close()
			done()
			d.met.conn(listener, rc.Name, "shutdown")
			return
		}
		defer done()
		switch {
		case rc.Serve == "echo":
			d.echo.serve(c)
			d.met.conn(listener, rc.Name, "ok")
		case rc.Bridge != "":
			d.bridge(c, listener, rc)
		default:
			d.proxy(c, listener, rc, dialer, r)
		}
	})
}

// routeLimiter returns the route's connection limiter, kept across reloads
// so that established connections still count, with its limit set to n.
func (d *daemon) routeLimiter(key string, n int) *limiter {
	d.limMu.Lock()
	defer d.limMu.Unlock()
	l, ok := d.routeLimits[key]
	if !ok {
		l = newLimiter(n)
		d.routeLimits[key] = l
	}
	l.setLimit(n)
	return l
}

// pageConn is a connection the page server owns: its listener slot and
// route counts are given back when the server closes it.
type pageConn struct {
	*mux.Conn
	done func()
}

func (c *pageConn) Close() error {
	err := c.Conn.Close()
	c.done()
	return err
}

// track registers a connection that shutdown closes after the grace period.
func (d *daemon) track(c net.Conn) func() {
	d.mu.Lock()
	d.conns[c] = struct{}{}
	d.mu.Unlock()
	return func() {
		d.mu.Lock()
		delete(d.conns, c)
		d.mu.Unlock()
	}
}

// dialBackend connects to the route's backend and writes the PROXY header
// rc asks for, carrying the client's addresses (those of a trusted PROXY
// header in front of us, if there was one). It counts dial failures.
func (d *daemon) dialBackend(c *mux.Conn, listener string, rc *RouteConfig, dialer *net.Dialer) (net.Conn, bool) {
	timeout := dialer.Timeout
	b, err := dialer.Dial("tcp", rc.To)
	if err != nil {
		outcome := "dial_error"
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			outcome = "dial_timeout"
		}
		d.met.conn(listener, rc.Name, outcome)
		d.log.Warn("backend unreachable", "listener", listener, "route", rc.Name, "backend", rc.To, "err", err)
		return nil, false
	}
	if rc.SendProxy != "" {
		var hdr []byte
		if rc.SendProxy == "v1" {
			hdr = proxyproto.AppendV1(nil, c.RemoteAddr(), c.LocalAddr())
		} else {
			hdr = proxyproto.AppendV2(nil, c.RemoteAddr(), c.LocalAddr())
		}
		b.SetWriteDeadline(time.Now().Add(timeout))
		if _, err := b.Write(hdr); err != nil {
			b.Close()
			d.met.conn(listener, rc.Name, "error")
			return nil, false
		}
		b.SetWriteDeadline(time.Time{})
	}
	return b, true
}

// proxy copies between the client and the route's backend.
func (d *daemon) proxy(c *mux.Conn, listener string, rc *RouteConfig, dialer *net.Dialer, r *relay.Relay) {
	untrack := d.track(c)
	defer untrack()
	b, ok := d.dialBackend(c, listener, rc, dialer)
	if !ok {
		c.Close()
		return
	}
	untrackB := d.track(b)
	defer untrackB()
	err := r.Run(c, b, nil) // bytes counted as they move (r.Moved)
	switch {
	case err == nil:
		d.met.conn(listener, rc.Name, "ok")
	case errors.Is(err, relay.ErrIdle):
		d.met.conn(listener, rc.Name, "idle_timeout")
	default:
		d.met.conn(listener, rc.Name, "error")
		d.log.Debug("relay ended", "listener", listener, "route", rc.Name, "err", err)
	}
}

// bridge terminates the WebSocket and bridges it to the route's backend.
func (d *daemon) bridge(c *mux.Conn, listener string, rc *RouteConfig) {
	untrack := d.track(c)
	defer untrack()
	b := &wsbridge.Bridge{
		Backend:     rc.Bridge,
		DialTimeout: rc.DialTimeout.or(defaultDialTimeout),
		Text:        rc.Text,
		ProxyHeader: rc.SendProxy == "v2",
		Logger:      d.log,
	}
	// idle_timeout means no data either way, as for proxied routes; the
	// Upgrader's own keeps its default (client silence, pings answered).
	b.IdleTimeout = rc.IdleTimeout.or(defaultIdleTimeout)
	err := b.ServeConn(d.ctx, c)
	switch {
	case err == nil:
		d.met.conn(listener, rc.Name, "ok")
	case errors.Is(err, wsbridge.ErrBackendUnreachable):
		d.met.conn(listener, rc.Name, "dial_error")
	default:
		d.met.conn(listener, rc.Name, "error")
		d.log.Debug("bridge ended", "listener", listener, "route", rc.Name, "err", err)
	}
}

// reload applies a new configuration: ports that stay keep their sockets
// and get the new routes at once; a port whose own settings changed gets
// a new mux on the same socket; new ports open; dropped ports close and
// their connections finish. On an error nothing changes.
func (d *daemon) reload(cfg *Config) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	// Match each new listener to a running port: by name and address,
	// else by address alone (a listener that got or changed its name).
	claimed := map[*port]bool{}
	match := map[string]*port{}
	for _, lc := range cfg.Listeners {
		if p, ok := d.ports[lc.Name]; ok && sameAddr(p.cfg.Listen, lc.Listen) {
			match[lc.Name], claimed[p] = p, true
		}
	}
	for _, lc := range cfg.Listeners {
		if _, ok := match[lc.Name]; ok {
			continue
		}
		for _, p := range d.ports {
			if !claimed[p] && !strings.HasSuffix(p.cfg.Listen, ":0") && sameAddr(p.cfg.Listen, lc.Listen) {
				match[lc.Name], claimed[p] = p, true
				break
			}
		}
	}
	opened := map[string]*port{}
	for _, lc := range cfg.Listeners {
		if _, ok := match[lc.Name]; ok {
			continue
		}
		p, err := d.openPort(lc)
		if err != nil {
			for _, p := range opened {
				p.stop()
				p.cur.Load().q.Close()
			}
			return err
		}
		opened[lc.Name] = p
	}
	next := map[string]*port{}
	for _, lc := range cfg.Listeners {
		if p, ok := opened[lc.Name]; ok {
			next[lc.Name] = p
			d.servePort(p)
			continue
		}
		p := match[lc.Name]
		p.slots.setLimit(maxConns(lc))
		if sameListener(p.cfg, lc) {
			p.cfg = lc
			p.cur.Load().m.SetRoutes(d.routes(p, lc))
		} else {
			old := p.cur.Load()
			p.cfg = lc
			p.cur.Store(d.newGeneration(p, lc))
			old.q.Close() // retired: it finishes what it was handed
			d.retired = append(d.retired, old.m)
		}
		next[lc.Name] = p
	}
	for _, p := range d.ports {
		if !claimed[p] {
			p.stop()
			g := p.cur.Load()
			g.q.Close()
			d.retired = append(d.retired, g.m)
		}
	}
	d.ports, d.cfg = next, cfg
	d.met.reload("ok")
	return nil
}

// sameListener reports whether two listener configurations differ only in
// their routes.
func sameListener(a, b *ListenerConfig) bool {
	x, y := *a, *b
	x.Routes, y.Routes, x.line, y.line = nil, nil, 0, 0
	x.OnTimeout, y.OnTimeout = "", ""
	x.Name, y.Name = "", ""                   // a label
	x.MaxConnections, y.MaxConnections = 0, 0 // the port's limiter takes it
	return reflect.DeepEqual(x, y)
}

// shutdown stops accepting everywhere, lets connections finish for up to
// ctx, then closes those left and waits for every goroutine.
func (d *daemon) shutdown(ctx context.Context) error {
	d.met.ready.Store(false)
	d.mu.Lock()
	var muxes []*mux.Mux
	for _, p := range d.ports {
		p.stop()
		muxes = append(muxes, p.cur.Load().m)
	}
	muxes = append(muxes, d.retired...)
	d.mu.Unlock()
	d.echo.goAway()

	var drained error
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, m := range muxes {
		wg.Go(func() {
			if err := m.Shutdown(ctx); err != nil {
				mu.Lock()
				drained = err
				mu.Unlock()
			}
		})
	}
	wg.Go(func() {
		if err := d.page.Shutdown(ctx); err != nil {
			mu.Lock()
			drained = err
			mu.Unlock()
		}
	})
	wg.Wait()
	// Past the grace period: close what is left, so handlers return.
	d.cancel()
	d.mu.Lock()
	for c := range d.conns {
		c.Close()
	}
	d.mu.Unlock()
	d.page.Close()
	for _, m := range muxes {
		m.Close()
	}
	if d.metricsSrv != nil {
		d.metricsSrv.Close()
	}
	d.pageQueue.Close()
	d.wg.Wait()
	if drained != nil {
		return fmt.Errorf("connections still open after the grace period were closed: %w", drained)
	}
	return nil
}

// limiter is a counting semaphore whose limit a reload can change while
// connections hold it.
type limiter struct {
	mu     sync.Mutex
	cond   sync.Cond
	limit  int
	used   int
	closed bool
}

func newLimiter(n int) *limiter {
	l := &limiter{limit: n}
	l.cond.L = &l.mu
	return l
}

// acquire waits for room; false once the limiter is closed.
func (l *limiter) acquire() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for l.used >= l.limit && !l.closed {
		l.cond.Wait()
	}
	if l.closed {
		return false
	}
	l.used++
	return true
}

// tryAcquire takes room if there is some, without waiting.
func (l *limiter) tryAcquire() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.used >= l.limit || l.closed {
		return false
	}
	l.used++
	return true
}

func (l *limiter) release() {
	l.mu.Lock()
	l.used--
	l.mu.Unlock()
	l.cond.Signal()
}

func (l *limiter) setLimit(n int) {
	l.mu.Lock()
	l.limit = n
	l.mu.Unlock()
	l.cond.Broadcast()
}

func (l *limiter) close() {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	l.cond.Broadcast()
}

// queue is a net.Listener fed by push: the hand-off from page routes to
// the page server. A generation's mux has one as its listener in name
// only (for its address); nothing is pushed to that one.
type queue struct {
	addr net.Addr
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newQueue(addr net.Addr) *queue {
	if addr == nil {
		addr = &net.TCPAddr{}
	}
	return &queue{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

// push hands c over; false if the queue is closed (c is not closed).
func (q *queue) push(c net.Conn) bool {
	select {
	case <-q.done:
		return false
	default:
	}
	select {
	case q.ch <- c:
		return true
	case <-q.done:
		return false
	}
}

func (q *queue) Accept() (net.Conn, error) {
	select {
	case c := <-q.ch:
		return c, nil
	case <-q.done:
		return nil, net.ErrClosed
	}
}

func (q *queue) Close() error {
	q.once.Do(func() { close(q.done) })
	return nil
}

func (q *queue) Addr() net.Addr { return q.addr }

// takeInherited returns the inherited socket bound to addr, if any.
func (d *daemon) takeInherited(addr string) net.Listener {
	for a, ln := range d.inherited {
		if sameAddr(a, addr) {
			delete(d.inherited, a)
			return ln
		}
	}
	return nil
}

func sameAddr(bound, configured string) bool {
	b, err1 := net.ResolveTCPAddr("tcp", bound)
	c, err2 := net.ResolveTCPAddr("tcp", configured)
	if err1 != nil || err2 != nil || b.Port != c.Port {
		return false
	}
	// systemd's ListenStream=8443 binds [::]:8443, which takes IPv4 too.
	unspecified := func(ip net.IP) bool { return ip == nil || ip.IsUnspecified() }
	return b.IP.Equal(c.IP) || unspecified(b.IP) && unspecified(c.IP)
}
