package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Mode names what one request is.
type Mode string

// The modes.
const (
	// HTTP1 opens a connection per request, sends the request with
	// Connection: close and reads the whole response.
	HTTP1 Mode = "http1"
	// HTTP1KeepAlive sends request after request on each worker's
	// connection, opening a new one when the server closes it.
	HTTP1KeepAlive Mode = "http1-keepalive"
	// H2C speaks HTTP/2 with prior knowledge (RFC 9113 §3.3): Concurrency
	// connections, each carrying Streams requests at a time.
	H2C Mode = "h2c"
	// WS makes a WebSocket handshake (RFC 6455 §4.1) per worker, then
	// sends binary messages of Size bytes; a request is one message and
	// its echo, which must match.
	WS Mode = "ws"
	// TCP streams Size bytes out on each worker's connection and reads
	// them back from an echo server, checking every byte; a request is
	// one such round trip, however large.
	TCP Mode = "tcp"
	// Upgrade426 opens a connection per request, sends a plain HTTP/1.1
	// GET and expects 426 Upgrade Required (RFC 9110 §15.5.22) with an
	// Upgrade header naming UpgradeTokens and a Connection header holding
	// both upgrade and close.
	Upgrade426 Mode = "426"
)

// Modes lists every mode, in the order the documentation gives them.
var Modes = []Mode{HTTP1, HTTP1KeepAlive, H2C, WS, TCP, Upgrade426}

// Defaults of the Config fields.
const (
	DefaultConcurrency = 10
	DefaultDuration    = 10 * time.Second
	DefaultDialTimeout = 5 * time.Second
	DefaultTimeout     = 10 * time.Second
	DefaultStreams     = 10
	DefaultDrain       = time.Second
	DefaultWSSize      = 16
	DefaultTCPSize     = 64 << 10
	// MaxSize bounds Size but for TCP: a request body or message is
	// held in memory by every worker.
	MaxSize = 64 << 20
	// MaxTCPSize bounds Size for TCP, which streams: 1 TiB.
	MaxTCPSize = 1 << 40
	// MaxRate bounds Rate: a thousand times what one machine can send,
	// and small enough that counts derived from it cannot overflow.
	MaxRate = 1e9
)

// Config describes a run. The zero value of each field but Target means
// its documented default.
type Config struct {
	// Mode is what one request is; if empty, HTTP1.
	Mode Mode

	// Target is where to send requests: a URL (http://host:port/path?query
	// for the HTTP modes, ws://host:port/path for WS, tcp://host:port) or
	// a bare host:port, which means the path "/". The host is resolved
	// once, before the run.
	Target string

	// Host, if set, is sent as the Host header instead of Target's host.
	Host string

	// Concurrency is the number of requests in flight, each on a
	// connection of its own (a goroutine worker each, or a slot of an
	// event loop); for H2C it is the number of connections, each with
	// Streams workers. If zero, DefaultConcurrency.
	Concurrency int

	// Streams is, for H2C only, the number of requests in flight on each
	// connection. If zero, DefaultStreams.
	Streams int

	// Duration ends the run that long after it starts: no request starts
	// after it, and those in flight then are waited for, up to Drain. If
	// zero, the run lasts DefaultDuration unless Requests is set, in
	// which case only Requests ends it.
	Duration time.Duration

	// Drain bounds the wait, once Duration has passed, for the requests
	// then in flight: those that finish within it count as usual, and
	// the rest are interrupted and counted as Result.Unfinished (and do
	// not stretch Result.Elapsed). It does not apply to a run that only
	// Requests ends. If zero, DefaultDrain.
	Drain time.Duration

	// Requests, if positive, ends the run after this many attempts
	// (successful or not) have been started and have finished.
	Requests int64

	// Rate, if positive, paces the run to that many requests per second
	// over all workers: request n is due at start + n/Rate. Latency is
	// then measured from when a request was due, not from when a free
	// worker sent it, so a stalled target shows in the percentiles
	// instead of hiding behind fewer requests (coordinated omission);
	// and the requests that fell due before the end but were never sent,
	// every worker being busy, are counted as Result.Missed. At most
	// MaxRate.
	Rate float64

	// Size is the request body for the HTTP modes (a POST of Size bytes;
	// zero means a GET without a body), the message size for WS (if zero,
	// DefaultWSSize), and for TCP the bytes streamed out and read back
	// per request (if zero, DefaultTCPSize). At most MaxSize, or for TCP,
	// which streams it in pieces of 1 MiB with constant memory,
	// MaxTCPSize.
	Size int

	// DialTimeout bounds each connection attempt (for WS including the
	// handshake, for H2C the server's SETTINGS). If zero,
	// DefaultDialTimeout.
	DialTimeout time.Duration

	// Timeout bounds each request once its connection is open: writing it
	// and reading the whole response. If zero, DefaultTimeout.
	Timeout time.Duration

	// UpgradeTokens are the protocols that Upgrade426 expects the 426
	// response's Upgrade header to name (case-insensitively, in any
	// order; others may be present). If empty, "websocket".
	UpgradeTokens []string

	// Progress, if not nil, is called about once a second during the run,
	// from a goroutine of its own, with the totals so far.
	Progress func(Progress)
}

