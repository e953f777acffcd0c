package main

import (
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/portmux/portmux/mux"
	"github.com/portmux/portmux/sniff"
)

// Limits of the demo's WebSocket echo.
const (
	maxEchoMessage = 64 << 10        // bytes in one message
	echoIdle       = 2 * time.Minute // without a message from the client
)

// wsGUID is the fixed string of RFC 6455 §1.3.
const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// acceptKey computes Sec-WebSocket-Accept for a client's key (RFC 6455 §4.2.2).
func acceptKey(key []byte) string {
	h := sha1.New()
	h.Write(key)
	h.Write([]byte(wsGUID))
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// echoServer serves the echo and, at shutdown, tells its clients it is
// going away (close 1001) instead of keeping the drain waiting on them.
type echoServer struct {
	mu       sync.Mutex
	conns    map[*mux.Conn]struct{}
	stopping bool
}

func newEchoServer() *echoServer { return &echoServer{conns: map[*mux.Conn]struct{}{}} }

// serve is the mux Handler.
func (e *echoServer) serve(c *mux.Conn) {
	e.mu.Lock()
	if e.stopping {
		e.mu.Unlock()
		c.Close()
		return
	}
	e.conns[c] = struct{}{}
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		delete(e.conns, c)
		e.mu.Unlock()
	}()
	serveEcho(c, e.isStopping)
}

func (e *echoServer) isStopping() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stopping
}

// goAway interrupts every echo's read; each then sends close 1001.
func (e *echoServer) goAway() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.stopping = true
	for c := range e.conns {
		c.SetReadDeadline(time.Now())
	}
}

// serveEcho completes the WebSocket handshake the mux routed here and
// echoes every message until the client leaves or stopping says so. It
// reads the head byte-exactly, so frames a client sends right behind its
// handshake are kept.
func serveEcho(c *mux.Conn, stopping func() bool) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	head := make([]byte, 0, c.Buffered())
	var res sniff.Result
	for {
		res.Parse(head, sniff.DefaultLimit)
		if res.HTTP1.Verdict != sniff.NeedMore {
			break
		}
		var b [512]byte
		n, err := c.Read(b[:])
		if err != nil {
			return
		}
		head = append(head, b[:n]...)
	}
	if res.HTTP1.Verdict != sniff.Match || res.HTTP1.WebSocket() != nil {
		return // the route's matcher checked this already
	}
	// Bytes after the head are the client's first frames.
	src := io.MultiReader(bytes.NewReader(head[res.Offset+res.HTTP1.HeadLen:]), c)
	resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Accept: " + acceptKey(res.HTTP1.WebSocketKey) + "\r\n\r\n"
	if _, err := io.WriteString(c, resp); err != nil {
		return
	}
	r := &wsutil.Reader{
		Source:         src,
		State:          ws.StateServerSide,
		CheckUTF8:      true,
		MaxFrameSize:   maxEchoMessage,
		MaxMessageSize: maxEchoMessage,
		OnIntermediate: wsutil.ControlFrameHandler(c, ws.StateServerSide),
	}
	goingAway := ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusGoingAway, "server shutting down"))
	for {
		// Set the deadline, then look at stopping: goAway sets stopping
		// before it moves the deadline, so one of the two is seen.
		c.SetDeadline(time.Now().Add(echoIdle))
		if stopping() {
			ws.WriteFrame(c, goingAway)
			return
		}
		hdr, err := r.NextFrame()
		if err != nil {
			if stopping() {
				ws.WriteFrame(c, goingAway)
				return
			}
			closeWith(c, err)
			return
		}
		if hdr.OpCode.IsControl() {
			if err := wsutil.ControlFrameHandler(c, ws.StateServerSide)(hdr, r); err != nil {
				return // a close frame, answered; or the conn broke
			}
			continue
		}
		msg, err := io.ReadAll(io.LimitReader(r, maxEchoMessage+1))
		if err == nil && len(msg) > maxEchoMessage {
			err = wsutil.ErrFrameTooLarge
		}
		if err != nil {
			closeWith(c, err)
			return
		}
		if err := wsutil.WriteServerMessage(c, hdr.OpCode, msg); err != nil {
			return
		}
	}
}

// closeWith sends the close frame that err calls for, where one applies.
func closeWith(c io.Writer, err error) {
	code, reason := ws.StatusProtocolError, "protocol error"
	switch {
	case errors.Is(err, wsutil.ErrFrameTooLarge), errors.Is(err, wsutil.ErrMessageTooLarge):
		code, reason = ws.StatusMessageTooBig, "message too big"
	case errors.Is(err, wsutil.ErrInvalidUTF8):
		code, reason = ws.StatusInvalidFramePayloadData, "invalid UTF-8"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return
	}
	ws.WriteFrame(c, ws.NewCloseFrame(ws.NewCloseFrameBody(code, reason)))
}
