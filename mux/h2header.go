package mux

import (
	"net"
	"strings"
	"time"

	"golang.org/x/net/http2/hpack"

	"github.com/portmux/portmux/internal/h2frame"
	"github.com/portmux/portmux/sniff"
)

// maxHeaderString bounds one decoded header name or value in the first
// request's HEADERS; the whole block is bounded by MaxSniffBytes.
const maxHeaderString = 8 << 10

// GRPC matches an HTTP/2 prior-knowledge connection whose first request
// is gRPC: content-type application/grpc, alone or followed by "+" or ";"
// (application/grpc+proto), as gRPC servers accept it; gRPC-Web
// (application/grpc-web) is not gRPC. Put it before HTTP2(), which then
// takes the other HTTP/2 connections. See HTTP2HeaderField for how the mux
// deals with clients that wait for the server's SETTINGS.
func GRPC() Matcher {
	return http2Header("content-type", func(v string) bool {
		const ct = "application/grpc"
		if len(v) < len(ct) || !sniff.EqualFold([]byte(v[:len(ct)]), ct) {
			return false
		}
		return len(v) == len(ct) || v[len(ct)] == '+' || v[len(ct)] == ';'
	})
}

// HTTP2HeaderField matches an HTTP/2 prior-knowledge connection whose
// first request's HEADERS carry the field name (lower case) with a value
// that starts with prefix, compared without regard to ASCII case.
//
// It decodes the first header block with HPACK, bounded by MaxSniffBytes
// and 8 KiB per string; unlike the other matchers it allocates, once per
// connection that reaches it with a complete block.
//
// gRPC clients (Java's, and grpc-go's) send nothing after their SETTINGS
// until the server's SETTINGS arrive, so when the client's SETTINGS are in
// and no HEADERS frame has begun, the mux sends an empty SETTINGS frame
// itself (the server preface; RFC 9113 §3.4). The client acknowledges it,
// and the mux takes that acknowledgement out of the bytes the chosen
// route's server reads, which never sent those settings and would treat
// the ACK as a protocol error (RFC 9113 §6.5). The real server's own
// SETTINGS then follow as a second, ordinary SETTINGS frame. A connection
// that sends no request at all (an idle pooled connection) is decided at
// SniffTimeout, by the routes after this one.
func HTTP2HeaderField(name, prefix string) Matcher {
	prefix = strings.ToLower(prefix)
	return http2Header(name, func(v string) bool {
		return len(v) >= len(prefix) && sniff.EqualFold([]byte(v[:len(prefix)]), prefix)
	})
}

func http2Header(name string, ok func(value string) bool) Matcher {
	name = strings.ToLower(name)
	return func(in *Input) sniff.Verdict {
		if v := verdict(in.HTTP2); v != sniff.Match {
			return v
		}
		block, v, settled := firstHeaderBlock(in.Bytes[len(sniff.Preface):])
		if v == sniff.NeedMore && settled {
			in.wantSettings = true
		}
		if v != sniff.Match {
			return v
		}
		found := false
		d := hpack.NewDecoder(4096, func(f hpack.HeaderField) {
			if f.Name == name && ok(f.Value) {
				found = true
			}
		})
		d.SetMaxStringLength(maxHeaderString)
		if _, err := d.Write(block); err != nil || d.Close() != nil || !found {
			return sniff.NoMatch
		}
		return sniff.Match
	}
}

// firstHeaderBlock finds the first request's header block in the frames
// after the preface: the first frame must be the client's SETTINGS (RFC
// 9113 §3.4), then other frames may come before the HEADERS and its
// CONTINUATIONs. settled reports that the client's SETTINGS are complete
// and no HEADERS frame has begun: the client may be waiting for the
// server's SETTINGS.
func firstHeaderBlock(b []byte) (block []byte, v sniff.Verdict, settled bool) {
	f, rest, ok := h2frame.Next(b)
	if !ok {
		return nil, sniff.NeedMore, false
	}
	if f.Type != h2frame.TypeSettings || f.Flags&h2frame.FlagAck != 0 || f.Stream != 0 {
		return nil, sniff.NoMatch, false
	}
	for {
		if len(rest) >= 4 && rest[3] == h2frame.TypeHeaders {
			break
		}
		f, rest, ok = h2frame.Next(rest)
		if !ok {
			// Settled only between frames: a partial one is on its way.
			return nil, sniff.NeedMore, len(rest) == 0
		}
	}
	f, rest, ok = h2frame.Next(rest)
	if !ok {
		return nil, sniff.NeedMore, false
	}
	block, ok = f.HeaderBlock()
	if !ok || f.Stream == 0 {
		return nil, sniff.NoMatch, false
	}
	if f.Flags&h2frame.FlagEndHeaders != 0 {
		return block, sniff.Match, false
	}
	// CONTINUATION frames of the same stream, and nothing else, follow
	// (RFC 9113 §6.10); only then is the block copied.
	stream := f.Stream
	joined := append([]byte(nil), block...)
	for {
		f, rest, ok = h2frame.Next(rest)
		if !ok {
			return nil, sniff.NeedMore, false
		}
		if f.Type != h2frame.TypeContinuation || f.Stream != stream {
			return nil, sniff.NoMatch, false
		}
		joined = append(joined, f.Payload...)
		if f.Flags&h2frame.FlagEndHeaders != 0 {
			return joined, sniff.Match, false
		}
	}
}

