package wsbridge

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// listen binds 127.0.0.1:0 and serves each connection with serve in its
// own goroutine; the cleanup closes the listener, cancels the context
// given to serve and waits for every call to return.
func listen(t testing.TB, serve func(ctx context.Context, c net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { serve(ctx, c) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		cancel()
		wg.Wait()
	})
	return ln.Addr().String()
}

// echoBackend is a TCP echo server that half-closes after the client's
// EOF, as a well-behaved backend does.
func echoBackend(t testing.TB) string {
	return listen(t, func(ctx context.Context, c net.Conn) {
		defer c.Close()
		stop := context.AfterFunc(ctx, func() { c.Close() })
		defer stop()
		io.Copy(c, c)
		c.(*net.TCPConn).CloseWrite()
	})
}

// bridgeServer serves b on a fresh listener and reports each ServeConn
// result on the returned channel (buffered; extra results are dropped).
func bridgeServer(t testing.TB, b *Bridge) (string, <-chan error) {
	results := make(chan error, 16)
	addr := listen(t, func(ctx context.Context, c net.Conn) {
		err := b.ServeConn(ctx, c)
		select {
		case results <- err:
		default:
		}
	})
	return addr, results
}

// handshake is a valid client opening handshake for path.
func handshake(path string, extra ...string) string {
	h := "GET " + path + " HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
	for _, e := range extra {
		h += e + "\r\n"
	}
	return h + "\r\n"
}

// rawClient is a TCP client that speaks the handshake and frames by hand.
type rawClient struct {
	t  testing.TB
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(t testing.TB, addr string) *rawClient {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	return &rawClient{t: t, c: c, br: bufio.NewReader(c)}
}

// upgrade sends a handshake (plus extra bytes after it) and reads the
// response, which must be 101.
func (rc *rawClient) upgrade(path string, after []byte, headers ...string) *http.Response {
	rc.t.Helper()
	if _, err := rc.c.Write(append([]byte(handshake(path, headers...)), after...)); err != nil {
		rc.t.Fatal(err)
	}
	resp, err := http.ReadResponse(rc.br, nil)
	if err != nil {
		rc.t.Fatal(err)
	}
	if resp.StatusCode != 101 || resp.Header.Get("Sec-WebSocket-Accept") != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		rc.t.Fatalf("handshake answered %s, accept %q", resp.Status, resp.Header.Get("Sec-WebSocket-Accept"))
	}
	return resp
}

// frame returns a masked client frame.
func frame(fin bool, op ws.OpCode, payload []byte) []byte {
	f := ws.NewFrame(op, fin, append([]byte(nil), payload...))
	f = ws.MaskFrameInPlace(f)
	var b strings.Builder
	ws.WriteFrame(&b, f)
	return []byte(b.String())
}

func (rc *rawClient) send(b ...[]byte) {
	rc.t.Helper()
	for _, p := range b {
		if _, err := rc.c.Write(p); err != nil {
			rc.t.Fatal(err)
		}
	}
}

// next reads one server frame; the server must not mask.
func (rc *rawClient) next() (ws.Header, []byte, error) {
	h, err := ws.ReadHeader(rc.br)
	if err != nil {
		return h, nil, err
	}
	if h.Masked {
		return h, nil, errors.New("server frame is masked")
	}
	p := make([]byte, h.Length)
	_, err = io.ReadFull(rc.br, p)
	return h, p, err
}

// readMessage reads data frames up to a final one and returns the
// payload; it fails the test on a close frame.
func (rc *rawClient) readMessage() (ws.OpCode, []byte) {
	rc.t.Helper()
	var op ws.OpCode
	var msg []byte
	for {
		h, p, err := rc.next()
		if err != nil {
			rc.t.Fatalf("reading a message: %v", err)
		}
		if h.OpCode == ws.OpClose {
			rc.t.Fatalf("close frame %d %q instead of a message", closeCode(p), p[min(2, len(p)):])
		}
		if h.OpCode.IsControl() {
			continue
		}
		if h.OpCode != ws.OpContinuation {
			op = h.OpCode
		}
		msg = append(msg, p...)
		if h.Fin {
			return op, msg
		}
	}
}

// expectClose reads until a close frame (skipping data and pings) and
// returns its code, 0 if the connection ended without one.
func (rc *rawClient) expectClose() (CloseCode, string) {
	rc.t.Helper()
	for {
		h, p, err := rc.next()
		if err != nil {
			return 0, err.Error()
		}
		if h.OpCode == ws.OpClose {
			if len(p) < 2 {
				return CloseNoStatus, ""
			}
			return closeCode(p), string(p[2:])
		}
	}
}

func closeCode(p []byte) CloseCode {
	if len(p) < 2 {
		return CloseNoStatus
	}
	return CloseCode(binary.BigEndian.Uint16(p))
}

func closeFrame(code CloseCode, reason string) []byte {
	return frame(true, ws.OpClose, ws.NewCloseFrameBody(ws.StatusCode(code), reason))
}

// waitResult returns the next ServeConn result, failing after 20 s.
func waitResult(t testing.TB, results <-chan error) error {
	t.Helper()
	select {
	case err := <-results:
		return err
	case <-time.After(20 * time.Second):
		t.Fatal("ServeConn did not return")
		return nil
	}
}
