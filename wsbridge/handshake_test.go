package wsbridge

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/portmux/portmux/sniff"
)

// upgradeServer serves u on a fresh listener; each upgraded Conn echoes
// one message and closes. Upgrade results go to the channel.
func upgradeServer(t testing.TB, u *Upgrader) (string, <-chan error) {
	results := make(chan error, 16)
	addr := listen(t, func(ctx context.Context, c net.Conn) {
		wc, err := u.Upgrade(c)
		results <- err
		if err != nil {
			return
		}
		defer wc.Close()
		op, msg, err := wc.ReadMessage(nil)
		if err == nil {
			wc.WriteMessage(op, msg)
		}
	})
	return addr, results
}

// roundTrip sends raw request bytes and returns the parsed response.
func roundTrip(t *testing.T, addr, req string) *http.Response {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading the answer to %q: %v", req, err)
	}
	resp.Body.Close()
	return resp
}

func TestHandshakeDefects(t *testing.T) {
	good := handshake("/")
	replace := func(old, new string) string {
		if !strings.Contains(good, old) {
			t.Fatalf("%q not in the handshake", old)
		}
		return strings.Replace(good, old, new, 1)
	}
	tests := []struct {
		name    string
		req     string
		status  int
		header  string // "Key: value" that must be in the answer
		wantErr error
	}{
		{"missing Host", replace("Host: example.com\r\n", ""), 400, "", ErrBadHandshake},
		{"two Hosts", replace("Host: example.com\r\n", "Host: a\r\nHost: b\r\n"), 400, "", ErrBadHandshake},
		{"no Upgrade", replace("Upgrade: websocket\r\n", ""), 400, "", ErrBadHandshake},
		{"Upgrade names another protocol", replace("Upgrade: websocket", "Upgrade: h2c"), 400, "", ErrBadHandshake},
		{"Connection without upgrade", replace("Connection: Upgrade", "Connection: keep-alive"), 400, "", ErrBadHandshake},
		{"no key", replace("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", ""), 400, "", ErrBadHandshake},
		{"key not base64", replace("dGhlIHNhbXBsZSBub25jZQ==", "not base64 at all!!!!!!!"), 400, "", ErrBadHandshake},
		{"key of 15 bytes", replace("dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZSBub25j"), 400, "", ErrBadHandshake},
		{"two keys", replace("Sec-WebSocket-Version", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version"), 400, "", ErrBadHandshake},
		{"no version", replace("Sec-WebSocket-Version: 13\r\n", ""), 400, "Sec-Websocket-Version: 13", ErrBadHandshake},
		{"version 8", replace("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8"), 426, "Sec-Websocket-Version: 13", ErrBadHandshake},
		{"two versions", replace("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Version: 13"), 426, "Sec-Websocket-Version: 13", ErrBadHandshake},
		{"two Origins", replace("\r\n\r\n", "\r\nOrigin: https://a.example\r\nOrigin: https://b.example\r\n\r\n"), 400, "", ErrBadHandshake},
		{"POST", replace("GET /", "POST /"), 405, "Allow: GET", ErrBadHandshake},
		{"Content-Length", replace("\r\n\r\n", "\r\nContent-Length: 4\r\n\r\n"), 400, "", ErrBadHandshake},
		{"Transfer-Encoding", replace("\r\n\r\n", "\r\nTransfer-Encoding: chunked\r\n\r\n"), 400, "", ErrBadHandshake},
		{"HTTP/1.0", replace("HTTP/1.1", "HTTP/1.0"), 400, "", ErrBadHandshake},
		{"HTTP/2.0 as text", replace("HTTP/1.1", "HTTP/2.0"), 505, "", ErrBadHandshake},
		{"HTTP/3 as text", replace("HTTP/1.1", "HTTP/3"), 505, "", ErrBadHandshake},
		{"bad target", replace("GET / ", "GET chat "), 400, "", ErrBadHandshake},
		{"garbage request line", replace("GET / HTTP/1.1", "GET/HTTP/1.1"), 400, "", ErrBadHandshake},
		{"obsolete folding", replace("Host: example.com\r\n", "Host: example.com\r\n continued\r\n"), 400, "", ErrBadHandshake},
		{"space before colon", replace("Host: example.com", "Host : example.com"), 400, "", ErrBadHandshake},
		{"control character in a value", replace("Host: example.com", "Host: exa\x01mple.com"), 400, "", ErrBadHandshake},
		{"bad subprotocol", replace("\r\n\r\n", "\r\nSec-WebSocket-Protocol: a b\r\n\r\n"), 400, "", ErrBadHandshake},
		{"head too large", replace("\r\n\r\n", "\r\nX-Pad: "+strings.Repeat("x", 20<<10)+"\r\n\r\n"), 431, "", ErrHeaderTooLarge},
	}
	u := &Upgrader{}
	addr, results := upgradeServer(t, u)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := roundTrip(t, addr, tt.req)
			if resp.StatusCode != tt.status {
				t.Errorf("status %d; want %d", resp.StatusCode, tt.status)
			}
			if k, v, ok := strings.Cut(tt.header, ": "); ok && resp.Header.Get(k) != v {
				t.Errorf("%s: %q; want %q", k, resp.Header.Get(k), v)
			}
			err := <-results
			var he *HandshakeError
			if !errors.As(err, &he) || he.Status != tt.status || !errors.Is(err, tt.wantErr) {
				t.Errorf("Upgrade returned %v; want a *HandshakeError with %d wrapping %v", err, tt.status, tt.wantErr)
			}
		})
	}
}

