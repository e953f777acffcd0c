package h2c

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/portmux/portmux/internal/h2frame"
	"github.com/portmux/portmux/internal/testtool"
	"github.com/portmux/portmux/mux"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// report answers with what the handler saw: protocol, method, path, body
// length and digest, so each test can tell which way a request came.
func report(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	sum := sha256.Sum256(body)
	fmt.Fprintf(w, "%s %s %s %d %s x=%s", r.Proto, r.Method, r.URL.RequestURI(), len(body), hex.EncodeToString(sum[:4]), r.Header.Get("X-Test"))
}

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:4])
}

// serve starts a mux on 127.0.0.1:0 with routes for prior-knowledge h2c,
// h2c upgrades and HTTP/1.1, all served by srv; upgradeOnly makes the
// port take only h2c upgrades (and prior knowledge).
func serve(t testing.TB, srv *Server, upgradeOnly bool) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := new(mux.Mux)
	lns := []net.Listener{m.Listen("h2c", mux.HTTP2()), m.Listen("upgrade", mux.Upgrade("h2c"))}
	if upgradeOnly {
		m.UpgradeOnly = []string{"h2c"}
	} else {
		lns = append(lns, m.Listen("http1", mux.HTTP1()))
	}
	var wg sync.WaitGroup
	for _, l := range lns {
		wg.Go(func() { srv.Serve(l) })
	}
	wg.Go(func() { m.Serve(ln) })
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		m.Close()
		wg.Wait()
	})
	return ln.Addr().String()
}

func newServer(upgrade bool) *Server {
	return &Server{
		HTTP:         &http.Server{Handler: http.HandlerFunc(report), ReadHeaderTimeout: 5 * time.Second},
		AllowUpgrade: upgrade,
	}
}

func h2cClient() *http.Client {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: &http.Transport{Protocols: &p}, Timeout: 10 * time.Second}
}

func get(t *testing.T, c *http.Client, url string) string {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestOneHandlerBothProtocols(t *testing.T) {
	addr := serve(t, newServer(false), false)
	h2 := h2cClient()
	defer h2.CloseIdleConnections()
	if got, want := get(t, h2, "http://"+addr+"/a?b=c"), "HTTP/2.0 GET /a?b=c 0"; !strings.HasPrefix(got, want) {
		t.Errorf("prior knowledge: got %q; want prefix %q", got, want)
	}
	c := &http.Client{Timeout: 10 * time.Second}
	defer c.CloseIdleConnections()
	if got, want := get(t, c, "http://"+addr+"/a"), "HTTP/1.1 GET /a 0"; !strings.HasPrefix(got, want) {
		t.Errorf("HTTP/1.1: got %q; want prefix %q", got, want)
	}
}

// TestServerSettingsShared: the http.Server's HTTP2 settings reach
// connections of both kinds, prior knowledge and upgraded.
func TestServerSettingsShared(t *testing.T) {
	srv := newServer(true)
	srv.HTTP.HTTP2 = &http.HTTP2Config{MaxConcurrentStreams: 7, MaxReadFrameSize: 1 << 15}
	addr := serve(t, srv, false)
	for _, upgrade := range []bool{false, true} {
		c := dialH2(t, addr, upgrade, nil)
		got := c.serverSettings(t)
		if got[http2.SettingMaxConcurrentStreams] != 7 || got[http2.SettingMaxFrameSize] != 1<<15 {
			t.Errorf("upgrade=%v: server settings %v; want max streams 7, frame size 32768", upgrade, got)
		}
		c.Close()
	}
}

func curl(t *testing.T, args ...string) string {
	t.Helper()
	path := testtool.Need(t, "curl")
	out, err := exec.Command(path, append([]string{"-sS", "--max-time", "10"}, args...)...).CombinedOutput()
	if err != nil {
		cmd := strings.Join(args, " ")
		if len(cmd) > 200 {
			cmd = cmd[:200] + "..."
		}
		t.Fatalf("curl %s: %v\n%s", cmd, err, out)
	}
	return string(out)
}

func TestCurl(t *testing.T) {
	addr := serve(t, newServer(true), false)
	url := "http://" + addr
	body := strings.Repeat("0123456789", 1000)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"prior knowledge GET", []string{"--http2-prior-knowledge", url + "/pk"}, "HTTP/2.0 GET /pk 0"},
		{"prior knowledge POST", []string{"--http2-prior-knowledge", "-d", body, url + "/pk"}, "HTTP/2.0 POST /pk 10000 " + digest([]byte(body))},
		{"upgrade GET", []string{"--http2", "-H", "X-Test: kept", url + "/up?q=1"}, "HTTP/2.0 GET /up?q=1 0 e3b0c442 x=kept"},
		{"upgrade POST", []string{"--http2", "-d", body, url + "/up"}, "HTTP/2.0 POST /up 10000 " + digest([]byte(body))},
		{"upgrade HEAD", []string{"--http2", "-I", url + "/up"}, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\nHTTP/2 200 \r\n"},
		{"HTTP/1.1", []string{"--http1.1", url + "/h1"}, "HTTP/1.1 GET /h1 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := curl(t, tt.args...); !strings.HasPrefix(got, tt.want) {
				t.Errorf("got %q; want prefix %q", got, tt.want)
			}
		})
	}
	// The 101 really happened: curl's verbose log shows it.
	if got := curl(t, "-v", "--http2", url+"/v"); !strings.Contains(got, "< HTTP/1.1 101 Switching Protocols") || !strings.Contains(got, "< HTTP/2 200") {
		t.Errorf("curl -v --http2: no 101 then HTTP/2 200 in\n%s", got)
	}
}

