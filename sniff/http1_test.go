package sniff

import (
	"errors"
	"strings"
	"testing"
)

const wsKey = "dGhlIHNhbXBsZSBub25jZQ==" // RFC 6455 §1.3

func TestHTTP1Rules(t *testing.T) {
	ws := func(extra string) string {
		return "GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Key: " + wsKey + "\r\nSec-WebSocket-Version: 13\r\n" + extra + "\r\n"
	}
	tests := []struct {
		name    string
		in      string
		verdict Verdict
		err     error  // HTTP1.Err
		upgrade string // token that UpgradeTo must accept; "-" for IsUpgrade false
		wsErr   error  // WebSocket()
	}{
		{"plain GET", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", Match, nil, "-", ErrWSUpgrade},
		{"PATCH", "PATCH /x HTTP/1.1\r\nHost: a\r\n\r\n", Match, nil, "-", ErrWSUpgrade},
		{"extension method", "BREW /pot HTTP/1.1\r\nHost: a\r\n\r\n", Match, nil, "-", ErrWSUpgrade},
		{"HTTP/1.0 without Host", "GET / HTTP/1.0\r\n\r\n", Match, nil, "-", ErrWSUpgrade},
		{"leading empty line", "\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", Match, nil, "-", ErrWSUpgrade},
		{"websocket", ws(""), Match, nil, "websocket", nil},
		{"Upgrade: WebSocket case", strings.Replace(ws(""), "Upgrade: websocket", "Upgrade: WebSocket", 1), Match, nil, "websocket", nil},
		{"Connection: keep-alive, Upgrade", strings.Replace(ws(""), "Connection: Upgrade", "Connection: keep-alive, Upgrade", 1), Match, nil, "websocket", nil},
		{"Connection option in second line", strings.Replace(ws(""), "Connection: Upgrade", "Connection: keep-alive\r\nConnection: ,upgrade ,", 1), Match, nil, "websocket", nil},
		{"Upgrade without connection option", strings.Replace(ws(""), "Connection: Upgrade", "Connection: keep-alive", 1), Match, nil, "-", ErrWSUpgrade},
		{"Upgrade without Connection", strings.Replace(ws(""), "Connection: Upgrade\r\n", "", 1), Match, nil, "-", ErrWSUpgrade},
		{"tokens over two lines", "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: foo/2\r\nConnection: upgrade\r\nUpgrade:  h2c , websocket\t\r\n\r\n", Match, nil, "h2c", ErrWSKey},
		{"HTTP/1.0 Upgrade is ignored", "GET / HTTP/1.0\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n", Match, nil, "-", ErrWSUpgrade},
		{"websocket by POST", strings.Replace(ws(""), "GET", "POST", 1), Match, nil, "websocket", ErrWSMethod},
		{"key of wrong length", strings.Replace(ws(""), wsKey, "dGhlIHNhbXBsZSBub25jZQ", 1), Match, nil, "websocket", ErrWSKey},
		{"key not base64", strings.Replace(ws(""), wsKey, "dGhlIHNhbXBsZSBub25jZ!==", 1), Match, nil, "websocket", ErrWSKey},
		{"two keys", ws("Sec-WebSocket-Key: " + wsKey + "\r\n"), Match, nil, "websocket", ErrWSKey},
		{"no key", strings.Replace(ws(""), "Sec-WebSocket-Key: "+wsKey+"\r\n", "", 1), Match, nil, "websocket", ErrWSKey},
		{"version 8", strings.Replace(ws(""), "Version: 13", "Version: 8", 1), Match, nil, "websocket", ErrWSVersion},
		{"no version", strings.Replace(ws(""), "Sec-WebSocket-Version: 13\r\n", "", 1), Match, nil, "websocket", ErrWSVersion},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n  c\r\n\r\n", Malformed, ErrObsFold, "", nil},
		{"bare LF in field", "GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n", Malformed, ErrBareLF, "", nil},
		{"bare LF after request line", "GET / HTTP/1.1\nHost: a\r\n\r\n", Malformed, ErrBareLF, "", nil},
		{"bare LF ending head", "GET / HTTP/1.1\r\nHost: a\r\n\n", Malformed, ErrBareLF, "", nil},
		{"bare CR", "GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", Malformed, ErrBareCR, "", nil},
		{"NUL in value", "GET / HTTP/1.1\r\nHost: a\x00b\r\n\r\n", Malformed, ErrControl, "", nil},
		{"HTAB in value", "GET / HTTP/1.1\r\nHost: a\r\nX: b\tc\r\n\r\n", Match, nil, "-", ErrWSUpgrade},
		{"obs-text in value", "GET / HTTP/1.1\r\nHost: a\r\nX: caf\xc3\xa9\r\n\r\n", Match, nil, "-", ErrWSUpgrade},
		{"space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", Malformed, ErrFieldName, "", nil},
		{"tab before colon", "GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", Malformed, ErrFieldName, "", nil},
		{"empty field name", "GET / HTTP/1.1\r\n: a\r\n\r\n", Malformed, ErrFieldName, "", nil},
		{"no Host in 1.1", "GET / HTTP/1.1\r\n\r\n", Malformed, ErrHost, "", nil},
		{"two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", Malformed, ErrHost, "", nil},
		{"HTTP/2.0 as text", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", Malformed, ErrVersion, "", nil},
		{"HTTP/3 as text", "GET / HTTP/3\r\nHost: a\r\n\r\n", Malformed, ErrVersion, "", nil},
		{"junk after version", "GET / HTTP/1.1x\r\nHost: a\r\n\r\n", Malformed, ErrRequestLine, "", nil},
		{"lower-case http", "GET / http/1.1\r\nHost: a\r\n\r\n", NoMatch, nil, "", nil},
		{"two spaces", "GET  / HTTP/1.1\r\n\r\n", NoMatch, nil, "", nil},
		{"NUL in method", "G\x00T / HTTP/1.1\r\n\r\n", NoMatch, nil, "", nil},
		{"h2 preface", Preface, NoMatch, nil, "", nil},
		{"SOCKS5 greeting", "\x05\x01\x00", NoMatch, nil, "", nil},
		{"bad Upgrade syntax", "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: web socket\r\n\r\n", Malformed, ErrUpgradeSyntax, "", nil},
		{"Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello", Match, nil, "-", ErrWSUpgrade},
		{"repeated equal Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\nContent-Length: 5\r\n\r\n", Match, nil, "-", ErrWSUpgrade},
		{"conflicting Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", Malformed, ErrContentLength, "", nil},
		{"negative Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", Malformed, ErrContentLength, "", nil},
		{"incomplete head", "GET / HTTP/1.1\r\nHost: a\r\n", NeedMore, nil, "", nil},
		{"incomplete request line", "PATC", NeedMore, nil, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Result
			r.Parse([]byte(tt.in), 0)
			h := &r.HTTP1
			if h.Verdict != tt.verdict || !errors.Is(h.Err, tt.err) || (tt.err == nil && h.Err != nil) {
				t.Fatalf("verdict %v, err %v; want %v, %v", h.Verdict, h.Err, tt.verdict, tt.err)
			}
			switch tt.upgrade {
			case "":
			case "-":
				if h.IsUpgrade() {
					t.Errorf("IsUpgrade() = true; want false")
				}
			default:
				if !h.UpgradeTo(tt.upgrade) {
					t.Errorf("UpgradeTo(%q) = false; want true", tt.upgrade)
				}
				if h.UpgradeTo("nope") {
					t.Errorf("UpgradeTo(%q) = true; want false", "nope")
				}
			}
			if tt.verdict == Match {
				if err := h.WebSocket(); err != tt.wsErr {
					t.Errorf("WebSocket() = %v; want %v", err, tt.wsErr)
				}
			}
			checkPrefixes(t, []byte(tt.in), 0)
		})
	}
}

func TestHTTP1Fields(t *testing.T) {
	in := "POST /up?x=1 HTTP/1.1\r\nHost:  example.com \r\nConnection: Upgrade, HTTP2-Settings\r\n" +
		"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\nContent-Length: 3\r\nX-Tenant: blue\r\n\r\nabc"
	var r Result
	r.Parse([]byte(in), 0)
	h := &r.HTTP1
	for _, c := range []struct{ name, got, want string }{
		{"Method", string(h.Method), "POST"},
		{"Target", string(h.Target), "/up?x=1"},
		{"Host", string(h.Host), "example.com"},
		{"HTTP2-Settings", string(h.HTTP2Settings), "AAMAAABkAAQCAAAAAAIAAAAA"},
		{"body", in[h.HeadLen:], "abc"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q; want %q", c.name, c.got, c.want)
		}
	}
	if h.Major != 1 || h.Minor != 1 || h.ContentLength != 3 || h.TransferEncoding {
		t.Errorf("version %d.%d, Content-Length %d, TE %v", h.Major, h.Minor, h.ContentLength, h.TransferEncoding)
	}
	if h.Conn != ConnUpgrade|ConnHTTP2Settings {
		t.Errorf("Conn = %b; want upgrade|http2-settings", h.Conn)
	}
	if v, ok := h.Header("x-tenant"); !ok || string(v) != "blue" {
		t.Errorf("Header(x-tenant) = %q, %v; want blue, true", v, ok)
	}
	if _, ok := h.Header("x-missing"); ok {
		t.Errorf("Header(x-missing) found")
	}
}

func TestHTTP1TooLarge(t *testing.T) {
	in := "GET / HTTP/1.1\r\nHost: a\r\nCookie: " + strings.Repeat("c", 200) + "\r\n\r\n"
	var r Result
	r.Parse([]byte(in), 100)
	if r.HTTP1.Verdict != TooLarge {
		t.Fatalf("verdict %v; want too large", r.HTTP1.Verdict)
	}
	// A fault past the limit is never seen: the answer is the same for
	// every prefix.
	checkPrefixes(t, []byte(in+"\x00"), 100)
	r.Parse([]byte(in), len(in))
	if r.HTTP1.Verdict != Match {
		t.Fatalf("verdict %v at exactly the head's length; want match", r.HTTP1.Verdict)
	}
}

// TestScanners checks scanToken and lineEnd against byte loops, for every
// byte value at every position of the words they read and of the tail.
func TestScanners(t *testing.T) {
	for c := 0; c < 256; c++ {
		for pos := 0; pos < 22; pos++ {
			b := []byte("abcdefghijklmnopqrstuv\r\n")
			b[pos] = byte(c)
			wantTok := 0
			for wantTok < len(b) && isTchar[b[wantTok]] {
				wantTok++
			}
			if got := scanToken(b, 0); got != wantTok {
				t.Fatalf("scanToken with %#x at %d = %d; want %d", c, pos, got, wantTok)
			}
			end, v, err := lineEnd(b, 0)
			switch {
			case c == '\r':
				if v != Malformed || err != ErrBareCR {
					t.Fatalf("lineEnd with CR at %d: %v %v", pos, v, err)
				}
			case c == '\n':
				if v != Malformed || err != ErrBareLF {
					t.Fatalf("lineEnd with LF at %d: %v %v", pos, v, err)
				}
			case (c < 0x20 && c != '\t') || c == 0x7F:
				if v != Malformed || err != ErrControl {
					t.Fatalf("lineEnd with %#x at %d: %v %v", c, pos, v, err)
				}
			default:
				if v != Match || end != 22 {
					t.Fatalf("lineEnd with %#x at %d = %d, %v, %v", c, pos, end, v, err)
				}
			}
		}
	}
}

// TestEqualFoldWords checks the word-at-a-time comparison against a
// byte-wise fold for every byte a header name or value may hold, at every
// position of every name it is used for.
func TestEqualFoldWords(t *testing.T) {
	for _, name := range []string{"connection", "keep-alive", "content-length", "http2-settings", "transfer-encoding",
		"sec-websocket-key", "sec-websocket-version", "12345678", "a/b-c.d-e"} {
		f := newFoldName(name)
		for c := 0; c < 256; c++ {
			if c < 0x20 && c != '\t' || c == 0x7F {
				continue
			}
			for pos := range len(name) {
				b := []byte(name)
				b[pos] = byte(c)
				want := lower(byte(c)) == name[pos]
				if got := equalFoldWords(b, &f); got != want {
					t.Fatalf("equalFoldWords(%q, %q) = %v; want %v", b, name, got, want)
				}
			}
		}
		if !equalFoldWords([]byte(strings.ToUpper(name)), &f) || equalFoldWords([]byte(name[1:]), &f) {
			t.Fatalf("%s: basic cases", name)
		}
	}
}

// TestHTTP1HeadParse: HTTP1Head.Parse gives the verdict Result.Parse
// gives for HTTP1 on every input without a PROXY header, clears what an
// earlier parse left, and does not look for a PROXY header: bytes that
// start with one are no HTTP/1 head.
func TestHTTP1HeadParse(t *testing.T) {
	inputs := []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n",
		"GET / HTTP/2.0\r\nHost: a\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\n",
		"\x16\x03\x01\x00\x05",
		Preface,
		"",
	}
	for name, b := range corpusInputs(t) {
		if corpus[name].proxy == 0 {
			inputs = append(inputs, string(b))
		}
	}
	var h HTTP1Head
	for _, in := range inputs {
		for _, limit := range []int{0, 40} {
			var r Result
			r.Parse([]byte(in), limit)
			// A head full of another parse's fields must not keep them.
			h.Parse(readCapture(t, "chromium_websocket.bin"), 0)
			h.Parse([]byte(in), limit)
			if h.Verdict != r.HTTP1.Verdict || h.Err != r.HTTP1.Err || string(h.Method) != string(r.HTTP1.Method) ||
				string(h.WebSocketKey) != string(r.HTTP1.WebSocketKey) || h.HeadLen != r.HTTP1.HeadLen ||
				h.ContentLength != r.HTTP1.ContentLength || h.NumUpgrade != r.HTTP1.NumUpgrade {
				t.Errorf("%.30q, limit %d: Parse gave %v %v %q; Result.Parse %v %v %q", in, limit,
					h.Verdict, h.Err, h.Method, r.HTTP1.Verdict, r.HTTP1.Err, r.HTTP1.Method)
			}
		}
	}

	in := "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"
	if h.Parse([]byte(in), 0); h.Verdict != NoMatch {
		t.Errorf("PROXY header then a head: verdict %v; want no match", h.Verdict)
	}
	in = "GET / HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("x", DefaultLimit) + "\r\n\r\n"
	if h.Parse([]byte(in), 0); h.Verdict != TooLarge {
		t.Errorf("head over DefaultLimit with limit 0: verdict %v; want too large", h.Verdict)
	}
	if h.Parse([]byte(in), len(in)); h.Verdict != Match {
		t.Errorf("head at exactly the limit: verdict %v; want match", h.Verdict)
	}
}

