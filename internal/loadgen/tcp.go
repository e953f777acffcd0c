package loadgen

import (
	"bytes"
	"io"
	"net"
	"time"
)

// tcpClient is a worker's TCP side: one connection, on which each request
// writes the worker's chunk and reads it back from an echo server. The
// write runs in a goroutine of the connection's own while the worker
// reads, so that chunks larger than the socket buffers cannot deadlock
// the two ends.
type tcpClient struct {
	w       *worker
	conn    net.Conn // counting
	raw     net.Conn
	out, in []byte
	wreq    chan struct{}
	wres    chan error
	wdone   chan struct{}
}

func newTCPClient(w *worker, seed uint64) *tcpClient {
	s := w.r.s
	return &tcpClient{w: w, out: pattern(s.Size, seed), in: make([]byte, s.Size)}
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
	go func(conn net.Conn, out []byte, wreq <-chan struct{}, wres chan<- error, done chan<- struct{}) {
		defer close(done)
		for range wreq {
			_, err := conn.Write(out)
			wres <- err
		}
	}(c.conn, c.out, c.wreq, c.wres, c.wdone)
	if !c.w.track(raw) {
		c.close()
		return net.ErrClosed
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
	_, rerr := io.ReadFull(c.conn, c.in)
	if rerr != nil {
		c.raw.Close() // unblocks the writer
	}
	werr := <-c.wres
	switch {
	case rerr != nil && werr != nil && kindOf(rerr) == KindClosed:
		rerr = werr // the write failed first (a reset, say) and the read saw the close
	case rerr == nil && werr != nil:
		rerr = werr
	case rerr == nil && !bytes.Equal(c.in, c.out):
		rerr = protoErr("the echo differs from what was sent")
	}
	if rerr != nil {
		c.close()
	}
	return rerr
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
