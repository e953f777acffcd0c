// Package h2frame holds the HTTP/2 framing (RFC 9113 §4, §6) that mux and
// h2c share: the frame types, flags and error codes they name, a frame
// walker over a byte slice and frame writers. It does not allocate but to
// grow a caller's slice.
package h2frame

import (
	"encoding/binary"

	"github.com/portmux/portmux/sniff"
)

// ClientPreface is the HTTP/2 client connection preface (RFC 9113 §3.4).
const ClientPreface = sniff.Preface

// HeaderLen is the length of a frame header (RFC 9113 §4.1).
const HeaderLen = 9

// InitialMaxFrameSize is the frame size every peer accepts before its
// SETTINGS say otherwise (SETTINGS_MAX_FRAME_SIZE's initial value).
const InitialMaxFrameSize = 1 << 14

// Frame types (RFC 9113 §6).
const (
	TypeData         = 0x0
	TypeHeaders      = 0x1
	TypeSettings     = 0x4
	TypeGoAway       = 0x7
	TypeContinuation = 0x9
)

// Frame flags (RFC 9113 §6).
const (
	FlagAck        = 0x1 // SETTINGS and PING
	FlagEndStream  = 0x1 // DATA and HEADERS
	FlagEndHeaders = 0x4
	FlagPadded     = 0x8
	FlagPriority   = 0x20
)

// Error codes (RFC 9113 §7).
const (
	CodeNo              = 0x0
	CodeProtocol        = 0x1
	CodeSettingsTimeout = 0x4
	CodeFrameSize       = 0x6
)

// Frame is one frame within a byte slice.
type Frame struct {
	Type, Flags byte
	Stream      uint32
	Payload     []byte // aliases the input
}

// Next splits the first frame off b, which starts at a frame boundary
// (for a connection, after the ClientPreface). ok is false while b does
// not hold the whole frame.
func Next(b []byte) (f Frame, rest []byte, ok bool) {
	if len(b) < HeaderLen {
		return f, b, false
	}
	n := int(b[0])<<16 | int(b[1])<<8 | int(b[2])
	if len(b) < HeaderLen+n {
		return f, b, false
	}
	f.Type, f.Flags = b[3], b[4]
	f.Stream = binary.BigEndian.Uint32(b[5:]) & (1<<31 - 1)
	f.Payload = b[HeaderLen : HeaderLen+n]
	return f, b[HeaderLen+n:], true
}

// HeaderBlock returns the header block fragment of a HEADERS frame
// without its padding and priority fields; ok is false if they do not fit.
func (f Frame) HeaderBlock() (block []byte, ok bool) {
	p := f.Payload
	pad := 0
	if f.Flags&FlagPadded != 0 {
		if len(p) < 1 {
			return nil, false
		}
		pad, p = int(p[0]), p[1:]
	}
	if f.Flags&FlagPriority != 0 {
		if len(p) < 5 {
			return nil, false
		}
		p = p[5:]
	}
	if pad > len(p) {
		return nil, false
	}
	return p[:len(p)-pad], true
}

// Append appends one frame to out and returns the extended slice.
func Append(out []byte, typ, flags byte, stream uint32, payload []byte) []byte {
	n := len(payload)
	out = append(out, byte(n>>16), byte(n>>8), byte(n), typ, flags)
	out = binary.BigEndian.AppendUint32(out, stream&(1<<31-1))
	return append(out, payload...)
}

// AppendGoAway appends a GOAWAY frame (RFC 9113 §6.8) naming lastStream
// and code, with no debug data.
func AppendGoAway(out []byte, lastStream, code uint32) []byte {
	var p [8]byte
	binary.BigEndian.PutUint32(p[:4], lastStream&(1<<31-1))
	binary.BigEndian.PutUint32(p[4:], code)
	return Append(out, TypeGoAway, 0, 0, p[:])
}
