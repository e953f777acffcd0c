package loadgen

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"

	"github.com/portmux/portmux/sniff"
)

// Limits of the HTTP/1 response reader.
const (
	h1BufSize = 4 << 10  // the read buffer each connection starts with
	maxHead   = 64 << 10 // a response head (status line and headers) larger than this is a protocol error
	maxLine   = 4 << 10  // a chunk-size or trailer line
)

// buildHTTP1Request returns the bytes of the one request that every worker
// of an HTTP/1 mode sends, built once.
func buildHTTP1Request(s *settings) []byte {
	var b bytes.Buffer
	method := "GET"
	if s.Size > 0 && s.Mode != Upgrade426 {
		method = "POST"
	}
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: portmux-bench\r\n", method, s.path, s.hostHdr)
	if s.Mode == HTTP1 {
		b.WriteString("Connection: close\r\n")
	}
	if method == "POST" {
		fmt.Fprintf(&b, "Content-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n", s.Size)
		b.Write(bytes.Repeat([]byte{'x'}, s.Size))
	} else {
		b.WriteString("\r\n")
	}
	return b.Bytes()
}

// Phases of h1Parser.
const (
	phHead      = iota // waiting for a whole head
	phLength           // body of known length
	phChunkSize        // a chunk-size line
	phChunkData        // chunk data
	phChunkEnd         // the CRLF after chunk data
	phTrailer          // trailer lines up to the blank one
	phToEOF            // a body that runs to the end of the connection
	phDone
)

// h1Parser reads one HTTP/1.x response incrementally (RFC 9112): the head,
// interim 1xx responses, and a body framed by Content-Length, chunked
// coding, or the end of the connection. It never copies: the caller
// feeds it the bytes it has, and keeps what feed did not consume in front
// of the next bytes it reads. Bodies are skipped, not kept.
type h1Parser struct {
	tokens []string // Upgrade tokens to look for
	phase  int
	left   int64 // bytes left in the body or chunk
	head   respHead
}

func (p *h1Parser) reset(tokens []string) {
	*p = h1Parser{tokens: tokens}
}

// feed consumes what it can of b and reports how many bytes that was and
// whether the response is complete. A head, chunk-size line or trailer
// line is consumed only once whole; if b is full (as large as the caller's
// buffer can get) without one, the caller should fail with errTooLong.
func (p *h1Parser) feed(b []byte) (n int, done bool, err error) {
	for n < len(b) || p.phase == phDone {
		rest := b[n:]
		switch p.phase {
		case phDone:
			return n, true, nil
		case phHead:
			i := bytes.Index(rest, crlfcrlf)
			if i < 0 {
				// A bare LF, or a CR before anything but LF, means the
				// CRLF CRLF will never come (RFC 9112 §2.2): fail now,
				// not at the timeout.
				if bareEOL(rest) {
					return n, false, protoErr("bare CR or LF in the response head")
				}
				return n, false, nil
			}
			if err := parseRespHead(rest[:i+4], &p.head, p.tokens); err != nil {
				return n, false, err
			}
			n += i + 4
			h := &p.head
			switch {
			case h.status >= 100 && h.status < 200 && h.status != 101:
				// Interim (RFC 9110 §15.2): the real response follows.
			case h.status < 200 || h.status == 204 || h.status == 304:
				h.framed = true
				p.phase = phDone
			case h.chunked:
				h.framed = true
				p.phase = phChunkSize
			case h.contentLength >= 0:
				h.framed = true
				p.phase, p.left = phLength, h.contentLength
				if p.left == 0 {
					p.phase = phDone
				}
			default:
				p.phase = phToEOF
			}
		case phLength, phChunkData:
			k := int(min(int64(len(rest)), p.left))
			n += k
			p.left -= int64(k)
			if p.left == 0 {
				if p.phase == phLength {
					p.phase = phDone
				} else {
					p.phase = phChunkEnd
				}
			}
		case phChunkEnd:
			if len(rest) < 2 {
				return n, false, nil
			}
			if rest[0] != '\r' || rest[1] != '\n' {
				return n, false, protoErr("chunk data longer than its size")
			}
			n += 2
			p.phase = phChunkSize
		case phChunkSize, phTrailer:
			// A line is too long the same whether its CRLF has arrived
			// or not: the outcome must not depend on how bytes arrive.
			i := bytes.Index(rest, crlf)
			if i < 0 {
				if len(rest) > maxLine+1 || len(rest) == maxLine+1 && rest[maxLine] != '\r' {
					return n, false, errTooLong
				}
				return n, false, nil
			}
			if i > maxLine {
				return n, false, errTooLong
			}
			line := rest[:i]
			n += i + 2
			if p.phase == phTrailer {
				if len(line) == 0 {
					p.phase = phDone
				} else if _, _, err := splitField(line); err != nil {
					return n, false, err
				}
				continue
			}
			size, err := parseChunkSize(line)
			if err != nil {
				return n, false, err
			}
			p.phase, p.left = phChunkData, size
			if size == 0 {
				p.phase = phTrailer
			}
		case phToEOF:
			n = len(b)
		}
	}
	return n, false, nil
}

