package h2c

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2/hpack"

	"github.com/portmux/portmux/internal/h2frame"
)

// Errors that make an upgrade request a 400 Bad Request.
var (
	errSettingsRepeated  = errors.New("h2c: more than one HTTP2-Settings header")
	errSettingsEncoding  = errors.New("h2c: HTTP2-Settings is not base64url")
	errSettingsLength    = errors.New("h2c: HTTP2-Settings is not a whole number of settings")
	errSettingsTooMany   = errors.New("h2c: HTTP2-Settings holds more than 64 settings")
	errSettingsValue     = errors.New("h2c: HTTP2-Settings holds an invalid value")
	errSettingsNotOption = errors.New("h2c: HTTP2-Settings is not a Connection option")
)

// maxSettings bounds the settings in HTTP2-Settings; RFC 9113 defines
// seven, so a client has no reason to send more than a few.
const maxSettings = 64

// upgrader wraps the http.Server's Handler: it takes "Upgrade: h2c"
// requests and passes every other request on.
type upgrader struct {
	s       *Server
	next    http.Handler
	options bool // answer "OPTIONS *" as net/http's own handler does
}

func (u *upgrader) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor == 2 {
		if tok := r.Header.Get(bodyMarker); tok != "" || len(r.Header[bodyMarker]) > 0 {
			// Only the stream 1 that we encoded carries a token we know;
			// a client's own header of that name is dropped.
			r.Header.Del(bodyMarker)
			if v, ok := u.s.bodies.LoadAndDelete(tok); ok {
				v.(*heldRequest).restore(r)
			}
		}
	}
	if !wantsH2C(r) {
		u.serve(w, r)
		return
	}
	settings, present, err := parseSettingsHeader(r.Header)
	if err == nil && present && !httpguts.HeaderValuesContainsToken(r.Header["Connection"], "HTTP2-Settings") {
		err = errSettingsNotOption
	}
	if err != nil {
		badRequest(w, err)
		return
	}
	if !present {
		// RFC 7540 §3.2.1: without HTTP2-Settings the server must not
		// upgrade; the request is served as it came.
		u.serve(w, r)
		return
	}
	body, whole, err := u.readBody(w, r)
	if err != nil {
		badRequest(w, fmt.Errorf("h2c: reading the upgrade request's body: %w", err))
		return
	}
	if !whole {
		// Too large to hold: HTTP/1.1 it is (RFC 7540 §3.2).
		u.serve(w, r)
		return
	}
	if u.s.upgrades.closed() {
		// Shutting down: answer over HTTP/1.1 rather than switch to a
		// connection that nothing will serve.
		r.Body = io.NopCloser(bytes.NewReader(body))
		u.serve(w, r)
		return
	}
	tok := newToken()
	frames := requestHeaders(r, tok)
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		// Not an HTTP/1 connection of net/http's: serve it as it is.
		r.Body = io.NopCloser(bytes.NewReader(body))
		u.serve(w, r)
		return
	}
	// Bytes the client sent after the request, already buffered.
	var pre []byte
	if n := brw.Reader.Buffered(); n > 0 {
		b, _ := brw.Reader.Peek(n)
		pre = bytes.Clone(b)
	}
	conn.SetWriteDeadline(time.Now().Add(u.s.upgradeTimeout()))
	if _, err := io.WriteString(conn, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"); err != nil {
		conn.Close()
		return
	}
	// The client's preface is due now; net/http clears this deadline once
	// it has read it (or replaces it with ReadHeaderTimeout's).
	conn.SetWriteDeadline(time.Time{})
	conn.SetReadDeadline(time.Now().Add(u.s.upgradeTimeout()))
	u.s.bodies.Store(tok, &heldRequest{body: body, trailer: r.Trailer, declared: r.Header.Get("Content-Length") != ""})
	uc := &upgradedConn{Conn: conn, pre: pre, settings: settings, stream1: frames, forget: func() { u.s.bodies.Delete(tok) }}
	if !u.s.upgrades.push(uc) {
		// Shutdown began after the 101: stream 1 was not processed, which
		// GOAWAY with last stream 0 tells the client (RFC 9113 §6.8).
		conn.SetWriteDeadline(time.Now().Add(u.s.upgradeTimeout()))
		conn.Write(h2frame.AppendGoAway(nil, 0, h2frame.CodeNo))
		uc.Close()
	}
}

