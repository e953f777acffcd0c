// Package relay copies bytes both ways between two connections, as a TCP
// proxy does: with half-close, an idle timeout, live byte counts, and, for
// bulk transfers between TCP sockets, through the kernel (splice on Linux).
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
	// long (detected within about twice this); a direction that is quiet
	// while the other flows does not end it. A destination that takes
	// less than one copy step (16 KiB, or Chunk once spliced) in this
	// long counts as idle too. Zero means no idle timeout.
	IdleTimeout time.Duration

	// Chunk bounds one copy step; if zero, DefaultChunk (1 MiB).
	Chunk int64

	// Moved, if set, is told the bytes of every copy step as it ends
	// (up: client to backend), from either direction's goroutine: for
	// totals kept across relays, such as a metric, that grow while a
	// long connection lasts rather than when it ends.
	Moved func(up bool, n int64)
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
			backend.SetWriteDeadline(time.Time{}) // writes have none (see pipe)
			counts.Up.Add(m)
			if r.Moved != nil && m > 0 {
				r.Moved(true, m)
			}
			if err != nil {
				return err
			}
		}
		client = rc.NetConn()
	}
	s := &session{r: r, conns: [2][2]net.Conn{{backend, client}, {client, backend}}}
	start := time.Now().UnixNano()
	s.last[0].Store(start)
	s.last[1].Store(start)
	// The first error either way closes both, which ends the other
	// direction (with an error of its own, not reported).
	var once sync.Once
	var first error
	fail := func(err error) {
		if err != nil {
			once.Do(func() { first = err; client.Close(); backend.Close() })
		}
	}
	// The calling goroutine copies client to backend: in a
	// request-response exchange that direction ends last (the client
	// closes after the answer), so the Wait below seldom has to park.
	var wg sync.WaitGroup
	wg.Go(func() { fail(s.pipe(&counts.Down, 1)) })
	fail(s.pipe(&counts.Up, 0))
	wg.Wait()
	return first
}

// session is what the two directions share. A direction sees its own
// bytes only when a copy step ends (a spliced step reports nothing while
// it runs), so when one direction finds both quiet for IdleTimeout by what
// it knows, it interrupts the other's step, and the other, which then
// knows its own latest bytes, makes the call.
type session struct {
	r     *Relay
	conns [2][2]net.Conn  // per direction: dst, src
	last  [2]atomic.Int64 // unix nanos of the last step that moved bytes
	done  [2]atomic.Bool  // the direction's source ended
	ended atomic.Int32    // how many directions ended their stream
	asked [2]atomic.Bool  // the other direction asks this one to judge
}

// bufSize is the buffer of a direction's copy while its messages are
// small; a read that fills it switches the direction to splice.
const bufSize = 16 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, bufSize); return &b }}

// heldBufs counts the pooled buffers taken and not given back, when a
// test sets countBufs: a shared counter written per message has no place
// on the copy path otherwise.
var (
	countBufs bool
	heldBufs  atomic.Int64
)

func getBuf() *[]byte {
	if countBufs {
		heldBufs.Add(1)
	}
	return bufPool.Get().(*[]byte)
}

func putBuf(b *[]byte) {
	if countBufs {
		heldBufs.Add(-1)
	}
	bufPool.Put(b)
}

