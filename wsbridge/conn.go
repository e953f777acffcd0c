package wsbridge

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// MessageType is the type of a data message (RFC 6455 §5.6).
type MessageType byte

// The two data message types; the values are the frame opcodes.
const (
	Text   MessageType = 1
	Binary MessageType = 2
)

func (t MessageType) String() string {
	switch t {
	case Text:
		return "text"
	case Binary:
		return "binary"
	}
	return fmt.Sprintf("MessageType(%d)", byte(t))
}

// CloseCode is a close status code (RFC 6455 §7.4, and the IANA registry
// for 1012-1014).
type CloseCode uint16

// Close codes. 1005 and 1006 are never sent, only reported.
const (
	CloseNormal          CloseCode = 1000
	CloseGoingAway       CloseCode = 1001
	CloseProtocolError   CloseCode = 1002
	CloseUnsupportedData CloseCode = 1003
	CloseNoStatus        CloseCode = 1005 // received without a code; never sent
	CloseAbnormal        CloseCode = 1006 // the connection dropped; never sent
	CloseInvalidPayload  CloseCode = 1007
	ClosePolicyViolation CloseCode = 1008
	CloseMessageTooBig   CloseCode = 1009
	CloseMandatoryExt    CloseCode = 1010
	CloseInternalError   CloseCode = 1011
	CloseServiceRestart  CloseCode = 1012
	CloseTryAgainLater   CloseCode = 1013
	CloseBadGateway      CloseCode = 1014
)

// Frame layout (RFC 6455 §5.2).
const (
	maxCloseReason = 123 // a control payload is at most 125 bytes
	maxHeader      = 10  // a server frame header: no mask
	maxControl     = 125 // §5.5
	opContinuation = 0
	opClose        = 8
	opPing         = 9
	opPong         = 10
	finBit         = 0x80
	rsv1Bit        = 0x40
	rsv23Bits      = 0x30
	maskBit        = 0x80
)

// CloseError is the error ReadMessage returns once the connection is
// closing. Remote says whether the peer sent the close frame (Code and
// Reason are its own; CloseNoStatus if it gave none) or this end did,
// because the peer broke the protocol (1002, 1007) or a limit: a message
// too big (1009) or an idle client (1001, "idle timeout").
type CloseError struct {
	Code   CloseCode
	Reason string
	Remote bool
}

func (e *CloseError) Error() string {
	who := "local"
	if e.Remote {
		who = "remote"
	}
	if e.Reason == "" {
		return fmt.Sprintf("wsbridge: closed by %s with %d", who, e.Code)
	}
	return fmt.Sprintf("wsbridge: closed by %s with %d: %s", who, e.Code, e.Reason)
}

// Is makes every *CloseError match ErrClosed.
func (e *CloseError) Is(target error) bool { return target == ErrClosed }

var (
	// ErrClosed: the connection is closing or closed; no more messages
	// can be sent. A *CloseError matches it with errors.Is.
	ErrClosed = errors.New("wsbridge: connection closed")
	// ErrInvalidUTF8: WriteMessage was given a Text message, or CloseWith
	// a reason, that is not UTF-8 (RFC 6455 §5.6, §5.5.1).
	ErrInvalidUTF8 = errors.New("wsbridge: text is not valid UTF-8")
	// ErrInvalidCloseCode: CloseWith was given a code that may not be
	// sent (RFC 6455 §7.4.1): 1005 asks for an empty body, but 1006,
	// 1015 and the undefined codes below 3000 (and any above 4999) may not
	// appear on the wire.
	ErrInvalidCloseCode = errors.New("wsbridge: close code may not be sent")
	// ErrCloseTimeout: the peer did not answer the close frame in time.
	ErrCloseTimeout = errors.New("wsbridge: no close frame in reply")
)

// localClose is a failure of the peer or a limit: answered with a close
// frame carrying code.
func localClose(code CloseCode, reason string) *CloseError {
	return &CloseError{Code: code, Reason: reason}
}