// bodyMarker is the header field that ties the HEADERS of stream 1 to the
// body read over HTTP/1.1, by a token only this process knows.
const bodyMarker = "X-H2c-Upgrade-Body"

// heldRequest is what the HTTP/2 stream 1 gets back from the HTTP/1.1
// request: its body and trailers. Carrying the body as DATA frames would
// count bytes against flow-control windows that the client never spent.
type heldRequest struct {
	body     []byte
	trailer  http.Header
	declared bool // the request had a Content-Length
}

func (h *heldRequest) restore(r *http.Request) {
	r.Body = io.NopCloser(bytes.NewReader(h.body))
	r.ContentLength = int64(len(h.body))
	if len(h.body) > 0 || h.declared {
		r.Header.Set("Content-Length", strconv.Itoa(len(h.body)))
	}
	if len(h.trailer) > 0 {
		r.Trailer = h.trailer
	}
}

func newToken() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// serve passes r on to the Handler, or answers "OPTIONS *" the way
// net/http's general OPTIONS handler would have.
func (u *upgrader) serve(w http.ResponseWriter, r *http.Request) {
	if !u.options || r.Method != http.MethodOptions || r.RequestURI != "*" {
		u.next.ServeHTTP(w, r)
		return
	}
	w.Header().Set("Content-Length", "0")
	if r.ContentLength != 0 {
		io.Copy(io.Discard, http.MaxBytesReader(w, r.Body, 4<<10))
	}
}

// wantsH2C reports whether r asks to upgrade to h2c (RFC 9110 §7.8: the
// token in Upgrade and the "upgrade" Connection option, HTTP/1.1 only).
// h2c is cleartext HTTP/2, so a request that came over TLS never does.
func wantsH2C(r *http.Request) bool {
	return r.ProtoMajor == 1 && r.ProtoMinor >= 1 && r.TLS == nil && r.Method != http.MethodConnect &&
		httpguts.HeaderValuesContainsToken(r.Header["Upgrade"], "h2c") &&
		httpguts.HeaderValuesContainsToken(r.Header["Connection"], "upgrade")
}

func badRequest(w http.ResponseWriter, err error) {
	w.Header().Set("Connection", "close")
	http.Error(w, err.Error(), http.StatusBadRequest)
}

// readBody reads r's body if it fits in MaxUpgradeBodyBytes. When it does
// not, whole is false and r.Body still yields every byte, those read
// first included, for the HTTP/1.1 handler.
func (u *upgrader) readBody(w http.ResponseWriter, r *http.Request) (body []byte, whole bool, err error) {
	limit := u.s.maxUpgradeBody()
	if r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody {
		return nil, true, nil
	}
	if r.ContentLength > limit {
		return nil, false, nil
	}
	if u.s.HTTP.ReadTimeout <= 0 {
		// Otherwise the server's own deadline already bounds the body.
		rc := http.NewResponseController(w)
		if rc.SetReadDeadline(time.Now().Add(u.s.upgradeTimeout())) == nil {
			defer rc.SetReadDeadline(time.Time{})
		}
	}
	body, err = io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, false, err
	}
	if int64(len(body)) > limit {
		r.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(body), r.Body), r.Body}
		return nil, false, nil
	}
	return body, true, nil
}

