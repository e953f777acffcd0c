package wsbridge

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"
	"github.com/portmux/portmux/internal/proxyproto"
)

func TestBridgeEchoSmoke(t *testing.T) {
	addr, results := bridgeServer(t, &Bridge{Backend: echoBackend(t)})
	rc := dialRaw(t, addr)
	rc.upgrade("/", frame(true, ws.OpBinary, []byte("early")))
	if op, msg := rc.readMessage(); op != ws.OpBinary || string(msg) != "early" {
		t.Fatalf("got %v %q", op, msg)
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), 8192)
	rc.send(frame(false, ws.OpText, big[:100]), frame(true, ws.OpContinuation, big[100:]))
	var got []byte
	for len(got) < len(big) {
		_, msg := rc.readMessage()
		got = append(got, msg...)
	}
	if !bytes.Equal(got, big) {
		t.Fatalf("echo differs")
	}
	rc.send(closeFrame(CloseNormal, "bye"))
	if code, _ := rc.expectClose(); code != CloseNormal {
		t.Errorf("close code %d", code)
	}
	if err := waitResult(t, results); err != nil {
		t.Errorf("ServeConn: %v", err)
	}
}

// scriptedBackend serves each backend connection with f and reports what
// the client side sent (up to EOF) on the channel.
func scriptedBackend(t testing.TB, f func(c net.Conn)) string {
	return listen(t, func(ctx context.Context, c net.Conn) {
		defer c.Close()
		stop := context.AfterFunc(ctx, func() { c.Close() })
		defer stop()
		c.SetDeadline(time.Now().Add(20 * time.Second))
		f(c)
	})
}

// TestBridgeBackendEOF: what the backend wrote before its EOF arrives,
// then close 1000; the client's reply ends ServeConn cleanly.
func TestBridgeBackendEOF(t *testing.T) {
	be := scriptedBackend(t, func(c net.Conn) {
		c.Write([]byte("banner\n"))
		c.Write(bytes.Repeat([]byte("z"), 100<<10))
	})
	addr, results := bridgeServer(t, &Bridge{Backend: be})
	rc := dialRaw(t, addr)
	rc.upgrade("/", nil)
	var got []byte
	for {
		h, p, err := rc.next()
		if err != nil {
			t.Fatal(err)
		}
		if h.OpCode == ws.OpClose {
			if closeCode(p) != CloseNormal {
				t.Errorf("close %d; want 1000", closeCode(p))
			}
			break
		}
		if h.OpCode != ws.OpBinary {
			t.Errorf("opcode %v; want binary", h.OpCode)
		}
		got = append(got, p...)
	}
	if want := append([]byte("banner\n"), bytes.Repeat([]byte("z"), 100<<10)...); !bytes.Equal(got, want) {
		t.Errorf("got %d bytes before the close; want %d", len(got), len(want))
	}
	rc.send(closeFrame(CloseNormal, ""))
	if err := waitResult(t, results); err != nil {
		t.Errorf("ServeConn: %v", err)
	}
}

// TestBridgeClientClose: the client's close is answered at once (RFC
// 6455 §5.5.1) and half-closes the backend, which reads the client's last
// message and EOF; what it says after that is discarded.
func TestBridgeClientClose(t *testing.T) {
	got := make(chan string, 1)
	be := scriptedBackend(t, func(c net.Conn) {
		b, _ := io.ReadAll(c) // until the bridge's CloseWrite
		got <- string(b)
		c.Write([]byte("bye after EOF"))
	})
	addr, results := bridgeServer(t, &Bridge{Backend: be})
	rc := dialRaw(t, addr)
	rc.upgrade("/", nil)
	rc.send(frame(true, ws.OpBinary, []byte("request")), closeFrame(CloseGoingAway, ""))
	if h, p, err := rc.next(); err != nil || h.OpCode != ws.OpClose || closeCode(p) != CloseGoingAway {
		t.Errorf("after the client's close: %+v %q %v; want the close answered with its 1001", h, p, err)
	}
	if s := <-got; s != "request" {
		t.Errorf("backend read %q", s)
	}
	if err := waitResult(t, results); err != nil {
		t.Errorf("ServeConn: %v", err)
	}
}

func TestBridgeBackendUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	addr, results := bridgeServer(t, &Bridge{Backend: dead})
	rc := dialRaw(t, addr)
	rc.upgrade("/", nil)
	if code, reason := rc.expectClose(); code != CloseBadGateway || reason != "backend unreachable" {
		t.Errorf("close %d %q; want 1014 backend unreachable", code, reason)
	}
	rc.send(closeFrame(CloseBadGateway, ""))
	if err := waitResult(t, results); !errors.Is(err, ErrBackendUnreachable) {
		t.Errorf("ServeConn: %v; want ErrBackendUnreachable", err)
	}
}