// TestUpgradeLimits: off by default; a body over the limit is served over
// HTTP/1.1 in full.
func TestUpgradeLimits(t *testing.T) {
	off := serve(t, newServer(false), false)
	if got, want := curl(t, "--http2", "http://"+off+"/"), "HTTP/1.1 GET / 0"; !strings.HasPrefix(got, want) {
		t.Errorf("AllowUpgrade off: got %q; want prefix %q", got, want)
	}
	srv := newServer(true)
	srv.MaxUpgradeBodyBytes = 1000
	addr := serve(t, srv, false)
	small, large := strings.Repeat("s", 1000), strings.Repeat("L", 1001)
	if got, want := curl(t, "--http2", "-d", small, "http://"+addr+"/"), "HTTP/2.0 POST / 1000 "+digest([]byte(small)); !strings.HasPrefix(got, want) {
		t.Errorf("body at the limit: got %q; want prefix %q", got, want)
	}
	if got, want := curl(t, "--http2", "-d", large, "http://"+addr+"/"), "HTTP/1.1 POST / 1001 "+digest([]byte(large)); !strings.HasPrefix(got, want) {
		t.Errorf("body over the limit: got %q; want prefix %q", got, want)
	}
	// Chunked, so the size is learnt only by reading: still whole over HTTP/1.1.
	if got, want := curl(t, "--http2", "-H", "Transfer-Encoding: chunked", "-d", large, "http://"+addr+"/"), "HTTP/1.1 POST / 1001 "+digest([]byte(large)); !strings.HasPrefix(got, want) {
		t.Errorf("chunked body over the limit: got %q; want prefix %q", got, want)
	}
	if got, want := curl(t, "--http2", "-H", "Transfer-Encoding: chunked", "-d", small, "http://"+addr+"/"), "HTTP/2.0 POST / 1000 "+digest([]byte(small)); !strings.HasPrefix(got, want) {
		t.Errorf("chunked body at the limit: got %q; want prefix %q", got, want)
	}
}

