package relay

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	countBufs = true
	goleak.VerifyTestMain(m)
}

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (a, b *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		done <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-done
	if s == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c.(*net.TCPConn), s.(*net.TCPConn)
}

// replayConn is a conn that replays bytes read ahead, like *mux.Conn.
type replayConn struct {
	net.Conn
	replay []byte
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.replay) > 0 {
		n := copy(p, c.replay)
		c.replay = c.replay[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}
func (c *replayConn) Buffered() int     { return len(c.replay) }
func (c *replayConn) NetConn() net.Conn { return c.Conn }

// setup: client <-> [proxyIn | relay | proxyOut] <-> backend.
func setup(t *testing.T, r *Relay, replay []byte) (client, backend net.Conn, done chan error, counts *Counts) {
	client, proxyIn := tcpPair(t)
	proxyOut, backend := tcpPair(t)
	done = make(chan error, 1)
	counts = new(Counts)
	go func() { done <- r.Run(&replayConn{Conn: proxyIn, replay: replay}, proxyOut, counts) }()
	client.SetDeadline(time.Now().Add(20 * time.Second))
	backend.SetDeadline(time.Now().Add(20 * time.Second))
	return client, backend, done, counts
}

// TestBothWaysWithHalfClose: replayed bytes first, 8 MiB each way at once,
// then the client's end of stream reaches the backend while the backend
// still sends, and the relay ends cleanly when both have ended.
func TestBothWaysWithHalfClose(t *testing.T) {
	var movedUp, movedDown atomic.Int64
	moved := func(up bool, n int64) {
		if n <= 0 {
			t.Errorf("Moved told of %d bytes", n)
		}
		if up {
			movedUp.Add(n)
		} else {
			movedDown.Add(n)
		}
	}
	client, backend, done, counts := setup(t, &Relay{IdleTimeout: 10 * time.Second, Chunk: 64 << 10, Moved: moved}, []byte("replayed "))
	up := make([]byte, 8<<20)
	down := make([]byte, 8<<20)
	rand.Read(up)
	rand.Read(down)
	gotUp := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(backend) // until the client's half-close arrives
		gotUp <- b
		backend.Write(down)
		backend.(*net.TCPConn).CloseWrite()
	}()
	if _, err := client.Write(up); err != nil {
		t.Fatal(err)
	}
	client.(*net.TCPConn).CloseWrite()
	gotDown, err := io.ReadAll(client)
	if err != nil {
		t.Fatal(err)
	}
	if b := <-gotUp; !bytes.Equal(b, append([]byte("replayed "), up...)) {
		t.Errorf("backend got %d bytes; want the replay then %d", len(b), len(up))
	}
	if !bytes.Equal(gotDown, down) {
		t.Errorf("client got %d bytes; want %d", len(gotDown), len(down))
	}
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	if counts.Up.Load() != int64(len(up)+9) || counts.Down.Load() != int64(len(down)) {
		t.Errorf("counts up %d down %d", counts.Up.Load(), counts.Down.Load())
	}
	if movedUp.Load() != int64(len(up)+9) || movedDown.Load() != int64(len(down)) {
		t.Errorf("Moved told of up %d down %d", movedUp.Load(), movedDown.Load())
	}
}

