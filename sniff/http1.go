package sniff

import (
	"encoding/binary"
	"errors"
	"iter"
)

// Why an HTTP/1 head is Malformed. Each maps to one response: ErrVersion to
// 505 HTTP Version Not Supported (RFC 9110 §15.6.6), every other to 400.
var (
	ErrVersion       = errors.New("sniff: HTTP version is not 1.x")
	ErrRequestLine   = errors.New("sniff: malformed request line")
	ErrBareLF        = errors.New("sniff: line ends in LF without CR")
	ErrBareCR        = errors.New("sniff: CR not followed by LF")
	ErrControl       = errors.New("sniff: control character in header field")
	ErrObsFold       = errors.New("sniff: obsolete line folding (RFC 9112 §5.2)")
	ErrFieldName     = errors.New("sniff: invalid header field name (RFC 9112 §5.1)")
	ErrHost          = errors.New("sniff: HTTP/1.1 request needs exactly one Host (RFC 9112 §3.2)")
	ErrContentLength = errors.New("sniff: invalid or conflicting Content-Length")
	ErrUpgradeSyntax = errors.New("sniff: Upgrade is not a list of protocol[/version] tokens")
)

// Why a request is not a valid WebSocket opening handshake (RFC 6455 §4.2.1).
// ErrWSVersion calls for 426 with Sec-WebSocket-Version: 13 (RFC 6455 §4.4);
// the others for 400, except ErrWSUpgrade, which says it is no WebSocket
// request at all.
var (
	ErrWSUpgrade = errors.New("sniff: not an upgrade to websocket (needs HTTP/1.1, Upgrade: websocket and Connection: upgrade)")
	ErrWSMethod  = errors.New("sniff: WebSocket handshake must use GET")
	ErrWSKey     = errors.New("sniff: Sec-WebSocket-Key must appear once and be 16 bytes in base64")
	ErrWSVersion = errors.New("sniff: Sec-WebSocket-Version must appear once and be 13")
)

// MaxUpgradeTokens is how many Upgrade tokens HTTP1 keeps; later ones are
// counted in NumUpgrade but not kept.
const MaxUpgradeTokens = 8

// maxMethod bounds the method token: longer is taken for another protocol.
const maxMethod = 64

// ConnOptions is the set of Connection options (RFC 9110 §7.6.1) that
// matter for routing.
type ConnOptions uint8

const (
	ConnUpgrade       ConnOptions = 1 << iota // "upgrade"
	ConnClose                                 // "close"
	ConnKeepAlive                             // "keep-alive"
	ConnHTTP2Settings                         // "http2-settings" (RFC 7540 §3.2.1)
)

// HTTP1Head is what Result.Parse, or HTTP1Head.Parse alone, learned of an
// HTTP/1.x request head.
//
// The verdict is NoMatch until the request line is seen to end in an HTTP
// version ("GET / HTTP/1.1"); from there the bytes are taken for HTTP and a
// grammar fault makes the verdict Malformed with Err set. Match means the
// whole head, up to the empty line, arrived and is well formed.
type HTTP1Head struct {
	Verdict Verdict
	Err     error // why Malformed; nil otherwise

	Method       []byte // e.g. "GET", "PATCH", or any extension token
	Target       []byte // the request-target, as sent
	Major, Minor int    // from "HTTP/1.1"; set once the version is read
	HeadLen      int    // bytes of the head, its final CRLF CRLF included

	Host          []byte      // the Host value, OWS trimmed
	Conn          ConnOptions // options named in Connection
	NumUpgrade    int         // Upgrade tokens, over every Upgrade line
	WebSocketKey  []byte      // Sec-WebSocket-Key, OWS trimmed
	WebSocketVer  []byte      // Sec-WebSocket-Version, OWS trimmed
	HTTP2Settings []byte      // HTTP2-Settings, OWS trimmed

	// ContentLength is the Content-Length value, or -1 if there is none.
	ContentLength int64
	// TransferEncoding reports whether a Transfer-Encoding field was sent.
	TransferEncoding bool

	upgrade                      [MaxUpgradeTokens][]byte
	head                         []byte // the whole head
	fields                       int    // where its field lines start
	nHost, nKey, nVer, nSettings uint8
}

