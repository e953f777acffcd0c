package h2c

import (
	"bytes"
	"io"
	"net"
	"testing"

	"github.com/portmux/portmux/internal/h2frame"
)

// readerConn is a net.Conn that reads from r and discards writes.
type readerConn struct {
	net.Conn
	r io.Reader
}

func (c readerConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// FuzzUpgradedConn: whatever a client sends after the 101, in whatever
// pieces, the server reads either nothing (an error) or the preface, one
// merged SETTINGS frame, stream 1, and the rest unchanged: no byte is
// lost or reordered, and nothing but HTTP/2 is ever read.
func FuzzUpgradedConn(f *testing.F) {
	f.Add([]byte(h2frame.ClientPreface+"\x00\x00\x06\x04\x00\x00\x00\x00\x00\x00\x04\x00\x00\x10\x00rest"), []byte{0, 0, 3, 0, 0, 0, 1}, 3)
	f.Add([]byte(h2frame.ClientPreface+"\x00\x00\x00\x04\x01\x00\x00\x00\x00"), []byte{}, 1)
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"), []byte{0, 4, 0, 0, 0, 9}, 7)
	f.Fuzz(func(t *testing.T, client, settings []byte, split int) {
		settings = settings[:len(settings)/6*6]
		stream1 := []byte("STREAM1")
		pre := client[:min(max(split, 0), len(client))]
		c := &upgradedConn{
			forget:   func() {},
			Conn:     readerConn{r: bytes.NewReader(client[len(pre):])},
			pre:      bytes.Clone(pre),
			settings: settings,
			stream1:  stream1,
		}
		got, err := io.ReadAll(io.Reader(c))
		n := len(h2frame.ClientPreface) + h2frame.HeaderLen
		if err != nil || len(got) == 0 {
			// Refused (or ended early): nothing reaches the server.
			if len(got) != 0 {
				t.Fatalf("%d bytes before the error %v", len(got), err)
			}
			return
		}
		if len(client) < n {
			t.Fatalf("accepted a short stream: %q -> %q", client, got)
		}
		size := int(client[n-9])<<16 | int(client[n-8])<<8 | int(client[n-7])
		own := client[n : n+size]
		merged := mergeSettings(settings, own)
		want := append([]byte(h2frame.ClientPreface), byte((len(merged)+size)>>16), byte((len(merged)+size)>>8), byte(len(merged)+size), 4, 0, 0, 0, 0, 0)
		want = append(want, merged...)
		want = append(want, own...)
		want = append(want, stream1...)
		want = append(want, client[n+size:]...)
		if !bytes.Equal(got, want) {
			t.Fatalf("got %q; want %q", got, want)
		}
	})
}

// Write discards: the GOAWAY of a refused stream goes nowhere.
func (c readerConn) Write(p []byte) (int, error) { return len(p), nil }

func (readerConn) RemoteAddr() net.Addr { return &net.TCPAddr{} }
