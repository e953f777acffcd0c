package mux

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/portmux/portmux/internal/testtool"
	"github.com/portmux/portmux/sniff"
)

// startGRPCRoutes serves a "grpc" route (GRPC()) and an "h2" route
// (HTTP2()), each with its own net/http h2c server that names its route.
func startGRPCRoutes(t *testing.T, setup func(m *Mux)) *served {
	t.Helper()
	var grpc, h2 *Listener
	m := start(t, func(m *Mux) {
		if setup != nil {
			setup(m)
		}
		grpc = m.Listen("grpc", GRPC())
		h2 = m.Listen("h2", HTTP2())
	})
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	var wg sync.WaitGroup
	var srvs []*http.Server
	for name, l := range map[string]*Listener{"grpc": grpc, "h2": h2} {
		srv := &http.Server{Protocols: p, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "%s route, %s", name, r.Header.Get("Content-Type"))
		})}
		srvs = append(srvs, srv)
		wg.Go(func() { srv.Serve(l) })
	}
	t.Cleanup(func() {
		for _, s := range srvs {
			s.Close()
		}
		wg.Wait()
	})
	return m
}

// rawH2 is an HTTP/2 client that, like gRPC's, sends nothing after its
// SETTINGS until the server's SETTINGS arrive.
func rawH2(t *testing.T, addr, contentType string) (body string, acks int) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, sniff.Preface)
	fr := http2.NewFramer(c, c)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	fr.WriteSettings()
	f, err := fr.ReadFrame()
	if err != nil {
		t.Fatalf("waiting for the server's SETTINGS: %v", err)
	}
	if sf, ok := f.(*http2.SettingsFrame); !ok || sf.IsAck() {
		t.Fatalf("first frame from the server: %v; want SETTINGS", f)
	}
	fr.WriteSettingsAck()
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for _, hf := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":authority", addr}, {":path", "/svc/Method"}, {"content-type", contentType}, {"te", "trailers"}} {
		enc.WriteField(hpack.HeaderField{Name: hf[0], Value: hf[1]})
	}
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block.Bytes(), EndStream: true, EndHeaders: true})
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("reading the response (so far %q): %v", body, err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if f.IsAck() {
				acks++
			} else {
				fr.WriteSettingsAck()
			}
		case *http2.GoAwayFrame:
			t.Fatalf("GOAWAY %v %q", f.ErrCode, f.DebugData())
		case *http2.DataFrame:
			body += string(f.Data())
			if f.StreamEnded() {
				return body, acks
			}
		}
	}
}

// TestGRPCClientWaitsForSettings: no hang (the mux sends SETTINGS) and no
// stray ACK (net/http behind the mux would answer one with GOAWAY
// PROTOCOL_ERROR, as it did behind cmux, PR #96).
func TestGRPCClientWaitsForSettings(t *testing.T) {
	m := startGRPCRoutes(t, nil)
	for _, tt := range []struct{ contentType, want string }{
		{"application/grpc", "grpc route, application/grpc"},
		{"application/GRPC+proto", "grpc route, application/GRPC+proto"},
		{"application/json", "h2 route, application/json"},
		{"application/grpc;charset=utf-8", "grpc route, application/grpc;charset=utf-8"},
		// gRPC-Web and look-alikes are not gRPC (gRPC servers answer 415).
		{"application/grpc-web+proto", "h2 route, application/grpc-web+proto"},
		{"application/grpcfoo", "h2 route, application/grpcfoo"},
	} {
		body, acks := rawH2(t, m.Addr().String(), tt.contentType)
		if body != tt.want || acks != 1 {
			t.Errorf("content-type %s: got %q with %d SETTINGS ACKs; want %q with 1", tt.contentType, body, acks, tt.want)
		}
	}
	if got := m.Stats().Rejected; len(got) != 0 {
		t.Errorf("rejections: %v", got)
	}
}

func TestGRPCRouteRealClients(t *testing.T) {
	m := startGRPCRoutes(t, nil)
	url := "http://" + m.Addr().String() + "/x"
	if got := testtool.Run(t, "curl", "-sS", "--max-time", "10", "--http2-prior-knowledge", url); got != "h2 route, " {
		t.Errorf("curl: got %q", got)
	}
	if got := testtool.Run(t, "curl", "-sS", "--max-time", "10", "--http2-prior-knowledge", "-H", "Content-Type: application/grpc", "-d", "", url); got != "grpc route, application/grpc" {
		t.Errorf("curl as gRPC: got %q", got)
	}
	if got := testtool.Run(t, "nghttp", "-t", "10", url); got != "h2 route, " {
		t.Errorf("nghttp: got %q", got)
	}
}

