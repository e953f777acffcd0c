package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"strings"
	"testing"
)

// TestTCPStream: a request larger than the pattern's period and than a
// piece is streamed, and every byte of the echo is checked; the next
// request on the connection starts the pattern again.
func TestTCPStream(t *testing.T) {
	addr := rawServer(t, func(c net.Conn) { io.Copy(c, c) })
	const size = 5<<20 + 3
	res := run(t, Config{Mode: TCP, Target: "tcp://" + addr, Concurrency: 1, Requests: 2, Size: size})
	wantOK(t, res, 2)
	if res.BytesSent != 2*size || res.BytesReceived != 2*size {
		t.Errorf("bytes %d sent, %d received; want %d each", res.BytesSent, res.BytesReceived, 2*size)
	}
}

// TestTCPStreamCorrupt: a byte changed deep in a stream is found, and the
// error names its offset.
func TestTCPStreamCorrupt(t *testing.T) {
	const at = 3<<20 + 1
	addr := rawServer(t, func(c net.Conn) {
		b := make([]byte, 64<<10)
		var off int64
		for {
			n, err := c.Read(b)
			if err != nil {
				return
			}
			if at >= off && at < off+int64(n) {
				b[at-off] ^= 0x20
			}
			off += int64(n)
			if _, err := c.Write(b[:n]); err != nil {
				return
			}
		}
	})
	res := run(t, Config{Mode: TCP, Target: "tcp://" + addr, Concurrency: 1, Requests: 1, Size: 5<<20 + 3})
	wantErrors(t, res, KindProtocol, 1)
	if want := fmt.Sprint("at byte ", at); !strings.Contains(res.ErrorSamples["protocol"], want) {
		t.Errorf("error %q; want it to say %q", res.ErrorSamples["protocol"], want)
	}
}

// TestTCPSizeLimit: TCP streams, so its Size may go to MaxTCPSize; the
// other modes hold Size bytes and stay within MaxSize.
func TestTCPSizeLimit(t *testing.T) {
	ok := Config{Mode: TCP, Target: "127.0.0.1:1", Size: int(min(MaxTCPSize, math.MaxInt))}
	if _, err := ok.resolve(context.Background()); err != nil {
		t.Errorf("Size %d: %v", ok.Size, err)
	}
	for _, cfg := range []Config{
		{Mode: TCP, Target: "127.0.0.1:1", Size: int(min(MaxTCPSize+1, math.MaxInt))},
		{Mode: WS, Target: "127.0.0.1:1", Size: MaxSize + 1},
	} {
		if _, err := cfg.resolve(context.Background()); !errors.Is(err, ErrBadConfig) {
			t.Errorf("%s Size %d: %v; want ErrBadConfig", cfg.Mode, cfg.Size, err)
		}
	}
}

func TestTCP(t *testing.T) {
	addr := rawServer(t, func(c net.Conn) { io.Copy(c, c) })
	for _, size := range []int{1, 1000, 1 << 20} { // 1 MiB: more than the socket buffers
		res := run(t, Config{Mode: TCP, Target: "tcp://" + addr, Concurrency: 2, Requests: 10, Size: size})
		wantOK(t, res, 10)
		if want := uint64(10 * size); res.BytesSent != want || res.BytesReceived != want {
			t.Errorf("size %d: bytes %d sent, %d received; want %d each", size, res.BytesSent, res.BytesReceived, want)
		}
		if res.Connections < 1 || res.Connections > 2 {
			t.Errorf("connections %d; want at most 2, one per worker", res.Connections)
		}
	}
	// An echo that changes a byte.
	bad := rawServer(t, func(c net.Conn) {
		b := make([]byte, 64<<10)
		for {
			n, err := c.Read(b)
			if err != nil {
				return
			}
			b[0]++
			c.Write(b[:n])
		}
	})
	wantErrors(t, run(t, Config{Mode: TCP, Target: bad, Requests: 3, Size: 10}), KindProtocol, 3)
}
