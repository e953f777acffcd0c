package loadgen

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// H2C speaks HTTP/2 itself, on golang.org/x/net/http2's Framer: one
// connection per group of Streams workers, a reader and a writer
// goroutine per connection, and a request header block encoded once.
// net/http's
// Transport (Protocols with only UnencryptedHTTP2) reached 0.6 of
// h2load's request rate here with 4 connections x 25 streams, its
// per-request goroutines, channels and allocations costing the server
// CPU it shares the machine with.

// Receive windows we grant the server (RFC 9113 §6.9): large, so that it
// is never held up by us, and topped up once half is used.
const (
	h2Window    = 1 << 30
	h2MaxFrame  = 16 << 10 // SETTINGS_MAX_FRAME_SIZE we accept: the default
	h2MaxHeader = 64 << 10 // header list size we accept
)

// h2Group is the connection that Streams workers share; it opens a new one
// when the last has failed or is going away.
type h2Group struct {
	r     *runner
	owner *worker // counts the connections and their bytes
	block []byte  // the request's header block
	body  []byte
	mu    sync.Mutex
	conn  *h2Conn
	all   []*h2Conn // every connection opened, for cleanup

	// Retries go first: while retrying counts requests about to be sent
	// again, new requests wait (on turn, under rmu) before taking a
	// stream until those have theirs. Else a request left unprocessed by
	// a GOAWAY, whose worker learns of it after the others have their
	// responses, would be last on the next connection again and again.
	retrying atomic.Int32
	rmu      sync.Mutex
	turn     *sync.Cond
}

// h2Conn is one HTTP/2 connection. mu guards the state below it. Frames
// are encoded under wmu into pend, and a writer goroutine of the
// connection's own sends what has gathered in one write(2) per batch:
// requests that complete together leave together, as h2load's do.
type h2Conn struct {
	g     *h2Group
	raw   net.Conn
	cc    net.Conn // counting
	fr    *http2.Framer
	wmu   sync.Mutex
	pend  []byte        // encoded frames waiting for the writer
	kick  chan struct{} // wakes the writer; capacity 1
	quit  chan struct{} // closed by close: the writer returns
	wdone chan struct{} // closed when the writer has returned
	done  chan struct{} // closed when the reader has returned
	ready chan struct{} // closed when the server's first SETTINGS has been applied

	mu          sync.Mutex
	cond        *sync.Cond // signalled when send windows grow or the conn fails
	err         error      // sticky: the connection is unusable
	closed      bool       // close has run
	goingAway   bool
	nextID      uint32
	streams     map[uint32]*h2Stream
	sendWindow  int64 // connection-level, for request bodies
	initWindow  int64 // the server's SETTINGS_INITIAL_WINDOW_SIZE
	maxFrame    int
	maxStreams  int      // the server's SETTINGS_MAX_CONCURRENT_STREAMS
	recvUnacked int64    // connection-level bytes received since the last WINDOW_UPDATE
	expired     []uint32 // sweep's scratch

	unhook func() bool // stops the run's end from closing c; nil once called
}

// h2Stream is a worker's request in flight; it is reused for each request.
type h2Stream struct {
	id          uint32
	status      int
	sendWindow  int64
	recvUnacked int64
	deadline    time.Time     // the request's timeout
	done        chan error    // receives once per request
	aborted     bool          // under h2Conn.mu: stop waiting in send
	queued      time.Duration // how long send waited for a stream slot
}

// errAborted ends a send that waited past the request's timeout.
var errAborted = errors.New("loadgen: h2c send abandoned")

// errStreamTimeout is the result of a request that sweep found past its
// deadline.
var errStreamTimeout = &Error{KindTimeout, errTimeout}