// exchange writes req on a new connection and returns the first response.
func exchange(t *testing.T, addr, req string) *http.Response {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	return resp
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
			resp := exchange(t, addr, tt.req)
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 1000))
			if resp.StatusCode != tt.status || !strings.Contains(string(body), tt.body) {
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
	got := curl(t, "-i", "http://"+addr+"/")
	for _, want := range []string{"HTTP/1.1 426 Upgrade Required\r\n", "\r\nUpgrade: h2c\r\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("plain request: no %q in %q", want, got)
		}
	}
	if got, want := curl(t, "--http2", "http://"+addr+"/u"), "HTTP/2.0 GET /u 0"; !strings.HasPrefix(got, want) {
		t.Errorf("upgrade: got %q; want prefix %q", got, want)
	}
}

func TestNghttp(t *testing.T) {
	nghttp := testtool.Need(t, "nghttp")
	addr := serve(t, newServer(true), false)
	for _, args := range [][]string{{"http://" + addr + "/n"}, {"-u", "http://" + addr + "/n"}, {"-u", "-d", "/dev/null", "http://" + addr + "/n"}} {
		out, err := exec.Command(nghttp, append([]string{"-t", "10", "-v"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("nghttp %v: %v\n%s", args, err, out)
		}
		if !strings.Contains(string(out), ":status: 200") || !strings.Contains(string(out), "HTTP/2.0 ") {
			t.Errorf("nghttp %v:\n%s", args, out)
		}
		if args[0] == "-u" && !strings.Contains(string(out), "HTTP Upgrade response") {
			t.Errorf("nghttp %v did not upgrade:\n%s", args, out)
		}
	}
}

func TestH2load(t *testing.T) {
	h2load := testtool.Need(t, "h2load")
	addr := serve(t, newServer(false), false)
	out, err := exec.Command(h2load, "-n", "2000", "-c", "4", "-m", "10", "-T", "10", "http://"+addr+"/load").CombinedOutput()
	if err != nil {
		t.Fatalf("h2load: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "2000 succeeded, 0 failed, 0 errored") {
		t.Errorf("h2load:\n%s", out)
	}
}

// TestShutdownCompletesStreams: Shutdown sends GOAWAY and waits for the
// streams in flight, on prior-knowledge and upgraded connections alike.
func TestShutdownCompletesStreams(t *testing.T) {
	entered := make(chan struct{}, 16)
	release := make(chan struct{})
	srv := &Server{HTTP: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release
		io.WriteString(w, "done "+r.Proto)
	})}, AllowUpgrade: true}
	shutStarted := make(chan struct{})
	srv.HTTP.RegisterOnShutdown(func() { close(shutStarted) })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := new(mux.Mux)
	h2, h1 := m.Listen("h2c", mux.HTTP2()), m.Listen("http1", mux.HTTP1())
	var wg sync.WaitGroup
	wg.Go(func() { srv.Serve(h2) })
	wg.Go(func() { srv.Serve(h1) })
	wg.Go(func() { m.Serve(ln) })
	defer func() { m.Close(); wg.Wait() }()
	url := "http://" + ln.Addr().String() + "/"

	client := h2cClient()
	results := make(chan string, 4)
	for range 3 {
		go func() {
			resp, err := client.Get(url)
			if err != nil {
				results <- err.Error()
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			results <- string(b)
		}()
	}
	// And one upgraded connection.
	go func() {
		out, err := exec.Command(testtool.Need(t, "curl"), "-sS", "--max-time", "10", "--http2", url).CombinedOutput()
		if err != nil {
			results <- fmt.Sprintf("curl: %v %s", err, out)
			return
		}
		results <- string(out)
	}()
	for range 4 {
		<-entered
	}
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shut <- srv.Shutdown(ctx)
	}()
	<-shutStarted
	close(release)
	for range 4 {
		if got := <-results; got != "done HTTP/2.0" {
			t.Errorf("request in flight got %q; want done HTTP/2.0", got)
		}
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	client.CloseIdleConnections()
}
