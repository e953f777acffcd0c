package wsbridge

import (
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/portmux/portmux/sniff"
)

// Defaults of the Upgrader's zero fields.
const (
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultMaxHeaderBytes   = 16 << 10
	DefaultMaxMessageSize   = 1 << 20
	DefaultBufferSize       = 32 << 10
	DefaultPingInterval     = 30 * time.Second
	DefaultIdleTimeout      = 75 * time.Second
	DefaultWriteTimeout     = 30 * time.Second
	DefaultCloseTimeout     = 5 * time.Second
)

// Errors of the handshake. A *HandshakeError wraps one of them.
var (
	// ErrBadHandshake: the request is not a valid WebSocket opening
	// handshake (RFC 6455 §4.2.1); answered 400, 426 or 505.
	ErrBadHandshake = errors.New("wsbridge: bad handshake")
	// ErrRefused: the request is valid but the Origin allow-list or the
	// Check hook refused it; answered 403 unless Check chose a status.
	ErrRefused = errors.New("wsbridge: handshake refused")
	// ErrHeaderTooLarge: the request head exceeds MaxHeaderBytes;
	// answered 431.
	ErrHeaderTooLarge = errors.New("wsbridge: request head too large")
	// ErrHandshakeTimeout: the head did not arrive within
	// HandshakeTimeout; the connection is closed without an answer.
	ErrHandshakeTimeout = errors.New("wsbridge: handshake timed out")
)

// HandshakeError is the error Upgrade returns when it refused a request. It
// carries the HTTP status it answered with (0 if it could not answer) and
// wraps ErrBadHandshake, ErrRefused, ErrHeaderTooLarge or
// ErrHandshakeTimeout, or the error returned by Check.
type HandshakeError struct {
	Status int    // the HTTP status written to the client, or 0
	Reason string // the text of the response body
	Err    error
}

func (e *HandshakeError) Error() string {
	if e.Status == 0 {
		return e.Err.Error() + ": " + e.Reason
	}
	return fmt.Sprintf("%v: %d %s", e.Err, e.Status, e.Reason)
}

func (e *HandshakeError) Unwrap() error { return e.Err }

// Refusal is an error a Check hook returns to choose the HTTP status
// (4xx or 5xx) and body of the refusal. Any other error gets 403 with the
// error's text as the body.
type Refusal struct {
	Status int
	Reason string
	Header http.Header // extra response headers, e.g. WWW-Authenticate; may be nil
}

func (r *Refusal) Error() string {
	return fmt.Sprintf("wsbridge: refused with %d: %s", r.Status, r.Reason)
}

// Request is the client's opening handshake, as the Check hook and the
// handler see it. It is not modified after Upgrade returns.
type Request struct {
	Target string // the request-target as sent, e.g. "/vnc?token=x"
	Path   string // Target's path, percent-decoded
	Query  string // Target's raw query, without "?"
	Host   string // the Host header
	Origin string // the Origin header, "" if absent

	// Protocols are the subprotocols the client offered
	// (Sec-WebSocket-Protocol), in its order.
	Protocols []string
	// Header holds every header field, with canonical keys.
	Header http.Header
	// RemoteAddr is the connection's RemoteAddr: for a *mux.Conn with a
	// trusted PROXY header, the client behind the proxy.
	RemoteAddr net.Addr
}