// pipe copies one direction (0: client to backend, 1: back) until its
// source ends, then closes its destination's write side. Like HAProxy's
// splice-auto, it starts with read and write through a pooled buffer,
// which costs no more system calls than splice for small messages and
// needs no pipe; once a read fills the buffer (bulk), it copies in spliced
// steps of Chunk bytes. Only reads have deadlines, re-armed at most every
// quarter of IdleTimeout: a write that timed out would lose the bytes
// already taken from the source, so writes block (backpressure) until the
// idle logic gives up on the relay as a whole.
func (s *session) pipe(n *atomic.Int64, dir int) error {
	dst, src := s.conns[dir][0], s.conns[dir][1]
	other := 1 - dir
	chunk := s.r.Chunk
	if chunk <= 0 {
		chunk = DefaultChunk
	}
	idle := s.r.IdleTimeout
	// Small messages go through a pooled buffer. On a socket it is taken
	// only once bytes are there and given back after each write, so a
	// quiet connection holds none; other conns hold one throughout.
	raw := rawConnOf(src)
	small := true
	var bufp *[]byte
	if raw == nil {
		bufp = getBuf()
	}
	defer func() {
		if bufp != nil {
			putBuf(bufp)
		}
	}()
	var sp *splicer
	defer func() {
		if sp != nil {
			sp.close()
		}
	}()
	var armed time.Time
	for {
		if idle > 0 {
			if now := time.Now(); now.Sub(armed) > idle/4 {
				armed = now
				src.SetReadDeadline(now.Add(idle))
			}
		}
		var m int64
		var err, werr error // werr: writing to dst failed
		ended := false
		if small {
			var r int
			var rerr error
			if raw != nil {
				r, rerr = readPooled(raw, &bufp)
			} else {
				r, rerr = src.Read(*bufp)
			}
			if r > 0 {
				var w int
				w, werr = dst.Write((*bufp)[:r])
				m = int64(w)
				if r == bufSize && werr == nil {
					small = false // bulk: splice from here on
					sp = newSplicer(dst, src)
				}
				if raw != nil || !small {
					putBuf(bufp)
					bufp = nil
				}
			}
			err = rerr
			if errors.Is(err, io.EOF) {
				err, ended = nil, true
			}
		} else if sp != nil {
			m, err = sp.step(chunk)
			var de *dstError
			switch {
			case errors.As(err, &de):
				err, werr = nil, de.err
			case errors.Is(err, errNoPipe):
				// Out of file descriptors for a pipe: copy through
				// user space instead.
				sp.close()
				sp, err = nil, nil
			case errors.Is(err, io.EOF):
				err, ended = nil, true
			}
		} else {
			m, err = io.Copy(dst, io.LimitReader(src, chunk))
			ended = err == nil && m < chunk
		}
		now := time.Now()
		if m > 0 {
			n.Add(m)
			if s.r.Moved != nil {
				s.r.Moved(dir == 0, m)
			}
			s.last[dir].Store(now.UnixNano())
			s.asked[dir].Store(false)
		}
		if werr != nil {
			// Never the idle timeout: writes have no deadline.
			return werr
		}
		switch {
		case err == nil && !ended:
			continue
		case err == nil:
			// src ended its stream: pass the end on, keep the other way.
			// The second end needs no shutdown(2): both sockets are read
			// to EOF, so the close that follows sends the FIN.
			s.done[dir].Store(true)
			if s.ended.Add(1) == 1 {
				closeWrite(dst)
			}
			return nil
		case errors.Is(err, os.ErrDeadlineExceeded) && idle > 0:
			began := armed
			armed = time.Time{} // re-arm: the deadline passed, or was set to now
			quietFor := func(d int) time.Duration { return now.Sub(time.Unix(0, s.last[d].Load())) }
			asked := s.asked[dir].Swap(false)
			if m > 0 || quietFor(dir) < idle || quietFor(other) < idle {
				continue
			}
			// Both quiet as far as this direction knows.
			interrupted := now.Sub(began) < idle
			if s.done[other].Load() || asked && interrupted {
				return ErrIdle
			}
			if s.asked[other].Load() {
				// Asked a whole IdleTimeout ago and never back: it is
				// blocked writing to a peer that takes nothing.
				return ErrIdle
			}
			// The other's running step may have moved bytes: stop its
			// read so that it judges with its own count.
			s.asked[other].Store(true)
			s.conns[other][1].SetReadDeadline(now)
			continue
		}
		return err
	}
}

// dstError is a failed write to a direction's destination, as a splice
// step reports it: not to be taken for the source's read deadline.
type dstError struct{ err error }

func (e *dstError) Error() string { return e.err.Error() }

// errNoPipe: a splice step could make no pipe (out of file descriptors).
var errNoPipe = errors.New("relay: no pipe for splice")

// closeWrite half-closes c if it can, else closes it.
func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
		return
	}
	c.Close()
}