// Upgrades returns the Upgrade tokens in the order sent (at most
// MaxUpgradeTokens). They are listed whatever the Connection field says; use
// UpgradeTo to know whether the request really asks for an upgrade.
func (h *HTTP1Head) Upgrades() [][]byte { return h.upgrade[:min(h.NumUpgrade, MaxUpgradeTokens)] }

// IsUpgrade reports whether the request is a valid upgrade request to any
// protocol (RFC 9110 §7.8): an HTTP/1.1 (or later 1.x) head with at least one
// Upgrade token and the "upgrade" Connection option. In HTTP/1.0, Upgrade is
// ignored.
func (h *HTTP1Head) IsUpgrade() bool {
	return h.Verdict == Match && h.Minor >= 1 && h.Conn&ConnUpgrade != 0 && h.NumUpgrade > 0
}

// UpgradeTo reports whether the request is a valid upgrade request (see
// IsUpgrade) that lists token, compared without regard to ASCII case. A token
// without "/" matches any version of that protocol ("websocket" matches
// "WebSocket" and "websocket/13"); one with "/" must match exactly.
// token must be lower case.
func (h *HTTP1Head) UpgradeTo(token string) bool {
	if !h.IsUpgrade() {
		return false
	}
	for _, t := range h.Upgrades() {
		if tokenMatches(t, token) {
			return true
		}
	}
	return false
}

func tokenMatches(t []byte, token string) bool {
	if len(t) == len(token) {
		return EqualFold(t, token)
	}
	// "websocket" against "websocket/13".
	return len(t) > len(token) && t[len(token)] == '/' && EqualFold(t[:len(token)], token) &&
		!containsSlash(token)
}

func containsSlash(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			return true
		}
	}
	return false
}

// WebSocket checks the head against the opening handshake of RFC 6455
// §4.2.1 and returns nil for a valid one, else the first defect found:
// ErrWSUpgrade if it is no upgrade to websocket at all, then ErrWSMethod,
// ErrWSKey and ErrWSVersion. Host is checked by the head parse itself.
func (h *HTTP1Head) WebSocket() error {
	if !h.UpgradeTo("websocket") {
		return ErrWSUpgrade
	}
	if string(h.Method) != "GET" {
		return ErrWSMethod
	}
	if h.nKey != 1 || !isWebSocketKey(h.WebSocketKey) {
		return ErrWSKey
	}
	if h.nVer != 1 || string(h.WebSocketVer) != "13" {
		return ErrWSVersion
	}
	return nil
}

// Fields returns an iterator over the header fields of a matched head, in
// the order sent: each field's name as sent (any case) and its value with
// OWS trimmed (RFC 9112 §5), which may be empty. A field sent on several
// lines is visited once per line, and a list value is not split. A head
// whose verdict is not Match has no fields. The slices point into the
// parsed buffer. Ranging over it does not allocate.
//
// The fields routing needs are already in h; Fields is for a caller that
// needs the others, such as a server building its request's header map.
func (h *HTTP1Head) Fields() iter.Seq2[[]byte, []byte] {
	return func(yield func(name, value []byte) bool) {
		if h.Verdict != Match {
			return
		}
		b := h.head
		// The head is known to be well formed: every line ends in CRLF and
		// every field line has a colon.
		for i := h.fields; b[i] != '\r'; {
			end := indexLF(b, i)
			line := b[i : end-1]
			colon := 0
			for line[colon] != ':' {
				colon++
			}
			if !yield(line[:colon], trimOWS(line[colon+1:])) {
				return
			}
			i = end + 1
		}
	}
}

// Header returns the value of the first field named name (any case), OWS
// trimmed, and whether there was one. It scans the head again (see
// Fields), so it is meant for user-written matchers; the fields routes
// need are already in h.
func (h *HTTP1Head) Header(name string) ([]byte, bool) {
	for n, v := range h.Fields() {
		if EqualFold(n, name) {
			return v, true
		}
	}
	return nil, false
}

