package relay

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// emptyPool closes the pooled pipes, so that the next step makes one.
func emptyPool() {
	for {
		select {
		case p := <-idlePipes:
			p.close()
		default:
			return
		}
	}
}

// spliceAll runs a splicer from in's peer to out's peer: it writes data
// into in, half-closes it, and steps until EOF, checking each step's bound
// and that no step keeps a pipe; it returns what arrived at out.
func spliceAll(t *testing.T, data []byte, limit int64) []byte {
	t.Helper()
	in, src := tcpPair(t)
	dst, out := tcpPair(t)
	sp := newSplicer(dst, src)
	if sp == nil {
		t.Fatal("newSplicer: nil for two TCP connections")
	}
	defer sp.close()
	go func() {
		in.Write(data)
		in.CloseWrite()
	}()
	arrived := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(out)
		arrived <- b
	}()
	src.SetReadDeadline(time.Now().Add(20 * time.Second))
	var total int64
	for {
		m, err := sp.step(limit)
		if m > limit {
			t.Fatalf("step moved %d; limit %d", m, limit)
		}
		if sp.p != nil {
			t.Fatalf("a pipe held between steps")
		}
		total += m
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("step: %v", err)
		}
	}
	if total != int64(len(data)) {
		t.Errorf("steps moved %d bytes; want %d", total, len(data))
	}
	dst.CloseWrite()
	return <-arrived
}

// TestSplicer: bytes arrive whole and in order, in steps no larger than
// asked, the source's end is io.EOF, and the pipe goes back to the pool.
func TestSplicer(t *testing.T) {
	emptyPool()
	data := make([]byte, 5<<20+123)
	rand.Read(data)
	if got := spliceAll(t, data, 1<<20); !bytes.Equal(got, data) {
		t.Errorf("got %d bytes, differing from the %d sent", len(got), len(data))
	}
	if len(idlePipes) != 1 {
		t.Errorf("%d pipes pooled after one direction; want 1", len(idlePipes))
	}
}

// TestPipeSizes: pipes are enlarged within the budget and keep the
// default size past it, and the budget is given back when they close.
func TestPipeSizes(t *testing.T) {
	emptyPool()
	defer func(b int64) { bigPipeBudget = b }(bigPipeBudget)
	bigPipeBudget = pipeSize
	size := func(p *pipePair) int {
		n, err := unix.FcntlInt(uintptr(p.w), unix.F_GETPIPE_SZ, 0)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	a, err := getPipe()
	if err != nil {
		t.Fatal(err)
	}
	b, err := getPipe()
	if err != nil {
		t.Fatal(err)
	}
	if !a.big || size(a) != pipeSize {
		t.Errorf("first pipe: %d bytes; want %d", size(a), pipeSize)
	}
	if b.big || size(b) >= pipeSize {
		t.Errorf("pipe past the budget: %d bytes; want the default", size(b))
	}
	a.close()
	b.close()
	if n := bigPipes.Load(); n != 0 {
		t.Errorf("%d bytes of enlarged pipes counted after closing them", n)
	}
	// Past the budget, a direction still moves every byte.
	bigPipeBudget = 0
	data := make([]byte, 3<<20)
	rand.Read(data)
	if got := spliceAll(t, data, 256<<10); !bytes.Equal(got, data) {
		t.Errorf("got %d bytes, differing from the %d sent", len(got), len(data))
	}
	emptyPool()
}

// TestSplicerDeadline: a step waiting on a quiet source ends at the
// source's read deadline, having moved nothing and holding no pipe.
func TestSplicerDeadline(t *testing.T) {
	_, src := tcpPair(t)
	dst, _ := tcpPair(t)
	sp := newSplicer(dst, src)
	defer sp.close()
	src.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	m, err := sp.step(1 << 20)
	if m != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("step on a quiet source: %d, %v; want 0, a deadline error", m, err)
	}
	if sp.p != nil {
		t.Errorf("a pipe held after the wait")
	}
}

// TestSplicerWriteError: a destination that fails is a *dstError, not a
// deadline, and the pipe still holding its bytes is closed, not pooled.
func TestSplicerWriteError(t *testing.T) {
	emptyPool()
	in, src := tcpPair(t)
	dst, out := tcpPair(t)
	out.SetLinger(0)
	out.Close() // RST: writes to dst fail
	time.Sleep(50 * time.Millisecond)
	sp := newSplicer(dst, src)
	defer sp.close()
	go in.Write(make([]byte, 4<<20))
	src.SetReadDeadline(time.Now().Add(20 * time.Second))
	var err error
	for err == nil {
		_, err = sp.step(1 << 20)
	}
	var de *dstError
	if !errors.As(err, &de) || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("step to a reset destination: %v; want a *dstError", err)
	}
	if sp.p != nil || len(idlePipes) != 0 {
		t.Errorf("a pipe with bytes in it was kept (held %v, pooled %d)", sp.p != nil, len(idlePipes))
	}
}
