package bench

import (
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// capture is one real client's first bytes, from sniff/testdata/captures.
type capture struct {
	name string // the in=... key of the sub-benchmark
	file string
}

var (
	inCurlGet   = capture{"curl_get", "curl_get.bin"}
	inWebSocket = capture{"websocket", "chromium_websocket.bin"}
	inH2        = capture{"h2_preface", "curl_h2_prior_knowledge.bin"}
	inTLS       = capture{"tls", "go_tls_clienthello.bin"}
)

func readCapture(tb testing.TB, in capture) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("..", "sniff", "testdata", "captures", in.file))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// pipeListener is an in-memory net.Listener: each dial makes a net.Pipe
// and queues its server side for Accept, as a kernel backlog would.
type pipeListener struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

var _ net.Listener = (*pipeListener)(nil)

func newPipeListener() *pipeListener {
	return &pipeListener{ch: make(chan net.Conn, 16), done: make(chan struct{})}
}

// Accept returns the next queued server side; after Close, net.ErrClosed.
func (l *pipeListener) Accept() (net.Conn, error) {
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
func (l *pipeListener) Close() error {
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

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

// dial queues a new pipe's server side and returns its client side.
func (l *pipeListener) dial() (net.Conn, error) {
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

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }
