package wsbridge

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"testing/synctest"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// connServer upgrades one connection at a time and hands the Conn to f.
func connServer(t *testing.T, u *Upgrader, f func(*Conn)) string {
	return listen(t, func(ctx context.Context, c net.Conn) {
		wc, err := u.Upgrade(c)
		if err != nil {
			t.Error(err)
			return
		}
		f(wc)
	})
}

func TestConnWrite(t *testing.T) {
	done := make(chan error, 1)
	big := bytes.Repeat([]byte("0123456789"), 10000)
	addr := connServer(t, &Upgrader{}, func(c *Conn) {
		defer c.Close()
		if err := c.WriteMessage(Text, []byte("bad \xff")); !errors.Is(err, ErrInvalidUTF8) {
			t.Errorf("WriteMessage of bad text: %v; want ErrInvalidUTF8", err)
		}
		if err := c.WriteMessage(MessageType(9), nil); err == nil {
			t.Error("WriteMessage of a control type succeeded")
		}
		c.WriteMessage(Text, []byte("small"))
		c.WriteMessage(Binary, big)
		c.CloseWith(4001, "enough")
		done <- c.WriteMessage(Text, []byte("after close"))
	})
	rc := dialRaw(t, addr)
	rc.upgrade("/", nil)
	if op, msg := rc.readMessage(); op != ws.OpText || string(msg) != "small" {
		t.Errorf("got %v %q", op, msg)
	}
	if op, msg := rc.readMessage(); op != ws.OpBinary || !bytes.Equal(msg, big) {
		t.Errorf("got %v and %d bytes", op, len(msg))
	}
	if code, reason := rc.expectClose(); code != 4001 || reason != "enough" {
		t.Errorf("close %d %q", code, reason)
	}
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Errorf("WriteMessage after CloseWith: %v; want ErrClosed", err)
	}
	rc.send(closeFrame(4001, ""))
}

// TestConnCloseWithInterruptsRead: CloseWith from another goroutine makes
// a blocked ReadMessage return the peer's answer.
func TestConnCloseWithInterruptsRead(t *testing.T) {
	got := make(chan error, 1)
	started := make(chan *Conn, 1)
	addr := connServer(t, &Upgrader{}, func(c *Conn) {
		defer c.Close()
		started <- c
		_, _, err := c.ReadMessage(nil)
		got <- err
	})
	rc := dialRaw(t, addr)
	rc.upgrade("/", nil)
	c := <-started
	c.CloseWith(CloseGoingAway, "shutting down")
	if code, _ := rc.expectClose(); code != CloseGoingAway {
		t.Errorf("close %d; want 1001", code)
	}
	rc.send(closeFrame(CloseGoingAway, ""))
	var ce *CloseError
	if err := <-got; !errors.As(err, &ce) || !ce.Remote || ce.Code != CloseGoingAway {
		t.Errorf("ReadMessage: %v; want the peer's 1001", err)
	}
}

// TestConnCloseTimeout, on fake time: a peer that never answers our
// close frame holds ReadMessage for exactly CloseTimeout.
func TestConnCloseTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, cli := net.Pipe()
		defer cli.Close()
		got := make(chan error, 1)
		go func() {
			c, err := (&Upgrader{}).Upgrade(srv)
			if err != nil {
				got <- err
				return
			}
			defer c.Close()
			c.CloseWith(CloseNormal, "")
			_, _, err = c.ReadMessage(nil)
			got <- err
		}()
		rc := &rawClient{t: t, c: cli, br: bufio.NewReader(cli)}
		rc.upgrade("/", nil)
		rc.expectClose()
		sent := time.Now()
		go io.Copy(io.Discard, cli)
		if err := <-got; !errors.Is(err, ErrCloseTimeout) {
			t.Errorf("ReadMessage: %v; want ErrCloseTimeout", err)
		}
		if d := time.Since(sent); d != DefaultCloseTimeout {
			t.Errorf("ReadMessage returned %v after the close frame; want %v", d, DefaultCloseTimeout)
		}
	})
}

// TestConnClose: Close without a reader sends 1000 and waits for the
// answer, discarding messages that were in flight.
func TestConnClose(t *testing.T) {
	closed := make(chan error, 1)
	ready := make(chan *Conn, 1)
	addr := connServer(t, &Upgrader{}, func(c *Conn) { ready <- c })
	rc := dialRaw(t, addr)
	rc.upgrade("/", nil)
	c := <-ready
	go func() { closed <- c.Close() }()
	if code, _ := rc.expectClose(); code != CloseNormal {
		t.Errorf("close %d; want 1000", code)
	}
	rc.send(frame(true, ws.OpText, []byte("in flight")), closeFrame(CloseNormal, ""))
	if err := <-closed; err != nil {
		t.Errorf("Close: %v", err)
	}
	if _, _, err := rc.next(); err == nil {
		t.Error("connection open after Close")
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestUTF8Stream checks the streaming validator against utf8.Valid for
// every split of each input into two pieces and one byte at a time.
func TestUTF8Stream(t *testing.T) {
	inputs := []string{
		"", "a", "h\u00e9llo", "\u20ac", "\U0001f600", "mixed \u00e9\u20ac\U0001f600 text",
		"\xff", "\xc0\x80", "\xe0\x80\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xf5\x80\x80\x80",
		"ok\xc3", "ok\xe2\x82", "\xe2\x82\xe2\x82\xac", "\x80", "a\xc3\xa9\xa9",
	}
	for _, in := range inputs {
		want := utf8.ValidString(in)
		check := func(pieces ...string) {
			var s utf8Stream
			ok := true
			for _, p := range pieces {
				if !s.write([]byte(p)) {
					ok = false
					break
				}
			}
			if ok {
				ok = s.done()
			}
			if ok != want {
				t.Errorf("pieces %q: valid %v; want %v", pieces, ok, want)
			}
		}
		for i := 0; i <= len(in); i++ {
			check(in[:i], in[i:])
		}
		var bytesOf []string
		for i := range len(in) {
			bytesOf = append(bytesOf, in[i:i+1])
		}
		check(bytesOf...)
	}
}

// TestCloseWithCodes: CloseWith puts on the wire only the codes a peer may
// send (RFC 6455 §7.4.1) and UTF-8 reasons (§5.5.1); anything else is
// refused with nothing sent, and Close then sends its 1000.
func TestCloseWithCodes(t *testing.T) {
	tests := []struct {
		code   CloseCode
		reason string
		err    error
		wire   CloseCode
	}{
		{CloseNormal, "bye", nil, CloseNormal},
		{CloseBadGateway, "", nil, CloseBadGateway},
		{3000, "", nil, 3000},
		{4999, "x", nil, 4999},
		{CloseNoStatus, "dropped", nil, CloseNoStatus},
		{CloseAbnormal, "x", ErrInvalidCloseCode, CloseNormal},
		{1015, "x", ErrInvalidCloseCode, CloseNormal},
		{0, "x", ErrInvalidCloseCode, CloseNormal},
		{999, "x", ErrInvalidCloseCode, CloseNormal},
		{1004, "x", ErrInvalidCloseCode, CloseNormal},
		{2000, "x", ErrInvalidCloseCode, CloseNormal},
		{2999, "x", ErrInvalidCloseCode, CloseNormal},
		{5000, "x", ErrInvalidCloseCode, CloseNormal},
		{4000, "bad \xff\xfe", ErrInvalidUTF8, CloseNormal},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d/%q", tt.code, tt.reason), func(t *testing.T) {
			got := make(chan error, 1)
			addr := connServer(t, &Upgrader{}, func(c *Conn) {
				got <- c.CloseWith(tt.code, tt.reason)
				c.Close()
			})
			rc := dialRaw(t, addr)
			rc.upgrade("/", nil)
			code, reason := rc.expectClose()
			rc.send(closeFrame(CloseNormal, ""))
			if err := <-got; !errors.Is(err, tt.err) || (err == nil) != (tt.err == nil) {
				t.Errorf("CloseWith(%d, %q): %v; want %v", tt.code, tt.reason, err, tt.err)
			}
			if code != tt.wire {
				t.Errorf("close frame carries %d; want %d", code, tt.wire)
			}
			if !utf8.ValidString(reason) {
				t.Errorf("close reason %q is not UTF-8", reason)
			}
		})
	}
}