// eof tells the parser that the connection ended; it reports whether that
// completes the response.
func (p *h1Parser) eof() bool {
	if p.phase == phToEOF {
		p.phase = phDone
	}
	return p.phase == phDone
}

// bareEOL reports whether b, the start of a head, has a LF not preceded
// by CR or a CR followed by a byte other than LF. A CR as b's last byte
// is undecided: its LF may be next.
func bareEOL(b []byte) bool {
	for i, c := range b {
		switch {
		case c == '\n' && (i == 0 || b[i-1] != '\r'):
			return true
		case c == '\r' && i+1 < len(b) && b[i+1] != '\n':
			return true
		}
	}
	return false
}

func parseChunkSize(line []byte) (int64, error) {
	if i := bytes.IndexByte(line, ';'); i >= 0 {
		if !fieldValue(line[i:]) {
			return 0, protoErr("bad chunk extension %q", trunc(line))
		}
		line = line[:i] // chunk extensions
	}
	line = bytes.TrimRight(line, " \t")
	if len(line) == 0 || len(line) > 15 {
		return 0, protoErr("bad chunk size %q", trunc(line))
	}
	var size int64
	for _, b := range line {
		d := unhex(b)
		if d < 0 {
			return 0, protoErr("bad chunk size %q", trunc(line))
		}
		size = size<<4 | int64(d)
	}
	return size, nil
}

// check applies the mode's verdict to a complete response; keep says
// whether the connection may carry another request, which it may after a
// bad status too.
func (p *h1Parser) check(s *settings) (keep bool, err error) {
	h := &p.head
	if s.Mode == Upgrade426 {
		switch {
		case h.status != 426:
			return false, &Error{KindBadStatus, fmt.Errorf("status %d, want 426", h.status)}
		case !h.upgradeSeen:
			return false, &Error{KindBadHeader, errors.New("426 without an Upgrade header")}
		case h.upgradeFound != 1<<len(s.UpgradeTokens)-1:
			return false, &Error{KindBadHeader, fmt.Errorf("426 Upgrade header misses %s", missingTokens(h.upgradeFound, s.UpgradeTokens))}
		case !h.connUpgrade || !h.connClose:
			return false, &Error{KindBadHeader, errors.New("426 Connection header lacks upgrade or close")}
		}
		return false, nil
	}
	keep = s.Mode == HTTP1KeepAlive && !h.connClose && h.framed && (h.minor >= 1 || h.connKeepAlive)
	if h.status < 200 || h.status > 399 {
		// A well-framed error response leaves the connection usable,
		// as wrk treats it: the next request goes on it.
		return keep, &Error{KindBadStatus, fmt.Errorf("status %d", h.status)}
	}
	return keep, nil
}

func missingTokens(found uint64, tokens []string) string {
	var b bytes.Buffer
	for i, t := range tokens {
		if found&(1<<i) == 0 {
			if b.Len() > 0 {
				b.WriteString(", ")
			}
			b.WriteString(strconv.Quote(t))
		}
	}
	return b.String()
}

var (
	errTooLong = protoErr("response head or line too long")
	crlfcrlf   = []byte("\r\n\r\n")
	crlf       = []byte("\r\n")
)

// h1Client is a worker's HTTP/1 side on a goroutine of its own: for
// HTTP1KeepAlive everywhere, and for HTTP1 and Upgrade426 where the
// event loop (h1loop_linux.go) is not used. It reads into one reusable
// buffer and parses with h1Parser, so a request costs no allocation
// beyond the connection's own.
type h1Client struct {
	w      *worker
	req    []byte
	conn   net.Conn
	p      h1Parser
	buf    []byte
	rd, wr int // buf[rd:wr] is read but not consumed
	recv   int // bytes read for the current request
}

