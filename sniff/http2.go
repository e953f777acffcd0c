package sniff

// Preface is the HTTP/2 client connection preface (RFC 9113 §3.4) that a
// client with prior knowledge sends first.
const Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// parsePreface says NoMatch at the first byte that differs from the preface,
// NeedMore while b is a proper prefix of it, and Match once all 24 bytes are
// there.
func parsePreface(b []byte) Verdict {
	n := min(len(b), len(Preface))
	if string(b[:n]) != Preface[:n] {
		return NoMatch
	}
	if n < len(Preface) {
		return NeedMore
	}
	return Match
}

// HTTP/2 frame types and flags that the frame walker names (RFC 9113 §6).
const (
	FrameData         = 0x0
	FrameHeaders      = 0x1
	FrameSettings     = 0x4
	FrameContinuation = 0x9

	FlagAck        = 0x1 // SETTINGS and PING
	FlagEndStream  = 0x1 // DATA and HEADERS
	FlagEndHeaders = 0x4
	FlagPadded     = 0x8
	FlagPriority   = 0x20
)

// HTTP2Frame is one HTTP/2 frame (RFC 9113 §4.1) within a byte slice.
type HTTP2Frame struct {
	Type, Flags byte
	Stream      uint32
	Payload     []byte // aliases the input
}

// NextHTTP2Frame splits the first frame off b, which starts at a frame
// boundary (for a connection, after the Preface). ok is false while b does
// not hold the whole frame. It does not allocate.
func NextHTTP2Frame(b []byte) (f HTTP2Frame, rest []byte, ok bool) {
	if len(b) < 9 {
		return f, b, false
	}
	n := int(b[0])<<16 | int(b[1])<<8 | int(b[2])
	if len(b) < 9+n {
		return f, b, false
	}
	f.Type, f.Flags = b[3], b[4]
	f.Stream = (uint32(b[5])<<24 | uint32(b[6])<<16 | uint32(b[7])<<8 | uint32(b[8])) & (1<<31 - 1)
	f.Payload = b[9 : 9+n]
	return f, b[9+n:], true
}

// HeaderBlock returns the header block fragment of a HEADERS frame
// without its padding and priority fields; ok is false if they do not fit.
func (f HTTP2Frame) HeaderBlock() (block []byte, ok bool) {
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