// Upgrader completes WebSocket opening handshakes (RFC 6455 §4.2) on
// connections whose request has not been read yet, or has been read by a
// multiplexer that replays it (such as a *mux.Conn). It also sets the
// limits of the connections it returns. The zero value is ready to use: no
// subprotocols, no compression, any Origin, and the defaults below. An
// Upgrader may be used by many goroutines at once once configured; do not
// change its fields while it is in use.
type Upgrader struct {
	// HandshakeTimeout bounds reading the request head and writing the
	// answer. If zero, DefaultHandshakeTimeout (10 s).
	HandshakeTimeout time.Duration
	// MaxHeaderBytes bounds the request head, request line included;
	// longer heads get 431. If zero, DefaultMaxHeaderBytes (16 KiB).
	MaxHeaderBytes int

	// Protocols are the subprotocols the server speaks, in its order of
	// preference: the first one the client also offered is chosen. A
	// client that offers only others is accepted with no subprotocol
	// (RFC 6455 §4.2.2); refuse it in Check if that is wrong for you.
	Protocols []string
	// Origins, when not empty, is the allow-list of Origin values
	// ("https://example.com", compared without regard to ASCII case);
	// other origins get 403 (RFC 6455 §10.2). A request without Origin
	// comes from a non-browser client and is refused too, unless the list
	// holds "". If empty, any Origin is accepted.
	Origins []string
	// Compression accepts permessage-deflate (RFC 7692) when the client
	// offers it, with no context takeover in either direction so that no
	// compressor state is held between messages. Messages of 128 bytes or
	// more are then sent compressed. Off by default.
	Compression bool
	// Check, if not nil, is called with the request once it has passed
	// the protocol checks and the Origin allow-list; an error refuses the
	// handshake (see Refusal), nil accepts it. It may look at Path, Host,
	// Origin, headers and RemoteAddr. It runs in Upgrade's goroutine, and
	// the HandshakeTimeout deadline still applies to the connection.
	Check func(*Request) error
	// Header holds extra headers for the 101 response (for example
	// Set-Cookie). Upgrade fields set by the handshake take precedence.
	Header http.Header

	// MaxMessageSize bounds a received message, after decompression;
	// larger ones end the connection with close 1009. If zero,
	// DefaultMaxMessageSize (1 MiB).
	MaxMessageSize int64
	// BufferSize is the size of the read buffer of each connection, and
	// of the bridge's buffer for the other direction. If zero,
	// DefaultBufferSize (32 KiB).
	BufferSize int
	// PingInterval: a ping is sent when the client has sent nothing for
	// this long. If zero, DefaultPingInterval (30 s); negative disables
	// pings. One not below IdleTimeout would never be sent before a live
	// but quiet client is dropped, so it is taken as half of IdleTimeout.
	PingInterval time.Duration
	// IdleTimeout: a client that sends nothing, not even a pong, for this
	// long is disconnected (close 1001). If zero, DefaultIdleTimeout
	// (75 s), which lets a live client answer two pings. It cannot be
	// disabled: with pings, only dead clients reach it. Both clocks run
	// only while the connection is being read (ReadMessage, or the bridge
	// waiting for the client): time a busy handler spends between reads
	// does not count as the client's silence.
	IdleTimeout time.Duration
	// WriteTimeout bounds each write to the client. If zero,
	// DefaultWriteTimeout (30 s).
	WriteTimeout time.Duration
	// CloseTimeout bounds the closing handshake: how long to wait for the
	// peer's close frame after sending ours. If zero, DefaultCloseTimeout
	// (5 s).
	CloseTimeout time.Duration

	// Logger, if not nil, receives refused handshakes at debug level.
	Logger *slog.Logger
}

func (u *Upgrader) handshakeTimeout() time.Duration {
	if u.HandshakeTimeout > 0 {
		return u.HandshakeTimeout
	}
	return DefaultHandshakeTimeout
}

func (u *Upgrader) maxHeaderBytes() int {
	if u.MaxHeaderBytes > 0 {
		return u.MaxHeaderBytes
	}
	return DefaultMaxHeaderBytes
}

func (u *Upgrader) maxMessageSize() int64 {
	if u.MaxMessageSize > 0 {
		return u.MaxMessageSize
	}
	return DefaultMaxMessageSize
}

func (u *Upgrader) bufferSize() int {
	if u.BufferSize > 0 {
		return max(u.BufferSize, 256)
	}
	return DefaultBufferSize
}

func (u *Upgrader) pingInterval() time.Duration {
	switch {
	case u.PingInterval < 0:
		return 0
	case u.PingInterval > 0:
		return u.PingInterval
	}
	return DefaultPingInterval
}

func (u *Upgrader) idleTimeout() time.Duration {
	if u.IdleTimeout > 0 {
		return u.IdleTimeout
	}
	return DefaultIdleTimeout
}

func (u *Upgrader) writeTimeout() time.Duration {
	if u.WriteTimeout > 0 {
		return u.WriteTimeout
	}
	return DefaultWriteTimeout
}

func (u *Upgrader) closeTimeout() time.Duration {
	if u.CloseTimeout > 0 {
		return u.CloseTimeout
	}
	return DefaultCloseTimeout
}