// Progress is a snapshot of a run in progress.
type Progress struct {
	Elapsed     time.Duration
	Requests    uint64 // completed without error
	Errors      uint64
	Connections uint64
}

// ErrorKind classifies a failed request.
type ErrorKind uint8

// The kinds of error, with the names that reports and JSON use.
const (
	KindDial      ErrorKind = iota // "dial": the connection (or WebSocket handshake) failed
	KindTimeout                    // "timeout": a deadline passed mid-request
	KindReset                      // "reset": the peer reset the connection (ECONNRESET, EPIPE)
	KindClosed                     // "closed": the peer closed before the response was complete
	KindBadStatus                  // "bad_status": an HTTP status other than the one expected
	KindBadHeader                  // "bad_header": Upgrade426's Upgrade or Connection header is wrong
	KindProtocol                   // "protocol": a malformed response, frame or echo
	KindOther                      // "other": anything else
	numKinds
)

var kindNames = [numKinds]string{"dial", "timeout", "reset", "closed", "bad_status", "bad_header", "protocol", "other"}

// String returns the kind's name.
func (k ErrorKind) String() string {
	if k < numKinds {
		return kindNames[k]
	}
	return "ErrorKind(" + strconv.Itoa(int(k)) + ")"
}

// ErrorKinds lists every kind.
func ErrorKinds() []ErrorKind {
	ks := make([]ErrorKind, numKinds)
	for i := range ks {
		ks[i] = ErrorKind(i)
	}
	return ks
}

// Error is a failed request: its kind and cause.
type Error struct {
	Kind ErrorKind
	Err  error
}

func (e *Error) Error() string { return "loadgen: " + e.Kind.String() + ": " + e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// kindOf classifies err: an *Error keeps its kind, the rest by cause.
func kindOf(err error) ErrorKind {
	var e *Error
	switch {
	case errors.As(err, &e):
		return e.Kind
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded):
		return KindTimeout
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ECONNABORTED):
		return KindReset
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return KindClosed
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return KindTimeout
	}
	return KindOther
}

// errTimeout is the cause of a timeout the tool detects itself.
var errTimeout = errors.New("timed out")

func protoErr(format string, args ...any) error {
	return &Error{KindProtocol, fmt.Errorf(format, args...)}
}

// Config errors.
var (
	ErrBadTarget = errors.New("loadgen: bad target")
	ErrBadConfig = errors.New("loadgen: bad config")
)

// settings is a Config with its defaults applied and its target resolved.
type settings struct {
	Config
	addr     string // resolved ip:port
	hostHdr  string // Host header value
	path     string // request target, e.g. "/" or "/a?b"
	scheme   string // as given, or "" for a bare host:port
	deadline bool   // Duration bounds the run
}

