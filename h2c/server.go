package h2c

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"
)

// Defaults of the Server's knobs.
const (
	DefaultMaxUpgradeBodyBytes = 64 << 10
	DefaultUpgradeTimeout      = 10 * time.Second
)

// ErrNoServer is returned by Serve when Server.HTTP is nil.
var ErrNoServer = errors.New("h2c: Server.HTTP is nil")

// Server serves one http.Server over HTTP/1.1 and cleartext HTTP/2 on any
// number of listeners. Set its fields before the first Serve and do not
// change them, or those of its HTTP server, after. Its methods are safe for
// concurrent use.
type Server struct {
	// HTTP is the HTTP server shared by every listener: its Handler,
	// timeouts, MaxHeaderBytes, HTTP2 config, ConnState, ErrorLog and
	// contexts apply to both protocols. Required.
	//
	// The first Serve turns on unencrypted HTTP/2 in its Protocols (and
	// HTTP/1 when Protocols is nil), and, with AllowUpgrade, wraps its
	// Handler to take the upgrade. Upgraded connections are served by this
	// same http.Server, so its Shutdown and Close cover them.
	HTTP *http.Server

	// AllowUpgrade turns on "Upgrade: h2c" (RFC 7540 §3.2). Off by default:
	// RFC 9113 deprecates it and it is the vector of h2c smuggling through
	// front proxies that forward upgrades.
	AllowUpgrade bool

	// MaxUpgradeBodyBytes bounds the body of a request that is upgraded:
	// the body is read into memory before the 101, to be sent on stream 1.
	// A request with a larger body is served over HTTP/1.1 instead. If
	// zero, DefaultMaxUpgradeBodyBytes (64 KiB) is used; negative means
	// only requests without a body are upgraded.
	MaxUpgradeBodyBytes int64

	// UpgradeTimeout bounds reading an upgrade request's body and writing
	// the 101. If zero, DefaultUpgradeTimeout (10 s) is used.
	UpgradeTimeout time.Duration

	once     sync.Once
	initErr  error
	upgrades *connQueue // upgraded connections, served by Server
	bodies   sync.Map   // token -> *heldRequest, until stream 1 is served
}

func (s *Server) maxUpgradeBody() int64 {
	switch {
	case s.MaxUpgradeBodyBytes == 0:
		return DefaultMaxUpgradeBodyBytes
	case s.MaxUpgradeBodyBytes < 0:
		return 0
	}
	return s.MaxUpgradeBodyBytes
}

func (s *Server) upgradeTimeout() time.Duration {
	if s.UpgradeTimeout > 0 {
		return s.UpgradeTimeout
	}
	return DefaultUpgradeTimeout
}

// init configures s.HTTP once and, with AllowUpgrade, starts
// serving the queue of upgraded connections.
func (s *Server) init() error {
	s.once.Do(func() {
		hs := s.HTTP
		if hs == nil {
			s.initErr = ErrNoServer
			return
		}
		// A copy: the caller's Protocols may be shared with other servers.
		var p http.Protocols
		if hs.Protocols != nil {
			p = *hs.Protocols
		} else {
			p.SetHTTP1(true)
		}
		p.SetUnencryptedHTTP2(true)
		hs.Protocols = &p
		if !s.AllowUpgrade {
			return
		}
		next := hs.Handler
		if next == nil {
			next = http.DefaultServeMux
		}
		// net/http answers "OPTIONS *" before any Handler sees it, and
		// nghttp2's clients upgrade with just that request; the upgrader
		// takes it and, when it is no upgrade, answers as net/http would.
		u := &upgrader{s: s, next: next, options: !hs.DisableGeneralOptionsHandler}
		hs.DisableGeneralOptionsHandler = true
		hs.Handler = u
		s.upgrades = newConnQueue()
		// It ends when Shutdown or Close closes the queue.
		go hs.Serve(s.upgrades)
	})
	return s.initErr
}

// Serve accepts connections on ln and serves each over HTTP/1.1 or, when
// it starts with the HTTP/2 connection preface, over HTTP/2. It returns
// http.ErrServerClosed after Shutdown or Close, or the error that ended
// ln's Accept; ln is closed either way, as http.Server.Serve does.
func (s *Server) Serve(ln net.Listener) error {
	if err := s.init(); err != nil {
		ln.Close()
		return err
	}
	return s.HTTP.Serve(ln)
}

// Shutdown stops every listener, then waits for connections of both
// protocols to finish, bounded by ctx: HTTP/2 connections get a GOAWAY and
// their streams in flight complete. It is http.Server.Shutdown.
func (s *Server) Shutdown(ctx context.Context) error {
	if err := s.init(); err != nil {
		return err
	}
	return s.HTTP.Shutdown(ctx)
}

// Close closes every listener and connection at once.
func (s *Server) Close() error {
	if err := s.init(); err != nil {
		return err
	}
	return s.HTTP.Close()
}

// connQueue is the net.Listener through which upgraded connections reach
// the http.Server, so that it tracks and drains them like any other.
type connQueue struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newConnQueue() *connQueue {
	return &connQueue{ch: make(chan net.Conn), done: make(chan struct{})}
}

// push hands c to the server; false if the queue is closed.
func (q *connQueue) push(c net.Conn) bool {
	select {
	case q.ch <- c:
		return true
	case <-q.done:
		return false
	}
}

func (q *connQueue) closed() bool {
	select {
	case <-q.done:
		return true
	default:
		return false
	}
}

func (q *connQueue) Accept() (net.Conn, error) {
	select {
	case c := <-q.ch:
		return c, nil
	case <-q.done:
		return nil, net.ErrClosed
	}
}

func (q *connQueue) Close() error {
	q.once.Do(func() { close(q.done) })
	return nil
}

func (q *connQueue) Addr() net.Addr { return queueAddr{} }

type queueAddr struct{}

func (queueAddr) Network() string { return "h2c-upgrade" }
func (queueAddr) String() string  { return "h2c-upgrade" }