// Upgrade reads the opening handshake from c, checks it and answers it.
// On success it returns a *Conn that owns c: bytes the client sent after
// its handshake (its first frames, even before it saw the 101) are kept
// for the Conn's first reads. On failure it has written the HTTP answer
// the defect calls for (400, 403, 405 with Allow: GET, 426 with
// Sec-WebSocket-Version: 13, 431, 505, or the Check hook's status), closed
// c after a short lingering drain, and returns a *HandshakeError. Either
// way, the caller no longer closes c itself except through the returned
// Conn.
func (u *Upgrader) Upgrade(c net.Conn) (*Conn, error) {
	deadline := time.Now().Add(u.handshakeTimeout())
	c.SetDeadline(deadline)
	limit := u.maxHeaderBytes()
	rbSize := u.bufferSize()
	// The head is read into what becomes the Conn's read buffer, so the
	// bytes behind the head are already where the frame reader looks.
	buf := make([]byte, max(rbSize, limit))
	var h sniff.HTTP1Head
	n := 0
	for {
		// n < limit here: limit bytes without a whole head are TooLarge.
		m, err := c.Read(buf[n:limit])
		n += m
		// sniff parses all or nothing, so the bytes so far are parsed again
		// after each read. A verdict other than NeedMore is final, and may
		// come before the head ends (a broken request line, a bare LF).
		h.Parse(buf[:n], limit)
		if h.Verdict != sniff.NeedMore {
			break
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				err = ErrHandshakeTimeout
			}
			c.Close()
			return nil, &HandshakeError{Reason: "reading the request head", Err: err}
		}
	}
	req, hs, herr := u.check(&h)
	if herr != nil {
		return nil, u.refuse(c, herr.Status, herr.Reason, herr.header, herr.Err)
	}
	req.RemoteAddr = c.RemoteAddr()
	if len(u.Origins) > 0 && !u.originAllowed(req.Origin) {
		return nil, u.refuse(c, http.StatusForbidden, "origin not allowed", nil, ErrRefused)
	}
	if u.Check != nil {
		if err := u.Check(req); err != nil {
			var r *Refusal
			if errors.As(err, &r) && r.Status >= 400 && r.Status <= 599 {
				return nil, u.refuse(c, r.Status, r.Reason, r.Header, err)
			}
			return nil, u.refuse(c, http.StatusForbidden, err.Error(), nil, fmt.Errorf("%w: %w", ErrRefused, err))
		}
	}
	resp := u.appendAccept(make([]byte, 0, 256), hs)
	if _, err := c.Write(resp); err != nil {
		c.Close()
		return nil, &HandshakeError{Reason: "writing the 101 response", Err: err}
	}
	c.SetDeadline(time.Time{})
	// Move what followed the head to the front: the client's first frames.
	rest := copy(buf, buf[h.HeadLen:n])
	if len(buf) > rbSize {
		// A large head limit must not make every connection's buffer large.
		small := make([]byte, max(rbSize, rest))
		copy(small, buf[:rest])
		buf = small
	}
	return newConn(c, u, req, hs, buf, rest), nil
}

// negotiated is what the handshake agreed beyond the defaults.
type negotiated struct {
	key      string // Sec-WebSocket-Key
	protocol string
	deflate  bool
	// deflateExt is the permessage-deflate response, when deflate.
	deflateExt string
}

// parseError is a refusal that check found.
type parseError struct {
	Status int
	Reason string
	Err    error
	header http.Header
}

func bad(reason string) *parseError {
	return &parseError{Status: http.StatusBadRequest, Reason: reason, Err: ErrBadHandshake}
}

