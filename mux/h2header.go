package mux

import (
	"net"
	"time"

	"golang.org/x/net/http2/hpack"

	"github.com/portmux/portmux/sniff"
)

// maxHeaderString bounds one decoded header name or value in the first
// request's HEADERS; the whole block is bounded by MaxSniffBytes.
const maxHeaderString = 8 << 10

// GRPC matches an HTTP/2 prior-knowledge connection whose first request
// is gRPC: content-type application/grpc, application/grpc+proto, ... Put
// it before HTTP2(), which then takes the other HTTP/2 connections.
func GRPC() Matcher {
	return HTTP2HeaderField("content-type", "application/grpc")
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
			if f.Name == name && len(f.Value) >= len(prefix) && equalFoldASCII([]byte(f.Value[:len(prefix)]), prefix) {
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
	f, rest, ok := sniff.NextHTTP2Frame(b)
	if !ok {
		return nil, sniff.NeedMore, false
	}
	if f.Type != sniff.FrameSettings || f.Flags&sniff.FlagAck != 0 || f.Stream != 0 {
		return nil, sniff.NoMatch, false
	}
	for {
		if len(rest) >= 4 && rest[3] == sniff.FrameHeaders {
			break
		}
		f, rest, ok = sniff.NextHTTP2Frame(rest)
		if !ok {
			// Settled only between frames: a partial one is on its way.
			return nil, sniff.NeedMore, len(rest) == 0
		}
	}
	f, rest, ok = sniff.NextHTTP2Frame(rest)
	if !ok {
		return nil, sniff.NeedMore, false
	}
	block, ok = f.HeaderBlock()
	if !ok || f.Stream == 0 {
		return nil, sniff.NoMatch, false
	}
	if f.Flags&sniff.FlagEndHeaders != 0 {
		return block, sniff.Match, false
	}
	// CONTINUATION frames of the same stream, and nothing else, follow
	// (RFC 9113 §6.10); only then is the block copied.
	stream := f.Stream
	joined := append([]byte(nil), block...)
	for {
		f, rest, ok = sniff.NextHTTP2Frame(rest)
		if !ok {
			return nil, sniff.NeedMore, false
		}
		if f.Type != sniff.FrameContinuation || f.Stream != stream {
			return nil, sniff.NoMatch, false
		}
		joined = append(joined, f.Payload...)
		if f.Flags&sniff.FlagEndHeaders != 0 {
			return joined, sniff.Match, false
		}
	}
}

// emptySettings is the server preface the mux sends for HTTP2HeaderField.
var emptySettings = []byte{0, 0, 0, sniff.FrameSettings, 0, 0, 0, 0, 0}

// sendSettings writes the empty SETTINGS frame, within the sniff deadline.
func sendSettings(c net.Conn, deadline time.Time) error {
	c.SetWriteDeadline(deadline)
	_, err := c.Write(emptySettings)
	c.SetWriteDeadline(time.Time{})
	return err
}

// dropSettingsAck removes the client's first SETTINGS ACK from b, whose
// frames start after the preface at offset off. found is false while the
// ACK has not arrived.
func dropSettingsAck(b []byte, off int) (out []byte, found bool) {
	rest := b[off+len(sniff.Preface):]
	for {
		f, next, ok := sniff.NextHTTP2Frame(rest)
		if !ok {
			return b, false
		}
		if f.Type == sniff.FrameSettings && f.Flags&sniff.FlagAck != 0 {
			at := len(b) - len(rest)
			return append(b[:at], b[at+9+len(f.Payload):]...), true
		}
		rest = next
	}
}

// goAwaySettingsTimeout is GOAWAY, last stream 0, SETTINGS_TIMEOUT (RFC
// 9113 §6.8, §7).
var goAwaySettingsTimeout = []byte{0, 0, 8, 0x7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x4}

func sendGoAway(c net.Conn, deadline time.Time, frame []byte) {
	c.SetWriteDeadline(deadline)
	c.Write(frame)
}