// TestIdleTimeout: a relay with nothing moving ends with ErrIdle and
// closes both ends; one that moves bytes one way only does not.
func TestIdleTimeout(t *testing.T) {
	client, backend, done, _ := setup(t, &Relay{IdleTimeout: time.Second}, nil)
	// One direction busy, the other silent, for several idle periods;
	// then the other way round: the relay must not mistake the silence of
	// the direction that was quiet before for idleness now.
	buf := make([]byte, 16)
	for _, phase := range []struct{ from, to net.Conn }{{client, backend}, {backend, client}} {
		stop := time.Now().Add(2500 * time.Millisecond)
		for time.Now().Before(stop) {
			if _, err := phase.from.Write([]byte("tick")); err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(phase.to, buf[:4]); err != nil {
				t.Fatalf("a busy relay ended: %v", err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	select {
	case err := <-done:
		t.Fatalf("Run ended while one way was busy: %v", err)
	default:
	}
	if err := <-done; !errors.Is(err, ErrIdle) {
		t.Errorf("Run: %v; want ErrIdle", err)
	}
	if _, err := client.Read(buf); err == nil {
		t.Errorf("client still open after the idle timeout")
	}
	if _, err := backend.Read(buf); err == nil {
		t.Errorf("backend still open after the idle timeout")
	}
}

// TestResetEndsBoth: an error one way closes both at once.
func TestResetEndsBoth(t *testing.T) {
	client, backend, done, _ := setup(t, &Relay{}, nil)
	backend.(*net.TCPConn).SetLinger(0)
	backend.Close() // RST
	if err := <-done; err == nil {
		t.Errorf("Run after a reset: nil error")
	}
	if _, err := client.Read(make([]byte, 1)); err == nil {
		t.Errorf("client still open")
	}
}

// TestStuckWriterIdles: a backend that reads nothing while the client
// fills every buffer makes the relay idle: the copy blocked in its write
// moves no byte, and the relay ends instead of holding both forever.
func TestStuckWriterIdles(t *testing.T) {
	client, _, done, _ := setup(t, &Relay{IdleTimeout: 300 * time.Millisecond}, nil)
	go func() {
		chunk := make([]byte, 64<<10)
		for {
			if _, err := client.Write(chunk); err != nil {
				return
			}
		}
	}()
	if err := <-done; !errors.Is(err, ErrIdle) {
		t.Errorf("Run: %v; want ErrIdle", err)
	}
}

// TestReplayLeavesNoWriteDeadline: the deadline that bounds writing the
// replayed bytes is cleared after them, so the client's bytes still reach
// the backend past IdleTimeout from the start while traffic flows; a
// write that fails ends the relay rather than dropping bytes.
func TestReplayLeavesNoWriteDeadline(t *testing.T) {
	const idle = 300 * time.Millisecond
	client, backend, done, _ := setup(t, &Relay{IdleTimeout: idle}, []byte("hello\n"))
	stop := make(chan struct{})
	defer close(stop)
	go func() { // the backend keeps talking, so the relay is never idle
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
				backend.Write([]byte("tick\n"))
			}
		}
	}()
	go io.Copy(io.Discard, client)
	up := make(chan []byte, 1)
	go func() {
		var b []byte
		buf := make([]byte, 64)
		for len(b) < 6+20*5 {
			n, err := backend.Read(buf)
			b = append(b, buf[:n]...)
			if err != nil {
				break
			}
		}
		up <- b
	}()
	want := []byte("hello\n")
	for range 20 { // 1 s: past the first write deadline
		if _, err := client.Write([]byte("ping\n")); err != nil {
			t.Fatal(err)
		}
		want = append(want, "ping\n"...)
		time.Sleep(50 * time.Millisecond)
	}
	select {
	case err := <-done:
		t.Fatalf("relay ended with traffic flowing: %v", err)
	default:
	}
	if b := <-up; !bytes.Equal(b, want) {
		t.Errorf("backend got %q; want %q", b, want)
	}
}

// TestQuietRelayHoldsNoBuffer: between messages a relay of two sockets
// holds no copy buffer, so idle connections cost none.
func TestQuietRelayHoldsNoBuffer(t *testing.T) {
	before := heldBufs.Load()
	client, backend, done, _ := setup(t, &Relay{IdleTimeout: 10 * time.Second}, []byte("hello\n"))
	buf := make([]byte, 64)
	if _, err := io.ReadFull(backend, buf[:6]); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		client.Write([]byte("ping\n"))
		if _, err := io.ReadFull(backend, buf[:5]); err != nil {
			t.Fatal(err)
		}
		backend.Write([]byte("pong\n"))
		if _, err := io.ReadFull(client, buf[:5]); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(50 * time.Millisecond) // both directions wait for bytes
	if n := heldBufs.Load() - before; n != 0 {
		t.Errorf("a quiet relay holds %d buffers; want 0", n)
	}
	client.(*net.TCPConn).CloseWrite()
	backend.(*net.TCPConn).CloseWrite()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	if n := heldBufs.Load() - before; n != 0 {
		t.Errorf("%d buffers not given back after Run", n)
	}
}