// Requests that the server did not process, and that may be sent again
// (RFC 9113 §8.7): refused (RST_STREAM REFUSED_STREAM), above a GOAWAY's
// last stream ID, or not sent because the connection was going away.
var (
	errRefused     = &Error{KindReset, errors.New("http2: stream reset by the server: REFUSED_STREAM")}
	errUnprocessed = errors.New("http2: not processed before GOAWAY")
	errRetired     = &Error{KindClosed, fmt.Errorf("%w: the connection was retired", errUnprocessed)}
)

// retryable reports whether err says the server did not process the
// request.
func retryable(err error) bool {
	return errors.Is(err, errRefused) || errors.Is(err, errUnprocessed)
}

// h2Client is one worker in H2C mode.
type h2Client struct {
	w  *worker
	g  *h2Group
	st h2Stream
}

// newH2CClients makes Concurrency groups of Streams workers; cleanup
// closes their connections and waits for the readers.
func newH2CClients(r *runner) ([]client, func()) {
	s := r.s
	block := h2RequestBlock(s)
	var body []byte
	if s.Size > 0 {
		body = pattern(s.Size, 1)
	}
	groups := make([]*h2Group, s.Concurrency)
	var clients []client
	for i := range groups {
		g := &h2Group{r: r, owner: r.workers[i*s.Streams], block: block, body: body}
		g.turn = sync.NewCond(&g.rmu)
		groups[i] = g
		for j := 0; j < s.Streams; j++ {
			clients = append(clients, &h2Client{w: r.workers[i*s.Streams+j], g: g, st: h2Stream{done: make(chan error, 1)}})
		}
	}
	return clients, func() {
		for _, g := range groups {
			g.mu.Lock()
			all := g.all
			g.mu.Unlock()
			for _, c := range all {
				c.close(errors.New("loadgen: the run is over"))
				<-c.done
				<-c.wdone
			}
		}
	}
}

// h2RequestBlock encodes the request's header fields (RFC 9113 §8.3.1)
// once, as HPACK literals that never touch the dynamic table (RFC 7541
// §6.2.2), so that the same bytes serve every request on every connection.
func h2RequestBlock(s *settings) []byte {
	var b []byte
	if s.Size > 0 {
		b = append(b, 0x83) // :method POST, static index 3
	} else {
		b = append(b, 0x82) // :method GET
	}
	b = append(b, 0x86) // :scheme http
	lit := func(index uint64, value string) {
		b = hpackInt(b, 0x00, 4, index)
		b = hpackInt(b, 0x00, 7, uint64(len(value)))
		b = append(b, value...)
	}
	lit(1, s.hostHdr) // :authority
	lit(4, s.path)    // :path
	lit(58, "portmux-bench")
	if s.Size > 0 {
		lit(28, strconv.Itoa(s.Size)) // content-length
	}
	return b
}