// TestHandshakeGrammar: the request head is parsed by package sniff, so
// what sniff rejects as a request-smuggling hazard (RFC 9112 §2.2, §5.1,
// §5.2, RFC 9110 §5.5) gets 400 naming the defect, even where a lenient
// parser would have taken it. Bytes that are no HTTP/1 request at all,
// a PROXY header included, get 400 at once, without waiting for a head.
func TestHandshakeGrammar(t *testing.T) {
	good := handshake("/")
	replace := func(old, new string) string {
		if !strings.Contains(good, old) {
			t.Fatalf("%q not in the handshake", old)
		}
		return strings.Replace(good, old, new, 1)
	}
	tests := []struct {
		name   string
		req    string
		reason error // the sniff error whose text is the answer's
	}{
		{"bare LF line ends", strings.ReplaceAll(good, "\r\n", "\n"), sniff.ErrBareLF},
		{"bare LF ending one field", replace("Host: example.com\r\n", "Host: example.com\n"), sniff.ErrBareLF},
		{"bare LF ending the head", strings.TrimSuffix(good, "\r\n") + "\n", sniff.ErrBareLF},
		{"bare CR", replace("Host: example.com\r\n", "Host: example.com\rX: y\r\n"), sniff.ErrBareCR},
		{"obsolete folding", replace("Host: example.com\r\n", "Host: example.com\r\n\tcontinued\r\n"), sniff.ErrObsFold},
		{"space before colon", replace("Upgrade: websocket", "Upgrade : websocket"), sniff.ErrFieldName},
		{"tab before colon", replace("Host: example.com", "Host\t: example.com"), sniff.ErrFieldName},
		{"NUL in a value", replace("Host: example.com", "Host: exa\x00mple.com"), sniff.ErrControl},
		{"DEL in a value", replace("Host: example.com", "Host: exa\x7fmple.com"), sniff.ErrControl},
		{"conflicting Content-Length", replace("\r\n\r\n", "\r\nContent-Length: 0\r\nContent-Length: 1\r\n\r\n"), sniff.ErrContentLength},
		{"Upgrade not a token list", replace("Upgrade: websocket", "Upgrade: web socket"), sniff.ErrUpgradeSyntax},
		{"PROXY v1 header", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n" + good, nil},
		{"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", nil},
		{"TLS ClientHello", "\x16\x03\x01\x00\xc8\x01\x00\x00\xc4\x03\x03", nil},
	}
	u := &Upgrader{}
	addr, results := upgradeServer(t, u)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := roundTrip(t, addr, tt.req)
			if resp.StatusCode != 400 {
				t.Errorf("status %d; want 400", resp.StatusCode)
			}
			want := "malformed request line"
			if tt.reason != nil {
				want = strings.TrimPrefix(tt.reason.Error(), "sniff: ")
			}
			err := <-results
			var he *HandshakeError
			if !errors.As(err, &he) || he.Status != 400 || he.Reason != want || !errors.Is(err, ErrBadHandshake) {
				t.Errorf("Upgrade returned %v; want a *HandshakeError with 400 %q", err, want)
			}
		})
	}
}