func TestHTTP1HeadFields(t *testing.T) {
	in := "GET /chat HTTP/1.1\r\nHost: example.com\r\nX-Empty:\r\nUser-Agent:  Mozilla/5.0 (X11; Linux)\t\r\n" +
		"accept: a\r\nX-Blank: \t \r\nAccept: b, c\r\n\r\nframes"
	want := [][2]string{
		{"Host", "example.com"},
		{"X-Empty", ""},
		{"User-Agent", "Mozilla/5.0 (X11; Linux)"},
		{"accept", "a"},
		{"X-Blank", ""},
		{"Accept", "b, c"},
	}
	var h HTTP1Head
	h.Parse([]byte(in), 0)
	if h.Verdict != Match {
		t.Fatalf("verdict %v, %v", h.Verdict, h.Err)
	}
	var got [][2]string
	for name, value := range h.Fields() {
		got = append(got, [2]string{string(name), string(value)})
	}
	if len(got) != len(want) {
		t.Fatalf("Fields() = %q; want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("field %d = %q; want %q", i, got[i], want[i])
		}
	}
	for name := range h.Fields() {
		if string(name) != "Host" {
			t.Errorf("first field %q; want Host", name)
		}
		break // an early break must not panic (yield called again)
	}
	for _, c := range []struct{ name, value string }{{"ACCEPT", "a"}, {"x-empty", ""}, {"user-agent", "Mozilla/5.0 (X11; Linux)"}} {
		if v, ok := h.Header(c.name); !ok || string(v) != c.value {
			t.Errorf("Header(%q) = %q, %v; want %q, true", c.name, v, ok, c.value)
		}
	}

	// Only a matched head has fields.
	for _, bad := range []string{in[:40], strings.Replace(in, "X-Empty:", "X-Empty :", 1)} {
		h.Parse([]byte(bad), 0)
		for name, value := range h.Fields() {
			t.Errorf("%v head yields %q: %q", h.Verdict, name, value)
		}
		if _, ok := h.Header("host"); ok {
			t.Errorf("%v head: Header(host) found", h.Verdict)
		}
	}
}

func TestHTTP1HeadAllocs(t *testing.T) {
	b := readCapture(t, "chromium_websocket.bin")
	var h HTTP1Head
	n := testing.AllocsPerRun(100, func() {
		h.Parse(b, 0)
		total := 0
		for name, value := range h.Fields() {
			total += len(name) + len(value)
		}
		_, _ = h.Header("sec-websocket-extensions")
		_ = h.WebSocket()
		if total == 0 {
			t.Fatal("no fields")
		}
	})
	if n != 0 {
		t.Errorf("%v allocations per Parse and Fields; want 0", n)
	}
}
