package sniff

import "encoding/binary"

const (
	recordHeaderLen = 5
	maxRecordLen    = 1 << 14 // TLSPlaintext.length limit (RFC 8446 §5.1)
	// MaxALPN is how many ALPN protocol names ClientHello keeps.
	MaxALPN = 8
	// maxServerName: a DNS name has at most 253 bytes; longer is dropped.
	maxServerName = 255
)

// ClientHello is what Parse learned of a TLS ClientHello (RFC 8446 §4.1.2),
// reassembled from however many handshake records it spans.
//
// Verdict is Match once the whole hello arrived and parsed; NoMatch for
// bytes that are not a well-formed ClientHello, at the first byte that
// shows it; TooLarge when its records would pass the byte limit.
type ClientHello struct {
	Verdict Verdict
	Len     int // bytes of every record carrying the hello, headers included
	Records int // how many records carried it

	// LegacyVersion is the hello's legacy_version (0x0303 for TLS 1.2/1.3).
	LegacyVersion uint16
	// MaxVersion is the highest version offered: from supported_versions
	// when present (GREASE values skipped), else LegacyVersion.
	MaxVersion uint16
	// ServerName is the first host_name in server_name (RFC 6066 §3), or nil.
	ServerName []byte
	NumALPN    int // ALPN protocol names kept, at most MaxALPN

	alpn [MaxALPN][]byte
}

// reset clears every field but the ALPN array, read only up to NumALPN.
func (h *ClientHello) reset() {
	h.Verdict, h.Len, h.Records = NoMatch, 0, 0
	h.LegacyVersion, h.MaxVersion, h.ServerName, h.NumALPN = 0, 0, nil, 0
}

// ALPN returns the ALPN protocol names offered (RFC 7301), in the client's
// order of preference, at most MaxALPN of them.
func (h *ClientHello) ALPN() [][]byte { return h.alpn[:h.NumALPN] }

// OffersALPN reports whether the client offered protocol name p.
func (h *ClientHello) OffersALPN(p string) bool {
	for _, a := range h.ALPN() {
		if string(a) == p {
			return true
		}
	}
	return false
}

// hsReader reads the handshake stream that a run of records carries, by
// logical offset, without copying it together. The ClientHello walk only
// ever moves forward, so one cursor over the records serves every read and
// any number of records costs no memory.
type hsReader struct {
	b      []byte
	first  int  // offset in b of the first fragment
	single bool // the whole message is in the first record
	// The fragment under the cursor: its logical start, offset in b, length.
	start, off, n int
	h             *ClientHello
	res           *Result // owns the scratch space
}

// seek moves the cursor to the record that holds logical offset p. The
// record headers were checked before the body is read.
func (r *hsReader) seek(p int) {
	if p < r.start {
		r.start, r.off = 0, r.first
		r.n = min(int(binary.BigEndian.Uint16(r.b[r.first-2:r.first])), len(r.b)-r.first)
	}
	for p >= r.start+r.n {
		next := r.off + r.n
		r.start += r.n
		r.off = next + recordHeaderLen
		r.n = min(int(binary.BigEndian.Uint16(r.b[next+3:next+5])), len(r.b)-r.off)
	}
}

func (r *hsReader) at(p int) byte {
	if r.single {
		return r.b[r.first+p]
	}
	r.seek(p)
	return r.b[r.off+p-r.start]
}

// bytes returns the n bytes at logical p: a sub-slice of b when they lie in
// one record, else a copy in the hello's scratch space (nil if it is full).
func (r *hsReader) bytes(p, n int) []byte {
	if n == 0 {
		return nil
	}
	if r.single {
		o := r.first + p
		return r.b[o : o+n : o+n]
	}
	r.seek(p)
	if p+n <= r.start+r.n {
		o := r.off + p - r.start
		return r.b[o : o+n : o+n]
	}
	res := r.res
	if res.nScratch+n > len(res.scratch) {
		return nil
	}
	dst := res.scratch[res.nScratch : res.nScratch+n : res.nScratch+n]
	for k := range dst {
		dst[k] = r.at(p + k)
	}
	res.nScratch += n
	return dst
}

// span is a bounded window [p, end) of the handshake stream.
type span struct{ p, end int }

func (r *hsReader) u8(s *span) (int, bool) {
	if s.p+1 > s.end {
		return 0, false
	}
	v := int(r.at(s.p))
	s.p++
	return v, true
}

func (r *hsReader) u16(s *span) (int, bool) {
	if s.p+2 > s.end {
		return 0, false
	}
	v := int(r.at(s.p))<<8 | int(r.at(s.p+1))
	s.p += 2
	return v, true
}

// sub takes the next n bytes of s as a span of their own.
func (r *hsReader) sub(s *span, n int) (span, bool) {
	if n < 0 || s.p+n > s.end {
		return span{}, false
	}
	t := span{s.p, s.p + n}
	s.p += n
	return t, true
}

func (r *hsReader) prefixed8(s *span) (span, bool) {
	n, ok := r.u8(s)
	if !ok {
		return span{}, false
	}
	return r.sub(s, n)
}

func (r *hsReader) prefixed16(s *span) (span, bool) {
	n, ok := r.u16(s)
	if !ok {
		return span{}, false
	}
	return r.sub(s, n)
}