func (c *Config) resolve(ctx context.Context) (*settings, error) {
	s := &settings{Config: *c}
	if s.Mode == "" {
		s.Mode = HTTP1
	}
	known := false
	for _, m := range Modes {
		known = known || m == s.Mode
	}
	if !known {
		return nil, fmt.Errorf("%w: unknown mode %q", ErrBadConfig, s.Mode)
	}
	switch {
	case s.Concurrency < 0:
		return nil, fmt.Errorf("%w: Concurrency %d is negative", ErrBadConfig, s.Concurrency)
	case s.Streams < 0:
		return nil, fmt.Errorf("%w: Streams %d is negative", ErrBadConfig, s.Streams)
	case s.Duration < 0:
		return nil, fmt.Errorf("%w: Duration %v is negative", ErrBadConfig, s.Duration)
	case s.Requests < 0:
		return nil, fmt.Errorf("%w: Requests %d is negative", ErrBadConfig, s.Requests)
	case s.Rate < 0 || math.IsNaN(s.Rate) || s.Rate > MaxRate:
		return nil, fmt.Errorf("%w: Rate %g is outside 0..%g", ErrBadConfig, s.Rate, float64(MaxRate))
	case s.Size < 0 || s.Mode != TCP && s.Size > MaxSize:
		return nil, fmt.Errorf("%w: Size %d is outside 0..%d", ErrBadConfig, s.Size, MaxSize)
	case int64(s.Size) > MaxTCPSize:
		return nil, fmt.Errorf("%w: Size %d is outside 0..%d", ErrBadConfig, s.Size, int64(MaxTCPSize))
	case s.DialTimeout < 0 || s.Timeout < 0 || s.Drain < 0:
		return nil, fmt.Errorf("%w: a negative timeout", ErrBadConfig)
	}
	if s.Concurrency == 0 {
		s.Concurrency = DefaultConcurrency
	}
	if s.Streams == 0 {
		s.Streams = DefaultStreams
	}
	if s.Mode != H2C {
		s.Streams = 1
	}
	if s.Duration == 0 && s.Requests == 0 {
		s.Duration = DefaultDuration
	}
	s.deadline = s.Duration > 0
	if s.DialTimeout == 0 {
		s.DialTimeout = DefaultDialTimeout
	}
	if s.Timeout == 0 {
		s.Timeout = DefaultTimeout
	}
	if s.Drain == 0 {
		s.Drain = DefaultDrain
	}
	if s.Size == 0 {
		switch s.Mode {
		case WS:
			s.Size = DefaultWSSize
		case TCP:
			s.Size = DefaultTCPSize
		}
	}
	if len(s.UpgradeTokens) == 0 {
		s.UpgradeTokens = []string{"websocket"}
	}
	if len(s.UpgradeTokens) > 64 {
		return nil, fmt.Errorf("%w: more than 64 UpgradeTokens", ErrBadConfig)
	}
	s.UpgradeTokens = slices.Clone(s.UpgradeTokens)
	for i, t := range s.UpgradeTokens {
		s.UpgradeTokens[i] = strings.ToLower(t)
		if t == "" || strings.ContainsAny(t, " \t,\r\n") {
			return nil, fmt.Errorf("%w: upgrade token %q", ErrBadConfig, t)
		}
	}

	hostport := s.Target
	s.hostHdr = s.Target
	s.path = "/"
	if strings.Contains(s.Target, "://") {
		u, err := url.Parse(s.Target)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadTarget, err)
		}
		s.scheme = u.Scheme
		want := map[Mode][]string{HTTP1: {"http"}, HTTP1KeepAlive: {"http"}, H2C: {"http"}, Upgrade426: {"http"}, WS: {"ws", "http"}, TCP: {"tcp"}}[s.Mode]
		ok := false
		for _, w := range want {
			ok = ok || u.Scheme == w
		}
		if !ok {
			return nil, fmt.Errorf("%w: scheme %q in %q; mode %s takes %s:// (TLS is not supported)", ErrBadTarget, u.Scheme, s.Target, s.Mode, strings.Join(want, ":// or "))
		}
		if u.User != nil || u.Fragment != "" {
			return nil, fmt.Errorf("%w: %q has user info or a fragment", ErrBadTarget, s.Target)
		}
		s.hostHdr = u.Host
		hostport = u.Host
		if u.Port() == "" {
			hostport = net.JoinHostPort(u.Hostname(), "80")
		}
		if rt := u.RequestURI(); rt != "" && s.Mode != TCP {
			s.path = rt
		}
	}
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return nil, fmt.Errorf("%w: %q: %v", ErrBadTarget, s.Target, err)
	}
	if c.Host != "" {
		s.hostHdr = c.Host
	}
	if strings.ContainsAny(s.hostHdr, " \t\r\n") || strings.ContainsAny(s.path, " \t\r\n") {
		return nil, fmt.Errorf("%w: whitespace in the host or path", ErrBadTarget)
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil || len(ips) == 0 {
		return nil, fmt.Errorf("%w: resolving %q: %v", ErrBadTarget, host, err)
	}
	s.addr = net.JoinHostPort(ips[0].Unmap().String(), port)
	return s, nil
}