func newH1Client(w *worker, req []byte) *h1Client {
	return &h1Client{w: w, req: req, buf: make([]byte, h1BufSize)}
}

func (c *h1Client) close() {
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
		c.w.track(nil)
	}
}

func (c *h1Client) do() error {
	reused := c.conn != nil
	err := c.roundTrip()
	if err != nil && reused && c.recv == 0 && !c.w.r.over() && (errors.Is(err, io.EOF) || kindOf(err) == KindReset) {
		// The server closed the idle connection before it saw this
		// request (RFC 9112 §9.3.1 allows it): retry once, on a new one.
		err = c.roundTrip()
	}
	return err
}

// roundTrip sends the request and reads the whole response, on the
// worker's connection or a new one.
func (c *h1Client) roundTrip() error {
	c.recv = 0
	if c.conn == nil {
		t0 := time.Now()
		conn, err := c.w.dial()
		if err != nil {
			return err
		}
		c.w.connected(time.Since(t0))
		c.conn = conn
		c.rd, c.wr = 0, 0
		if !c.w.track(conn) {
			c.close()
			return net.ErrClosed
		}
	}
	keep, err := c.exchange() // keep is false after any error but a bad status
	c.w.recv.Add(uint64(c.recv))
	if !keep {
		c.close()
	}
	return err
}

func (c *h1Client) exchange() (keep bool, err error) {
	s := c.w.r.s
	if err := c.w.setDeadline(c.conn, s.Timeout); err != nil {
		return false, err
	}
	n, err := c.conn.Write(c.req)
	c.w.sent.Add(uint64(n))
	if err != nil {
		return false, err
	}
	c.p.reset(s.UpgradeTokens)
	for {
		n, done, err := c.p.feed(c.buf[c.rd:c.wr])
		c.rd += n
		if err != nil {
			return false, err
		}
		if done {
			break
		}
		if err := c.fill(); err != nil {
			if err == io.EOF && c.p.eof() {
				break
			}
			if err == io.EOF && c.recv > 0 {
				err = io.ErrUnexpectedEOF
			}
			return false, err
		}
	}
	c.w.status[c.p.head.status]++
	if keep, err = c.p.check(s); keep && c.rd < c.wr {
		return false, protoErr("%d bytes after the response", c.wr-c.rd)
	}
	return keep, err
}

// fill reads more bytes into the buffer, moving unconsumed bytes to its
// front and growing it up to maxHead if they fill it.
func (c *h1Client) fill() error {
	if c.rd > 0 {
		c.wr = copy(c.buf, c.buf[c.rd:c.wr])
		c.rd = 0
	}
	if c.wr == len(c.buf) {
		if len(c.buf) >= maxHead {
			return errTooLong
		}
		nb := make([]byte, min(2*len(c.buf), maxHead))
		copy(nb, c.buf[:c.wr])
		c.buf = nb
	}
	n, err := c.conn.Read(c.buf[c.wr:])
	c.wr += n
	c.recv += n
	if n > 0 {
		return nil
	}
	return err
}

func unhex(b byte) int {
	switch {
	case '0' <= b && b <= '9':
		return int(b - '0')
	case 'a' <= b && b <= 'f':
		return int(b-'a') + 10
	case 'A' <= b && b <= 'F':
		return int(b-'A') + 10
	}
	return -1
}

// respHead is what the modes need from a response head.
type respHead struct {
	minor         int // HTTP/1.minor
	status        int
	contentLength int64 // -1 if absent
	chunked       bool
	connClose     bool
	connUpgrade   bool
	connKeepAlive bool
	upgradeSeen   bool
	upgradeFound  uint64 // bit i: tokens[i] named in Upgrade
	framed        bool   // the body's end is known without closing (set by readBody)
}

