package h2c

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/portmux/portmux/internal/h2frame"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// Tests for defects a review found; each failed before its fix.

func rawUpgrade(t *testing.T, addr, req string) (net.Conn, *bufio.Reader) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(nc, req)
	br := bufio.NewReader(nc)
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode == http.StatusSwitchingProtocols {
			return nc, br
		}
		if resp.StatusCode != http.StatusContinue {
			t.Fatalf("upgrade answered %s", resp.Status)
		}
	}
}

// readStream1 starts HTTP/2 after the 101 and returns stream 1's status
// and body.
func readStream1(t *testing.T, nc net.Conn, br *bufio.Reader) (status, body string) {
	t.Helper()
	io.WriteString(nc, h2frame.ClientPreface)
	fr := http2.NewFramer(nc, br)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	fr.WriteSettings()
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("stream 1 so far %q %q: %v", status, body, err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				fr.WriteSettingsAck()
			}
		case *http2.MetaHeadersFrame:
			status = f.PseudoValue("status")
			if f.StreamEnded() {
				return status, body
			}
		case *http2.DataFrame:
			body += string(f.Data())
			if f.StreamEnded() {
				return status, body
			}
		case *http2.RSTStreamFrame:
			t.Fatalf("RST_STREAM %d %v", f.StreamID, f.ErrCode)
		case *http2.GoAwayFrame:
			t.Fatalf("GOAWAY %v %q", f.ErrCode, f.DebugData())
		}
	}
}

const upgradeHeaders = "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: \r\n"

// TestUpgradeShapes: what the handler sees on stream 1 for requests of
// every shape; the body is no DATA on the wire, so flow-control windows
// do not bound it (a 40 KiB body above a 16 KiB stream window).
func TestUpgradeShapes(t *testing.T) {
	srv := &Server{HTTP: &http.Server{
		ReadHeaderTimeout: 5 * time.Second,
		HTTP2:             &http.HTTP2Config{MaxReceiveBufferPerStream: 16 << 10},
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			fmt.Fprintf(w, "%s %s uri=%s host=%s len=%d cl=%d trailer=%v x-a=%q marker=%q", r.Proto, r.Method, r.RequestURI, r.Host,
				len(b), r.ContentLength, r.Trailer, r.Header.Get("X-A"), r.Header.Get(bodyMarker))
		}),
	}, AllowUpgrade: true}
	addr := serve(t, srv, false)
	big := strings.Repeat("a", 40<<10)
	for _, tt := range []struct{ name, req, want string }{
		{"absolute-form", "GET http://other.example/p?q=1 HTTP/1.1\r\nHost: x\r\n" + upgradeHeaders + "\r\n",
			`HTTP/2.0 GET uri=/p?q=1 host=other.example len=0 cl=0 trailer=map[] x-a="" marker=""`},
		{"HEAD", "HEAD /h HTTP/1.1\r\nHost: x\r\n" + upgradeHeaders + "\r\n", ""},
		{"Expect", "POST /e HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n" + upgradeHeaders + "\r\nabc",
			`HTTP/2.0 POST uri=/e host=x len=3 cl=3 trailer=map[] x-a="" marker=""`},
		{"chunked with trailer", "POST /c HTTP/1.1\r\nHost: x\r\nTrailer: X-T\r\nTransfer-Encoding: chunked\r\n" + upgradeHeaders + "\r\n3\r\nabc\r\n0\r\nX-T: v\r\n\r\n",
			`HTTP/2.0 POST uri=/c host=x len=3 cl=3 trailer=map[X-T:[v]] x-a="" marker=""`},
		{"Connection-listed field", "GET /l HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings, X-A\r\nUpgrade: h2c\r\nHTTP2-Settings: \r\nX-A: 1\r\n\r\n",
			`HTTP/2.0 GET uri=/l host=x len=0 cl=0 trailer=map[] x-a="" marker=""`},
		{"forged marker", "GET /f HTTP/1.1\r\nHost: x\r\nX-H2c-Upgrade-Body: guess\r\n" + upgradeHeaders + "\r\n",
			`HTTP/2.0 GET uri=/f host=x len=0 cl=0 trailer=map[] x-a="" marker=""`},
		{"body over the stream window", fmt.Sprintf("POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n%s\r\n%s", len(big), upgradeHeaders, big),
			`HTTP/2.0 POST uri=/b host=x len=40960 cl=40960 trailer=map[] x-a="" marker=""`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			nc, br := rawUpgrade(t, addr, tt.req)
			status, body := readStream1(t, nc, br)
			if status != "200" || body != tt.want {
				t.Errorf("got %s %q; want 200 %q", status, body, tt.want)
			}
		})
	}
}

// TestHTTP1After101: after switching to h2c, an HTTP/1.1 request in place
// of the preface is never served as HTTP/1.1 (h2c smuggling); the server
// answers with GOAWAY and closes.
func TestHTTP1After101(t *testing.T) {
	addr := serve(t, newServer(true), false)
	nc, br := rawUpgrade(t, addr, "GET /first HTTP/1.1\r\nHost: x\r\n"+upgradeHeaders+"\r\nGET /second HTTP/1.1\r\nHost: x\r\n\r\n")
	_ = nc
	rest, err := io.ReadAll(br)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(rest), "HTTP/1.1") || !strings.Contains(string(rest), "\x00\x00\x00\x00\x00\x00\x00\x00\x01") {
		t.Errorf("after the 101: %q; want frames ending in GOAWAY PROTOCOL_ERROR", rest)
	}
}

// TestSilentAfter101: a client that goes quiet inside the preface is
// dropped after UpgradeTimeout even with no server timeouts set.
func TestSilentAfter101(t *testing.T) {
	srv := &Server{HTTP: &http.Server{Handler: http.HandlerFunc(report)}, AllowUpgrade: true, UpgradeTimeout: 200 * time.Millisecond}
	addr := serve(t, srv, false)
	nc, br := rawUpgrade(t, addr, "GET / HTTP/1.1\r\nHost: x\r\n"+upgradeHeaders+"\r\n")
	io.WriteString(nc, "PRI * HTTP/2.0\r\n") // part of the preface, then silence
	if _, err := io.ReadAll(br); err != nil {
		t.Errorf("the server did not close the connection: %v", err)
	}
}