// worker is one goroutine's state. The atomics feed Progress; the rest is
// read by Run only after the worker has finished.
type worker struct {
	requests, errors, conns atomic.Uint64
	sent, recv              atomic.Uint64

	r          *runner
	hist       Histogram
	unfinished uint64        // requests interrupted by the end of the run
	connect    Histogram     // connection setup times
	setup      time.Duration // setup time spent in the current request
	last       time.Time     // when the latest counted request or error finished
	kinds      [numKinds]uint64
	sample     [numKinds]string // the first error message of each kind
	status     map[int]uint64
	timer      *time.Timer

	mu   sync.Mutex
	conn net.Conn // the connection in use, for stop to interrupt
}

// track makes c the connection that stop interrupts; nil forgets it. It
// reports false if the run has stopped, and then c should not be used.
func (w *worker) track(c net.Conn) bool {
	w.mu.Lock()
	w.conn = c
	w.mu.Unlock()
	if c != nil && w.r.stopped.Load() {
		c.SetDeadline(aLongTimeAgo)
		return false
	}
	return true
}

var aLongTimeAgo = time.Unix(1, 0)

// setDeadline gives c (the tracked connection) a deadline d from now,
// unless the run has ended: stop's interrupt may have come just before
// and must not be undone.
func (w *worker) setDeadline(c net.Conn, d time.Duration) error {
	if err := c.SetDeadline(time.Now().Add(d)); err != nil {
		return err
	}
	if w.r.stopped.Load() {
		return net.ErrClosed
	}
	return nil
}

func (w *worker) interrupt() {
	w.mu.Lock()
	if w.conn != nil {
		w.conn.SetDeadline(aLongTimeAgo)
	}
	w.mu.Unlock()
}

// dial opens a TCP connection to the target within DialTimeout.
func (w *worker) dial() (net.Conn, error) {
	d := net.Dialer{Timeout: w.r.s.DialTimeout, KeepAlive: -1}
	c, err := d.DialContext(w.r.ctx, "tcp", w.r.s.addr)
	if err != nil {
		return nil, &Error{KindDial, err}
	}
	w.conns.Add(1)
	return c, nil
}

// connected records the setup time d of a connection that the current
// request opened: the connect, and for WS the handshake. Unless the run
// is paced, the request's latency leaves it out. (H2C records its
// connects itself and leaves out every worker's wait for one.)
func (w *worker) connected(d time.Duration) {
	w.connect.Record(d)
	w.setup += d
}

func (w *worker) fail(err error) {
	w.last = time.Now()
	k := kindOf(err)
	w.kinds[k]++
	if w.sample[k] == "" {
		w.sample[k] = strings.TrimPrefix(err.Error(), "loadgen: "+k.String()+": ")
	}
	w.errors.Add(1)
}

// client is one worker's protocol side: do makes one request and accounts
// its connections and bytes to the worker; close releases what is left.
type client interface {
	do() error
	close()
}

// noEventLoop, set by tests, makes the HTTP/1 modes use goroutine workers
// (h1Client) where they would use the event loop.
var noEventLoop bool