// TestSettingsNeverAcked: a client that waits for SETTINGS and then never
// acknowledges them gets GOAWAY SETTINGS_TIMEOUT at SniffTimeout.
func TestSettingsNeverAcked(t *testing.T) {
	m := startGRPCRoutes(t, func(m *Mux) { m.SniffTimeout = 200 * time.Millisecond })
	c, err := net.Dial("tcp", m.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, sniff.Preface)
	fr := http2.NewFramer(c, c)
	fr.WriteSettings()
	var got []string
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			break
		}
		got = append(got, f.Header().Type.String())
		if ga, ok := f.(*http2.GoAwayFrame); ok && ga.ErrCode != http2.ErrCodeSettingsTimeout {
			t.Errorf("GOAWAY %v; want SETTINGS_TIMEOUT", ga.ErrCode)
		}
	}
	if strings.Join(got, " ") != "SETTINGS GOAWAY" {
		t.Errorf("frames %v; want SETTINGS GOAWAY", got)
	}
	waitFor(t, func() bool { return m.Stats().Rejected[ReasonHTTP2Settings] == 1 })
}

func TestFirstHeaderBlock(t *testing.T) {
	var buf bytes.Buffer
	fr := http2.NewFramer(&buf, nil)
	fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 20})
	fr.WriteWindowUpdate(0, 1000)
	fr.WriteSettingsAck()
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: []byte("abc"), PadLength: 3})
	fr.WriteContinuation(1, false, []byte("de"))
	fr.WriteContinuation(1, true, []byte("f"))
	fr.WriteData(1, true, []byte("body"))
	b := buf.Bytes()
	for i := range len(b) {
		block, v := firstHeaderBlock(b[:i])
		if v != sniff.NeedMore && i < len(b)-13 {
			t.Fatalf("at %d bytes: %v %q", i, v, block)
		}
	}
	if block, v := firstHeaderBlock(b); v != sniff.Match || string(block) != "abcdef" {
		t.Errorf("got %v %q; want Match abcdef", v, block)
	}
	// The client awaits the server's SETTINGS only when whole frames are
	// in and no HEADERS has begun.
	headersAt := bytes.Index(b, []byte{0, 0, 7, 1})
	if !awaitsServerSettings(b[:headersAt]) {
		t.Errorf("not awaiting SETTINGS before HEADERS")
	}
	if awaitsServerSettings(b[:headersAt-1]) {
		t.Errorf("awaiting SETTINGS inside the ACK frame")
	}
	if awaitsServerSettings(b[:headersAt+1]) {
		t.Errorf("awaiting SETTINGS with HEADERS begun")
	}
	// A first frame other than SETTINGS, or a CONTINUATION of another
	// stream, is no match.
	if _, v := firstHeaderBlock(b[15:]); v != sniff.NoMatch {
		t.Errorf("WINDOW_UPDATE first: %v; want NoMatch", v)
	}
	bad := bytes.Clone(b)
	bad[bytes.Index(bad, []byte{0, 0, 2, 9})+8] = 3
	if _, v := firstHeaderBlock(bad); v != sniff.NoMatch {
		t.Errorf("CONTINUATION of stream 3: %v; want NoMatch", v)
	}

	out, found := dropSettingsAck(append([]byte(sniff.Preface), b...), len(sniff.Preface))
	if !found || len(out) != len(sniff.Preface)+len(b)-9 || bytes.Contains(out, []byte{0, 0, 0, 4, 1, 0, 0, 0, 0}) {
		t.Errorf("dropSettingsAck: found %v, %d bytes", found, len(out))
	}
}