// emptySettings is the server preface the mux sends for HTTP2HeaderField.
var emptySettings = h2frame.Append(nil, h2frame.TypeSettings, 0, 0, nil)

// sendSettings writes the empty SETTINGS frame, within the sniff deadline.
func sendSettings(c net.Conn, deadline time.Time) error {
	c.SetWriteDeadline(deadline)
	_, err := c.Write(emptySettings)
	c.SetWriteDeadline(time.Time{})
	return err
}

// findSettingsAck finds the client's first SETTINGS ACK in b, whose
// frames start after the preface at offset off: its offset, and whether
// it is a well-formed (empty) one.
func findSettingsAck(b []byte, off int) (at int, empty, found bool) {
	rest := b[off+len(sniff.Preface):]
	for {
		f, next, ok := h2frame.Next(rest)
		if !ok {
			return 0, false, false
		}
		if f.Type == h2frame.TypeSettings && f.Flags&h2frame.FlagAck != 0 {
			return len(b) - len(rest), len(f.Payload) == 0, true
		}
		rest = next
	}
}

// dropSettingsAck removes the client's first SETTINGS ACK from b; found
// is false while it has not arrived. An ACK with a payload, a
// FRAME_SIZE_ERROR (RFC 9113 §6.5), is left for the server to answer.
func dropSettingsAck(b []byte, off int) (out []byte, found bool) {
	at, empty, found := findSettingsAck(b, off)
	if !found || !empty {
		return b, found
	}
	return append(b[:at], b[at+9:]...), true
}

// goAwaySettingsTimeout and goAwayNoError are GOAWAY frames, last stream
// 0, with SETTINGS_TIMEOUT and NO_ERROR (RFC 9113 §6.8, §7).
var (
	goAwaySettingsTimeout = h2frame.AppendGoAway(nil, 0, h2frame.CodeSettingsTimeout)
	goAwayNoError         = h2frame.AppendGoAway(nil, 0, h2frame.CodeNo)
)

func sendGoAway(c net.Conn, deadline time.Time, frame []byte) {
	c.SetWriteDeadline(deadline)
	c.Write(frame)
}

// ackSlack is how far past MaxSniffBytes the mux reads while it waits for
// the ACK of its SETTINGS: a client that did not wait for them may send
// its requests first, with up to 65,535 bytes of DATA (the initial
// flow-control window, RFC 9113 §6.9.2) plus frame headers.
const ackSlack = 80 << 10

// h2Wait is the state of a connection for which the mux sent SETTINGS.
type h2Wait struct {
	sent bool // the mux sent its SETTINGS
	idle bool // waiting out HTTP2IdleTimeout for a first request
}

// settleHTTP2 runs after the routes were matched, when HTTP2HeaderField
// asked for SETTINGS or they were sent. It sends them once; holds the
// decision until the client's ACK is in (and takes the ACK out); and
// keeps a connection that exchanged SETTINGS but sent no request (an idle
// gRPC channel) waiting up to HTTP2IdleTimeout instead of letting a later
// route take it at SniffTimeout, after which it gets GOAWAY NO_ERROR,
// which tells a client to retry on a new connection. done reports that
// the connection was rejected and closed.
//
//go:noinline
func (m *Mux) settleHTTP2(c *Conn, st *state, buf *[]byte, h *h2Wait, r *route, more bool, timedOut *bool, eof bool, limit int) (*route, bool, bool) {
	if st.in.wantSettings && !h.sent && (more || r == nil) && !*timedOut {
		if err := sendSettings(c.Conn, time.Now().Add(m.sniffTimeout())); err != nil {
			m.reject(c, st, buf, ReasonReadError)
			return nil, false, true
		}
		h.sent = true
		return nil, true, false
	}
	if !h.sent {
		return r, more, false
	}
	if _, _, acked := findSettingsAck(*buf, st.res.Offset); st.in.wantSettings && *timedOut && acked {
		// SETTINGS exchanged, no request: an idle client, not one of the
		// later routes' protocol.
		if !h.idle {
			h.idle, *timedOut = true, false
			c.Conn.SetReadDeadline(time.Now().Add(m.http2IdleTimeout()))
			m.releaseSlot(c) // an idle channel must not starve new sniffs
			return nil, true, false
		}
		sendGoAway(c.Conn, time.Now().Add(m.lingerTimeout()), goAwayNoError)
		m.reject(c, st, buf, ReasonHTTP2Idle)
		return nil, false, true
	}
	if r == nil {
		return r, more, false
	}
	// The client's ACK of the mux's SETTINGS must not reach the route's
	// server, which never sent them.
	var acked bool
	if *buf, acked = dropSettingsAck(*buf, st.res.Offset); !acked {
		if *timedOut || eof || len(*buf) >= limit+ackSlack {
			sendGoAway(c.Conn, time.Now().Add(m.lingerTimeout()), goAwaySettingsTimeout)
			m.reject(c, st, buf, ReasonHTTP2Settings)
			return nil, false, true
		}
		return nil, true, false
	}
	return r, false, false
}
