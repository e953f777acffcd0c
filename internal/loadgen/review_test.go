package loadgen

import (
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// Tests for defects a review found; each failed (or crashed) before its fix.

// TestWSHugeContinuation: a continuation frame whose 64-bit length would
// overflow the echo's bound is a protocol error, not a panic.
func TestWSHugeContinuation(t *testing.T) {
	addr := rawServer(t, func(c net.Conn) {
		if _, err := ws.Upgrade(c); err != nil {
			return
		}
		if _, _, err := wsutil.ReadClientData(c); err != nil {
			return
		}
		c.Write(append([]byte{0x02, 8}, make([]byte, 8)...)) // binary, not final, 8 bytes
		h := []byte{0x80, 127, 0, 0, 0, 0, 0, 0, 0, 0}       // continuation, final, 2^63-4
		binary.BigEndian.PutUint64(h[2:], 1<<63-4)
		c.Write(h)
		io.Copy(io.Discard, c)
	})
	res := run(t, Config{Mode: WS, Target: "ws://" + addr + "/", Concurrency: 1, Requests: 1, Size: 16})
	if res.Requests != 0 || res.ErrorsByKind["protocol"] != 1 {
		t.Errorf("requests %d, errors %v; want one protocol error", res.Requests, res.ErrorsByKind)
	}
}

// TestH2CTrailers: a response with trailers is a good response.
func TestH2CTrailers(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Checksum")
		io.WriteString(w, "body")
		w.Header().Set("X-Checksum", "abc")
	}))
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	t.Cleanup(srv.Close)
	res := run(t, Config{Mode: H2C, Target: srv.URL, Concurrency: 1, Streams: 4, Requests: 40})
	if res.Errors != 0 || res.Requests != 40 {
		t.Errorf("requests %d, errors %v %v; want 40 ok", res.Requests, res.ErrorsByKind, res.ErrorSamples)
	}
}
