package loadgen

import (
	"bytes"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// parseOutcome is all that h1Parser tells a reader about one input.
type parseOutcome struct {
	consumed int
	done     bool // complete without the end of the connection
	atEOF    bool // complete at the end of the connection
	kind     ErrorKind
	failed   bool
	head     respHead
}

// parseSplit feeds in to a parser as a reader would, the bytes arriving
// in the pieces that cuts (increasing offsets into in) make, in a buffer
// that holds at most maxHead unconsumed bytes, as the clients' do.
func parseSplit(in []byte, cuts []int) parseOutcome {
	var p h1Parser
	p.reset([]string{"websocket", "h2c"})
	var o parseOutcome
	var buf []byte
	next := 0 // in[next:] has not arrived yet
	for _, end := range append(cuts, len(in)) {
		for next < end {
			k := min(end-next, maxHead-len(buf))
			if k == 0 {
				o.failed, o.kind = true, kindOf(errTooLong)
				return o
			}
			buf = append(buf, in[next:next+k]...)
			next += k
			n, done, err := p.feed(buf)
			o.consumed += n
			buf = buf[n:]
			switch {
			case err != nil:
				o.failed, o.kind = true, kindOf(err)
				return o
			case done:
				o.done, o.head = true, p.head
				return o
			}
		}
	}
	o.atEOF, o.head = p.eof(), p.head
	return o
}

// everySplit checks that in parses the same whether it arrives whole, a
// byte at a time, or in two pieces cut anywhere, and returns the outcome.
func everySplit(t testing.TB, in []byte) parseOutcome {
	t.Helper()
	want := parseSplit(in, nil)
	bytewise := make([]int, 0, len(in))
	for i := 1; i < len(in); i++ {
		bytewise = append(bytewise, i)
	}
	if got := parseSplit(in, bytewise); got != want {
		t.Fatalf("%q: a byte at a time: %+v; whole: %+v", trunc(in), got, want)
	}
	for i := 1; i < len(in); i++ {
		if got := parseSplit(in, []int{i}); got != want {
			t.Fatalf("%q: cut at %d: %+v; whole: %+v", trunc(in), i, got, want)
		}
	}
	return want
}

// The inputs of the parser tests, good and bad, for the split and fuzz
// tests to share.
var h1Inputs = []string{
	"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
	"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhiHTTP/1.1",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\nA\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\n",
	"HTTP/1.1 200 OK\r\nContent-Length: 99\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
	"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx",
	"HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n",
	"HTTP/1.0 200 OK\r\n\r\nbody until the end",
	"HTTP/1.1 426 Upgrade Required\r\nUpgrade: WebSocket, h2c\r\nConnection: Upgrade, close\r\nContent-Length: 3\r\n\r\nno\n",
	"HTTP/1.1 404 Not Found\r\nConnection: keep-alive\r\nContent-Length: 9\r\n\r\nnot found",
	"HTTP/1.1 200 \r\nX-Empty:\r\nContent-Length: 0\r\n\r\n",
	"HTTP/2 200 OK\r\n\r\n",
	"HTTP/1.1 20 OK\r\n\r\n",
	"HTTP/1.1 200OK\r\n\r\n",
	"FOO\r\n\r\n",
	"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
	"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
	"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n0\r\n\r\n",
	// Framing that a lenient reader would get wrong (RFC 9112 §2.2, §5).
	"HTTP/1.1 200 OK\nContent-Length: 5\r\n\r\nhello",
	"HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\nhello",
	"HTTP/1.1 200 OK\r\nX: a\r\n Content-Length: 5\r\n\r\nhello",
	"HTTP/1.1 200 OK\r\nX: a\rContent-Length: 5\r\n\r\nhello",
	"HTTP/1.1 200 O\rK\r\nContent-Length: 5\r\n\r\nhello",
	"HTTP/1.1 200 OK\r\nX: a\x00b\r\nContent-Length: 5\r\n\r\nhello",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;a\nb\r\nhello\r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T\n: 1\r\n\r\n",
	// Lines just within and just beyond maxLine.
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: " + strings.Repeat("t", maxLine-3) + "\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: " + strings.Repeat("t", maxLine-2) + "\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;" + strings.Repeat("e", maxLine-2) + "\r\nx\r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;" + strings.Repeat("e", maxLine-1) + "\r\nx\r\n0\r\n\r\n",
}

// TestH1ParserSplits drives every input through every way of cutting it
// in two, and a byte at a time: the outcome must not depend on how the
// bytes arrive.
func TestH1ParserSplits(t *testing.T) {
	for _, in := range h1Inputs {
		everySplit(t, []byte(in))
	}
}

// TestH1ParserStrict: a head with a bare CR or LF, whitespace before a
// field's colon, a folded line or a control byte is malformed, and so
// are such trailer and chunk lines; a trailer or chunk line longer than
// maxLine is too long however it arrives.
func TestH1ParserStrict(t *testing.T) {
	for _, in := range h1Inputs[21:29] {
		if o := everySplit(t, []byte(in)); !o.failed || o.kind != KindProtocol {
			t.Errorf("%q: %+v; want a protocol error", in, o)
		}
	}
	for i, in := range h1Inputs[29:] {
		o := everySplit(t, []byte(in))
		if long := i%2 == 1; o.failed != long || (!long && !o.done) {
			t.Errorf("long line %d: %+v; want failed %v", i, o, long)
		}
	}
}

// validHead reports whether the head at the start of b (up to its blank
// line) has only CRLF line ends, no folded lines and no control bytes
// but HTAB: what any response the parser accepts must have.
func validHead(b []byte) bool {
	end := bytes.Index(b, crlfcrlf)
	if end < 0 {
		return false
	}
	for i, line := range bytes.Split(b[:end], crlf) {
		if i > 0 && (len(line) == 0 || line[0] == ' ' || line[0] == '\t') {
			return false
		}
		for _, c := range line {
			if c < ' ' && c != '\t' || c == 0x7f {
				return false
			}
		}
	}
	return true
}

// FuzzH1Parser: no input makes the parser panic or depend on how its
// bytes arrive, and an accepted response has a valid head and frames
// itself: the bytes consumed parse alone to the same outcome.
func FuzzH1Parser(f *testing.F) {
	for _, in := range h1Inputs {
		f.Add([]byte(in), uint16(len(in)/2))
	}
	f.Fuzz(func(t *testing.T, in []byte, cut uint16) {
		if len(in) > 8<<10 {
			return // the byte-at-a-time pass is quadratic
		}
		// Whole, a byte at a time, cut in two where the fuzzer says, and
		// in pieces of a size it says (every cut is TestH1ParserSplits's).
		o := parseSplit(in, nil)
		var bytewise, pieces []int
		for i := 1; i < len(in); i++ {
			bytewise = append(bytewise, i)
			if i%(int(cut)%97+1) == 0 {
				pieces = append(pieces, i)
			}
		}
		for _, cuts := range [][]int{bytewise, pieces, {min(int(cut), len(in))}} {
			if got := parseSplit(in, cuts); got != o {
				t.Fatalf("%q: cut at %v: %+v; whole: %+v", in, cuts, got, o)
			}
		}
		if o.consumed > len(in) {
			t.Fatalf("consumed %d of %d bytes", o.consumed, len(in))
		}
		if !o.done && !o.atEOF {
			return
		}
		if !validHead(in) {
			t.Fatalf("%q: accepted with an invalid head: %+v", in, o)
		}
		if o.done {
			if again := parseSplit(in[:o.consumed], []int{min(int(cut), o.consumed)}); again != o {
				t.Fatalf("%q: its first %d bytes alone: %+v; want %+v", in, o.consumed, again, o)
			}
		}
	})
}

// TestH1ParserBareLFHead: a head whose lines end in a bare LF never has
// the CRLF CRLF that ends a head; it is a protocol error as soon as the
// LF arrives, not a wait for the timeout.
func TestH1ParserBareLFHead(t *testing.T) {
	for _, in := range []string{
		"HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\n\nok",
		"HTTP/1.1 200 OK\r\nX: a\rb",
	} {
		if o := everySplit(t, []byte(in)); !o.failed || o.kind != KindProtocol {
			t.Errorf("%q: %+v; want a protocol error", in, o)
		}
	}
	// A CR as the last byte so far is undecided.
	if o := everySplit(t, []byte("HTTP/1.1 200 OK\r\nX: a\r")); o.failed {
		t.Errorf("a head ending in CR so far: %+v; want no verdict yet", o)
	}
}

// TestBareLFHeadRun: the run reports the bare-LF head as a protocol
// error on both engines.
func TestBareLFHeadRun(t *testing.T) {
	addr := rawServer(t, func(c net.Conn) {
		io.WriteString(c, "HTTP/1.1 200 OK\nContent-Length: 2\n\nok")
		io.Copy(io.Discard, c)
	})
	engines(t, func(t *testing.T) {
		res := run(t, Config{Mode: HTTP1KeepAlive, Target: addr, Concurrency: 1, Requests: 1, Timeout: 300 * time.Millisecond})
		if res.ErrorsByKind["protocol"] != 1 {
			t.Errorf("errors %v %v; want one protocol error", res.ErrorsByKind, res.ErrorSamples)
		}
	})
}

// TestH1ParserFraming: the framing fields as RFC 9110 and RFC 9112 have
// them, however the bytes arrive.
func TestH1ParserFraming(t *testing.T) {
	for _, in := range []string{
		// Transfer-Encoding is a list, whose elements may come on
		// separate lines (RFC 9110 §5.3): chunked is last.
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip,\r\nTransfer-Encoding: , chunked\r\n\r\n0\r\n\r\n",
		// The same Content-Length repeated, in a list or on lines (RFC 9110 §8.6).
		"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2,2\r\n\r\nok",
		"HTTP/1.1 599 Custom\r\nContent-Length: 0\r\n\r\n",
	} {
		if o := everySplit(t, []byte(in)); !o.done || o.head.status < 200 {
			t.Errorf("%q: %+v; want a complete response", in, o)
		}
	}
	for _, in := range []string{
		// chunked not last: the body would run to the close (RFC 9112
		// §6.3), which the tool does not take for a measurement.
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", // twice (RFC 9112 §7)
		"HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\n\r\nok",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2, 3\r\n\r\nok",
		"HTTP/1.1 200 OK\r\nContent-Length: 2,\r\n\r\nok",
		// Both framings: RFC 9112 §6.3 says to treat it as an error.
		"HTTP/1.1 200 OK\r\nContent-Length: 99\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
		// Transfer-Encoding in an HTTP/1.0 response (RFC 9112 §6.1).
		"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		// Status codes outside 100-599 (RFC 9110 §15).
		"HTTP/1.1 000 Zero\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 099 Low\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 600 High\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 999 High\r\nContent-Length: 0\r\n\r\n",
	} {
		if o := everySplit(t, []byte(in)); !o.failed || o.kind != KindProtocol {
			t.Errorf("%q: %+v; want a protocol error", in, o)
		}
	}
}