func (h *ClientHello) parse(b []byte, limit int, res *Result) {
	if len(b) > limit {
		b = b[:limit]
	}
	// Walk the records until they carry the whole handshake message.
	need := -1 // handshake bytes wanted (4 + length), once its header is in
	total := 0 // handshake bytes collected so far
	off := 0
	var hs [4]byte // the handshake header, which may itself be fragmented
	for need < 0 || total < need {
		if v := recordHeader(b[off:]); v != Match {
			if v == NeedMore && len(b) == limit {
				v = TooLarge
			}
			h.Verdict = v
			return
		}
		n := int(binary.BigEndian.Uint16(b[off+3 : off+5]))
		frag := b[off+recordHeaderLen : min(off+recordHeaderLen+n, len(b))]
		for k := 0; total+k < len(hs) && k < len(frag); k++ {
			hs[total+k] = frag[k]
		}
		total += len(frag)
		off += recordHeaderLen + len(frag)
		h.Records++
		if total > 0 && hs[0] != 1 { // HandshakeType client_hello
			return
		}
		if need < 0 && total >= 4 {
			need = 4 + (int(hs[1])<<16 | int(hs[2])<<8 | int(hs[3]))
			// The fewest bytes of records that could carry it.
			least := need + recordHeaderLen*((need+maxRecordLen-1)/maxRecordLen)
			if least > limit {
				h.reset()
				h.Verdict = TooLarge
				return
			}
		}
		if len(frag) < n || (need < 0 && off == len(b)) {
			// The record, or the next one's header, is still to come.
			h.Verdict = NeedMore
			if len(b) == limit {
				h.Verdict = TooLarge
			}
			return
		}
	}
	r := hsReader{b: b, first: recordHeaderLen, off: recordHeaderLen, single: h.Records == 1, h: h, res: res}
	r.n = min(int(binary.BigEndian.Uint16(b[3:5])), len(b)-recordHeaderLen)
	h.Len = off
	if h.parseBody(&r, span{4, need}) {
		h.Verdict = Match
	} else {
		h.reset()
	}
}

// recordHeader checks the 5-byte header of a handshake record at the start
// of b: Match when it is one, NeedMore while b is a prefix of one.
func recordHeader(b []byte) Verdict {
	if len(b) >= 1 && b[0] != 22 { // ContentType handshake
		return NoMatch
	}
	if len(b) >= 2 && b[1] != 3 { // legacy_record_version 3.x
		return NoMatch
	}
	if len(b) >= 3 && b[2] > 4 {
		return NoMatch
	}
	if len(b) < recordHeaderLen {
		return NeedMore
	}
	// Zero-length handshake fragments are forbidden (RFC 8446 §5.1).
	if n := int(binary.BigEndian.Uint16(b[3:5])); n == 0 || n > maxRecordLen {
		return NoMatch
	}
	return Match
}

// parseBody walks the ClientHello body and keeps what routes need. It
// reports whether the body is well formed.
func (h *ClientHello) parseBody(r *hsReader, s span) bool {
	v, ok := r.u16(&s)
	if !ok {
		return false
	}
	h.LegacyVersion, h.MaxVersion = uint16(v), uint16(v)
	if _, ok := r.sub(&s, 32); !ok { // random
		return false
	}
	if sid, ok := r.prefixed8(&s); !ok || sid.end-sid.p > 32 {
		return false
	}
	if cs, ok := r.prefixed16(&s); !ok || cs.end-cs.p < 2 || (cs.end-cs.p)%2 != 0 {
		return false
	}
	if cm, ok := r.prefixed8(&s); !ok || cm.end == cm.p {
		return false
	}
	if s.p == s.end {
		return true // no extensions (SSL 3.0 style)
	}
	exts, ok := r.prefixed16(&s)
	if !ok || s.p != s.end {
		return false
	}
	for exts.p < exts.end {
		typ, ok1 := r.u16(&exts)
		data, ok2 := r.prefixed16(&exts)
		if !ok1 || !ok2 {
			return false
		}
		switch typ {
		case 0: // server_name
			if !h.serverName(r, data) {
				return false
			}
		case 16: // application_layer_protocol_negotiation
			if !h.alpnList(r, data) {
				return false
			}
		case 43: // supported_versions
			if !h.supportedVersions(r, data) {
				return false
			}
		}
	}
	return true
}

func (h *ClientHello) serverName(r *hsReader, s span) bool {
	list, ok := r.prefixed16(&s)
	if !ok || s.p != s.end {
		return false
	}
	for list.p < list.end {
		typ, ok1 := r.u8(&list)
		name, ok2 := r.prefixed16(&list)
		if !ok1 || !ok2 || name.p == name.end {
			return false
		}
		if typ == 0 && h.ServerName == nil && name.end-name.p <= maxServerName {
			h.ServerName = r.bytes(name.p, name.end-name.p)
		}
	}
	return true
}

func (h *ClientHello) alpnList(r *hsReader, s span) bool {
	list, ok := r.prefixed16(&s)
	if !ok || s.p != s.end || list.p == list.end {
		return false
	}
	for list.p < list.end {
		name, ok := r.prefixed8(&list)
		if !ok || name.p == name.end {
			return false
		}
		if h.NumALPN < MaxALPN {
			if v := r.bytes(name.p, name.end-name.p); v != nil {
				h.alpn[h.NumALPN] = v
				h.NumALPN++
			}
		}
	}
	return true
}

func (h *ClientHello) supportedVersions(r *hsReader, s span) bool {
	list, ok := r.prefixed8(&s)
	if !ok || s.p != s.end || (list.end-list.p)%2 != 0 {
		return false
	}
	h.MaxVersion = 0
	for list.p < list.end {
		v, _ := r.u16(&list)
		if v&0x0F0F == 0x0A0A && v>>8 == v&0xFF { // GREASE (RFC 8701)
			continue
		}
		h.MaxVersion = max(h.MaxVersion, uint16(v))
	}
	return true
}