// Conn is a WebSocket connection on the server side, returned by
// Upgrader.Upgrade. It owns the net.Conn it was made from.
//
// ReadMessage must be called from one goroutine at a time, and only that
// goroutine answers pings and sends keepalive pings, so a handler should
// keep reading. WriteMessage, CloseWith and Close are safe to call from
// any goroutine, also while ReadMessage runs.
type Conn struct {
	nc       net.Conn
	req      *Request
	protocol string
	deflate  bool

	maxMsg  int64
	ping    time.Duration
	idle    time.Duration
	writeTO time.Duration
	closeTO time.Duration

	// Read side: owned by whoever holds rlock (a token in a channel, so
	// that waiting for it is durably blocking under testing/synctest):
	// ReadMessage, or Close when it drains the stream itself. The bridge
	// owns it without the lock, as its Conn never leaves it.
	rlock   chan struct{}
	rb      []byte
	r, w    int
	readErr error

	frameRemain int64
	frameFin    bool
	mask        [4]byte
	maskPos     int
	inMsg       bool
	msgOp       MessageType
	msgRaw      int64
	msgOut      int64
	compressed  bool
	u8          utf8Stream
	raw         rawMsg
	inflater    io.ReadCloser
	inflateEOF  bool
	dbuf        []byte
	ctrl        [maxControl]byte
	peerClose   atomic.Pointer[CloseError] // the close frame the peer sent, if any
	closeAt     atomic.Int64
	// holdCloseReply: the caller answers the peer's close frame itself
	// (the bridge lets the backend finish first).
	holdCloseReply bool

	// Write side: under wmu.
	wmu       sync.Mutex
	closeSent bool
	// werr is the first failed or short write. It leaves a partial frame
	// behind, so the stream is beyond use: nc is closed and every later
	// write returns werr, rather than putting a frame inside the broken one.
	werr error
	whdr [maxHeader + maxControl]byte
	wbuf []byte
	cbuf appendWriter

	closeOnce sync.Once
	closeErr  error
}

func newConn(nc net.Conn, u *Upgrader, req *Request, hs negotiated, rb []byte, n int) *Conn {
	c := &Conn{
		nc:       nc,
		req:      req,
		protocol: hs.protocol,
		deflate:  hs.deflate,
		maxMsg:   u.maxMessageSize(),
		ping:     u.pingInterval(),
		idle:     u.idleTimeout(),
		writeTO:  u.writeTimeout(),
		closeTO:  u.closeTimeout(),
		rlock:    make(chan struct{}, 1),
		rb:       rb,
		w:        n,
	}
	if c.ping >= c.idle {
		// A ping at or after the idle limit is never sent: ask live
		// clients halfway instead (see Upgrader.PingInterval).
		c.ping = c.idle / 2
	}
	c.raw.c = c
	return c
}

// Request returns the client's opening handshake.
func (c *Conn) Request() *Request { return c.req }

// Subprotocol returns the negotiated subprotocol, or "".
func (c *Conn) Subprotocol() string { return c.protocol }

// Compressed reports whether permessage-deflate was negotiated.
func (c *Conn) Compressed() bool { return c.deflate }

// RemoteAddr returns the underlying connection's RemoteAddr.
func (c *Conn) RemoteAddr() net.Addr { return c.nc.RemoteAddr() }

// LocalAddr returns the underlying connection's LocalAddr.
func (c *Conn) LocalAddr() net.Addr { return c.nc.LocalAddr() }

// NetConn returns the underlying connection. Reading or writing it
// directly corrupts the WebSocket stream; it is there for addresses, TLS
// state and socket options.
func (c *Conn) NetConn() net.Conn { return c.nc }

// ReadMessage reads the next data message and appends its payload to
// dst[:0], growing it if needed (pass the previous result to reuse it).
// Control frames are handled on the way: pings are answered, and a ping
// is sent when the client has been quiet for PingInterval. When the peer
// closes, ReadMessage answers its close frame and returns a *CloseError
// with Remote set; when the peer breaks the protocol or a limit, it sends
// the close frame that calls for (1002, 1007, 1009, 1001 when idle) and
// returns a *CloseError without Remote. After an error every call returns
// the same error; then call Close.
func (c *Conn) ReadMessage(dst []byte) (MessageType, []byte, error) {
	c.rlock <- struct{}{}
	defer func() { <-c.rlock }()
	dst = dst[:0]
	op, err := c.nextMessage()
	if err != nil {
		return 0, dst, err
	}
	for {
		p, err := c.nextData()
		if err == io.EOF {
			return op, dst, nil
		}
		if err != nil {
			return 0, dst, err
		}
		dst = append(dst, p...)
	}
}