// hpackInt appends an HPACK integer with an n-bit prefix (RFC 7541 §5.1).
func hpackInt(b []byte, first byte, n uint, v uint64) []byte {
	max := uint64(1)<<n - 1
	if v < max {
		return append(b, first|byte(v))
	}
	b = append(b, first|byte(max))
	v -= max
	for v >= 128 {
		b = append(b, byte(v&0x7f)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

// get returns the group's usable connection, opening one if need be
// (accounted to w, whose connect histogram gets the setup time). The
// caller times its own wait, which is the setup for the worker that
// dials and the wait behind it for the others.
func (g *h2Group) get(w *worker) (*h2Conn, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if c := g.conn; c != nil {
		c.mu.Lock()
		ok := c.err == nil && !c.goingAway
		c.mu.Unlock()
		if ok {
			return c, nil
		}
	}
	s := g.r.s
	t0 := time.Now()
	d := net.Dialer{Timeout: s.DialTimeout, KeepAlive: -1}
	raw, err := d.DialContext(g.r.ctx, "tcp", s.addr)
	if err != nil {
		return nil, &Error{KindDial, err}
	}
	g.owner.conns.Add(1)
	cc := &countConn{raw, g.owner}
	c := &h2Conn{
		g: g, raw: raw, cc: cc, kick: make(chan struct{}, 1), quit: make(chan struct{}), wdone: make(chan struct{}),
		done: make(chan struct{}), ready: make(chan struct{}),
		nextID: 1, streams: map[uint32]*h2Stream{},
		sendWindow: 65535, initWindow: 65535, maxFrame: 16384, maxStreams: 1 << 30,
	}
	c.cond = sync.NewCond(&c.mu)
	c.fr = http2.NewFramer(pendWriter{c}, bufio.NewReaderSize(cc, 16<<10))
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	c.fr.MaxHeaderListSize = h2MaxHeader
	c.fr.SetMaxReadFrameSize(h2MaxFrame)
	// The preface, our settings and the connection window (RFC 9113 §3.4, §6.5, §6.9).
	// The end of the run closes the connection, which fails its
	// streams and wakes the sends waiting on it.
	unhook := context.AfterFunc(g.r.ctx, func() { c.close(g.r.ctx.Err()) })
	c.mu.Lock()
	if !c.closed { // else it has run already
		c.unhook = unhook
	}
	c.mu.Unlock()
	go c.writeLoop()
	c.write(func() error { // encoding into pend: nothing to fail but the writer, which closes c
		c.pend = append(c.pend, http2.ClientPreface...)
		if err := c.fr.WriteSettings(
			http2.Setting{ID: http2.SettingEnablePush, Val: 0},
			http2.Setting{ID: http2.SettingInitialWindowSize, Val: h2Window},
			http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: h2MaxHeader},
		); err != nil {
			return err
		}
		return c.fr.WriteWindowUpdate(0, h2Window-65535)
	})
	go c.readLoop()
	// Forget the connections that are closed and whose goroutines have
	// returned: a server that sends GOAWAY every so many requests makes
	// many in a long run.
	live := g.all[:0]
	for _, old := range g.all {
		if !old.finished() {
			live = append(live, old)
		}
	}
	clear(g.all[len(live):])
	g.all = append(live, c)
	// Wait for the server's SETTINGS (§3.4), so that the first requests
	// respect its limits instead of being refused.
	t := time.NewTimer(s.DialTimeout)
	defer t.Stop()
	select {
	case <-c.ready:
	case <-c.done:
		c.mu.Lock()
		err := c.err
		c.mu.Unlock()
		return nil, &Error{KindDial, fmt.Errorf("http2 handshake: %w", err)}
	case <-t.C:
		c.close(errTimeout)
		return nil, &Error{KindDial, errors.New("http2 handshake: no SETTINGS from the server in time")}
	case <-g.r.ctx.Done():
		c.close(g.r.ctx.Err())
		return nil, g.r.ctx.Err()
	}
	g.conn = c
	w.connect.Record(time.Since(t0))
	return c, nil
}

// finished reports whether c is closed and its reader and writer have
// returned.
func (c *h2Conn) finished() bool {
	select {
	case <-c.done:
	default:
		return false
	}
	select {
	case <-c.wdone:
		return true
	default:
		return false
	}
}

// retireIfIdle closes c once it is going away (after GOAWAY, or out of
// stream IDs) and its last stream has ended; the group's next request
// opens a new connection.
func (c *h2Conn) retireIfIdle() {
	c.mu.Lock()
	idle := c.goingAway && len(c.streams) == 0 && c.err == nil
	c.mu.Unlock()
	if idle {
		c.close(errRetired)
	}
}

// pendWriter is where the Framer encodes: the pending batch (wmu held).
type pendWriter struct{ c *h2Conn }

func (w pendWriter) Write(p []byte) (int, error) {
	w.c.pend = append(w.c.pend, p...)
	return len(p), nil
}

// write runs f, which encodes frames, under the write lock, and wakes the
// writer.
func (c *h2Conn) write(f func() error) error {
	c.wmu.Lock()
	err := f()
	c.wmu.Unlock()
	c.wake()
	return err
}

func (c *h2Conn) wake() {
	select {
	case c.kick <- struct{}{}:
	default: // already woken: it will take this batch too
	}
}

// sweepEvery is how often a connection looks for requests past their
// timeout: an eighth of it, within 5 ms to 250 ms.
func sweepEvery(timeout time.Duration) time.Duration {
	return min(max(timeout/8, 5*time.Millisecond), 250*time.Millisecond)
}

// writeLoop sends the pending frames, a batch at a time, each within the
// run's Timeout, until close; between batches, it sweeps for requests
// past their timeout.
func (c *h2Conn) writeLoop() {
	defer close(c.wdone)
	tick := time.NewTicker(sweepEvery(c.g.r.s.Timeout))
	defer tick.Stop()
	var out []byte
	for {
		select {
		case <-c.kick:
		case now := <-tick.C:
			c.sweep(now)
			continue
		case <-c.quit:
			return
		}
		// Let the workers that the same read woke queue their requests
		// first: without this the writer ran after each one, and a
		// batch was one request.
		runtime.Gosched()
		c.wmu.Lock()
		out, c.pend = c.pend, out[:0]
		c.wmu.Unlock()
		if len(out) == 0 {
			continue
		}
		c.raw.SetWriteDeadline(time.Now().Add(c.g.r.s.Timeout))
		if _, err := c.cc.Write(out); err != nil {
			c.close(err)
			return
		}
	}
}

// sweep fails the requests past their deadline with a timeout and tells
// the server to stop them (RST_STREAM CANCEL, RFC 9113 §8.7), and wakes
// the sends waiting for a stream or window, which check their own. One
// sweep per connection, rather than a timer per request, keeps a request
// free of timer allocations.
func (c *h2Conn) sweep(now time.Time) {
	c.mu.Lock()
	c.expired = c.expired[:0]
	for id, st := range c.streams {
		if now.After(st.deadline) {
			delete(c.streams, id)
			st.done <- errStreamTimeout
			c.expired = append(c.expired, id)
		}
	}
	failed := c.err != nil
	c.cond.Broadcast()
	c.mu.Unlock()
	if len(c.expired) > 0 && !failed {
		c.write(func() error {
			for _, id := range c.expired {
				if err := c.fr.WriteRSTStream(id, http2.ErrCodeCancel); err != nil {
					return err
				}
			}
			return nil
		})
		c.retireIfIdle()
	}
}

// waitFor waits on c.cond for st's send, and marks st aborted once its
// deadline has passed; c.mu must be held.
func (c *h2Conn) waitFor(st *h2Stream) {
	c.cond.Wait()
	if time.Now().After(st.deadline) {
		st.aborted = true
	}
}

// close makes the connection unusable, fails its streams with err, and
// closes the socket, which ends the reader.
func (c *h2Conn) close(err error) {
	c.mu.Lock()
	if c.unhook != nil {
		c.unhook()
		c.unhook = nil
	}
	if c.err == nil {
		c.err = err
	}
	for id, st := range c.streams {
		delete(c.streams, id)
		st.done <- c.err
	}
	c.cond.Broadcast()
	first := !c.closed
	c.closed = true
	c.mu.Unlock()
	if first {
		close(c.quit)
	}
	c.raw.Close()
}

func (c *h2Client) close() {}

// h2MaxRetries bounds how many times a request that the server did not
// process is sent again: a server that refuses everything must not keep
// a worker looping until the timeout.
const h2MaxRetries = 10

// do makes the request, and again while the server did not process it
// (RFC 9113 §8.7: after REFUSED_STREAM on any connection, after GOAWAY
// on a new one), within the request's timeout and h2MaxRetries. A
// server that sends GOAWAY every so many requests can leave the same
// request unprocessed more than once.
func (c *h2Client) do() error {
	err := c.try(true)
	for n := 1; err != nil && retryable(err) && !c.w.r.over(); n++ {
		switch {
		case time.Now().After(c.st.deadline):
			return &Error{KindTimeout, fmt.Errorf("not processed by the server within the timeout, in %d attempts: %w", n, err)}
		case n > h2MaxRetries:
			return &Error{kindOf(err), fmt.Errorf("not processed by the server in %d attempts: %w", n, err)}
		}
		c.g.retrying.Add(1)
		err = c.try(false)
	}
	return err
}

// waitRetries waits until no retry is waiting to be sent, or the run is
// over.
func (g *h2Group) waitRetries() {
	g.rmu.Lock()
	for g.retrying.Load() > 0 && !g.r.over() {
		g.turn.Wait()
	}
	g.rmu.Unlock()
}

// retried says that a retry has its stream, or has failed.
func (g *h2Group) retried() {
	g.rmu.Lock()
	g.retrying.Add(-1)
	g.turn.Broadcast()
	g.rmu.Unlock()
}

// try sends the request once; first says it is not a retry, which keeps
// the first attempt's deadline and was counted in g.retrying.
func (c *h2Client) try(first bool) error {
	conn, err := c.start(first)
	if !first {
		c.g.retried() // its stream is open, or it failed: new requests may go
	}
	if err != nil {
		return err
	}
	return c.await(conn)
}

// await waits for the result of the request on conn, or the end of the
// run. A result that is in counts even when the run has ended too: a
// select between the two would pick at random, and count a completed
// request as unfinished.
func (c *h2Client) await(conn *h2Conn) error {
	var err error
	select {
	case err = <-c.st.done:
	default:
		select {
		case err = <-c.st.done:
		case <-c.w.r.ctx.Done():
			err = c.w.r.ctx.Err()
			conn.cancel(&c.st)
		}
	}
	if err != nil {
		return err
	}
	c.w.status[c.st.status]++
	if c.st.status < 200 || c.st.status > 399 {
		return &Error{KindBadStatus, fmt.Errorf("status %d", c.st.status)}
	}
	return nil
}

// start gets a connection and opens the request's stream on it.
func (c *h2Client) start(first bool) (*h2Conn, error) {
	// The wait for the connection, whether this worker opened it or
	// waited for the one that did, and for the retries to go first, is
	// setup: unpaced latency leaves it out, as it does any connect.
	t0 := time.Now()
	conn, err := c.g.get(c.w)
	if err == nil && first && c.g.retrying.Load() > 0 {
		c.g.waitRetries()
	}
	c.w.setup += time.Since(t0)
	if err != nil {
		return nil, err
	}
	// The connection's sweep bounds the request by its deadline: while
	// send waits for a stream slot or for flow-control window, which a
	// server can withhold, and while the response is awaited. The end of
	// the run closes the connection.
	if first {
		c.st.deadline = time.Now().Add(c.w.r.s.Timeout)
	}
	err = conn.send(&c.st)
	c.w.setup += c.st.queued
	if errors.Is(err, errAborted) {
		conn.cancel(&c.st)
		return nil, errStreamTimeout
	}
	return conn, err
}

// send opens a stream for st and writes the request on it, waiting for
// send window for the body as flow control requires (RFC 9113 §5.2).
func (c *h2Conn) send(st *h2Stream) error {
	// Within the server's SETTINGS_MAX_CONCURRENT_STREAMS (§5.1.2); the
	// streams ahead end within their own timeouts.
	// The wait is timed, and left out of unpaced latency like a connect:
	// the request's first byte has not left.
	c.mu.Lock()
	st.aborted, st.queued = false, 0
	if c.err == nil && len(c.streams) >= c.maxStreams {
		t0 := time.Now()
		for c.err == nil && !st.aborted && len(c.streams) >= c.maxStreams {
			c.waitFor(st)
		}
		st.queued = time.Since(t0)
	}
	aborted := st.aborted
	c.mu.Unlock()
	if aborted {
		return errAborted
	}
	// IDs must rise in the order their HEADERS are sent (§5.1.1): take
	// the ID and encode the frame under the write lock.
	c.wmu.Lock()
	c.mu.Lock()
	if c.err != nil || c.goingAway {
		err := c.err
		if err == nil {
			err = errRetired // no new streams on a connection going away (§6.8)
		}
		c.mu.Unlock()
		c.wmu.Unlock()
		return err
	}
	select { // a result left over from an abandoned request
	case <-st.done:
	default:
	}
	body := c.g.body
	st.status, st.recvUnacked, st.sendWindow = 0, 0, c.initWindow
	st.id = c.nextID
	c.nextID += 2
	if c.nextID > 1<<31-1-2 {
		c.goingAway = true // out of stream IDs: the next request opens a new connection
	}
	c.streams[st.id] = st
	c.mu.Unlock()
	c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: st.id, BlockFragment: c.g.block, EndStream: len(body) == 0, EndHeaders: true})
	c.wmu.Unlock()
	c.wake()
	for len(body) > 0 {
		c.mu.Lock()
		for c.err == nil && !st.aborted && c.streams[st.id] == st && (c.sendWindow <= 0 || st.sendWindow <= 0) {
			c.waitFor(st) // woken by WINDOW_UPDATE, SETTINGS, a failure, cancel or sweep
		}
		if st.aborted {
			c.mu.Unlock()
			return errAborted
		}
		if c.err != nil || c.streams[st.id] != st {
			c.mu.Unlock()
			return nil // the stream's result is (or will be) on st.done
		}
		n := int(min(int64(len(body)), c.sendWindow, st.sendWindow, int64(c.maxFrame)))
		c.sendWindow -= int64(n)
		st.sendWindow -= int64(n)
		c.mu.Unlock()
		chunk := body[:n]
		body = body[n:]
		c.write(func() error { return c.fr.WriteData(st.id, len(body) == 0, chunk) })
	}
	return nil
}