// check answers a head that sniff has given its verdict on: a refusal if
// it is no HTTP/1 request, breaks RFC 9112 or is not a valid opening
// handshake (RFC 6455 §4.2.1), else the Request and what was negotiated.
// sniff has checked the request line, the field syntax, that an HTTP/1.1
// request has one Host (RFC 9112 §3.2), and the syntax of Content-Length
// and Upgrade.
func (u *Upgrader) check(h *sniff.HTTP1Head) (*Request, negotiated, *parseError) {
	var hs negotiated
	switch h.Verdict {
	case sniff.TooLarge:
		return nil, hs, &parseError{Status: http.StatusRequestHeaderFieldsTooLarge, Reason: "request head too large", Err: ErrHeaderTooLarge}
	case sniff.NoMatch:
		return nil, hs, bad("malformed request line")
	case sniff.Malformed:
		reason := strings.TrimPrefix(h.Err.Error(), "sniff: ")
		if h.Err == sniff.ErrVersion {
			// RFC 9110 §15.6.6: only HTTP/1.x speaks this handshake.
			return nil, hs, &parseError{Status: http.StatusHTTPVersionNotSupported, Reason: reason, Err: ErrBadHandshake}
		}
		return nil, hs, bad(reason)
	}
	// RFC 6455 §4.1: a GET of HTTP/1.1 or later.
	if h.Minor < 1 {
		return nil, hs, bad("WebSocket needs HTTP/1.1 or later")
	}
	if string(h.Method) != http.MethodGet {
		pe := &parseError{Status: http.StatusMethodNotAllowed, Reason: "WebSocket handshakes use GET", Err: ErrBadHandshake}
		pe.header = http.Header{"Allow": {"GET"}}
		return nil, hs, pe
	}
	target := string(h.Target)
	u2, err := url.ParseRequestURI(target)
	if err != nil {
		return nil, hs, bad("malformed request target")
	}
	// A handshake has no body (RFC 6455 §4.1): bytes announced as one
	// would be taken for frames.
	if h.TransferEncoding || h.ContentLength > 0 {
		return nil, hs, bad("a handshake has no body")
	}
	// UpgradeTo needs both the token and the Connection option.
	if !h.UpgradeTo("websocket") {
		if h.Conn&sniff.ConnUpgrade == 0 {
			return nil, hs, bad("Connection does not name upgrade")
		}
		return nil, hs, bad("Upgrade does not name websocket")
	}

	header := headerOf(h)
	// sniff has checked that there is one Host.
	req := &Request{Target: target, Path: u2.Path, Query: u2.RawQuery, Host: header.Get("Host"), Header: header}
	switch h.WebSocket() {
	case nil:
	case sniff.ErrWSKey:
		return nil, hs, bad("want one Sec-WebSocket-Key of 16 bytes in base64")
	default: // sniff.ErrWSVersion: the upgrade and the method are checked above
		if len(header["Sec-Websocket-Version"]) == 0 {
			// RFC 6455 §4.2.2: a 400 for a missing version names ours too.
			pe := bad("missing Sec-WebSocket-Version")
			pe.header = http.Header{"Sec-Websocket-Version": {"13"}}
			return nil, hs, pe
		}
		// RFC 6455 §4.2.2 and §4.4: name the version we speak.
		pe := &parseError{Status: http.StatusUpgradeRequired, Reason: "unsupported WebSocket version", Err: ErrBadHandshake}
		pe.header = http.Header{"Sec-Websocket-Version": {"13"}, "Upgrade": {"websocket"}}
		return nil, hs, pe
	}
	hs.key = header.Get("Sec-Websocket-Key") // the only one: WebSocket checked that
	if o := header["Origin"]; len(o) > 1 {
		return nil, hs, bad("more than one Origin")
	} else if len(o) == 1 {
		req.Origin = o[0]
	}
	for _, v := range header["Sec-Websocket-Protocol"] {
		for p := range strings.SplitSeq(v, ",") {
			p = strings.Trim(p, " \t")
			if p == "" {
				continue
			}
			if !sniff.IsToken([]byte(p)) {
				return nil, hs, bad("malformed Sec-WebSocket-Protocol")
			}
			req.Protocols = append(req.Protocols, p)
		}
	}
pick:
	for _, want := range u.Protocols {
		for _, p := range req.Protocols {
			if p == want {
				hs.protocol = p
				break pick
			}
		}
	}
	if u.Compression {
		ext, err := acceptDeflate(header["Sec-Websocket-Extensions"])
		if err != nil {
			return nil, hs, bad(err.Error())
		}
		hs.deflate, hs.deflateExt = ext != "", ext
	}
	return req, hs, nil
}

// headerOf returns the fields of h as an http.Header with canonical keys,
// in the order sent. As net/textproto's reader does, it copies every name
// and value into one string and the values into one []string, so that a
// head costs a few allocations rather than three or four per field.
func headerOf(h *sniff.HTTP1Head) http.Header {
	var sb strings.Builder
	sb.Grow(h.HeadLen)
	n := 0
	for name, value := range h.Fields() {
		sb.Write(name)
		sb.Write(value)
		n++
	}
	s := sb.String()
	header := make(http.Header, n)
	strs := make([]string, n)
	for name, value := range h.Fields() {
		// A name that is canonical already is returned as is, still in s.
		k := textproto.CanonicalMIMEHeaderKey(s[:len(name)])
		v := s[len(name) : len(name)+len(value)]
		s = s[len(name)+len(value):]
		if vv := header[k]; vv != nil {
			header[k] = append(vv, v)
		} else {
			strs[0] = v
			header[k], strs = strs[:1:1], strs[1:]
		}
	}
	return header
}