// WriteMessage sends p as one message of type t, compressed when
// permessage-deflate was negotiated and p has 128 bytes or more. A Text
// message must be valid UTF-8. The write is bounded by WriteTimeout. After
// a close frame was sent it returns ErrClosed. A write that fails or times
// out may leave part of a frame on the wire, so it closes the connection,
// and every later write (and the close frame) returns the same error.
func (c *Conn) WriteMessage(t MessageType, p []byte) error {
	if t != Text && t != Binary {
		return fmt.Errorf("wsbridge: cannot send a message of type %v", t)
	}
	if t == Text && !utf8.Valid(p) {
		return ErrInvalidUTF8
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.werr != nil {
		return c.werr
	}
	if c.closeSent {
		return ErrClosed
	}
	c.nc.SetWriteDeadline(time.Now().Add(c.writeTO))
	if c.deflate && len(p) >= minCompress {
		c.cbuf.b = append(c.cbuf.b[:0], make([]byte, maxHeader)...)
		if err := compress(&c.cbuf, p); err != nil {
			return err
		}
		return c.writeFrameLocked(byte(t), true, c.cbuf.b, maxHeader)
	}
	if maxHeader+len(p) <= 4096 {
		if c.wbuf == nil {
			c.wbuf = make([]byte, 4096)
		}
		n := copy(c.wbuf[maxHeader:], p)
		return c.writeFrameLocked(byte(t), false, c.wbuf[:maxHeader+n], maxHeader)
	}
	h := putHeader(c.whdr[:], byte(t), false, len(p))
	if err := c.writeLocked(c.whdr[:h]); err != nil {
		return err
	}
	return c.writeLocked(p)
}

// writeLocked writes p to the connection; c.wmu is held and the write
// deadline set. A failed write makes the connection unusable (see werr).
func (c *Conn) writeLocked(p []byte) error {
	if c.werr != nil {
		return c.werr
	}
	if _, err := c.nc.Write(p); err != nil {
		c.werr = err
		c.nc.Close()
		return err
	}
	return nil
}

// putHeader writes a final server frame header (no mask) for a payload of
// n bytes at the start of b and returns its length.
func putHeader(b []byte, op byte, rsv1 bool, n int) int {
	b0 := finBit | op
	if rsv1 {
		b0 |= rsv1Bit
	}
	b[0] = b0
	switch {
	case n <= 125:
		b[1] = byte(n)
		return 2
	case n <= 0xffff:
		b[1] = 126
		binary.BigEndian.PutUint16(b[2:], uint16(n))
		return 4
	}
	b[1] = 127
	binary.BigEndian.PutUint64(b[2:], uint64(n))
	return 10
}

// writeFrameLocked sends frame[off:] as the payload of one final frame,
// writing the header into the room before off (at least maxHeader bytes),
// so that header and payload leave in one Write. c.wmu is held and the
// write deadline set.
func (c *Conn) writeFrameLocked(op byte, rsv1 bool, frame []byte, off int) error {
	var h [maxHeader]byte
	n := putHeader(h[:], op, rsv1, len(frame)-off)
	start := off - n
	copy(frame[start:off], h[:n])
	return c.writeLocked(frame[start:])
}

// writeControl sends a ping or pong unless a close frame was sent.
func (c *Conn) writeControl(op byte, p []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.werr != nil {
		return c.werr
	}
	if c.closeSent {
		return nil
	}
	c.nc.SetWriteDeadline(time.Now().Add(c.writeTO))
	n := putHeader(c.whdr[:], op, false, len(p))
	n += copy(c.whdr[n:], p)
	return c.writeLocked(c.whdr[:n])
}

// sendClose sends a close frame with code and reason, once; the first
// call wins and later ones report false. A code of CloseNoStatus sends
// an empty body. It arms the close deadline: a reader then waits at most
// CloseTimeout for the peer's answer. After a failed write it sends
// nothing and returns that write's error.
func (c *Conn) sendClose(code CloseCode, reason string) (bool, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.werr != nil {
		return false, c.werr
	}
	if c.closeSent {
		return false, nil
	}
	c.closeSent = true
	at := time.Now().Add(c.closeTO)
	c.closeAt.Store(at.UnixNano())
	c.nc.SetReadDeadline(at)
	var body [maxControl]byte
	n := 0
	if code != CloseNoStatus {
		binary.BigEndian.PutUint16(body[:], uint16(code))
		n = 2 + copy(body[2:], truncateUTF8(reason, maxCloseReason))
	}
	c.nc.SetWriteDeadline(time.Now().Add(c.writeTO))
	h := putHeader(c.whdr[:], opClose, false, n)
	h += copy(c.whdr[h:], body[:n])
	return true, c.writeLocked(c.whdr[:h])
}

// truncateUTF8 shortens s to at most n bytes without splitting a rune.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// CloseWith starts the closing handshake with code and reason (at most
// 123 bytes; longer is cut at a rune boundary): it sends the close frame,
// after which
// WriteMessage returns ErrClosed, and a ReadMessage running in another
// goroutine returns within CloseTimeout, with the peer's answer as a
// *CloseError or ErrCloseTimeout. It does not close the connection: call
// Close after. Only the first close frame is sent; later calls do nothing.
//
// The code must be one a peer may send (1000-1003, 1007-1014, 3000-4999),
// or CloseNoStatus for a close frame without a body (the reason is then
// dropped); otherwise CloseWith sends nothing and returns
// ErrInvalidCloseCode. A reason that is not UTF-8 is refused with
// ErrInvalidUTF8 (RFC 6455 §5.5.1).
func (c *Conn) CloseWith(code CloseCode, reason string) error {
	if code != CloseNoStatus && !validCloseCode(code) {
		return fmt.Errorf("%w: %d", ErrInvalidCloseCode, code)
	}
	if !utf8.ValidString(reason) {
		return ErrInvalidUTF8
	}
	_, err := c.sendClose(code, reason)
	return err
}

// Close sends close 1000 if no close frame was sent yet and closes the
// connection. When no ReadMessage is running, it first waits up to
// CloseTimeout for the peer's close frame (discarding messages), so that
// the peer sees a clean close and not a reset; a ReadMessage called
// meanwhile waits for that and returns the error that ended it. It is
// safe to call more than once and from any goroutine; a ReadMessage
// running meanwhile returns an error.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		c.sendClose(CloseNormal, "")
		select {
		case c.rlock <- struct{}{}:
		default:
			// A reader is running: closing nc ends its wait.
			c.closeErr = c.nc.Close()
			return
		}
		defer func() { <-c.rlock }()
		c.shutdown()
	})
	return c.closeErr
}

