package mux

import (
	"strings"

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
// takes the other HTTP/2 connections.
//
// gRPC clients (Java's, and grpc-go's) send no request until the server's
// SETTINGS arrive; the mux sends them for a route that waits (see the
// package documentation), and a connection that sends no request at all
// (an idle channel) waits for one up to HTTP2IdleTimeout.
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
// connection that reaches it with a complete block. It waits for that
// block, which clients that wait for the server's SETTINGS send only once
// the mux has sent them (see GRPC).
func HTTP2HeaderField(name, prefix string) Matcher {
	return http2Header(name, func(v string) bool {
		return len(v) >= len(prefix) && sniff.EqualFold([]byte(v[:len(prefix)]), prefix)
	})
}

func http2Header(name string, ok func(value string) bool) Matcher {
	name = strings.ToLower(name)
	return func(in *Input) sniff.Verdict {
		if v := verdict(in.HTTP2()); v != sniff.Match {
			return v
		}
		block, v := firstHeaderBlock(in.Bytes[len(sniff.Preface):])
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
// CONTINUATIONs (RFC 9113 §6.10), which are joined in a copy.
func firstHeaderBlock(b []byte) (block []byte, v sniff.Verdict) {
	f, rest, ok := h2frame.Next(b)
	if !ok {
		return nil, sniff.NeedMore
	}
	if f.Type != h2frame.TypeSettings || f.Flags&h2frame.FlagAck != 0 || f.Stream != 0 {
		return nil, sniff.NoMatch
	}
	for len(rest) < 4 || rest[3] != h2frame.TypeHeaders {
		if _, rest, ok = h2frame.Next(rest); !ok {
			return nil, sniff.NeedMore
		}
	}
	if f, rest, ok = h2frame.Next(rest); !ok {
		return nil, sniff.NeedMore
	}
	block, ok = f.HeaderBlock()
	if !ok || f.Stream == 0 {
		return nil, sniff.NoMatch
	}
	if f.Flags&h2frame.FlagEndHeaders != 0 {
		return block, sniff.Match
	}
	stream := f.Stream
	joined := append([]byte(nil), block...)
	for {
		if f, rest, ok = h2frame.Next(rest); !ok {
			return nil, sniff.NeedMore
		}
		if f.Type != h2frame.TypeContinuation || f.Stream != stream {
			return nil, sniff.NoMatch
		}
		joined = append(joined, f.Payload...)
		if f.Flags&h2frame.FlagEndHeaders != 0 {
			return joined, sniff.Match
		}
	}
}