// TestBridgeBackendReset: a backend that fails mid-stream gets 1011.
func TestBridgeBackendReset(t *testing.T) {
	be := scriptedBackend(t, func(c net.Conn) {
		// Read first: a reset before the bridge's connect returns would
		// make the dial fail, a different case (1014).
		io.ReadFull(c, make([]byte, 1))
		c.Write([]byte("partial"))
		c.(*net.TCPConn).SetLinger(0) // close with a reset
	})
	addr, results := bridgeServer(t, &Bridge{Backend: be})
	rc := dialRaw(t, addr)
	rc.upgrade("/", nil)
	rc.send(frame(true, ws.OpBinary, []byte("x")))
	code, reason := rc.expectClose()
	rc.send(closeFrame(code, ""))
	err := waitResult(t, results)
	if code != CloseInternalError || !errors.Is(err, ErrBackend) {
		t.Errorf("close %d %q, ServeConn: %v; want 1011 and ErrBackend", code, reason, err)
	}
}

func TestBridgeText(t *testing.T) {
	// "é" and "€" split across the backend's writes.
	be := scriptedBackend(t, func(c net.Conn) {
		for _, s := range []string{"caf\xc3", "\xa9 1\xe2\x82", "\xac\n"} {
			c.Write([]byte(s))
			time.Sleep(5 * time.Millisecond)
		}
	})
	addr, results := bridgeServer(t, &Bridge{Backend: be, Text: true})
	rc := dialRaw(t, addr)
	rc.upgrade("/", nil)
	var got []byte
	for {
		h, p, err := rc.next()
		if err != nil {
			t.Fatal(err)
		}
		if h.OpCode == ws.OpClose {
			break
		}
		if h.OpCode != ws.OpText || !utf8.Valid(p) {
			t.Errorf("frame %v %q: want valid text", h.OpCode, p)
		}
		got = append(got, p...)
	}
	if string(got) != "caf\u00e9 1\u20ac\n" {
		t.Errorf("text %q", got)
	}
	rc.send(closeFrame(CloseNormal, ""))
	waitResult(t, results)

	bad := scriptedBackend(t, func(c net.Conn) { c.Write([]byte("ok\xff")) })
	addr, results = bridgeServer(t, &Bridge{Backend: bad, Text: true})
	rc = dialRaw(t, addr)
	rc.upgrade("/", nil)
	if code, _ := rc.expectClose(); code != CloseInternalError {
		t.Errorf("invalid text from the backend: close %d; want 1011", code)
	}
	rc.send(closeFrame(CloseInternalError, ""))
	if err := waitResult(t, results); !errors.Is(err, ErrBackend) {
		t.Errorf("ServeConn: %v; want ErrBackend", err)
	}
}

func TestBridgeProxyHeader(t *testing.T) {
	got := make(chan []byte, 1)
	be := scriptedBackend(t, func(c net.Conn) {
		b := make([]byte, 28+5)
		_, err := io.ReadFull(c, b)
		if err != nil {
			t.Error(err)
		}
		got <- b
	})
	addr, results := bridgeServer(t, &Bridge{Backend: be, ProxyHeader: true})
	rc := dialRaw(t, addr)
	rc.upgrade("/", nil)
	rc.send(frame(true, ws.OpBinary, []byte("hello")))
	b := <-got
	want := proxyproto.AppendV2(nil, rc.c.LocalAddr(), rc.c.RemoteAddr())
	if !bytes.Equal(b[:len(want)], want) || string(b[len(want):]) != "hello" {
		t.Errorf("backend read %q; want the PROXY v2 header for %v -> %v, then hello", b, rc.c.LocalAddr(), rc.c.RemoteAddr())
	}
	rc.expectClose()
	rc.send(closeFrame(CloseNormal, ""))
	waitResult(t, results)
}

