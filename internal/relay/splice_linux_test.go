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

// spliceAll runs a splicer from src's peer to dst's peer: it writes data
// into in, half-closes it, and steps until EOF, checking each step's
// bound, then returns what arrived at out.
func spliceAll(t *testing.T, data []byte, limit int64) (got []byte, pipeCap int) {
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
		total += m
		if pipeCap == 0 && sp.w >= 0 {
			pipeCap, _ = unix.FcntlInt(uintptr(sp.w), unix.F_GETPIPE_SZ, 0)
		}
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
	return <-arrived, pipeCap
}

// TestSplicer: bytes arrive whole and in order through the enlarged
// pipe, in steps no larger than asked, and the source's end is io.EOF.
func TestSplicer(t *testing.T) {
	data := make([]byte, 5<<20+123)
	rand.Read(data)
	got, pipeCap := spliceAll(t, data, 1<<20)
	if !bytes.Equal(got, data) {
		t.Errorf("got %d bytes, differing from the %d sent", len(got), len(data))
	}
	if pipeCap != pipeSize {
		t.Errorf("pipe capacity %d; want %d", pipeCap, pipeSize)
	}
	if n := bigPipes.Load(); n != 0 {
		t.Errorf("after close, %d bytes of enlarged pipes still counted", n)
	}
}

// TestSplicerPastBudget: with the budget spent, a direction splices
// through a pipe of the kernel's default size, and still moves every byte.
func TestSplicerPastBudget(t *testing.T) {
	defer func(b int64) { bigPipeBudget = b }(bigPipeBudget)
	bigPipeBudget = 0
	data := make([]byte, 3<<20)
	rand.Read(data)
	got, pipeCap := spliceAll(t, data, 256<<10)
	if !bytes.Equal(got, data) {
		t.Errorf("got %d bytes, differing from the %d sent", len(got), len(data))
	}
	if pipeCap >= pipeSize {
		t.Errorf("pipe capacity %d past the budget; want the default", pipeCap)
	}
	if n := bigPipes.Load(); n != 0 {
		t.Errorf("%d bytes of enlarged pipes counted past the budget", n)
	}
}

// TestSplicerDeadline: a step waiting on a quiet source ends at the
// source's read deadline, having moved nothing.
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
}