// TestHandshakeAccepts: what RFC 9112 allows a server to take, and a
// lenient parser refused, upgrades.
func TestHandshakeAccepts(t *testing.T) {
	good := handshake("/")
	tests := []struct{ name, req string }{
		// RFC 9112 §2.2: a server SHOULD ignore empty lines before the request line.
		{"empty line before the request", "\r\n" + good},
		{"Content-Length: 0", strings.Replace(good, "\r\n\r\n", "\r\nContent-Length: 0\r\n\r\n", 1)},
		{"upper-case tokens", strings.Replace(strings.Replace(good, "Upgrade: websocket", "Upgrade: WebSocket", 1),
			"Connection: Upgrade", "connection: keep-alive, UPGRADE", 1)},
		{"Upgrade over two lines", strings.Replace(good, "Upgrade: websocket", "Upgrade: h2c\r\nUpgrade: , websocket", 1)},
	}
	u := &Upgrader{}
	addr, results := upgradeServer(t, u)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if resp := roundTrip(t, addr, tt.req); resp.StatusCode != 101 {
				t.Errorf("status %d; want 101", resp.StatusCode)
			}
			if err := <-results; err != nil {
				t.Errorf("Upgrade: %v", err)
			}
		})
	}
}

// TestHandshakeLimit: MaxHeaderBytes bounds the head, its final CRLF
// included; a head of exactly that many bytes upgrades.
func TestHandshakeLimit(t *testing.T) {
	good := handshake("/")
	for _, tt := range []struct {
		limit, status int
	}{{len(good), 101}, {len(good) - 1, 431}} {
		addr, results := upgradeServer(t, &Upgrader{MaxHeaderBytes: tt.limit})
		if resp := roundTrip(t, addr, good); resp.StatusCode != tt.status {
			t.Errorf("limit %d for a head of %d: status %d; want %d", tt.limit, len(good), resp.StatusCode, tt.status)
		}
		if err := <-results; (err == nil) != (tt.status == 101) || tt.status == 431 && !errors.Is(err, ErrHeaderTooLarge) {
			t.Errorf("limit %d: Upgrade: %v", tt.limit, err)
		}
	}
}

func TestHandshakeOriginAndCheck(t *testing.T) {
	var seen *Request
	u := &Upgrader{
		Origins: []string{"https://good.example"},
		Check: func(r *Request) error {
			seen = r
			switch r.Path {
			case "/private":
				return errors.New("no entry")
			case "/auth":
				return &Refusal{Status: 401, Reason: "log in first", Header: http.Header{"Www-Authenticate": {"Bearer"}, "Content-Length": {"0"}}}
			}
			if r.Header.Get("X-Token") != "t" {
				return &Refusal{Status: 400, Reason: "token needed"}
			}
			return nil
		},
	}
	addr, results := upgradeServer(t, u)
	tests := []struct {
		name   string
		req    string
		status int
	}{
		{"origin not allowed", handshake("/", "Origin: https://evil.example", "X-Token: t"), 403},
		{"no origin", handshake("/", "X-Token: t"), 403},
		{"origin case folds", handshake("/", "Origin: HTTPS://GOOD.example", "X-Token: t"), 101},
		// Only ASCII folds: U+017F LATIN SMALL LETTER LONG S, which Unicode
		// folds to s, is no s for the allow-list.
		{"no Unicode folding", handshake("/", "Origin: http\u017f://good.example", "X-Token: t"), 403},
		{"check refuses", handshake("/private", "Origin: https://good.example", "X-Token: t"), 403},
		{"check chooses 401", handshake("/auth", "Origin: https://good.example", "X-Token: t"), 401},
		{"check looks at headers", handshake("/", "Origin: https://good.example"), 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := roundTrip(t, addr, tt.req)
			if resp.StatusCode != tt.status {
				t.Errorf("status %d; want %d", resp.StatusCode, tt.status)
			}
			err := <-results
			if (err == nil) != (tt.status == 101) {
				t.Errorf("Upgrade: %v", err)
			}
			if tt.status == 403 && !errors.Is(err, ErrRefused) {
				t.Errorf("Upgrade: %v; want ErrRefused", err)
			}
			if tt.status == 401 && resp.Header.Get("WWW-Authenticate") != "Bearer" {
				t.Errorf("401 without the hook's header: %v", resp.Header)
			}
		})
	}
	roundTrip(t, addr, handshake("/p/a%20th?x=1&y=2", "Origin: https://good.example", "X-Token: t",
		"Sec-WebSocket-Protocol: chat, superchat", "Sec-WebSocket-Protocol: v2"))
	<-results
	want := Request{Target: "/p/a%20th?x=1&y=2", Path: "/p/a th", Query: "x=1&y=2", Host: "example.com", Origin: "https://good.example"}
	if seen.Target != want.Target || seen.Path != want.Path || seen.Query != want.Query || seen.Host != want.Host ||
		seen.Origin != want.Origin || strings.Join(seen.Protocols, ",") != "chat,superchat,v2" || seen.RemoteAddr == nil {
		t.Errorf("Check saw %+v", seen)
	}
}