// TestBridgeShutdown: canceling ServeConn's context sends 1001, and the
// client's answer ends it.
func TestBridgeShutdown(t *testing.T) {
	echo := echoBackend(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	results := make(chan error, 1)
	addr := listen(t, func(_ context.Context, c net.Conn) {
		results <- (&Bridge{Backend: echo}).ServeConn(ctx, c)
	})
	rc := dialRaw(t, addr)
	rc.upgrade("/", nil)
	rc.send(frame(true, ws.OpBinary, []byte("x")))
	if _, msg := rc.readMessage(); string(msg) != "x" {
		t.Fatalf("echo %q", msg)
	}
	cancel()
	if code, reason := rc.expectClose(); code != CloseGoingAway || reason != "server shutting down" {
		t.Errorf("close %d %q; want 1001", code, reason)
	}
	rc.send(closeFrame(CloseGoingAway, ""))
	if err := waitResult(t, results); err != nil {
		t.Errorf("ServeConn: %v", err)
	}
}

// TestBridgeBackpressure: a backend that does not read stops the bridge
// from reading the client, so the client's writes stall once the socket
// buffers fill instead of the bridge buffering without bound; once the
// backend reads, every byte arrives in order.
func TestBridgeBackpressure(t *testing.T) {
	release := make(chan struct{})
	var releaseOnce sync.Once
	free := func() { releaseOnce.Do(func() { close(release) }) }
	defer free()
	sum := make(chan []byte, 1)
	be := scriptedBackend(t, func(c net.Conn) {
		<-release
		b, _ := io.ReadAll(c)
		sum <- b
	})
	addr, results := bridgeServer(t, &Bridge{Backend: be})
	rc := dialRaw(t, addr)
	rc.upgrade("/", nil)

	const limit = 256 << 20 // far beyond what socket buffers hold
	var written atomic.Int64
	stop := make(chan struct{})
	var sent bytes.Buffer
	writerDone := make(chan error, 1)
	go func() {
		msg := make([]byte, 64<<10)
		for i := 0; ; i++ {
			select {
			case <-stop:
				writerDone <- nil
				return
			default:
			}
			for j := range msg {
				msg[j] = byte(i + j)
			}
			if _, err := rc.c.Write(frame(true, ws.OpBinary, msg)); err != nil {
				writerDone <- err
				return
			}
			sent.Write(msg)
			if written.Add(int64(len(msg))) > limit {
				writerDone <- nil
				return
			}
		}
	}()
	// Wait until the writer makes no progress for half a second.
	for last := int64(-1); ; {
		time.Sleep(500 * time.Millisecond)
		n := written.Load()
		if n == last || n > limit {
			break
		}
		last = n
	}
	close(stop)
	if n := written.Load(); n > limit {
		t.Fatalf("the client wrote %d bytes to a backend that reads nothing", n)
	}
	free()
	if err := <-writerDone; err != nil {
		t.Fatal(err)
	}
	rc.send(closeFrame(CloseNormal, ""))
	got := <-sum
	if !bytes.Equal(got, sent.Bytes()) {
		t.Errorf("backend got %d bytes; want the %d sent, in order", len(got), sent.Len())
	}
	rc.expectClose()
	waitResult(t, results)
}

func proxyV2For(src, dst net.Addr) []byte { return proxyproto.AppendV2(nil, src, dst) }

// TestBridgeTruncatedDeflate: a compressed message whose deflate data
// ends mid-block is the client's bad data (1007), not a backend failure.
func TestBridgeTruncatedDeflate(t *testing.T) {
	addr, results := bridgeServer(t, &Bridge{Backend: echoBackend(t), Upgrader: Upgrader{Compression: true}})
	rc := dialRaw(t, addr)
	rc.upgrade("/", nil, "Sec-WebSocket-Extensions: permessage-deflate")
	f := frame(true, ws.OpBinary, []byte{0x00, 100, 0, 155, 255, 'x'}) // a stored block promising 100 bytes
	f[0] |= 0x40
	rc.send(f)
	if code, reason := rc.expectClose(); code != CloseInvalidPayload {
		t.Errorf("close %d %q; want 1007", code, reason)
	}
	rc.send(closeFrame(CloseInvalidPayload, ""))
	rc.c.Close() // the server is draining until our EOF
	var ce *CloseError
	if err := waitResult(t, results); !errors.As(err, &ce) || ce.Remote || ce.Code != CloseInvalidPayload {
		t.Errorf("ServeConn: %v; want a local close 1007", err)
	}
}

// TestBridgeShutdownUnanswered, on fake time: when ctx is canceled and
// the client never answers the 1001, ServeConn returns ctx's error after
// CloseTimeout, not the backend read it interrupted to stop.
func TestBridgeShutdownUnanswered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, cli := net.Pipe()
		defer cli.Close()
		beSrv, beCli := net.Pipe()
		defer beCli.Close()
		b := &Bridge{Backend: "backend:1", Dial: func(context.Context, string, string) (net.Conn, error) {
			return beSrv, nil
		}}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- b.ServeConn(ctx, srv) }()
		rc := &rawClient{t: t, c: cli, br: bufio.NewReader(cli)}
		rc.upgrade("/", nil)
		synctest.Wait()
		cancel()
		if code, _ := rc.expectClose(); code != CloseGoingAway {
			t.Errorf("close %d; want 1001", code)
		}
		go io.Copy(io.Discard, rc.br) // read on, never answer
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("ServeConn: %v; want context.Canceled", err)
		}
	})
}