// FuzzHTTP2HeaderField: any bytes after the preface give a verdict without
// panicking, NeedMore never follows Match as bytes arrive, and dropping
// the ACK never grows the buffer.
func FuzzHTTP2HeaderField(f *testing.F) {
	var buf bytes.Buffer
	fr := http2.NewFramer(&buf, nil)
	fr.WriteSettings()
	fr.WriteSettingsAck()
	var block bytes.Buffer
	hpack.NewEncoder(&block).WriteField(hpack.HeaderField{Name: "content-type", Value: "application/grpc"})
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block.Bytes(), EndHeaders: true})
	f.Add(buf.Bytes())
	f.Add([]byte{0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0x28, 0, 0, 0, 1, 0xff})
	m := GRPC()
	f.Fuzz(func(t *testing.T, frames []byte) {
		b := append([]byte(sniff.Preface), frames...)
		var res sniff.Result
		in := NewInput(&res, b, len(b)+1, false)
		v := m(&in)
		if v == sniff.NeedMore {
			return
		}
		// A decided verdict stays decided with more bytes.
		more := append(bytes.Clone(b), 0, 0, 0, 4, 0, 0, 0, 0, 0)
		in = NewInput(&res, more, len(more)+1, false)
		if v2 := m(&in); v2 != v {
			t.Fatalf("verdict %v became %v with more bytes", v, v2)
		}
		if out, _ := dropSettingsAck(bytes.Clone(b), len(sniff.Preface)); len(out) > len(b) {
			t.Fatalf("dropSettingsAck grew the buffer")
		}
	})
}

// TestBodyBeforeAck: a client that does not wait for SETTINGS, whose
// preface and SETTINGS arrive alone (so the mux sends its own), then sends
// a request with 20 KB of DATA before its ACK: past MaxSniffBytes, the
// mux reads on until the ACK and routes it whole.
func TestBodyBeforeAck(t *testing.T) {
	m := startGRPCRoutes(t, nil)
	c, err := net.Dial("tcp", m.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, sniff.Preface)
	fr := http2.NewFramer(c, c)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	fr.WriteSettings()
	f, err := fr.ReadFrame() // the mux's SETTINGS, left unanswered for now
	if err != nil {
		t.Fatal(err)
	}
	if sf, ok := f.(*http2.SettingsFrame); !ok || sf.IsAck() {
		t.Fatalf("first frame %v; want SETTINGS", f)
	}
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for _, hf := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":authority", "x"}, {":path", "/up"}, {"content-type", "text/plain"}} {
		enc.WriteField(hpack.HeaderField{Name: hf[0], Value: hf[1]})
	}
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block.Bytes(), EndHeaders: true})
	body := bytes.Repeat([]byte("x"), 16000)
	fr.WriteData(1, false, body)
	fr.WriteData(1, true, body[:4000])
	fr.WriteSettingsAck()
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("rejected %v: %v", m.Stats().Rejected, err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				fr.WriteSettingsAck()
			}
		case *http2.GoAwayFrame:
			t.Fatalf("GOAWAY %v", f.ErrCode)
		case *http2.DataFrame:
			if got := string(f.Data()); got != "h2 route, text/plain" {
				t.Errorf("got %q", got)
			}
			return
		}
	}
}