func TestHandshakeNegotiation(t *testing.T) {
	u := &Upgrader{
		Protocols:   []string{"v2", "v1"},
		Compression: true,
		Header: http.Header{"Set-Cookie": {"a=b"}, "Connection": {"evil"}, "X-Bad": {"a\r\nInjected: yes"},
			"X-Evil\r\nInjected2": {"yes"}, "Content-Length": {"5"}},
	}
	addr, results := upgradeServer(t, u)
	tests := []struct {
		name, offer, protocol, ext string
	}{
		{"server preference wins", "Sec-WebSocket-Protocol: v1, v2", "v2", ""},
		{"no common protocol", "Sec-WebSocket-Protocol: v3", "", ""},
		{"deflate", "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits", "", deflateResponse},
		{"deflate, second offer", "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=10, permessage-deflate", "", deflateResponse},
		// RFC 7692 §7.1.2.1: an accepted server_max_window_bits is echoed.
		{"server window 15 echoed", "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=15", "", deflateResponse + "; server_max_window_bits=15"},
		{"server window 15 in the second offer", "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=10, permessage-deflate; server_max_window_bits=\"15\"; client_max_window_bits", "", deflateResponse + "; server_max_window_bits=15"},
		{"small server window declined", "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=10", "", ""},
		{"unknown parameter declined", "Sec-WebSocket-Extensions: permessage-deflate; x=1", "", ""},
		{"unknown extension", "Sec-WebSocket-Extensions: x-webkit-deflate-frame", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := dialRaw(t, addr)
			resp := rc.upgrade("/", nil, tt.offer)
			if err := <-results; err != nil {
				t.Fatal(err)
			}
			if got := resp.Header.Get("Sec-WebSocket-Protocol"); got != tt.protocol {
				t.Errorf("protocol %q; want %q", got, tt.protocol)
			}
			if got := resp.Header.Get("Sec-WebSocket-Extensions"); got != tt.ext {
				t.Errorf("extensions %q; want %q", got, tt.ext)
			}
			if resp.Header.Get("Set-Cookie") != "a=b" || resp.Header.Get("Connection") != "Upgrade" ||
				resp.Header.Get("Injected") != "" || resp.Header.Get("Injected2") != "" ||
				resp.Header.Get("Content-Length") != "" || resp.Header.Get("X-Bad") != "aInjected: yes" {
				t.Errorf("extra headers: %v", resp.Header)
			}
		})
	}
}