// TestBridgeClientCloseAnsweredAtOnce, on fake time: a backend that keeps
// talking after the client's close frame does not hold up the answer
// (RFC 6455 §5.5.1: as soon as practical); the next frame the client
// reads is the close.
func TestBridgeClientCloseAnsweredAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, cli := net.Pipe()
		defer cli.Close()
		beSrv, beCli := net.Pipe()
		beDone := make(chan struct{})
		go func() { // a backend that streams and ignores EOF
			defer close(beDone)
			defer beCli.Close()
			for {
				if _, err := beCli.Write([]byte("tick")); err != nil {
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
		b := &Bridge{Backend: "backend:1", Dial: func(context.Context, string, string) (net.Conn, error) {
			return beSrv, nil
		}}
		done := make(chan error, 1)
		go func() { done <- b.ServeConn(context.Background(), srv) }()
		rc := &rawClient{t: t, c: cli, br: bufio.NewReader(cli)}
		rc.upgrade("/", nil)
		if _, msg := rc.readMessage(); string(msg) != "tick" {
			t.Fatalf("first message %q", msg)
		}
		sent := make(chan struct{})
		go func() { defer close(sent); rc.send(closeFrame(CloseNormal, "")) }()
		// At most the message in flight, then the close.
		for i := 0; ; i++ {
			h, p, err := rc.next()
			if err != nil {
				t.Fatalf("waiting for the close answer: %v", err)
			}
			if h.OpCode == ws.OpClose {
				if closeCode(p) != CloseNormal {
					t.Errorf("close answered with %d; want 1000", closeCode(p))
				}
				break
			}
			if i > 0 {
				t.Fatalf("data frame %d after the client's close", i+1)
			}
		}
		<-sent
		if err := <-done; err != nil {
			t.Errorf("ServeConn: %v", err)
		}
		<-beDone
	})
}

// TestBridgeIdleTimeout, on fake time: Bridge.IdleTimeout counts data
// bytes either way. Client data at 0 s and 8 s and backend data at 12 s
// keep the bridge up; after that, with both silent, close 1001 comes
// IdleTimeout after the last byte (Upgrader.IdleTimeout, 75 s, is far).
func TestBridgeIdleTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, cli := net.Pipe()
		defer cli.Close()
		beSrv, beCli := net.Pipe()
		defer beCli.Close()
		go io.Copy(io.Discard, beCli) // the backend reads, and says nothing unasked
		b := &Bridge{Backend: "backend:1", IdleTimeout: 10 * time.Second,
			Upgrader: Upgrader{PingInterval: -1},
			Dial:     func(context.Context, string, string) (net.Conn, error) { return beSrv, nil }}
		done := make(chan error, 1)
		go func() { done <- b.ServeConn(context.Background(), srv) }()
		rc := &rawClient{t: t, c: cli, br: bufio.NewReader(cli)}
		rc.upgrade("/", nil)
		start := time.Now()
		rc.send(frame(true, ws.OpBinary, []byte("a")))
		time.Sleep(8 * time.Second)
		rc.send(frame(true, ws.OpBinary, []byte("b")))
		time.Sleep(4 * time.Second)
		go beCli.Write([]byte("c"))
		for {
			h, p, err := rc.next()
			if err != nil {
				t.Fatalf("reading: %v", err)
			}
			switch h.OpCode {
			case ws.OpBinary:
				if string(p) != "c" || time.Since(start) != 12*time.Second {
					t.Errorf("message %q at %v; want \"c\" at 12s", p, time.Since(start))
				}
				continue
			case ws.OpClose:
				if code, reason := closeCode(p), string(p[2:]); code != CloseGoingAway || reason != "idle timeout" {
					t.Errorf("close %d %q; want 1001 idle timeout", code, reason)
				}
				if d := time.Since(start); d != 22*time.Second {
					t.Errorf("idle close at %v; want 22s", d)
				}
			default:
				t.Fatalf("unexpected frame %+v", h)
			}
			break
		}
		rc.send(closeFrame(CloseGoingAway, ""))
		var ce *CloseError
		if err := <-done; !errors.As(err, &ce) || ce.Remote || ce.Code != CloseGoingAway {
			t.Errorf("ServeConn: %v; want a local close 1001", err)
		}
	})
}