// parseRespHead parses a response head that ends with CRLF CRLF (RFC 9112
// §4, §5) into h, noting which of tokens the Upgrade header names.
func parseRespHead(b []byte, h *respHead, tokens []string) error {
	*h = respHead{contentLength: -1}
	i := bytes.Index(b, crlf)
	line := b[:i]
	b = b[i+2:]
	// HTTP/1.x SP 3DIGIT SP reason
	if len(line) < 12 || string(line[:7]) != "HTTP/1." || line[7] < '0' || line[7] > '9' || line[8] != ' ' ||
		(len(line) > 12 && line[12] != ' ') || !fieldValue(line[12:]) {
		return protoErr("bad status line %q", trunc(line))
	}
	h.minor = int(line[7] - '0')
	for _, d := range line[9:12] {
		if d < '0' || d > '9' {
			return protoErr("bad status line %q", trunc(line))
		}
		h.status = h.status*10 + int(d-'0')
	}
	if h.status < 100 || h.status > 599 { // RFC 9110 §15
		return protoErr("status %d outside 100-599", h.status)
	}
	te := false // a Transfer-Encoding line was seen
	for len(b) > 2 {
		i := bytes.Index(b, crlf)
		line, b = b[:i], b[i+2:]
		name, value, err := splitField(line)
		if err != nil {
			return err
		}
		switch {
		case sniff.EqualFold(name, "content-length"):
			// The same value repeated, in a list or on several lines,
			// is that value (RFC 9110 §8.6); different ones are not.
			for v := range bytes.SplitSeq(value, []byte(",")) {
				n, ok := parseDecimal(bytes.Trim(v, " \t"))
				if !ok || (h.contentLength >= 0 && h.contentLength != n) {
					return protoErr("bad Content-Length %q", trunc(value))
				}
				h.contentLength = n
			}
		case sniff.EqualFold(name, "transfer-encoding"):
			// A list, whose lines make one (RFC 9110 §5.3): chunked must
			// come last, and once (RFC 9112 §7). A response whose last
			// coding is not chunked runs to the close (§6.3), which is
			// no measurement: it is rejected below.
			te = true
			for t := range bytes.SplitSeq(value, []byte(",")) {
				t = bytes.Trim(t, " \t")
				if len(t) == 0 {
					continue // empty elements are allowed (RFC 9110 §5.6.1)
				}
				if h.chunked {
					return protoErr("Transfer-Encoding: chunked is not the final coding (%q)", trunc(value))
				}
				h.chunked = sniff.EqualFold(t, "chunked")
			}
		case sniff.EqualFold(name, "connection"):
			for t := range bytes.SplitSeq(value, []byte(",")) {
				t = bytes.Trim(t, " \t")
				switch {
				case sniff.EqualFold(t, "close"):
					h.connClose = true
				case sniff.EqualFold(t, "upgrade"):
					h.connUpgrade = true
				case sniff.EqualFold(t, "keep-alive"):
					h.connKeepAlive = true
				}
			}
		case sniff.EqualFold(name, "upgrade"):
			h.upgradeSeen = true
			for t := range bytes.SplitSeq(value, []byte(",")) {
				t = bytes.Trim(t, " \t")
				for k, want := range tokens {
					if sniff.EqualFold(t, want) {
						h.upgradeFound |= 1 << k
					}
				}
			}
		}
	}
	switch {
	case te && !h.chunked:
		return protoErr("unsupported Transfer-Encoding: the final coding is not chunked")
	case te && h.contentLength >= 0:
		// A reader that went by the length would frame it differently:
		// RFC 9112 §6.3 says to handle it as an error, and the
		// connection cannot be kept.
		return protoErr("both Content-Length and Transfer-Encoding")
	case te && h.minor == 0:
		return protoErr("Transfer-Encoding in an HTTP/1.0 response") // RFC 9112 §6.1
	}
	return nil
}

// splitField splits a field line (RFC 9112 §5) into its name, a token,
// and its value without the whitespace around it. Whitespace before the
// colon, a line folded onto the one before (which starts with
// whitespace), a bare CR or LF or another control byte but HTAB are
// malformed: a reader that let them pass would frame the message
// differently from one that did not (§5.1, §5.2; RFC 9110 §5.5).
func splitField(line []byte) (name, value []byte, err error) {
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 {
		return nil, nil, protoErr("bad header line %q", trunc(line))
	}
	name, value = line[:colon], line[colon+1:]
	for _, c := range name {
		if !isTchar[c] {
			return nil, nil, protoErr("bad header name %q", trunc(line))
		}
	}
	if !fieldValue(value) {
		return nil, nil, protoErr("control byte in header %q", trunc(line))
	}
	return name, bytes.Trim(value, " \t"), nil
}

// fieldValue reports whether b holds no control byte but HTAB.
func fieldValue(b []byte) bool {
	for _, c := range b {
		if c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// isTchar holds the bytes of a token (RFC 9110 §5.6.2).
var isTchar = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

func parseDecimal(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, d := range b {
		if d < '0' || d > '9' {
			return 0, false
		}
		n = n*10 + int64(d-'0')
	}
	return n, true
}

func trunc(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}