// shutdown closes the connection after our close frame was sent, from the
// goroutine that owns the read side. If the frame stream is intact it reads on until the
// peer's close frame, within the close deadline; if not (a protocol
// error) it half-closes and drains raw bytes for what is left of the
// deadline, so that the peer reads our close frame rather than a reset.
func (c *Conn) shutdown() {
	for c.readErr == nil && c.peerClose.Load() == nil {
		c.nextMessage()
	}
	if c.peerClose.Load() != nil {
		c.closeErr = c.nc.Close()
		return
	}
	left := time.Duration(0)
	if at := c.closeAt.Load(); at != 0 {
		left = max(0, time.Until(time.Unix(0, at)))
	}
	lingerClose(c.nc, left)
}

// fail ends the conversation after err: if err asks for a close frame
// (a local *CloseError), one is sent. The error becomes sticky.
func (c *Conn) fail(err error) error {
	if c.readErr != nil {
		return c.readErr
	}
	var ce *CloseError
	if errors.As(err, &ce) && !ce.Remote {
		// A write that failed keeps err: it says why we ended, and the
		// connection is closed already.
		if sent, werr := c.sendClose(ce.Code, ce.Reason); !sent && werr == nil {
			// We had closed already: the peer's answer did not come.
			err = ErrClosed
		}
	}
	c.readErr = err
	return err
}

