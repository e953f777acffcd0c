// Package relay copies bytes both ways between two connections, as a TCP
// proxy does: with half-close, an idle timeout, live byte counts, and, when
// both ends are TCP sockets, through the kernel (splice on Linux).
//
// It imports nothing of ours: a connection that replays bytes it read
// ahead (a *mux.Conn) is recognised by its Buffered and NetConn methods.
package relay

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultChunk is how many bytes one copy step moves at most; between
// steps the counters are updated and the deadlines extended.
const DefaultChunk = 1 << 20

// ErrIdle is returned when neither direction moved a byte for IdleTimeout.
var ErrIdle = errors.New("relay: idle timeout")

// Relay copies between two connections. The zero value copies with no
// idle timeout. A Relay is configuration only; one may serve many Runs at
// once.
type Relay struct {
	// IdleTimeout ends the relay when no byte moved either way for this
	// long; a direction that is quiet while the other flows does not end
	// it. Zero means no idle timeout.
	IdleTimeout time.Duration

	// Chunk bounds one copy step; if zero, DefaultChunk (1 MiB).
	Chunk int64
}

// Counts holds the bytes moved so far, updated after every copy step, so
// that another goroutine can read them while the relay runs.
type Counts struct {
	Up   atomic.Int64 // client to backend
	Down atomic.Int64 // backend to client
}

// replayer is a connection holding bytes it read ahead (a *mux.Conn).
type replayer interface {
	Buffered() int
	NetConn() net.Conn
}

// Run copies client to backend and backend to client until both
// directions end, then closes both connections; it owns them. When one
// side ends its stream (EOF), the other's write side is closed
// (CloseWrite), and the other direction goes on: half-close. An error
// either way, or the idle timeout, closes both at once. The returned
// error is the first that was not an orderly end, or nil. counts may be
// nil.
func (r *Relay) Run(client, backend net.Conn, counts *Counts) error {
	if counts == nil {
		counts = new(Counts)
	}
	defer client.Close()
	defer backend.Close()
	// Replay what the mux read ahead, then copy socket to socket.
	if rc, ok := client.(replayer); ok {
		if n := rc.Buffered(); n > 0 {
			if r.IdleTimeout > 0 {
				backend.SetWriteDeadline(time.Now().Add(r.IdleTimeout))
			}
			m, err := io.CopyN(backend, client, int64(n))
			counts.Up.Add(m)
			if err != nil {
				return err
			}
		}
		client = rc.NetConn()
	}
	s := &session{r: r}
	s.touch()
	// The first error either way closes both, which ends the other
	// direction (with an error of its own, not reported).
	var once sync.Once
	var first error
	fail := func(err error) {
		if err != nil {
			once.Do(func() { first = err; client.Close(); backend.Close() })
		}
	}
	var wg sync.WaitGroup
	wg.Go(func() { fail(s.pipe(backend, client, &counts.Up)) })
	fail(s.pipe(client, backend, &counts.Down))
	wg.Wait()
	return first
}

type session struct {
	r    *Relay
	last atomic.Int64 // unix nanos of the last byte moved either way
}

func (s *session) touch() { s.last.Store(time.Now().UnixNano()) }

// idle reports whether nothing moved either way for IdleTimeout.
func (s *session) idle() bool {
	return time.Since(time.Unix(0, s.last.Load())) >= s.r.IdleTimeout
}

// pipe copies src to dst in steps until src ends, then closes dst's write
// side. A step that hits the deadline with nothing moved ends the pipe
// only if the whole session has been idle.
func (s *session) pipe(dst, src net.Conn, n *atomic.Int64) error {
	chunk := s.r.Chunk
	if chunk <= 0 {
		chunk = DefaultChunk
	}
	idle := s.r.IdleTimeout
	for {
		if idle > 0 {
			d := time.Now().Add(idle)
			src.SetReadDeadline(d)
			dst.SetWriteDeadline(d)
		}
		m, err := io.Copy(dst, io.LimitReader(src, chunk))
		if m > 0 {
			n.Add(m)
			s.touch()
		}
		switch {
		case err == nil && m == chunk:
			continue
		case err == nil:
			// src ended its stream: pass the end on, keep the other way.
			closeWrite(dst)
			return nil
		case errors.Is(err, os.ErrDeadlineExceeded) && idle > 0:
			if m > 0 || !s.idle() {
				continue
			}
			return ErrIdle
		}
		return err
	}
}

// closeWrite half-closes c if it can, else closes it.
func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
		return
	}
	c.Close()
}
