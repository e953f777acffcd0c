package loadgen

import (
	"bytes"
	"io"
	"net"
	"time"
)

// A TCP request streams: Size bytes go out in pieces from a repeating
// pattern and come back checked piece by piece, so that memory stays
// constant whatever the size (one 2 GiB request is one 2 GiB stream each
// way, not 2048 stop-and-wait round trips).
const (
	// tcpPiece is the most written or checked at a time.
	tcpPiece = 1 << 20
	// tcpPeriod is the pattern's period: not a power of two, so that an
	// echo that repeats or skips a piece or a buffer's worth does not
	// match by chance.
	tcpPeriod = 1<<20 + 7
)

// tcpClient is a worker's TCP side: one connection, on which each request
// writes Size bytes of the worker's pattern and reads them back from an
// echo server. The write runs in a goroutine of the connection's own
// while the worker reads, so that requests larger than the socket
// buffers cannot deadlock the two ends.
type tcpClient struct {
	w     *worker
	conn  net.Conn // counting
	raw   net.Conn
	pat   []byte // the pattern's period: min(Size, tcpPeriod) bytes, seeded per worker
	in    []byte // min(Size, tcpPiece) bytes
	wreq  chan struct{}
	wres  chan error
	wdone chan struct{}
}

func newTCPClient(w *worker, seed uint64) *tcpClient {
	s := w.r.s
	return &tcpClient{w: w, pat: pattern(min(s.Size, tcpPeriod), seed), in: make([]byte, min(s.Size, tcpPiece))}
}

func (c *tcpClient) connect() error {
	t0 := time.Now()
	raw, err := c.w.dial()
	if err != nil {
		return err
	}
	c.w.connected(time.Since(t0))
	c.raw, c.conn = raw, &countConn{raw, c.w}
	c.wreq, c.wres, c.wdone = make(chan struct{}), make(chan error, 1), make(chan struct{})
	go func(conn net.Conn, pat []byte, size int64, wreq <-chan struct{}, wres chan<- error, done chan<- struct{}) {
		defer close(done)
		for range wreq {
			wres <- writeStream(conn, pat, size)
		}
	}(c.conn, c.pat, int64(c.w.r.s.Size), c.wreq, c.wres, c.wdone)
	if !c.w.track(raw) {
		c.close()
		return net.ErrClosed
	}
	return nil
}

// writeStream writes size bytes of the pattern whose period is pat, from
// its start, at most tcpPiece at a time.
func writeStream(w io.Writer, pat []byte, size int64) error {
	period := int64(len(pat))
	for off := int64(0); off < size; {
		i := off % period
		n := min(period-i, size-off, tcpPiece)
		if _, err := w.Write(pat[i : i+n]); err != nil {
			return err
		}
		off += n
	}
	return nil
}

func (c *tcpClient) do() error {
	if c.conn == nil {
		if err := c.connect(); err != nil {
			return err
		}
	}
	if err := c.w.setDeadline(c.raw, c.w.r.s.Timeout); err != nil {
		c.close()
		return err
	}
	c.wreq <- struct{}{}
	rerr := c.readStream(int64(c.w.r.s.Size))
	if rerr != nil {
		c.raw.Close() // unblocks the writer
	}
	werr := <-c.wres
	switch {
	case rerr != nil && werr != nil && kindOf(rerr) == KindClosed:
		rerr = werr // the write failed first (a reset, say) and the read saw the close
	case rerr == nil && werr != nil:
		rerr = werr
	}
	if rerr != nil {
		c.close()
	}
	return rerr
}

// readStream reads size bytes and checks each piece against the pattern
// at its offset.
func (c *tcpClient) readStream(size int64) error {
	for off := int64(0); off < size; {
		b := c.in[:min(int64(len(c.in)), size-off)]
		if _, err := io.ReadFull(c.conn, b); err != nil {
			return err
		}
		if i := mismatch(c.pat, b, off); i >= 0 {
			return protoErr("the echo differs from what was sent at byte %d", off+int64(i))
		}
		off += int64(len(b))
	}
	return nil
}

// mismatch returns the index in b of the first byte that differs from
// the pattern whose period is pat, b starting at offset off; -1 if none.
func mismatch(pat, b []byte, off int64) int {
	i := int(off % int64(len(pat)))
	for done := 0; done < len(b); {
		k := min(len(b)-done, len(pat)-i)
		if got, want := b[done:done+k], pat[i:i+k]; !bytes.Equal(got, want) {
			for j := range got {
				if got[j] != want[j] {
					return done + j
				}
			}
		}
		done += k
		i = 0
	}
	return -1
}

func (c *tcpClient) close() {
	if c.conn == nil {
		return
	}
	close(c.wreq) // the writer is idle: every request waited for its result
	<-c.wdone
	c.raw.Close()
	c.w.track(nil)
	c.conn, c.raw = nil, nil
}