// TestConnWriteTimeoutIsSticky, on fake time: a write that times out
// halfway through a frame closes the connection, so that nothing (a later
// message, a pong, the close frame) lands inside the partial frame, and
// later writes report the same error.
func TestConnWriteTimeoutIsSticky(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, cli := net.Pipe()
		defer cli.Close()
		errs := make(chan [2]error, 1)
		closed := make(chan error, 1)
		go func() {
			c, err := (&Upgrader{WriteTimeout: time.Second}).Upgrade(srv)
			if err != nil {
				errs <- [2]error{err, err}
				return
			}
			first := c.WriteMessage(Binary, make([]byte, 64<<10))
			errs <- [2]error{first, c.WriteMessage(Text, []byte("next"))}
			closed <- c.Close()
		}()
		rc := &rawClient{t: t, c: cli, br: bufio.NewReader(cli)}
		rc.upgrade("/", nil)
		// Read the header and a little payload, then stop reading.
		h, err := ws.ReadHeader(rc.br)
		if err != nil || h.Length != 64<<10 {
			t.Fatalf("header %+v, %v", h, err)
		}
		if _, err := io.ReadFull(rc.br, make([]byte, 100)); err != nil {
			t.Fatal(err)
		}
		e := <-errs
		if !isTimeout(e[0]) {
			t.Errorf("WriteMessage: %v; want a timeout", e[0])
		}
		if e[1] != e[0] {
			t.Errorf("WriteMessage after the timeout: %v; want %v", e[1], e[0])
		}
		// What the client still reads must be part of the broken frame's
		// payload (zeros) and nothing else: no frame inside it.
		rest, _ := io.ReadAll(rc.br)
		if i := bytes.IndexFunc(rest, func(r rune) bool { return r != 0 }); i >= 0 {
			t.Errorf("after the partial frame the client read % x", rest[i:])
		}
		<-closed
	})
}

// TestConnCloseBetweenReads, on fake time: Close called from another
// goroutine while the handler is between two ReadMessage calls drains the
// stream itself; the handler's next ReadMessage must wait for it and
// report the end, not read frames at the same time (a data race on the
// read side, which -race reports, and messages taken from under Close).
func TestConnCloseBetweenReads(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, cli := net.Pipe()
		defer cli.Close()
		conns := make(chan *Conn, 1)
		again := make(chan struct{})
		second := make(chan error, 1)
		go func() {
			c, err := (&Upgrader{}).Upgrade(srv)
			if err != nil {
				second <- err
				return
			}
			if _, _, err := c.ReadMessage(nil); err != nil {
				second <- err
				return
			}
			conns <- c
			<-again
			_, p, err := c.ReadMessage(nil)
			if err == nil {
				err = fmt.Errorf("got message %q", p)
			}
			second <- err
		}()
		rc := &rawClient{t: t, c: cli, br: bufio.NewReader(cli)}
		rc.upgrade("/", nil)
		rc.send(frame(true, ws.OpText, []byte("one")))
		c := <-conns
		closed := make(chan error, 1)
		go func() { closed <- c.Close() }()
		if code, _ := rc.expectClose(); code != CloseNormal {
			t.Errorf("close %d; want 1000", code)
		}
		synctest.Wait() // Close is reading, waiting for the answer
		close(again)
		synctest.Wait() // and so is the handler's second ReadMessage
		rc.send(frame(true, ws.OpText, []byte("two")), frame(true, ws.OpText, []byte("three")))
		rc.send(closeFrame(CloseNormal, ""))
		var ce *CloseError
		if err := <-second; !errors.As(err, &ce) || !ce.Remote || ce.Code != CloseNormal {
			t.Errorf("second ReadMessage: %v; want the peer's close 1000", err)
		}
		if err := <-closed; err != nil {
			t.Errorf("Close: %v", err)
		}
	})
}

// TestConnIdleWhileBusy, on fake time: a handler that spends longer than
// IdleTimeout between two ReadMessage calls still gets the message the
// client sent meanwhile; the client was not idle, the handler was busy.
func TestConnIdleWhileBusy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, cli := net.Pipe()
		defer cli.Close()
		got := make(chan error, 1)
		go func() {
			c, err := (&Upgrader{IdleTimeout: 10 * time.Second, PingInterval: -1}).Upgrade(srv)
			if err != nil {
				got <- err
				return
			}
			defer c.Close()
			if _, _, err := c.ReadMessage(nil); err != nil {
				got <- err
				return
			}
			time.Sleep(20 * time.Second) // busy, e.g. a slow WriteMessage
			_, p, err := c.ReadMessage(nil)
			if err == nil && string(p) != "two" {
				err = fmt.Errorf("got %q; want \"two\"", p)
			}
			got <- err
		}()
		rc := &rawClient{t: t, c: cli, br: bufio.NewReader(cli)}
		rc.upgrade("/", nil)
		rc.send(frame(true, ws.OpText, []byte("one")), frame(true, ws.OpText, []byte("two")))
		if err := <-got; err != nil {
			t.Errorf("second ReadMessage: %v", err)
		}
		go io.Copy(io.Discard, cli) // the close frame from Close
		rc.send(closeFrame(CloseNormal, ""))
	})
}