// readSome reads at least one byte into rb[w:], keeping the keepalive:
// the read deadline is the next ping or the idle limit, whichever is due,
// and never past the close deadline.
//
// Both are counted from when this read began waiting, which is when the
// last bytes came unless the caller was busy (a handler between two
// ReadMessage calls, the bridge blocked on a slow backend): time the
// client's bytes sat unread is not the client's silence.
func (c *Conn) readSome() error {
	since, pinged := time.Now(), false
	for {
		dl := since.Add(c.idle)
		if c.ping > 0 && !pinged {
			dl = since.Add(c.ping)
		}
		c.nc.SetReadDeadline(dl)
		if at := c.closeAt.Load(); at != 0 && at < dl.UnixNano() {
			// sendClose may have armed its deadline meanwhile; re-arm it.
			c.nc.SetReadDeadline(time.Unix(0, at))
		}
		n, err := c.nc.Read(c.rb[c.w:])
		c.w += n
		if n > 0 {
			return nil
		}
		var ne net.Error
		if err == nil {
			continue
		} else if !errors.As(err, &ne) || !ne.Timeout() {
			return err
		}
		now := time.Now()
		if at := c.closeAt.Load(); at != 0 && now.UnixNano() >= at {
			return ErrCloseTimeout
		}
		if now.Sub(since) >= c.idle {
			return localClose(CloseGoingAway, "idle timeout")
		}
		if c.ping > 0 && !pinged && now.Sub(since) >= c.ping {
			pinged = true
			if err := c.writeControl(opPing, nil); err != nil {
				return err
			}
		}
	}
}