func indexLF(b []byte, i int) int {
	for b[i] != '\n' {
		i++
	}
	return i
}

// isWebSocketKey reports whether k is base64 for 16 bytes: 22 characters of
// the standard alphabet then "==" (RFC 6455 §4.1; RFC 4648 §4).
func isWebSocketKey(k []byte) bool {
	if len(k) != 24 || k[22] != '=' || k[23] != '=' {
		return false
	}
	for _, c := range k[:22] {
		if !isBase64[c] {
			return false
		}
	}
	return true
}

var isBase64 = func() (t [256]bool) {
	for _, c := range "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/" {
		t[c] = true
	}
	return t
}()

// reset clears every field but the token array, read only up to NumUpgrade.
func (h *HTTP1Head) reset() {
	h.Verdict, h.Err = NoMatch, nil
	h.Method, h.Target, h.Major, h.Minor, h.HeadLen = nil, nil, 0, 0, 0
	h.Host, h.Conn, h.NumUpgrade = nil, 0, 0
	h.WebSocketKey, h.WebSocketVer, h.HTTP2Settings = nil, nil, nil
	h.ContentLength, h.TransferEncoding = -1, false
	h.head, h.fields = nil, 0
	h.nHost, h.nKey, h.nVer, h.nSettings = 0, 0, 0, 0
}

// Parse parses b, the bytes a connection has sent so far, as an HTTP/1
// request head alone, and overwrites all of h. It is the HTTP/1 part of
// Result.Parse, for a server that speaks only HTTP/1 and must not take
// anything else for it: bytes starting with a PROXY header, a TLS
// ClientHello or the HTTP/2 preface get NoMatch, and no PROXY header is
// skipped. limit caps the head's length, past which the verdict is
// TooLarge; if limit <= 0, DefaultLimit is used.
//
// The verdict is NeedMore while b is a valid prefix of a head, Match once
// the whole head is in b (HeadLen says where it ends: bytes after it are
// the body or the next protocol's), Malformed with Err set for HTTP that
// breaks RFC 9112 (answer 400, or 505 for ErrVersion), and NoMatch for
// bytes that are no HTTP/1 request line. As with Result.Parse, a verdict
// other than NeedMore never changes as bytes are added, so the caller
// accumulates reads in one buffer and parses it again after each. Byte
// slices in h point into b. Parse does not allocate.
func (h *HTTP1Head) Parse(b []byte, limit int) {
	if limit <= 0 {
		limit = DefaultLimit
	}
	h.reset()
	h.parse(b, limit)
}

// parse fills h from b, looking at no more than limit bytes. h must have
// been reset.
func (h *HTTP1Head) parse(b []byte, limit int) {
	if len(b) > limit {
		b = b[:limit]
	}
	v, err := h.parseHead(b)
	if v == NeedMore && len(b) >= limit {
		v = TooLarge
	}
	switch v {
	case NoMatch:
		// What was read of a request line that failed is meaningless.
		h.Method, h.Target, h.Major, h.Minor = nil, nil, 0, 0
	case NeedMore, TooLarge:
		h.reset()
	}
	h.Verdict, h.Err = v, err
}