// parseSettingsHeader decodes the one HTTP2-Settings header (RFC 7540
// §3.2.1: base64url of a SETTINGS payload, without padding) and checks
// every value that RFC 9113 §6.5.2 bounds.
func parseSettingsHeader(h http.Header) (payload []byte, present bool, err error) {
	vs := h["Http2-Settings"]
	switch len(vs) {
	case 0:
		return nil, false, nil
	case 1:
	default:
		return nil, true, errSettingsRepeated
	}
	v := strings.TrimRight(strings.TrimSpace(vs[0]), "=")
	if base64.RawURLEncoding.DecodedLen(len(v)) > 6*maxSettings {
		return nil, true, errSettingsTooMany
	}
	payload, err = base64.RawURLEncoding.DecodeString(v)
	if err != nil {
		return nil, true, errSettingsEncoding
	}
	if len(payload)%6 != 0 {
		return nil, true, errSettingsLength
	}
	for p := payload; len(p) > 0; p = p[6:] {
		id, val := binary.BigEndian.Uint16(p), binary.BigEndian.Uint32(p[2:])
		switch {
		case id == 0x2 && val > 1, // SETTINGS_ENABLE_PUSH
			id == 0x8 && val > 1,                        // SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441)
			id == 0x4 && val > 1<<31-1,                  // SETTINGS_INITIAL_WINDOW_SIZE
			id == 0x5 && (val < 1<<14 || val > 1<<24-1): // SETTINGS_MAX_FRAME_SIZE
			return nil, true, fmt.Errorf("%w: setting %#x = %d", errSettingsValue, id, val)
		}
	}
	return payload, true, nil
}

// hopByHop are the header fields that HTTP/2 forbids (RFC 9113 §8.2.2),
// with those that the upgrade itself used up.
var hopByHop = map[string]bool{
	"Connection":        true,
	"Keep-Alive":        true,
	"Proxy-Connection":  true,
	"Transfer-Encoding": true,
	"Upgrade":           true,
	"Http2-Settings":    true,
	"Host":              true, // becomes :authority
	"Expect":            true, // the body has been read already
	"Content-Length":    true, // set again from the body read
	"Te":                true, // only "trailers" is allowed; added back below
}

// requestHeaders encodes r as the HEADERS of stream 1 (RFC 7540 §3.2:
// the upgrade request becomes stream 1, half-closed on the client's side),
// with END_STREAM: the body and trailers, already read, come back through
// the token in bodyMarker.
func requestHeaders(r *http.Request, token string) []byte {
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	field := func(name, value string) { enc.WriteField(hpack.HeaderField{Name: name, Value: value}) }

	path := r.RequestURI
	if r.URL.IsAbs() || path == "" {
		path = r.URL.RequestURI()
	}
	field(":method", r.Method)
	field(":scheme", "http")
	field(":authority", r.Host)
	field(":path", path)
	named := connectionOptions(r.Header)
	for _, k := range slices.Sorted(maps.Keys(r.Header)) {
		if hopByHop[k] || named[strings.ToLower(k)] || k == bodyMarker {
			continue
		}
		for _, v := range r.Header[k] {
			field(strings.ToLower(k), v)
		}
	}
	if httpguts.HeaderValuesContainsToken(r.Header["Te"], "trailers") {
		field("te", "trailers")
	}
	field(strings.ToLower(bodyMarker), token)
	return appendHeaderBlock(nil, h2frame.FlagEndStream, block.Bytes())
}

// appendHeaderBlock appends a HEADERS frame on stream 1 carrying block,
// with CONTINUATION frames for what does not fit in one frame.
func appendHeaderBlock(out []byte, flags byte, block []byte) []byte {
	typ := byte(h2frame.TypeHeaders)
	for {
		n := min(len(block), h2frame.InitialMaxFrameSize)
		f := flags
		if n == len(block) {
			f |= h2frame.FlagEndHeaders
		}
		out = h2frame.Append(out, typ, f, 1, block[:n])
		block = block[n:]
		if len(block) == 0 {
			return out
		}
		typ, flags = h2frame.TypeContinuation, 0
	}
}

// connectionOptions returns the lower-case field names that Connection
// lists: hop-by-hop by declaration (RFC 9110 §7.6.1).
func connectionOptions(h http.Header) map[string]bool {
	named := map[string]bool{}
	for _, v := range h["Connection"] {
		for _, t := range strings.Split(v, ",") {
			if t = strings.TrimSpace(t); t != "" {
				named[strings.ToLower(t)] = true
			}
		}
	}
	return named
}
