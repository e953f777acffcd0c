package relay

import (
	"io"
	"net"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// pipeSize is the capacity asked for the pipes that spliced directions
// move their bytes through. The kernel's default (64 KiB) makes a bulk
// transfer take two splice calls, and often a wake-up, per 64 KiB; a
// larger pipe takes whatever the socket has queued in one call. The kernel
// may refuse it (fs.pipe-max-size), and then the default stands.
const pipeSize = 1 << 20

// bigPipeBudget bounds the bytes of enlarged pipes that exist at once.
// Pipes count against their user's fs.pipe-user-pages-soft (64 MiB by
// default; root is exempt), past which the kernel makes every new pipe of
// that user tiny, Go's own splice pipes too. Past the budget a pipe keeps
// the default size.
var bigPipeBudget int64 = 16 << 20

var bigPipes atomic.Int64 // bytes of enlarged pipes open now

// pipePair is a pipe's two ends.
type pipePair struct {
	r, w int
	big  bool // enlarged to pipeSize, counted in bigPipes
}

// idlePipes holds empty pipes for the next step of any direction. A
// direction holds a pipe only while a step moves bytes, never while it
// waits for its source, so quiet connections hold none; the pool bounds
// how many idle ones stay open.
var idlePipes = make(chan *pipePair, 32)

func getPipe() (*pipePair, error) {
	select {
	case p := <-idlePipes:
		return p, nil
	default:
	}
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		return nil, err
	}
	p := &pipePair{r: fds[0], w: fds[1]}
	if bigPipes.Add(pipeSize) <= bigPipeBudget {
		_, err := unix.FcntlInt(uintptr(p.w), unix.F_SETPIPE_SZ, pipeSize)
		p.big = err == nil
	}
	if !p.big {
		bigPipes.Add(-pipeSize)
	}
	return p, nil
}

// putPipe pools p, which must be empty, or closes it if the pool is full.
func putPipe(p *pipePair) {
	select {
	case idlePipes <- p:
	default:
		p.close()
	}
}

func (p *pipePair) close() {
	unix.Close(p.r)
	unix.Close(p.w)
	if p.big {
		bigPipes.Add(-pipeSize)
	}
}

// splicer moves one direction's bytes socket to pipe to socket.
type splicer struct {
	src, dst syscall.RawConn
	p        *pipePair // while a step holds one
	inPipe   int       // bytes in p, not yet written to dst
}

// newSplicer returns a splicer for src and dst if both are TCP
// connections, else nil.
func newSplicer(dst, src net.Conn) *splicer {
	d, ok1 := dst.(*net.TCPConn)
	s, ok2 := src.(*net.TCPConn)
	if !ok1 || !ok2 {
		return nil
	}
	drc, err1 := d.SyscallConn()
	src2, err2 := s.SyscallConn()
	if err1 != nil || err2 != nil {
		return nil
	}
	return &splicer{src: src2, dst: drc}
}

// release gives back the step's pipe if it is empty; one that still
// holds bytes (its write failed) is closed.
func (s *splicer) release() {
	if s.p == nil {
		return
	}
	if s.inPipe == 0 {
		putPipe(s.p)
	} else {
		s.p.close()
		s.inPipe = 0
	}
	s.p = nil
}

func (s *splicer) close() { s.release() }

// step moves at most limit bytes, and at least one unless src ended
// (io.EOF) or failed; it waits for src only while nothing moved. It
// returns the bytes written to dst. A failed write to dst is a *dstError;
// errNoPipe means no pipe could be made, before anything moved. The read
// and write deadlines of the connections apply to the waits.
func (s *splicer) step(limit int64) (int64, error) {
	defer s.release()
	var moved int64
	for moved < limit {
		var n int64
		var serr, perr error
		err := s.src.Read(func(fd uintptr) bool {
			if s.p == nil {
				if s.p, perr = getPipe(); perr != nil {
					return true
				}
			}
			n, serr = unix.Splice(int(fd), nil, s.p.w, nil, int(limit-moved), unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
			if serr == unix.EAGAIN && moved == 0 {
				// Wait for the source holding no pipe.
				putPipe(s.p)
				s.p = nil
				return false
			}
			return true
		})
		switch {
		case perr != nil:
			return moved, errNoPipe
		case err != nil:
			return moved, err
		case serr == unix.EAGAIN: // src drained for now
			return moved, nil
		case serr != nil:
			return moved, serr
		case n == 0:
			return moved, io.EOF
		}
		s.inPipe = int(n)
		// Drain the pipe into dst, waiting for room as needed.
		for s.inPipe > 0 {
			var w int64
			var werr error
			err := s.dst.Write(func(fd uintptr) bool {
				w, werr = unix.Splice(s.p.r, nil, int(fd), nil, s.inPipe, unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
				return werr != unix.EAGAIN
			})
			if err == nil {
				err = werr
			}
			if err != nil {
				return moved, &dstError{err}
			}
			s.inPipe -= int(w)
			moved += w
		}
	}
	return moved, nil
}