// TestHandshakeSplitAndEarly: a head that arrives a byte at a time, with
// a frame right behind it in the same bytes, upgrades and keeps the frame.
func TestHandshakeSplitAndEarly(t *testing.T) {
	u := &Upgrader{}
	addr, results := upgradeServer(t, u)
	rc := dialRaw(t, addr)
	msg := frame(true, 2, []byte("right behind the head"))
	all := append([]byte(handshake("/")), msg...)
	for i := range all {
		rc.send(all[i : i+1])
		if i%16 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	if _, err := http.ReadResponse(rc.br, nil); err != nil {
		t.Fatal(err)
	}
	if err := <-results; err != nil {
		t.Fatal(err)
	}
	if _, got := rc.readMessage(); string(got) != "right behind the head" {
		t.Errorf("echo %q", got)
	}
}

func TestHandshakeTimeout(t *testing.T) {
	u := &Upgrader{HandshakeTimeout: 100 * time.Millisecond}
	addr, results := upgradeServer(t, u)
	rc := dialRaw(t, addr)
	rc.send([]byte("GET / HTTP/1.1\r\nHost: x\r\n"))
	err := <-results
	if !errors.Is(err, ErrHandshakeTimeout) {
		t.Errorf("Upgrade: %v; want ErrHandshakeTimeout", err)
	}
	if _, err := rc.br.ReadByte(); err == nil {
		t.Error("connection still open after the handshake timeout")
	}
}

func TestAcceptKey(t *testing.T) {
	// RFC 6455 §1.3's example.
	if got := AcceptKey("dGhlIHNhbXBsZSBub25jZQ=="); got != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Errorf("AcceptKey = %q", got)
	}
}

// TestHandshakeChromiumCapture upgrades the exact bytes Chromium sent
// (captured for sniff's corpus), fed one byte per read.
func TestHandshakeChromiumCapture(t *testing.T) {
	head, err := os.ReadFile("../sniff/testdata/captures/chromium_websocket.bin")
	if err != nil {
		t.Fatal(err)
	}
	srv, cli := net.Pipe()
	defer cli.Close()
	type result struct {
		c   *Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := (&Upgrader{Compression: true}).Upgrade(oneByteConn{srv})
		done <- result{c, err}
	}()
	go cli.Write(head)
	resp, err := http.ReadResponse(bufio.NewReader(cli), nil)
	if err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	defer r.c.NetConn().Close()
	key := r.c.Request().Header.Get("Sec-WebSocket-Key")
	if resp.StatusCode != 101 || resp.Header.Get("Sec-WebSocket-Accept") != AcceptKey(key) ||
		resp.Header.Get("Sec-WebSocket-Extensions") != deflateResponse || !r.c.Compressed() {
		t.Errorf("answer %s %v", resp.Status, resp.Header)
	}
	if o := r.c.Request().Origin; o == "" {
		t.Error("Chromium's Origin is missing from the Request")
	}
}

// oneByteConn reads at most one byte per Read.
type oneByteConn struct{ net.Conn }

func (c oneByteConn) Read(p []byte) (int, error) {
	if len(p) > 1 {
		p = p[:1]
	}
	return c.Conn.Read(p)
}

// TestHeaderOf: every field, in order, under its canonical key; values
// that share one backing array do not overwrite each other when a caller
// appends to one.
func TestHeaderOf(t *testing.T) {
	var h sniff.HTTP1Head
	h.Parse([]byte("GET / HTTP/1.1\r\nhost: a\r\nX-Empty:\r\nsec-websocket-protocol: chat, v2\r\n"+
		"User-Agent: Mozilla/5.0 (X11)\r\nSec-WebSocket-Protocol:v3\r\nX-Last: z\r\n\r\n"), 0)
	got := headerOf(&h)
	want := http.Header{
		"Host":                   {"a"},
		"X-Empty":                {""},
		"Sec-Websocket-Protocol": {"chat, v2", "v3"},
		"User-Agent":             {"Mozilla/5.0 (X11)"},
		"X-Last":                 {"z"},
	}
	if len(got) != len(want) {
		t.Fatalf("headerOf = %q; want %q", got, want)
	}
	for k, vs := range want {
		if strings.Join(got[k], "|") != strings.Join(vs, "|") || len(got[k]) != len(vs) {
			t.Errorf("%s: %q; want %q", k, got[k], vs)
		}
	}
	got["Host"] = append(got["Host"], "b")
	if got.Get("X-Empty") != "" || len(got["X-Empty"]) != 1 {
		t.Errorf("appending to Host changed X-Empty: %q", got["X-Empty"])
	}
}
