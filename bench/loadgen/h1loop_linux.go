package loadgen

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"syscall"
	"time"
	"unsafe"
)

// The event loop serves HTTP1, Upgrade426 and HTTP1KeepAlive when the run
// is not paced: a connection per request is where a goroutine per worker
// costs the most (parking on connect and on read, waking threads, net.Dial's
// bookkeeping), and where the tool must keep up with wrk. Like wrk, each
// loop drives its share of the connections with non-blocking sockets and
// one epoll set, one loop per P. Measured on 2 cores against a bare
// net/http server, goroutine workers reached 0.74-0.84 of wrk's rate.

// The loop's system calls never block, so it makes them with RawSyscall:
// syscall.Syscall's entersyscall/exitsyscall would let sysmon hand the P
// to another thread whenever a loopback connect (which runs the TCP
// handshake inline) takes over 20 µs, and the threads' futex wake-ups
// then cost more than the calls. To wait, the loop parks on the runtime's
// poller instead (see run): a blocking epoll_wait through syscall.Syscall
// cost 14-26k voluntary context switches per 3 s run against wrk's 2k,
// and 10-20 % more client CPU per connection; parked, it matches wrk.

func rawSocket(family int) (int, error) {
	fd, _, e := syscall.RawSyscall(syscall.SYS_SOCKET, uintptr(family), syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if e != 0 {
		return -1, e
	}
	return int(fd), nil
}

func rawConnect(fd int, sa unsafe.Pointer, n uintptr) error {
	_, _, e := syscall.RawSyscall(syscall.SYS_CONNECT, uintptr(fd), uintptr(sa), n)
	if e != 0 {
		return e
	}
	return nil
}

func rawRead(fd int, b []byte) (int, error) {
	n, _, e := syscall.RawSyscall(syscall.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

func rawWrite(fd int, b []byte) (int, error) {
	n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

func rawEpollAdd(epfd, fd int, ev *syscall.EpollEvent) error {
	_, _, e := syscall.RawSyscall6(syscall.SYS_EPOLL_CTL, uintptr(epfd), syscall.EPOLL_CTL_ADD, uintptr(fd), uintptr(unsafe.Pointer(ev)), 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

func rawClose(fd int) { syscall.RawSyscall(syscall.SYS_CLOSE, uintptr(fd), 0, 0) }

// rawEpollWait collects ready events without waiting (timeout 0).
func rawEpollWait(epfd int, events []syscall.EpollEvent) (int, error) {
	n, _, e := syscall.RawSyscall6(syscall.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(unsafe.SliceData(events))), uintptr(len(events)), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// loopTick bounds an idle wait, and so how late a loop notices the end of
// the run or a passed deadline.
const loopTick = 10 * time.Millisecond

// Slot states.
const (
	stIdle    = iota // no connection; begin starts the next request
	stConnect        // connect in progress
	stWrite          // writing the request
	stRead           // reading the response
	stDone           // no more requests for this slot
)

// slot is one connection in flight of a loop.
type slot struct {
	fd       int
	state    uint8
	start    time.Time // latency counts from here
	dialed   time.Time // when the connect began
	deadline time.Time // of the current phase
	wrote    int
	p        h1Parser
	buf      []byte
	wr       int // buf[:wr] holds bytes not yet consumed by p
	recv     int
	reused   bool // the connection carried an earlier request (HTTP1KeepAlive)
}

// h1Loop is one event loop and the worker that accounts for it.
type h1Loop struct {
	r      *runner
	w      *worker
	req    []byte
	sa     unsafe.Pointer // *syscall.RawSockaddrInet4 or 6
	saLen  uintptr
	family int
	epfd   int
	slots  []slot
	done   int // slots in stDone
	events []syscall.EpollEvent
}

// newH1Loops makes min(GOMAXPROCS, Concurrency) loops sharing the
// Concurrency connections, each with its worker in r.workers; false means
// the target's address does not suit (it always does for IPv4 and IPv6).
func newH1Loops(r *runner, req []byte) ([]*h1Loop, bool) {
	s := r.s
	ap, err := netip.ParseAddrPort(s.addr)
	if err != nil {
		return nil, false
	}
	var sa unsafe.Pointer
	var saLen uintptr
	family := syscall.AF_INET
	port := ap.Port()
	bePort := port>>8 | port<<8 // network byte order, as memory holds it on little- and big-endian alike
	if binary.NativeEndian.Uint16([]byte{0, 1}) == 1 {
		bePort = port
	}
	if a := ap.Addr(); a.Is4() {
		sa, saLen = unsafe.Pointer(&syscall.RawSockaddrInet4{Family: syscall.AF_INET, Port: bePort, Addr: a.As4()}), syscall.SizeofSockaddrInet4
	} else {
		family = syscall.AF_INET6
		sa, saLen = unsafe.Pointer(&syscall.RawSockaddrInet6{Family: syscall.AF_INET6, Port: bePort, Addr: a.As16()}), syscall.SizeofSockaddrInet6
	}
	n := min(runtime.GOMAXPROCS(0), s.Concurrency)
	loops := make([]*h1Loop, n)
	r.workers = make([]*worker, n)
	for i := range loops {
		w := &worker{r: r, status: map[int]uint64{}}
		r.workers[i] = w
		k := s.Concurrency / n
		if i < s.Concurrency%n {
			k++
		}
		l := &h1Loop{r: r, w: w, req: req, sa: sa, saLen: saLen, family: family, epfd: -1,
			slots: make([]slot, k), events: make([]syscall.EpollEvent, k)}
		for j := range l.slots {
			l.slots[j] = slot{fd: -1, buf: make([]byte, h1BufSize)}
		}
		loops[i] = l
	}
	return loops, true
}

// run drives the loop's slots until every one is done (the run has
// ended and their last requests have finished) or the run stops; the
// requests it then finds in flight count as unfinished.
func (l *h1Loop) run() {
	// The epoll set is itself pollable: as a non-blocking *os.File, the
	// runtime's poller can wake this goroutine when it has events.
	var err error
	l.epfd, err = syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err == nil {
		err = syscall.SetNonblock(l.epfd, true)
	}
	if err != nil {
		l.w.fail(fmt.Errorf("epoll_create1: %w", err))
		return
	}
	ep := os.NewFile(uintptr(l.epfd), "epoll")
	ec, err := ep.SyscallConn()
	if err != nil {
		ep.Close()
		l.w.fail(fmt.Errorf("epoll: %w", err))
		return
	}
	defer func() {
		for i := range l.slots {
			if l.slots[i].fd >= 0 {
				rawClose(l.slots[i].fd)
				l.w.unfinished++
			}
		}
		ep.Close()
	}()
	for i := range l.slots {
		l.begin(i)
	}
	lastScan := time.Now()
	for !l.r.over() && l.done < len(l.slots) {
		// Poll without blocking; when nothing is ready, park on the
		// runtime's poller until the epoll set is readable (or loopTick
		// passes), like any Go I/O: no thread blocks, the P stays free.
		n, err := rawEpollWait(l.epfd, l.events)
		if err == nil && n == 0 {
			ep.SetReadDeadline(time.Now().Add(loopTick))
			ec.Read(func(uintptr) bool {
				n, err = rawEpollWait(l.epfd, l.events)
				return n != 0 || err != nil
			})
		}
		if err != nil && err != syscall.EINTR {
			l.w.fail(fmt.Errorf("epoll_wait: %w", err))
			return
		}
		for _, ev := range l.events[:max(n, 0)] {
			l.handle(int(ev.Fd), ev.Events)
		}
		if now := time.Now(); now.Sub(lastScan) >= loopTick {
			lastScan = now
			l.expire(now)
		}
	}
}

// begin starts the slot's next request, if the run has one.
func (l *h1Loop) begin(i int) {
	sl := &l.slots[i]
	for {
		if _, ok := l.r.claim(); !ok {
			sl.state = stDone
			l.done++
			return
		}
		err := l.open(i)
		if err == nil {
			sl.start = sl.dialed
			return
		}
		l.w.fail(&Error{KindDial, err})
		// and claim the next request: a refused connect fails at once
	}
}

// open makes a non-blocking socket, starts connecting it and adds it to
// the epoll set, edge-triggered, with the slot's index as its data.
func (l *h1Loop) open(i int) error {
	sl := &l.slots[i]
	fd, err := rawSocket(l.family)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	if err := rawConnect(fd, l.sa, l.saLen); err != nil && err != syscall.EINPROGRESS {
		rawClose(fd)
		return fmt.Errorf("connect %s: %w", l.r.s.addr, err)
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLOUT | syscall.EPOLLRDHUP | -syscall.EPOLLET&0xffffffff, Fd: int32(i)}
	if err := rawEpollAdd(l.epfd, fd, &ev); err != nil {
		rawClose(fd)
		return fmt.Errorf("epoll_ctl: %w", err)
	}
	sl.fd, sl.state, sl.wrote, sl.wr, sl.recv, sl.reused = fd, stConnect, 0, 0, 0, false
	sl.dialed = time.Now()
	sl.deadline = sl.dialed.Add(l.r.s.DialTimeout)
	sl.p.reset(l.r.s.UpgradeTokens)
	return nil
}

// finish closes the slot's connection, accounts for its request, and
// begins the next.
func (l *h1Loop) finish(i int, err error) {
	sl := &l.slots[i]
	rawClose(sl.fd) // also leaves the epoll set
	sl.fd, sl.state = -1, stIdle
	l.w.recv.Add(uint64(sl.recv))
	switch {
	case err != nil && l.r.over():
		l.w.unfinished++
		return
	case err != nil:
		l.w.fail(err)
	default:
		now := time.Now()
		l.w.last = now
		l.w.hist.Record(now.Sub(sl.start))
		l.w.requests.Add(1)
	}
	l.begin(i)
}

func (l *h1Loop) handle(i int, events uint32) {
	sl := &l.slots[i]
	if sl.state == stConnect {
		if events&(syscall.EPOLLERR|syscall.EPOLLHUP) != 0 {
			v, err := syscall.GetsockoptInt(sl.fd, syscall.SOL_SOCKET, syscall.SO_ERROR)
			if err == nil {
				err = syscall.Errno(v)
			}
			l.finish(i, &Error{KindDial, fmt.Errorf("connect %s: %w", l.r.s.addr, err)})
			return
		}
		if events&syscall.EPOLLOUT == 0 {
			return
		}
		l.w.conns.Add(1)
		// The connect is timed apart; the request's latency leaves it
		// out (a retried one keeps the time it lost on the old connection).
		now := time.Now()
		d := now.Sub(sl.dialed)
		l.w.connect.Record(d)
		sl.start = sl.start.Add(d)
		sl.state = stWrite
		sl.deadline = now.Add(l.r.s.Timeout)
	}
	if sl.state == stWrite {
		if events&syscall.EPOLLOUT == 0 && events&(syscall.EPOLLERR|syscall.EPOLLHUP) == 0 {
			return
		}
		for sl.wrote < len(l.req) {
			n, err := rawWrite(sl.fd, l.req[sl.wrote:])
			if err == syscall.EAGAIN {
				return // the next EPOLLOUT edge resumes
			}
			if err != nil {
				if !l.retry(i, err) {
					l.finish(i, fmt.Errorf("write: %w", err))
				}
				return
			}
			sl.wrote += n
			l.w.sent.Add(uint64(n))
		}
		sl.state = stRead
	}
	// An EPOLLOUT edge alone (the request's ACK freeing send space) has
	// nothing to read.
	if sl.state == stRead && events&(syscall.EPOLLIN|syscall.EPOLLRDHUP|syscall.EPOLLERR|syscall.EPOLLHUP) != 0 {
		l.read(i)
	}
}

// read reads what has arrived (to EAGAIN, as edge triggering needs) and
// feeds it to the parser.
func (l *h1Loop) read(i int) {
	sl := &l.slots[i]
	for {
		if sl.wr == len(sl.buf) {
			if len(sl.buf) >= maxHead {
				l.finish(i, errTooLong)
				return
			}
			nb := make([]byte, min(2*len(sl.buf), maxHead))
			copy(nb, sl.buf[:sl.wr])
			sl.buf = nb
		}
		n, err := rawRead(sl.fd, sl.buf[sl.wr:])
		switch {
		case err == syscall.EAGAIN:
			return
		case err == syscall.EINTR:
			continue
		case err != nil:
			if !l.retry(i, err) {
				l.finish(i, fmt.Errorf("read: %w", err))
			}
			return
		case n == 0:
			if l.retry(i, nil) {
				return
			}
			if sl.p.eof() {
				l.complete(i)
			} else if sl.recv == 0 {
				l.finish(i, &Error{KindClosed, errors.New("connection closed before a response")})
			} else {
				l.finish(i, &Error{KindClosed, errors.New("connection closed mid-response")})
			}
			return
		}
		sl.recv += n
		sl.wr += n
		used, done, perr := sl.p.feed(sl.buf[:sl.wr])
		sl.wr = copy(sl.buf, sl.buf[used:sl.wr])
		if perr != nil {
			l.finish(i, perr)
			return
		}
		if done {
			l.complete(i)
			return
		}
	}
}

func (l *h1Loop) complete(i int) {
	sl := &l.slots[i]
	l.w.status[sl.p.head.status]++
	keep, err := sl.p.check(l.r.s)
	if keep && sl.wr > 0 {
		keep, err = false, protoErr("%d bytes after the response", sl.wr)
	}
	if !keep { // keep is false after any error but a bad status
		l.finish(i, err)
		return
	}
	// HTTP1KeepAlive: account, and send the next request on this
	// connection straight away.
	l.w.recv.Add(uint64(sl.recv))
	now := time.Now()
	if err != nil {
		l.w.fail(err)
	} else {
		l.w.last = now
		l.w.hist.Record(now.Sub(sl.start))
		l.w.requests.Add(1)
	}
	if _, ok := l.r.claim(); !ok {
		rawClose(sl.fd)
		sl.fd, sl.state = -1, stDone
		l.done++
		return
	}
	sl.start, sl.deadline = now, now.Add(l.r.s.Timeout)
	sl.state, sl.wrote, sl.recv, sl.reused = stWrite, 0, 0, true
	sl.p.reset(l.r.s.UpgradeTokens)
	l.handle(i, syscall.EPOLLOUT) // it is writable: it has just carried a request
}

// retry reports whether the request failed only because the server had
// closed the kept-alive connection before seeing it (RFC 9112 §9.3.1
// allows it); if so it has started the request again on a new one.
func (l *h1Loop) retry(i int, err error) bool {
	sl := &l.slots[i]
	if !sl.reused || sl.recv > 0 || l.r.over() {
		return false
	}
	if err != nil && kindOf(err) != KindReset {
		return false
	}
	rawClose(sl.fd)
	sl.fd, sl.state = -1, stIdle
	if err := l.open(i); err != nil {
		l.w.fail(&Error{KindDial, err})
		l.begin(i)
	}
	return true
}

// expire fails the requests whose phase has outlasted its timeout.
func (l *h1Loop) expire(now time.Time) {
	for i := range l.slots {
		sl := &l.slots[i]
		if sl.fd < 0 || now.Before(sl.deadline) {
			continue
		}
		if sl.state == stConnect {
			l.finish(i, &Error{KindDial, fmt.Errorf("connect %s: %w", l.r.s.addr, errTimeout)})
		} else {
			l.finish(i, &Error{KindTimeout, errTimeout})
		}
	}
}