// runner is one run. It ends in two steps: end, after which no request
// starts (the drain), and stop, which interrupts those still in flight.
type runner struct {
	s       *settings
	ctx     context.Context // ends at stop
	cancel  context.CancelFunc
	start   time.Time
	tickets atomic.Int64
	ending  atomic.Bool
	ended   chan struct{} // closed by end
	endAt   atomic.Int64  // when end ran, in ns since start
	stopped atomic.Bool
	stopAt  atomic.Int64 // when stop ran, in ns since start
	timeUp  atomic.Bool  // Duration has passed
	ctxStop atomic.Bool  // stop ran because the caller's context ended
	endOnce sync.Once
	once    sync.Once
	workers []*worker
}

// over reports whether the run has stopped: requests in flight are being
// interrupted. Its context (the caller's) may be cancelled a moment
// before stop runs.
func (r *runner) over() bool {
	return r.stopped.Load() || r.ctx.Err() != nil
}

// end makes claim refuse further requests and wakes workers waiting for
// one to be due.
func (r *runner) end() {
	r.endOnce.Do(func() {
		r.endAt.Store(int64(time.Since(r.start)))
		r.ending.Store(true)
		close(r.ended)
	})
}

// stop ends the run and interrupts the requests in flight.
func (r *runner) stop() { r.halt(false) }

// halt is stop; byCtx says the caller's context ended the run.
func (r *runner) halt(byCtx bool) {
	r.once.Do(func() {
		r.ctxStop.Store(byCtx)
		r.end()
		r.stopAt.Store(int64(time.Since(r.start)))
		r.stopped.Store(true)
		r.cancel()
		for _, w := range r.workers {
			w.interrupt()
		}
	})
}

// claim takes the next request's ticket and returns when that request is
// due (the zero time when the run is not paced); false means the run has
// ended.
func (r *runner) claim() (time.Time, bool) {
	if r.ending.Load() || r.over() {
		return time.Time{}, false
	}
	n := r.tickets.Add(1) - 1
	if r.s.Requests > 0 && n >= r.s.Requests {
		return time.Time{}, false
	}
	if r.s.Rate <= 0 {
		return time.Time{}, true
	}
	// A due time beyond what a Duration holds (a tiny Rate) is as good
	// as never: the run ends first.
	return r.start.Add(time.Duration(min(float64(n)*float64(time.Second)/r.s.Rate, 1<<62))), true
}

// next waits for the worker's next request to be due and returns the time
// its latency counts from; false means the run is over.
func (r *runner) next(w *worker) (time.Time, bool) {
	due, ok := r.claim()
	if !ok {
		return time.Time{}, false
	}
	if due.IsZero() {
		return time.Now(), true
	}
	if d := time.Until(due); d > 0 {
		if w.timer == nil {
			w.timer = time.NewTimer(d)
		} else {
			w.timer.Reset(d)
		}
		select {
		case <-w.timer.C:
		case <-r.ended: // not due before the end: not a request of the run
			return time.Time{}, false
		}
	}
	return due, true
}

// loop is a worker's life: request after request until the run ends.
func (r *runner) loop(w *worker, c client) {
	defer c.close()
	for {
		start, ok := r.next(w)
		if !ok {
			return
		}
		w.setup = 0
		err := c.do()
		if err != nil {
			if r.over() {
				w.unfinished++ // cut short by the end of the run: not the target's fault
				return
			}
			w.fail(err)
			continue
		}
		now := time.Now()
		w.last = now
		lat := now.Sub(start)
		if r.s.Rate <= 0 {
			// From the request's first byte; a paced request's wait for a
			// connection is part of its lateness.
			lat -= w.setup
		}
		w.hist.Record(lat)
		w.requests.Add(1)
	}
}

