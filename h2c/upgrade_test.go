package h2c

import (
	"bufio"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/portmux/portmux/internal/h2frame"
	"github.com/portmux/portmux/internal/testtool"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// TestUpgradeLimits: off by default; a body over the limit is served over
// HTTP/1.1 in full.
func TestUpgradeLimits(t *testing.T) {
	off := serve(t, newServer(false), false)
	if got, want := testtool.Curl(t, "--http2", "http://"+off+"/"), "HTTP/1.1 GET / 0"; !strings.HasPrefix(got, want) {
		t.Errorf("AllowUpgrade off: got %q; want prefix %q", got, want)
	}
	srv := newServer(true)
	srv.MaxUpgradeBodyBytes = 1000
	addr := serve(t, srv, false)
	small, large := strings.Repeat("s", 1000), strings.Repeat("L", 1001)
	if got, want := testtool.Curl(t, "--http2", "-d", small, "http://"+addr+"/"), "HTTP/2.0 POST / 1000 "+digest([]byte(small)); !strings.HasPrefix(got, want) {
		t.Errorf("body at the limit: got %q; want prefix %q", got, want)
	}
	if got, want := testtool.Curl(t, "--http2", "-d", large, "http://"+addr+"/"), "HTTP/1.1 POST / 1001 "+digest([]byte(large)); !strings.HasPrefix(got, want) {
		t.Errorf("body over the limit: got %q; want prefix %q", got, want)
	}
	// Chunked, so the size is learnt only by reading: still whole over HTTP/1.1.
	if got, want := testtool.Curl(t, "--http2", "-H", "Transfer-Encoding: chunked", "-d", large, "http://"+addr+"/"), "HTTP/1.1 POST / 1001 "+digest([]byte(large)); !strings.HasPrefix(got, want) {
		t.Errorf("chunked body over the limit: got %q; want prefix %q", got, want)
	}
	if got, want := testtool.Curl(t, "--http2", "-H", "Transfer-Encoding: chunked", "-d", small, "http://"+addr+"/"), "HTTP/2.0 POST / 1000 "+digest([]byte(small)); !strings.HasPrefix(got, want) {
		t.Errorf("chunked body at the limit: got %q; want prefix %q", got, want)
	}
}

func TestBadUpgrades(t *testing.T) {
	addr := serve(t, newServer(true), false)
	good := base64.RawURLEncoding.EncodeToString(settingsPayload(http2.SettingInitialWindowSize, 1000))
	const head = "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\n"
	tests := []struct {
		name, req string
		status    int
		body      string
	}{
		{"not base64url", head + "Connection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABk+/\r\n\r\n", 400, errSettingsEncoding.Error()},
		{"repeated", head + "Connection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: " + good + "\r\nHTTP2-Settings: " + good + "\r\n\r\n", 400, errSettingsRepeated.Error()},
		{"partial setting", head + "Connection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAA\r\n\r\n", 400, errSettingsLength.Error()},
		{"push 2", head + "Connection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: " + base64.RawURLEncoding.EncodeToString(settingsPayload(http2.SettingEnablePush, 2)) + "\r\n\r\n", 400, "setting 0x2 = 2"},
		{"connect protocol 2", head + "Connection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: " + base64.RawURLEncoding.EncodeToString(settingsPayload(0x8, 2)) + "\r\n\r\n", 400, "setting 0x8 = 2"},
		{"frame size too small", head + "Connection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: " + base64.RawURLEncoding.EncodeToString(settingsPayload(http2.SettingMaxFrameSize, 100)) + "\r\n\r\n", 400, "setting 0x5 = 100"},
		{"not a Connection option", head + "Connection: Upgrade\r\nHTTP2-Settings: " + good + "\r\n\r\n", 400, errSettingsNotOption.Error()},
		{"too many", head + "Connection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: " + strings.Repeat("AAMAAABk", 65) + "\r\n\r\n", 400, errSettingsTooMany.Error()},
		// RFC 7540 §3.2.1: no HTTP2-Settings, no upgrade: plain HTTP/1.1.
		{"no HTTP2-Settings", head + "Connection: Upgrade\r\n\r\n", 200, "HTTP/1.1 GET / 0"},
		// RFC 9110 §7.8: Upgrade without the Connection option is no upgrade.
		{"no Connection option", head + "HTTP2-Settings: " + good + "\r\n\r\n", 200, "HTTP/1.1 GET / 0"},
		// net/http's own answer to OPTIONS * is kept when no upgrade is asked.
		{"OPTIONS *", "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", 200, ""},
		// Padding is tolerated; RFC 7540 says it is omitted.
		{"padded", head + "Connection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAAQAAP__==\r\n\r\n", 101, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := testtool.ExchangeHTTP(t, addr, tt.req)
			if resp.StatusCode != tt.status || !strings.Contains(body, tt.body) {
				t.Errorf("got %d %q; want %d containing %q", resp.StatusCode, body, tt.status, tt.body)
			}
		})
	}
}

