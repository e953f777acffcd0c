package testtool

import (
	"net"
	"sync"
)

// PipeListener is an in-memory net.Listener for tests and benchmarks: each
// Dial makes a net.Pipe and queues its server side for Accept. Up to 16
// dialled pipes wait unaccepted before Dial blocks.
type PipeListener struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

var _ net.Listener = (*PipeListener)(nil)

// NewPipeListener returns an open PipeListener.
func NewPipeListener() *PipeListener {
	return &PipeListener{ch: make(chan net.Conn, 16), done: make(chan struct{})}
}

// Accept returns the next queued server side; after Close, net.ErrClosed.
func (l *PipeListener) Accept() (net.Conn, error) {
	select {
	case <-l.done:
		return nil, net.ErrClosed
	default:
	}
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close makes Accept fail and closes the server sides not yet accepted.
func (l *PipeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	for {
		select {
		case c := <-l.ch:
			c.Close()
		default:
			return nil
		}
	}
}

// Addr returns PipeAddr.
func (l *PipeListener) Addr() net.Addr { return PipeAddr{} }

// Dial queues a new pipe's server side and returns its client side.
func (l *PipeListener) Dial() (net.Conn, error) {
	s, c := net.Pipe()
	select {
	case l.ch <- s:
		return c, nil
	case <-l.done:
		s.Close()
		c.Close()
		return nil, net.ErrClosed
	}
}

// PipeAddr is the address of every PipeListener.
type PipeAddr struct{}

func (PipeAddr) Network() string { return "pipe" }
func (PipeAddr) String() string  { return "pipe" }
