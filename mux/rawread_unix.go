//go:build unix

package mux

import (
	"io"
	"net"
	"sync"
	"syscall"
)

// rawReader carries one first read through syscall.RawConn.Read. Its func
// value is made once per pooled reader, so a read allocates nothing.
type rawReader struct {
	limit int
	buf   *[]byte
	err   error
	fn    func(fd uintptr) bool
}

var rawReaderPool = sync.Pool{New: func() any {
	r := new(rawReader)
	r.fn = r.read
	return r
}}

// read tries read(2) on the non-blocking socket: on EAGAIN it gives the
// buffer back and asks the runtime to wait for readability.
func (r *rawReader) read(fd uintptr) bool {
	buf := getBuf()
	for {
		n, err := syscall.Read(int(fd), (*buf)[:min(cap(*buf), r.limit)])
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			putBuf(buf)
			return false
		case err != nil:
			putBuf(buf)
			r.err = err
		case n == 0:
			putBuf(buf)
			r.err = io.EOF
		default:
			*buf = (*buf)[:n]
			r.buf = buf
		}
		return true
	}
}

// rawFirstRead reads through the socket's RawConn; ok is false for conns
// that are no sockets.
func rawFirstRead(c net.Conn, limit int) (buf *[]byte, ok bool, err error) {
	// Only the net package's own sockets: a wrapper that embeds one also
	// has SyscallConn, but reading the fd would go around its Read.
	var sc syscall.Conn
	switch c := c.(type) {
	case *net.TCPConn:
		sc = c
	case *net.UnixConn:
		sc = c
	default:
		return nil, false, nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, false, nil
	}
	r := rawReaderPool.Get().(*rawReader)
	r.limit, r.buf, r.err = limit, nil, nil
	err = rc.Read(r.fn)
	buf = r.buf
	if err == nil {
		err = r.err
	}
	r.buf, r.err = nil, nil
	rawReaderPool.Put(r)
	return buf, true, err
}