func settingsPayload(id http2.SettingID, val uint32) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(id))
	return binary.BigEndian.AppendUint32(b, val)
}

// h2Conn is a raw HTTP/2 client connection for checking frames.
type h2Conn struct {
	net.Conn
	fr *http2.Framer
	br *bufio.Reader
}

// dialH2 connects and starts HTTP/2 by prior knowledge or by upgrading a
// GET of /big with HTTP2-Settings upgradeSettings; in both cases the
// client's first SETTINGS frame holds own.
func dialH2(t *testing.T, addr string, upgrade bool, upgradeSettings []byte, own ...http2.Setting) *h2Conn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	c := &h2Conn{Conn: nc, br: bufio.NewReader(nc)}
	if upgrade {
		fmt.Fprintf(nc, "GET /big HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: %s\r\n\r\n",
			addr, base64.RawURLEncoding.EncodeToString(upgradeSettings))
		resp, err := http.ReadResponse(c.br, nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Upgrade") != "h2c" {
			t.Fatalf("upgrade answered %s, Upgrade %q", resp.Status, resp.Header.Get("Upgrade"))
		}
	}
	io.WriteString(nc, h2frame.ClientPreface)
	c.fr = http2.NewFramer(nc, c.br)
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	if err := c.fr.WriteSettings(own...); err != nil {
		t.Fatal(err)
	}
	return c
}

// serverSettings reads the server's first frame, its SETTINGS.
func (c *h2Conn) serverSettings(t *testing.T) map[http2.SettingID]uint32 {
	t.Helper()
	f, err := c.fr.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	sf, ok := f.(*http2.SettingsFrame)
	if !ok || sf.IsAck() {
		t.Fatalf("server's first frame is %v; want SETTINGS", f)
	}
	got := map[http2.SettingID]uint32{}
	sf.ForeachSetting(func(s http2.Setting) error { got[s.ID] = s.Val; return nil })
	return got
}

// TestUpgradeFrames checks the upgraded connection frame by frame: the
// HTTP2-Settings values are in force (the server keeps to the flow-control
// window they set), the client's own SETTINGS override them, exactly one
// SETTINGS ACK comes back, and the response is on stream 1.
func TestUpgradeFrames(t *testing.T) {
	const size = 3000
	big := strings.Repeat("b", size)
	srv := &Server{HTTP: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Proto", r.Proto)
		io.WriteString(w, big)
	})}, AllowUpgrade: true}
	addr := serve(t, srv, false)

	for _, tt := range []struct {
		name   string
		window uint32 // in HTTP2-Settings
		own    []http2.Setting
		want   int // bytes of DATA before the window is opened
	}{
		{"HTTP2-Settings window", 1000, nil, 1000},
		{"own SETTINGS override", 1000, []http2.Setting{{ID: http2.SettingInitialWindowSize, Val: 2000}}, 2000},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := dialH2(t, addr, true, settingsPayload(http2.SettingInitialWindowSize, tt.window), tt.own...)
			var acks, data int
			var status, proto string
			pinged, sent := false, false
			// Read until the window is used up and the response is in;
			// then a PING's answer shows that nothing else was queued.
			for !pinged {
				if !sent && status != "" && data >= tt.want {
					c.fr.WritePing(false, [8]byte{1})
					sent = true
				}
				f, err := c.fr.ReadFrame()
				if err != nil {
					t.Fatalf("after %d bytes of DATA: %v", data, err)
				}
				switch f := f.(type) {
				case *http2.SettingsFrame:
					if f.IsAck() {
						acks++
					}
				case *http2.MetaHeadersFrame:
					if f.StreamID != 1 {
						t.Fatalf("response on stream %d; want 1", f.StreamID)
					}
					status = f.PseudoValue("status")
					for _, hf := range f.RegularFields() {
						if hf.Name == "x-proto" {
							proto = hf.Value
						}
					}
				case *http2.DataFrame:
					if f.StreamID != 1 {
						t.Fatalf("DATA on stream %d; want 1", f.StreamID)
					}
					data += len(f.Data())
				case *http2.PingFrame:
					pinged = f.IsAck()
				case *http2.GoAwayFrame:
					t.Fatalf("GOAWAY %v %q", f.ErrCode, f.DebugData())
				}
			}
			if status != "200" || proto != "HTTP/2.0" || acks != 1 || data != tt.want {
				t.Fatalf("status %q proto %q, %d SETTINGS ACKs, %d bytes of DATA; want 200 HTTP/2.0, 1 ACK, %d bytes", status, proto, acks, data, tt.want)
			}
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			c.fr.WriteWindowUpdate(1, size)
			c.fr.WriteWindowUpdate(0, size)
			for data < size {
				f, err := c.fr.ReadFrame()
				if err != nil {
					t.Fatal(err)
				}
				if d, ok := f.(*http2.DataFrame); ok {
					data += len(d.Data())
				}
			}
		})
	}
}