// elapsed is how long the run lasted, once its workers have returned:
// until the later of Duration and the end of the last request or error
// it counted. Requests interrupted at the end of the drain are not
// counted and do not stretch it; a run that the caller's context
// stopped lasted until then.
func (r *runner) elapsed() time.Duration {
	wall := time.Since(r.start)
	if at := time.Duration(r.stopAt.Load()); r.ctxStop.Load() && at > 0 && at < wall {
		return at
	}
	var last time.Time
	for _, w := range r.workers {
		if w.last.After(last) {
			last = w.last
		}
	}
	d := wall
	if !last.IsZero() {
		d = min(last.Sub(r.start), wall)
	} else if r.timeUp.Load() {
		d = 0 // nothing counted: the run lasted its Duration
	}
	if r.timeUp.Load() {
		d = max(d, r.s.Duration)
	}
	return d
}

func (r *runner) progress() Progress {
	p := Progress{Elapsed: time.Since(r.start)}
	for _, w := range r.workers {
		p.Requests += w.requests.Load()
		p.Errors += w.errors.Load()
		p.Connections += w.conns.Load()
	}
	return p
}

// Run makes the requests that cfg describes against its target and
// returns what happened. It returns an error only for a bad Config or a
// target that does not resolve; failed requests are counted in the
// Result. The run ends at Duration, after Requests, or when ctx ends,
// whichever comes first. At Duration, the requests in flight are waited
// for up to Drain and then interrupted; when ctx ends, at once. Those
// interrupted count as Result.Unfinished. Run returns once every
// goroutine it started has finished.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	s, err := cfg.resolve(ctx)
	if err != nil {
		return nil, err
	}
	r := &runner{s: s, ended: make(chan struct{})}
	r.ctx, r.cancel = context.WithCancel(ctx)
	defer r.cancel()

	// Each job is a goroutine: a worker with its client, or an event loop.
	var jobs []func()
	var cleanup func()
	newWorkers := func(n int) {
		r.workers = make([]*worker, n)
		for i := range r.workers {
			r.workers[i] = &worker{r: r, status: map[int]uint64{}}
		}
	}
	useClients := func(clients []client) {
		for i, w := range r.workers {
			jobs = append(jobs, func() { r.loop(w, clients[i]) })
		}
	}
	switch s.Mode {
	case HTTP1, HTTP1KeepAlive, Upgrade426:
		req := buildHTTP1Request(s)
		if s.Rate <= 0 && !noEventLoop {
			if loops, ok := newH1Loops(r, req); ok {
				for _, l := range loops {
					jobs = append(jobs, l.run)
				}
				break
			}
		}
		newWorkers(s.Concurrency)
		clients := make([]client, len(r.workers))
		for i, w := range r.workers {
			clients[i] = newH1Client(w, req)
		}
		useClients(clients)
	case H2C:
		newWorkers(s.Concurrency * s.Streams)
		var clients []client
		clients, cleanup = newH2CClients(r)
		useClients(clients)
	case WS:
		newWorkers(s.Concurrency)
		clients := make([]client, len(r.workers))
		for i, w := range r.workers {
			clients[i] = newWSClient(w, uint64(i))
		}
		useClients(clients)
	case TCP:
		newWorkers(s.Concurrency)
		clients := make([]client, len(r.workers))
		for i, w := range r.workers {
			clients[i] = newTCPClient(w, uint64(i))
		}
		useClients(clients)
	}

	r.start = time.Now()
	stopAfter := context.AfterFunc(r.ctx, func() { r.halt(true) }) // ctx cancelled by the caller
	defer stopAfter()
	if s.deadline {
		drain := time.AfterFunc(time.Hour, r.stop)
		drain.Stop()
		defer drain.Stop()
		t := time.AfterFunc(s.Duration, func() {
			r.timeUp.Store(true)
			r.end()
			drain.Reset(s.Drain)
		})
		defer t.Stop()
	}
	var wg sync.WaitGroup
	for _, job := range jobs {
		wg.Go(job)
	}
	var pwg sync.WaitGroup
	pdone := make(chan struct{})
	if s.Progress != nil {
		pwg.Go(func() {
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-t.C:
					s.Progress(r.progress())
				case <-pdone:
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := r.elapsed()
	close(pdone)
	pwg.Wait()
	r.stop()
	if cleanup != nil {
		cleanup()
	}
	return r.result(elapsed), nil
}