// fill makes at least need (≤ len(rb)) unread bytes available in rb.
func (c *Conn) fill(need int) error {
	for c.w-c.r < need {
		if len(c.rb)-c.r < need {
			c.w = copy(c.rb, c.rb[c.r:c.w])
			c.r = 0
		}
		if err := c.readSome(); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

// nextFrame reads frame headers until a data frame, handling control
// frames on the way, and validates it against the message in progress.
func (c *Conn) nextFrame() error {
	for {
		if err := c.fill(2); err != nil {
			return err
		}
		b0, b1 := c.rb[c.r], c.rb[c.r+1]
		op := b0 & 0x0f
		fin := b0&finBit != 0
		if b1&maskBit == 0 {
			return localClose(CloseProtocolError, "unmasked client frame") // §5.1
		}
		if b0&rsv23Bits != 0 {
			return localClose(CloseProtocolError, "reserved bits set") // §5.2
		}
		switch op {
		case opContinuation, byte(Text), byte(Binary), opClose, opPing, opPong:
		default:
			return localClose(CloseProtocolError, "reserved opcode") // §5.2
		}
		control := op >= opClose
		length := int64(b1 & 0x7f)
		hlen := 6
		switch length {
		case 126:
			hlen = 8
		case 127:
			hlen = 14
		}
		if control && (!fin || length > maxControl) {
			return localClose(CloseProtocolError, "fragmented or long control frame") // §5.5
		}
		if err := c.fill(hlen); err != nil {
			return err
		}
		h := c.rb[c.r : c.r+hlen]
		switch length {
		case 126:
			length = int64(binary.BigEndian.Uint16(h[2:]))
		case 127:
			v := binary.BigEndian.Uint64(h[2:])
			if v>>63 != 0 {
				return localClose(CloseProtocolError, "frame length out of range") // §5.2
			}
			length = int64(v)
		}
		copy(c.mask[:], h[hlen-4:])
		c.r += hlen
		rsv1 := b0&rsv1Bit != 0
		if control {
			if rsv1 {
				return localClose(CloseProtocolError, "reserved bit on a control frame")
			}
			if err := c.control(op, int(length)); err != nil {
				return err
			}
			continue
		}
		if op == opContinuation {
			if !c.inMsg {
				return localClose(CloseProtocolError, "continuation without a message")
			}
			if rsv1 {
				return localClose(CloseProtocolError, "compression bit on a continuation frame") // RFC 7692 §6.1
			}
		} else {
			if c.inMsg {
				return localClose(CloseProtocolError, "new message inside a fragmented one")
			}
			if rsv1 && !c.deflate {
				return localClose(CloseProtocolError, "compression bit without permessage-deflate")
			}
			c.inMsg = true
			c.msgOp = MessageType(op)
			c.compressed = rsv1
			c.msgRaw, c.msgOut = 0, 0
		}
		if length > c.maxMsg-c.msgRaw {
			return localClose(CloseMessageTooBig, "message too big") // §7.4.1
		}
		c.msgRaw += length
		c.frameRemain, c.frameFin, c.maskPos = length, fin, 0
		return nil
	}
}

// control handles a control frame whose n-byte payload follows in rb.
func (c *Conn) control(op byte, n int) error {
	if err := c.fill(n); err != nil {
		return err
	}
	p := c.ctrl[:n]
	copy(p, c.rb[c.r:c.r+n])
	c.r += n
	ws.Cipher(p, c.mask, 0)
	switch op {
	case opPing:
		return c.writeControl(opPong, p)
	case opPong:
		return nil
	}
	// Close (§5.5.1): check the body, answer it, report it.
	code, reason := CloseNoStatus, ""
	switch {
	case n == 1:
		return localClose(CloseProtocolError, "one-byte close body")
	case n >= 2:
		code = CloseCode(binary.BigEndian.Uint16(p))
		if !validCloseCode(code) {
			return localClose(CloseProtocolError, "invalid close code")
		}
		if !utf8.Valid(p[2:]) {
			return localClose(CloseInvalidPayload, "close reason is not UTF-8")
		}
		reason = string(p[2:])
	}
	pc := &CloseError{Code: code, Reason: reason, Remote: true}
	c.peerClose.Store(pc)
	return pc
}

// validCloseCode reports whether a peer may send code (RFC 6455 §7.4).
func validCloseCode(code CloseCode) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}

// answerClose sends the reply to the peer's close frame: its own code, or
// an empty body for none.
func (c *Conn) answerClose() {
	if pc := c.peerClose.Load(); pc != nil && !c.holdCloseReply {
		c.sendClose(pc.Code, "")
	}
}

// nextMessage reads up to the first frame of the next data message.
func (c *Conn) nextMessage() (MessageType, error) {
	if c.readErr != nil {
		return 0, c.readErr
	}
	for c.inMsg {
		// The previous message was not read to its end: drop the rest.
		if _, err := c.nextData(); err == io.EOF {
			break
		} else if err != nil {
			return 0, c.fail(err)
		}
	}
	if err := c.nextFrame(); err != nil {
		c.answerClose()
		return 0, c.fail(err)
	}
	c.u8 = utf8Stream{}
	if c.compressed {
		c.raw.cur, c.raw.tail, c.raw.err, c.inflateEOF = nil, 0, nil, false
		if c.dbuf == nil {
			c.dbuf = make([]byte, len(c.rb))
		}
		c.inflater = getInflater(&c.raw)
	}
	return c.msgOp, nil
}

// nextData returns the next piece of the current message's payload,
// unmasked and decompressed, valid until the next call; io.EOF at the
// message's end.
func (c *Conn) nextData() ([]byte, error) {
	if c.readErr != nil {
		return nil, c.readErr
	}
	if !c.compressed {
		p, err := c.readChunk()
		if err == io.EOF {
			return nil, c.endMessage()
		}
		if err != nil {
			return nil, c.readFailed(err)
		}
		if c.msgOp == Text && !c.u8.write(p) {
			return nil, c.fail(localClose(CloseInvalidPayload, "text message is not UTF-8"))
		}
		return p, nil
	}
	if c.inflateEOF {
		return nil, c.endMessage()
	}
	n, err := c.inflater.Read(c.dbuf)
	if err == io.EOF {
		c.inflateEOF = true
	} else if err != nil {
		if c.raw.err != nil {
			// The frame layer failed under the decompressor (a close
			// frame, a protocol error, the network); flate passes such
			// errors on, but turns io.EOF into io.ErrUnexpectedEOF.
			return nil, c.readFailed(c.raw.err)
		}
		// Anything else is the decompressor's own verdict on the data:
		// corrupt, or truncated (io.ErrUnexpectedEOF once the message
		// and its tail ran out mid-block).
		return nil, c.fail(localClose(CloseInvalidPayload, "corrupt deflate data"))
	}
	if n == 0 && c.inflateEOF {
		return nil, c.endMessage()
	}
	c.msgOut += int64(n)
	if c.msgOut > c.maxMsg {
		return nil, c.fail(localClose(CloseMessageTooBig, "message too big"))
	}
	p := c.dbuf[:n]
	if c.msgOp == Text && !c.u8.write(p) {
		return nil, c.fail(localClose(CloseInvalidPayload, "text message is not UTF-8"))
	}
	return p, nil
}

// readFailed handles an error from the frame layer inside a message.
func (c *Conn) readFailed(err error) error {
	// A close frame between fragments ends the message too.
	c.answerClose()
	return c.fail(err)
}

// endMessage finishes the current message.
func (c *Conn) endMessage() error {
	if c.compressed {
		// A deflate stream may end (BFINAL) before the frames do: drop
		// the rest, already counted against the limit.
		for c.raw.tail == 0 {
			if _, err := c.raw.next(); err != nil && err != io.EOF {
				return c.readFailed(err)
			} else if err == io.EOF {
				break
			}
		}
		putInflater(c.inflater)
		c.inflater = nil
	}
	c.inMsg = false
	if c.msgOp == Text && !c.u8.done() {
		return c.fail(localClose(CloseInvalidPayload, "text message is not UTF-8"))
	}
	return io.EOF
}

// readChunk returns the next unmasked piece of the message's raw payload
// from rb, reading the next frame header when one frame ends, and io.EOF
// after the final frame. The piece is valid until the next read.
func (c *Conn) readChunk() ([]byte, error) {
	for c.frameRemain == 0 {
		if c.frameFin {
			return nil, io.EOF
		}
		if err := c.nextFrame(); err != nil {
			return nil, err
		}
	}
	if c.r == c.w {
		if err := c.fill(1); err != nil {
			return nil, err
		}
	}
	n := int(min(int64(c.w-c.r), c.frameRemain))
	p := c.rb[c.r : c.r+n]
	ws.Cipher(p, c.mask, c.maskPos)
	c.maskPos += n
	c.r += n
	c.frameRemain -= int64(n)
	return p, nil
}

// rawMsg reads a compressed message's raw payload for the decompressor,
// then the deflate tail. It is an io.ByteReader so that flate needs no
// bufio.Reader of its own.
type rawMsg struct {
	c    *Conn
	cur  []byte
	tail int   // 0 while the payload lasts, then past deflateTail
	err  error // the frame layer's error, if it failed
}

// next refills cur; io.EOF when the payload and the tail are given out.
func (m *rawMsg) next() ([]byte, error) {
	if m.tail == 0 {
		p, err := m.c.readChunk()
		if err == nil {
			return p, nil
		}
		if err != io.EOF {
			m.err = err
			return nil, err
		}
		m.tail = 1 // the payload ended; the tail starts
	}
	if m.tail > len(deflateTail) {
		return nil, io.EOF
	}
	m.tail = len(deflateTail) + 1
	return deflateTailBytes, nil
}

func (m *rawMsg) Read(p []byte) (int, error) {
	for len(m.cur) == 0 {
		b, err := m.next()
		if err != nil {
			return 0, err
		}
		m.cur = b
	}
	n := copy(p, m.cur)
	m.cur = m.cur[n:]
	return n, nil
}

func (m *rawMsg) ReadByte() (byte, error) {
	for len(m.cur) == 0 {
		b, err := m.next()
		if err != nil {
			return 0, err
		}
		m.cur = b
	}
	b := m.cur[0]
	m.cur = m.cur[1:]
	return b, nil
}