// cancel abandons st's request: the server is told to stop (RST_STREAM
// CANCEL, §8.7) and a late result is dropped.
func (c *h2Conn) cancel(st *h2Stream) {
	c.mu.Lock()
	live := c.streams[st.id] == st
	if live {
		delete(c.streams, st.id)
		c.cond.Broadcast()
	}
	failed := c.err != nil
	c.mu.Unlock()
	if live && !failed {
		c.write(func() error { return c.fr.WriteRSTStream(st.id, http2.ErrCodeCancel) })
		c.retireIfIdle()
	}
}

// finish delivers a stream's result; c.mu must be held.
func (c *h2Conn) finish(id uint32, err error) {
	if st := c.streams[id]; st != nil {
		delete(c.streams, id)
		st.done <- err
		c.cond.Broadcast()
	}
}

// readLoop reads frames until the connection fails or closes.
func (c *h2Conn) readLoop() {
	defer close(c.done)
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			if kindOf(err) == KindOther { // a frame error, not the socket's
				err = &Error{KindProtocol, fmt.Errorf("http2: %w", err)}
			}
			c.close(err)
			return
		}
		if err := c.handle(f); err != nil {
			c.close(err)
			return
		}
		c.retireIfIdle()
	}
}

func (c *h2Conn) handle(f http2.Frame) error {
	id := f.Header().StreamID
	switch f := f.(type) {
	case *http2.MetaHeadersFrame:
		c.mu.Lock()
		st := c.streams[id]
		trailers := st != nil && st.status >= 200
		c.mu.Unlock()
		if trailers {
			// A second HEADERS after the final status: trailers (RFC 9113
			// §8.1), which end the stream and carry no :status.
			if !f.StreamEnded() || f.PseudoValue("status") != "" {
				return protoErr("http2: trailers without END_STREAM, or with a :status")
			}
			c.mu.Lock()
			c.finish(id, nil)
			c.mu.Unlock()
			return nil
		}
		status, err := strconv.Atoi(f.PseudoValue("status"))
		if err != nil || status < 100 || status > 999 {
			return protoErr("http2: bad :status %q", f.PseudoValue("status"))
		}
		c.mu.Lock()
		if st := c.streams[id]; st != nil && (status >= 200 || st.status == 0) {
			st.status = status
		}
		if f.StreamEnded() {
			c.finish(id, nil)
		}
		c.mu.Unlock()
	case *http2.DataFrame:
		n := int64(f.Header().Length) // padding counts too (§6.9.1)
		var connIncr, streamIncr uint32
		c.mu.Lock()
		c.recvUnacked += n
		if c.recvUnacked >= h2Window/2 {
			connIncr, c.recvUnacked = uint32(c.recvUnacked), 0
		}
		st := c.streams[id]
		if st != nil {
			st.recvUnacked += n
			if st.recvUnacked >= h2Window/2 && !f.StreamEnded() {
				streamIncr, st.recvUnacked = uint32(st.recvUnacked), 0
			}
			if f.StreamEnded() {
				c.finish(id, nil)
			}
		}
		c.mu.Unlock()
		if connIncr > 0 || streamIncr > 0 {
			return c.write(func() error {
				if connIncr > 0 {
					if err := c.fr.WriteWindowUpdate(0, connIncr); err != nil {
						return err
					}
				}
				if streamIncr > 0 {
					return c.fr.WriteWindowUpdate(id, streamIncr)
				}
				return nil
			})
		}
	case *http2.SettingsFrame:
		if f.IsAck() {
			return nil
		}
		c.mu.Lock()
		err := f.ForeachSetting(func(s http2.Setting) error {
			switch s.ID {
			case http2.SettingInitialWindowSize:
				delta := int64(s.Val) - c.initWindow
				c.initWindow = int64(s.Val)
				for _, st := range c.streams {
					st.sendWindow += delta
				}
			case http2.SettingMaxFrameSize:
				if s.Val < 1<<14 || s.Val > 1<<24-1 { // RFC 9113 §6.5.2
					return protoErr("http2: SETTINGS_MAX_FRAME_SIZE %d", s.Val)
				}
				c.maxFrame = int(s.Val)
			case http2.SettingMaxConcurrentStreams:
				c.maxStreams = int(max(s.Val, 1))
			}
			return nil
		})
		c.cond.Broadcast()
		c.mu.Unlock()
		if err != nil {
			return err
		}
		if err := c.write(c.fr.WriteSettingsAck); err != nil {
			return err
		}
		select {
		case <-c.ready:
		default:
			close(c.ready)
		}
	case *http2.WindowUpdateFrame:
		c.mu.Lock()
		if id == 0 {
			c.sendWindow += int64(f.Increment)
		} else if st := c.streams[id]; st != nil {
			st.sendWindow += int64(f.Increment)
		}
		c.cond.Broadcast()
		c.mu.Unlock()
	case *http2.PingFrame:
		if !f.IsAck() {
			return c.write(func() error { return c.fr.WritePing(true, f.Data) })
		}
	case *http2.RSTStreamFrame:
		err := errRefused
		if f.ErrCode != http2.ErrCodeRefusedStream {
			err = &Error{KindReset, fmt.Errorf("http2: stream reset by the server: %v", f.ErrCode)}
		}
		c.mu.Lock()
		c.finish(id, err)
		c.mu.Unlock()
	case *http2.GoAwayFrame:
		// Streams above LastStreamID were not processed (§6.8) and are
		// retried elsewhere; the rest finish on this connection, which
		// readLoop then closes. New streams go to another.
		c.mu.Lock()
		c.goingAway = true
		for sid := range c.streams {
			if sid > f.LastStreamID {
				c.finish(sid, &Error{KindClosed, fmt.Errorf("%w (%v)", errUnprocessed, f.ErrCode)})
			}
		}
		c.mu.Unlock()
	}
	return nil
}