// TestGoTransportThroughGRPCRoute: Go's own h2c client, which flushes its
// preface and SETTINGS before its HEADERS, posting 32 KiB bodies.
func TestGoTransportThroughGRPCRoute(t *testing.T) {
	m := startGRPCRoutes(t, nil)
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	for i := range 20 {
		cl := &http.Client{Transport: &http.Transport{Protocols: &p}, Timeout: 10 * time.Second}
		resp, err := cl.Post("http://"+m.Addr().String()+"/up", "text/plain", bytes.NewReader(make([]byte, 32<<10)))
		if err != nil {
			t.Fatalf("POST %d: %v (rejected %v)", i, err, m.Stats().Rejected)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cl.CloseIdleConnections()
		if string(b) != "h2 route, text/plain" {
			t.Errorf("POST %d: got %q", i, b)
		}
	}
	if got := m.Stats().Rejected; len(got) != 0 {
		t.Errorf("rejections: %v", got)
	}
}

// TestIdleHTTP2Client: a client that exchanged SETTINGS and sends its
// first request only after SniffTimeout still reaches the gRPC route; one
// that sends none within HTTP2IdleTimeout gets GOAWAY NO_ERROR.
func TestIdleHTTP2Client(t *testing.T) {
	m := startGRPCRoutes(t, func(m *Mux) {
		m.SniffTimeout = 100 * time.Millisecond
		m.HTTP2IdleTimeout = 2 * time.Second
	})
	dial := func() *http2.Framer {
		c, err := net.Dial("tcp", m.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, sniff.Preface)
		fr := http2.NewFramer(c, c)
		fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
		fr.WriteSettings()
		if _, err := fr.ReadFrame(); err != nil {
			t.Fatal(err)
		}
		fr.WriteSettingsAck()
		return fr
	}
	late := dial()
	idle := dial()
	time.Sleep(300 * time.Millisecond) // past SniffTimeout
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for _, hf := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":authority", "x"}, {":path", "/s/M"}, {"content-type", "application/grpc"}} {
		enc.WriteField(hpack.HeaderField{Name: hf[0], Value: hf[1]})
	}
	late.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block.Bytes(), EndHeaders: true, EndStream: true})
	for {
		f, err := late.ReadFrame()
		if err != nil {
			t.Fatalf("late request: %v (rejected %v)", err, m.Stats().Rejected)
		}
		if sf, ok := f.(*http2.SettingsFrame); ok && !sf.IsAck() {
			late.WriteSettingsAck()
		}
		if rst, ok := f.(*http2.RSTStreamFrame); ok {
			t.Fatalf("late request: RST_STREAM %v", rst.ErrCode)
		}
		if d, ok := f.(*http2.DataFrame); ok {
			if got := string(d.Data()); got != "grpc route, application/grpc" {
				t.Errorf("late request went to %q", got)
			}
			break
		}
	}
	for {
		f, err := idle.ReadFrame()
		if err != nil {
			t.Fatalf("idle client: %v; want GOAWAY", err)
		}
		if ga, ok := f.(*http2.GoAwayFrame); ok {
			if ga.ErrCode != http2.ErrCodeNo || ga.LastStreamID != 0 {
				t.Errorf("GOAWAY %v last stream %d; want NO_ERROR, 0", ga.ErrCode, ga.LastStreamID)
			}
			break
		}
	}
	waitFor(t, func() bool { return m.Stats().Rejected[ReasonHTTP2Idle] == 1 })
}

// TestCustomHTTP2MatcherGetsSettings: the SETTINGS exchange is the mux's,
// not HTTP2HeaderField's: a matcher of the user's own that waits for the
// first HEADERS frame gets it from a client that waits for the server's
// SETTINGS, and the server behind the route sees no stray ACK.
func TestCustomHTTP2MatcherGetsSettings(t *testing.T) {
	hasHeaders := func(in *Input) sniff.Verdict {
		if v := verdict(in.HTTP2()); v != sniff.Match {
			return v
		}
		for rest := in.Bytes[len(sniff.Preface):]; ; {
			if len(rest) >= 4 && rest[3] == 0x1 {
				return sniff.Match
			}
			var ok bool
			if _, rest, ok = nextFrame(rest); !ok {
				return sniff.NeedMore
			}
		}
	}
	var l *Listener
	m := start(t, func(m *Mux) { l = m.Listen("custom", hasHeaders) })
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	srv := &http.Server{Protocols: p, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "custom route")
	})}
	done := make(chan struct{})
	go func() { srv.Serve(l); close(done) }()
	defer func() { srv.Close(); <-done }()
	if body, acks := rawH2(t, m.Addr().String(), "application/json"); body != "custom route" || acks != 1 {
		t.Errorf("got %q with %d SETTINGS ACKs; want \"custom route\" with 1", body, acks)
	}
}

// nextFrame splits off one HTTP/2 frame, as a user's matcher would.
func nextFrame(b []byte) (typ byte, rest []byte, ok bool) {
	if len(b) < 9 {
		return 0, b, false
	}
	n := int(b[0])<<16 | int(b[1])<<8 | int(b[2])
	if len(b) < 9+n {
		return 0, b, false
	}
	return b[3], b[9+n:], true
}

// Only a GRPC route: a client that never ACKs gets no GOAWAY SETTINGS_TIMEOUT.
func TestSettingsNeverAckedNoRoute(t *testing.T) {
	m := start(t, func(m *Mux) { m.SniffTimeout = 200 * time.Millisecond; m.Listen("grpc", GRPC()) })
	c, _ := net.Dial("tcp", m.Addr().String())
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, sniff.Preface)
	fr := http2.NewFramer(c, c)
	fr.WriteSettings()
	var got []string
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			break
		}
		got = append(got, f.Header().Type.String())
	}
	t.Logf("frames %v, rejected %v", got, m.Stats().Rejected)
	if strings.Join(got, " ") != "SETTINGS GOAWAY" {
		t.Errorf("frames %v; want SETTINGS GOAWAY (guarantees.md)", got)
	}
}
