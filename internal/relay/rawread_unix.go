//go:build unix

package relay

import (
	"io"
	"net"
	"os"
	"syscall"
)

// rawConnOf returns c's syscall.RawConn if it has one.
func rawConnOf(c net.Conn) syscall.RawConn {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

// readPooled reads from rc into a pooled buffer that it takes only once
// bytes are there: while the read waits for the socket, *bufp is nil, so
// a quiet connection holds no buffer. The system calls are those of a
// plain Read. On return with n > 0, *bufp holds the bytes.
func readPooled(rc syscall.RawConn, bufp **[]byte) (int, error) {
	var n int
	var serr error
	err := rc.Read(func(fd uintptr) bool {
		if *bufp == nil {
			*bufp = getBuf()
		}
		for {
			n, serr = syscall.Read(int(fd), **bufp)
			if serr != syscall.EINTR {
				break
			}
		}
		if serr == syscall.EAGAIN {
			putBuf(*bufp)
			*bufp = nil
			return false
		}
		return true
	})
	switch {
	case err != nil:
		return 0, err
	case serr != nil:
		return 0, os.NewSyscallError("read", serr)
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}
