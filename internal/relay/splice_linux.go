package relay

import (
	"io"
	"net"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// pipeSize is the capacity asked for the pipe a spliced direction moves
// its bytes through. The kernel's default (64 KiB) makes a bulk transfer
// take two splice calls, and often a wake-up, per 64 KiB; a larger pipe
// takes whatever the socket has queued in one call. The kernel may refuse
// it (fs.pipe-max-size, or the user's fs.pipe-user-pages-soft spent), and
// then the default stands.
const pipeSize = 1 << 20

// bigPipeBudget bounds the bytes of enlarged pipes held at once by the
// process. Pipes count against their user's fs.pipe-user-pages-soft (64
// MiB by default), past which the kernel makes every new pipe of that
// user tiny, splice's too; within the budget that cannot be our doing.
// Past it a direction splices through a pipe of the default size.
var bigPipeBudget int64 = 16 << 20

var bigPipes atomic.Int64 // bytes of enlarged pipes open now

// splicer moves one direction's bytes socket to pipe to socket. It owns
// its pipe, made at the first step and closed by close.
type splicer struct {
	src, dst syscall.RawConn
	r, w     int // the pipe's ends; r < 0 before the first step
	inPipe   int // bytes in the pipe, not yet written to dst
	big      bool
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
	return &splicer{src: src2, dst: drc, r: -1, w: -1}
}

func (s *splicer) close() {
	if s.r >= 0 {
		unix.Close(s.r)
		unix.Close(s.w)
		s.r, s.w = -1, -1
	}
	if s.big {
		bigPipes.Add(-pipeSize)
		s.big = false
	}
}

// step moves at most limit bytes, and at least one unless src ended
// (io.EOF) or failed. It returns the bytes written to dst; the read and
// write deadlines of the connections apply to the waits.
func (s *splicer) step(limit int64) (int64, error) {
	if s.r < 0 {
		var p [2]int
		if err := unix.Pipe2(p[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
			return 0, err
		}
		s.r, s.w = p[0], p[1]
		if bigPipes.Add(pipeSize) <= bigPipeBudget {
			_, err := unix.FcntlInt(uintptr(s.w), unix.F_SETPIPE_SZ, pipeSize)
			s.big = err == nil
		}
		if !s.big {
			bigPipes.Add(-pipeSize)
		}
	}
	var moved int64
	for moved < limit {
		// Fill the pipe from src: wait for data only if nothing moved
		// yet in this step, so that a step ends when src is drained.
		var n int64
		var serr error
		err := s.src.Read(func(fd uintptr) bool {
			n, serr = unix.Splice(int(fd), nil, s.w, nil, int(limit-moved), unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
			return serr != unix.EAGAIN || moved > 0
		})
		if err != nil {
			return moved, err
		}
		if serr == unix.EAGAIN { // src drained for now
			return moved, nil
		}
		if serr != nil {
			return moved, serr
		}
		if n == 0 {
			return moved, io.EOF
		}
		s.inPipe += int(n)
		// Drain the pipe into dst, waiting for room as needed.
		for s.inPipe > 0 {
			var w int64
			var werr error
			err := s.dst.Write(func(fd uintptr) bool {
				w, werr = unix.Splice(s.r, nil, int(fd), nil, s.inPipe, unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
				return werr != unix.EAGAIN
			})
			if err != nil {
				return moved, err
			}
			if werr != nil {
				return moved, werr
			}
			s.inPipe -= int(w)
			moved += w
		}
	}
	return moved, nil
}