func (h *HTTP1Head) parseHead(b []byte) (Verdict, error) {
	i := 0
	// RFC 9112 §2.2: a server SHOULD ignore empty lines before the request.
	for i+1 < len(b) && b[i] == '\r' && b[i+1] == '\n' {
		i += 2
	}
	if i == len(b) || (i+1 == len(b) && b[i] == '\r') {
		return NeedMore, nil
	}

	// method SP
	start := i
	for ; i < len(b) && b[i] != ' '; i++ {
		if !isTchar[b[i]] || i-start >= maxMethod {
			return NoMatch, nil
		}
	}
	if i == len(b) {
		return NeedMore, nil
	}
	if i == start {
		return NoMatch, nil
	}
	h.Method = b[start:i]
	i++

	// request-target SP: anything visible; a control byte or a second SP
	// before "HTTP/" means another protocol.
	start = i
	for ; i < len(b) && b[i] != ' '; i++ {
		if c := b[i]; c < 0x21 || c == 0x7F {
			return NoMatch, nil
		}
	}
	if i == len(b) {
		return NeedMore, nil
	}
	if i == start {
		return NoMatch, nil
	}
	h.Target = b[start:i]
	i++

	// HTTP-version = "HTTP/" DIGIT "." DIGIT. Once "HTTP/" and a digit are
	// there, the bytes are HTTP and any fault is Malformed.
	const name = "HTTP/"
	n := min(len(b)-i, len(name)+1)
	for k := 0; k < n; k++ {
		want := byte('0') // any digit, checked below
		if k < len(name) {
			want = name[k]
			if b[i+k] != want {
				return NoMatch, nil
			}
		} else if !isDigit(b[i+k]) {
			return NoMatch, nil
		}
	}
	if n < len(name)+1 {
		return NeedMore, nil
	}
	i += len(name)
	h.Major = int(b[i] - '0')
	i++
	if i == len(b) {
		return NeedMore, nil
	}
	if b[i] == '.' {
		if i+1 == len(b) {
			return NeedMore, nil
		}
		if !isDigit(b[i+1]) {
			return Malformed, ErrRequestLine
		}
		h.Minor = int(b[i+1] - '0')
		i += 2
	} else {
		h.Minor = -1 // "HTTP/2", "HTTP/3"
	}
	end, v, err := lineEnd(b, i)
	if v != Match {
		return v, err
	}
	if end != i {
		return Malformed, ErrRequestLine
	}
	if h.Major != 1 || h.Minor < 0 {
		// The HTTP/2 preface reads as a request line; it is not HTTP/1.
		if string(h.Method) == "PRI" && string(h.Target) == "*" && h.Major == 2 && h.Minor == 0 {
			return NoMatch, nil
		}
		return Malformed, ErrVersion
	}
	i = end + 2
	h.fields = i

	// field-line = field-name ":" OWS field-value OWS, each ending in CRLF.
	for {
		if i == len(b) {
			return NeedMore, nil
		}
		switch b[i] {
		case '\r':
			if i+1 == len(b) {
				return NeedMore, nil
			}
			if b[i+1] != '\n' {
				return Malformed, ErrBareCR
			}
			h.HeadLen = i + 2
			h.head = b[:h.HeadLen]
			return h.finish()
		case '\n':
			return Malformed, ErrBareLF
		case ' ', '\t':
			return Malformed, ErrObsFold
		}
		start := i
		i = scanToken(b, i)
		if i == len(b) {
			return NeedMore, nil
		}
		if b[i] != ':' || i == start {
			return Malformed, ErrFieldName
		}
		fname := b[start:i]
		i++
		end, v, err := lineEnd(b, i)
		if v != Match {
			return v, err
		}
		if err := h.field(fname, trimOWS(b[i:end])); err != nil {
			return Malformed, err
		}
		i = end + 2
	}
}

