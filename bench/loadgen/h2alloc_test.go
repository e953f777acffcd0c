package loadgen

import (
	"bufio"
	"context"
	"encoding/binary"
	"io"
	"net"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// h2ConstServer answers every request with a HEADERS frame holding only
// :status 200 and END_STREAM, built in place, so that it allocates
// nothing per request: allocations measured in the process are the
// client's.
func h2ConstServer(c net.Conn) {
	br := bufio.NewReaderSize(c, 64<<10)
	pre := make([]byte, 24)
	if _, err := io.ReadFull(br, pre); err != nil {
		return
	}
	c.Write([]byte{0, 0, 0, 4, 0, 0, 0, 0, 0}) // SETTINGS, empty
	var hdr [9]byte
	resp := []byte{0, 0, 1, 1, 5, 0, 0, 0, 0, 0x88} // HEADERS, END_STREAM|END_HEADERS, :status 200
	out := make([]byte, 0, 4096)
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return
		}
		n := int(hdr[0])<<16 | int(hdr[1])<<8 | int(hdr[2])
		if _, err := br.Discard(n); err != nil {
			return
		}
		switch typ, flags := hdr[3], hdr[4]; {
		case typ == 4 && flags&1 == 0: // SETTINGS: ACK it
			out = append(out, 0, 0, 0, 4, 1, 0, 0, 0, 0)
		case typ == 1: // HEADERS: answer on its stream
			binary.BigEndian.PutUint32(resp[5:9], binary.BigEndian.Uint32(hdr[5:9])&(1<<31-1))
			out = append(out, resp...)
		}
		if br.Buffered() == 0 && len(out) > 0 {
			if _, err := c.Write(out); err != nil {
				return
			}
			out = out[:0]
		}
	}
}

// h2Bench makes one h2c worker with its connection open, for measuring a
// request.
func h2Bench(tb testing.TB) (do func() error) {
	addr := rawServer(tb, h2ConstServer)
	s, err := (&Config{Mode: H2C, Target: "http://" + addr + "/", Concurrency: 1, Streams: 1}).resolve(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	r := &runner{s: s, ended: make(chan struct{})}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.workers = []*worker{{r: r, status: map[int]uint64{}}}
	clients, cleanup := newH2CClients(r)
	tb.Cleanup(func() {
		r.cancel()
		cleanup()
	})
	if err := clients[0].do(); err != nil { // connects
		tb.Fatal(err)
	}
	return clients[0].do
}

// TestH2CRequestAllocs holds an h2c request on an open connection to the
// allocations of x/net/http2's Framer reading the response's HEADERS
// (its MetaHeadersFrame and the decoded fields): the tool's own path,
// timeouts included, allocates nothing.
func TestH2CRequestAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	do := h2Bench(t)
	got := testing.AllocsPerRun(500, func() {
		if err := do(); err != nil {
			t.Fatal(err)
		}
	})
	framer := h2FramerAllocs(t)
	if got > framer {
		t.Errorf("%v allocations per request; want at most the Framer's %v", got, framer)
	}
}

func BenchmarkH2CRequest(b *testing.B) {
	b.ReportAllocs()
	do := h2Bench(b)
	for b.Loop() {
		if err := do(); err != nil {
			b.Fatal(err)
		}
	}
}

// repeatReader returns b again and again.
type repeatReader struct {
	b   []byte
	off int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := copy(p, r.b[r.off:])
	r.off = (r.off + n) % len(r.b)
	return n, nil
}

// h2FramerAllocs measures what the client's Framer, set up as h2c.go
// sets it, allocates to read the response that h2ConstServer sends.
func h2FramerAllocs(t *testing.T) float64 {
	fr := http2.NewFramer(io.Discard, bufio.NewReaderSize(&repeatReader{b: []byte{0, 0, 1, 1, 5, 0, 0, 0, 1, 0x88}}, 16<<10))
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	fr.MaxHeaderListSize = h2MaxHeader
	fr.SetMaxReadFrameSize(h2MaxFrame)
	return testing.AllocsPerRun(500, func() {
		if _, err := fr.ReadFrame(); err != nil {
			t.Fatal(err)
		}
	})
}