// originAllowed reports whether origin is in the allow-list, folding only
// ASCII case: an origin's scheme and host are ASCII (RFC 6454 §6.2), and
// Unicode folding would let bytes no browser sends for them, such as "ſ"
// for "s", match an entry.
func (u *Upgrader) originAllowed(origin string) bool {
	b := []byte(origin)
	for _, o := range u.Origins {
		if sniff.EqualFold(b, o) {
			return true
		}
	}
	return false
}

// wsGUID is the fixed string of RFC 6455 §1.3.
const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// AcceptKey computes Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC
// 6455 §4.2.2).
func AcceptKey(key string) string {
	h := sha1.New()
	io.WriteString(h, key)
	io.WriteString(h, wsGUID)
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

func (u *Upgrader) appendAccept(b []byte, hs negotiated) []byte {
	b = append(b, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "...)
	b = append(b, AcceptKey(hs.key)...)
	b = append(b, "\r\n"...)
	if hs.protocol != "" {
		b = append(b, "Sec-WebSocket-Protocol: "...)
		b = append(b, hs.protocol...)
		b = append(b, "\r\n"...)
	}
	if hs.deflate {
		b = append(b, "Sec-WebSocket-Extensions: "...)
		b = append(b, hs.deflateExt...)
		b = append(b, "\r\n"...)
	}
	for k, vs := range u.Header {
		switch textproto.CanonicalMIMEHeaderKey(k) {
		case "Upgrade", "Sec-Websocket-Accept", "Sec-Websocket-Protocol", "Sec-Websocket-Extensions":
			continue
		}
		b = appendHeader(b, k, vs)
	}
	return append(b, "\r\n"...)
}

// appendHeader appends header lines, dropping CR and LF from values so
// that a value cannot start a new field, and skipping names that are not
// tokens and the fields that frame the message, which this package writes.
func appendHeader(b []byte, k string, vs []string) []byte {
	if !sniff.IsToken([]byte(k)) {
		return b
	}
	switch textproto.CanonicalMIMEHeaderKey(k) {
	case "Content-Length", "Transfer-Encoding", "Connection":
		return b
	}
	for _, v := range vs {
		b = append(b, k...)
		b = append(b, ": "...)
		for i := 0; i < len(v); i++ {
			if v[i] != '\r' && v[i] != '\n' {
				b = append(b, v[i])
			}
		}
		b = append(b, "\r\n"...)
	}
	return b
}

// refuse writes an HTTP error answer, closes c after a lingering drain so
// that the client reads the answer rather than a reset, and returns the
// error for Upgrade.
func (u *Upgrader) refuse(c net.Conn, status int, reason string, header http.Header, err error) error {
	body := reason + "\n"
	b := make([]byte, 0, 256+len(body))
	b = fmt.Appendf(b, "HTTP/1.1 %d %s\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %s\r\n",
		status, http.StatusText(status), strconv.Itoa(len(body)))
	for k, vs := range header {
		b = appendHeader(b, k, vs)
	}
	b = append(b, "\r\n"...)
	b = append(b, body...)
	c.SetWriteDeadline(time.Now().Add(u.handshakeTimeout()))
	c.Write(b)
	lingerClose(c, time.Second)
	if u.Logger != nil {
		u.Logger.Debug("wsbridge: handshake refused", "remote", c.RemoteAddr(), "status", status, "reason", reason)
	}
	return &HandshakeError{Status: status, Reason: reason, Err: err}
}

// closeWriter finds CloseWrite on c or on the connection it wraps
// (NetConn, as *mux.Conn and *tls.Conn have).
func closeWrite(c net.Conn) error {
	for range 4 {
		if cw, ok := c.(interface{ CloseWrite() error }); ok {
			return cw.CloseWrite()
		}
		u, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		c = u.NetConn()
	}
	return errors.ErrUnsupported
}

// lingerClose half-closes c, then discards what the peer still sends, for
// at most d and 256 KiB, and closes it: closing a socket with unread input
// sends a reset that can destroy the answer before the peer reads it.
func lingerClose(c net.Conn, d time.Duration) {
	if closeWrite(c) == nil {
		c.SetReadDeadline(time.Now().Add(d))
		var b [2048]byte
		for total := 0; total < 256<<10; {
			n, err := c.Read(b[:])
			total += n
			if err != nil {
				break
			}
		}
	}
	c.Close()
}