// TestUpgradeEarlyPreface: a client that sends its preface with the
// upgrade request (before reading the 101) loses no bytes.
func TestUpgradeEarlyPreface(t *testing.T) {
	addr := serve(t, newServer(true), false)
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	var buf strings.Builder
	buf.WriteString("POST /early HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: \r\n\r\nhello")
	buf.WriteString(h2frame.ClientPreface)
	var frames strings.Builder
	fr := http2.NewFramer(&frames, nil)
	fr.WriteSettings()
	buf.WriteString(frames.String())
	io.WriteString(nc, buf.String())
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	rf := http2.NewFramer(nil, br)
	rf.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	for {
		f, err := rf.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		if d, ok := f.(*http2.DataFrame); ok {
			if got, want := string(d.Data()), "HTTP/2.0 POST /early 5 "+digest([]byte("hello")); !strings.HasPrefix(got, want) {
				t.Fatalf("got %q; want prefix %q", got, want)
			}
			return
		}
	}
}

func TestRequestHeaders(t *testing.T) {
	r, err := http.ReadRequest(bufio.NewReader(strings.NewReader("POST http://example.com/p?q HTTP/1.1\r\nHost: example.com\r\n" +
		"Connection: Upgrade, HTTP2-Settings, X-Hop\r\nUpgrade: h2c\r\nHTTP2-Settings: \r\nX-Hop: 1\r\nKeep-Alive: 5\r\n" +
		"TE: trailers, deflate\r\nCookie: a=1\r\nCookie: b=2\r\nContent-Length: 3\r\nX-H2c-Upgrade-Body: forged\r\n\r\nabc")))
	if err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(nil, strings.NewReader(string(requestHeaders(r, "tok"))))
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	f, err := fr.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	h := f.(*http2.MetaHeadersFrame)
	var got []string
	for _, hf := range h.Fields {
		got = append(got, hf.Name+": "+hf.Value)
	}
	want := []string{":method: POST", ":scheme: http", ":authority: example.com", ":path: /p?q", "cookie: a=1", "cookie: b=2", "te: trailers", "x-h2c-upgrade-body: tok"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") || h.StreamID != 1 || !h.StreamEnded() {
		t.Errorf("HEADERS on stream %d (end %v):\n%s\nwant\n%s", h.StreamID, h.StreamEnded(), strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestUpgradeOnlyPort: on a port that accepts only h2c upgrades, a plain
// request gets 426 naming h2c, and an upgrade is served.
func TestUpgradeOnlyPort(t *testing.T) {
	addr := serve(t, newServer(true), true)
	got := testtool.Curl(t, "-i", "http://"+addr+"/")
	for _, want := range []string{"HTTP/1.1 426 Upgrade Required\r\n", "\r\nUpgrade: h2c\r\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("plain request: no %q in %q", want, got)
		}
	}
	if got, want := testtool.Curl(t, "--http2", "http://"+addr+"/u"), "HTTP/2.0 GET /u 0"; !strings.HasPrefix(got, want) {
		t.Errorf("upgrade: got %q; want prefix %q", got, want)
	}
}

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

const upgradeHeaders = "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: \r\n"