// lineEnd finds the CRLF ending the line that continues at i, allowing HTAB
// and rejecting every other control byte. It returns the index of the CR.
//
// Field values are checked eight bytes at a time: a word whose bytes are
// all printable ASCII or obs-text is skipped with a few arithmetic
// operations, and the first control byte's position comes from the word's
// mask.
func lineEnd(b []byte, i int) (int, Verdict, error) {
	for {
		for ; i+8 <= len(b); i += 8 {
			x := binary.LittleEndian.Uint64(b[i:])
			// A byte below 0x20 or equal to 0x7F (high bit clear in both
			// cases) sets its high bit in one of these two terms.
			y := x ^ (lo8 * 0x7F)
			if m := ((x-lo8*0x20)&^x | (y-lo8)&^y) & hi8; m != 0 {
				i += firstFlagged(m)
				break
			}
		}
		for ; i < len(b) && b[i] >= 0x20 && b[i] != 0x7F; i++ {
		}
		if i == len(b) {
			return 0, NeedMore, nil
		}
		switch b[i] {
		case '\t':
			i++
			continue
		case '\r':
			if i+1 == len(b) {
				return 0, NeedMore, nil
			}
			if b[i+1] != '\n' {
				return 0, Malformed, ErrBareCR
			}
			return i, Match, nil
		case '\n':
			return 0, Malformed, ErrBareLF
		}
		return 0, Malformed, ErrControl
	}
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// Names of 8 bytes or more, compared a word at a time.
var (
	nameConnection       = newFoldName("connection")
	nameKeepAlive        = newFoldName("keep-alive")
	nameContentLength    = newFoldName("content-length")
	nameHTTP2Settings    = newFoldName("http2-settings")
	nameTransferEncoding = newFoldName("transfer-encoding")
	nameWebSocketKey     = newFoldName("sec-websocket-key")
	nameWebSocketVersion = newFoldName("sec-websocket-version")
)

// field records one header field that routing needs; others are skipped.
func (h *HTTP1Head) field(name, value []byte) error {
	switch len(name) {
	case 4:
		if EqualFold(name, "host") {
			h.Host = value
			h.nHost++
		}
	case 7:
		if EqualFold(name, "upgrade") {
			return h.upgradeList(value)
		}
	case 10:
		if equalFoldWords(name, &nameConnection) {
			for rest := value; len(rest) > 0; {
				var opt []byte
				opt, rest = nextListElem(rest)
				switch {
				case EqualFold(opt, "upgrade"):
					h.Conn |= ConnUpgrade
				case EqualFold(opt, "close"):
					h.Conn |= ConnClose
				case equalFoldWords(opt, &nameKeepAlive):
					h.Conn |= ConnKeepAlive
				case equalFoldWords(opt, &nameHTTP2Settings):
					h.Conn |= ConnHTTP2Settings
				}
			}
		}
	case 14:
		switch {
		case equalFoldWords(name, &nameContentLength):
			return h.contentLength(value)
		case equalFoldWords(name, &nameHTTP2Settings):
			h.HTTP2Settings = value
			h.nSettings++
		}
	case 17:
		switch {
		case equalFoldWords(name, &nameTransferEncoding):
			h.TransferEncoding = true
		case equalFoldWords(name, &nameWebSocketKey):
			h.WebSocketKey = value
			h.nKey++
		}
	case 21:
		if equalFoldWords(name, &nameWebSocketVersion) {
			h.WebSocketVer = value
			h.nVer++
		}
	}
	return nil
}

func (h *HTTP1Head) upgradeList(value []byte) error {
	for rest := value; len(rest) > 0; {
		var tok []byte
		tok, rest = nextListElem(rest)
		if len(tok) == 0 {
			continue
		}
		if !isProtocol(tok) {
			return ErrUpgradeSyntax
		}
		if h.NumUpgrade < MaxUpgradeTokens {
			h.upgrade[h.NumUpgrade] = tok
		}
		h.NumUpgrade++
	}
	return nil
}

// isProtocol checks protocol = protocol-name ["/" protocol-version], both
// tokens (RFC 9110 §7.8).
func isProtocol(t []byte) bool {
	for i, c := range t {
		if c == '/' {
			return IsToken(t[:i]) && IsToken(t[i+1:])
		}
	}
	return IsToken(t)
}

// contentLength accepts a list of identical decimal values (RFC 9110 §8.6)
// over any number of lines.
func (h *HTTP1Head) contentLength(value []byte) error {
	seen := false
	for rest := value; len(rest) > 0 || !seen; {
		var e []byte
		e, rest = nextListElem(rest)
		if len(e) == 0 || len(e) > 18 {
			return ErrContentLength
		}
		var n int64
		for _, c := range e {
			if !isDigit(c) {
				return ErrContentLength
			}
			n = n*10 + int64(c-'0')
		}
		if h.ContentLength >= 0 && h.ContentLength != n {
			return ErrContentLength
		}
		h.ContentLength = n
		seen = true
	}
	return nil
}

// finish applies the checks that need the whole head.
func (h *HTTP1Head) finish() (Verdict, error) {
	if h.nHost > 1 || (h.nHost == 0 && h.Minor >= 1) {
		return Malformed, ErrHost
	}
	return Match, nil
}
