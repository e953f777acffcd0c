package sniff

import (
	"encoding/binary"
	"errors"
	"net/netip"
)

// Why a PROXY header is Malformed.
var (
	ErrProxyV1 = errors.New("sniff: malformed PROXY v1 header")
	ErrProxyV2 = errors.New("sniff: malformed PROXY v2 header")
)

// ProxyV2Signature opens every PROXY protocol v2 header.
const ProxyV2Signature = "\r\n\r\n\x00\r\nQUIT\n"

const (
	proxyV1Prefix = "PROXY "
	maxProxyV1    = 107 // the longest v1 line, CRLF included
)

// Address families of a PROXY header, as the v2 family byte's high nibble.
const (
	FamilyUnspec uint8 = 0 // v1 "UNKNOWN", or v2 AF_UNSPEC
	FamilyInet   uint8 = 1 // IPv4: v1 "TCP4"
	FamilyInet6  uint8 = 2 // IPv6: v1 "TCP6"
	FamilyUnix   uint8 = 3 // v2 AF_UNIX
)

// ProxyHeader is what Parse learned of a PROXY protocol header (HAProxy's
// "The PROXY protocol", versions 1 and 2). Whether to believe it is the
// caller's decision: accept one only from trusted peers.
type ProxyHeader struct {
	Verdict Verdict
	Err     error // why Malformed

	Version int  // 1 or 2
	Local   bool // v2 LOCAL command (a health check): the addresses mean nothing
	Family  uint8
	// Transport is the v2 transport nibble: 0 unspecified, 1 stream, 2
	// datagram. v1 "TCP4" and "TCP6" give 1.
	Transport uint8
	Src, Dst  netip.AddrPort // set for FamilyInet and FamilyInet6
	Len       int            // bytes of the whole header, to strip before the payload
	TLVs      []byte         // v2 type-length-value records after the addresses, checked well formed
}

// TLV returns the value of the first v2 TLV of type typ, and whether there is one.
func (p *ProxyHeader) TLV(typ byte) ([]byte, bool) {
	for b := p.TLVs; len(b) >= 3; {
		n := int(binary.BigEndian.Uint16(b[1:3]))
		if b[0] == typ {
			return b[3 : 3+n], true
		}
		b = b[3+n:]
	}
	return nil, false
}

func (p *ProxyHeader) parse(b []byte, limit int) {
	if len(b) == 0 {
		p.Verdict = NeedMore
		return
	}
	switch b[0] {
	case 'P':
		p.parseV1(b)
	case '\r':
		p.parseV2(b, limit)
	}
}

func (p *ProxyHeader) parseV1(b []byte) {
	// "PROXY " then "TCP4 ", "TCP6 " or "UNKNOWN"; anything else after
	// "PROXY " may be an HTTP request with the extension method PROXY.
	n := min(len(b), len(proxyV1Prefix))
	if string(b[:n]) != proxyV1Prefix[:n] {
		return
	}
	rest := b[n:]
	var fam uint8
	switch {
	case hasPrefixOrIsPrefix(rest, "TCP4 "):
		fam = FamilyInet
	case hasPrefixOrIsPrefix(rest, "TCP6 "):
		fam = FamilyInet6
	case hasPrefixOrIsPrefix(rest, "UNKNOWN"):
		fam = FamilyUnspec
	default:
		return
	}
	p.Verdict = NeedMore
	if n < len(proxyV1Prefix) {
		return
	}
	end := -1
	for i := 0; i < len(b) && i < maxProxyV1; i++ {
		if b[i] == '\n' {
			end = i
			break
		}
	}
	if end < 0 {
		if len(b) >= maxProxyV1 {
			p.malformed(ErrProxyV1)
		}
		return
	}
	if end == 0 || b[end-1] != '\r' {
		p.malformed(ErrProxyV1)
		return
	}
	line := b[len(proxyV1Prefix) : end-1]
	p.Version, p.Family, p.Len = 1, fam, end+1
	if fam == FamilyUnspec {
		// "PROXY UNKNOWN" and whatever follows: the receiver ignores it.
		if len(line) > len("UNKNOWN") && line[len("UNKNOWN")] != ' ' {
			p.malformed(ErrProxyV1)
			return
		}
		p.Verdict = Match
		return
	}
	// "TCPx SRC DST SPORT DPORT"
	var f [5][]byte
	nf := 0
	for start, i := 0, 0; i <= len(line); i++ {
		if i == len(line) || line[i] == ' ' {
			if nf == len(f) {
				p.malformed(ErrProxyV1)
				return
			}
			f[nf] = line[start:i]
			nf++
			start = i + 1
		}
	}
	if nf != 5 {
		p.malformed(ErrProxyV1)
		return
	}
	src, ok1 := parseAddr(f[1], fam)
	dst, ok2 := parseAddr(f[2], fam)
	sport, ok3 := parsePort(f[3])
	dport, ok4 := parsePort(f[4])
	if !ok1 || !ok2 || !ok3 || !ok4 {
		p.malformed(ErrProxyV1)
		return
	}
	p.Transport = 1
	p.Src, p.Dst = netip.AddrPortFrom(src, sport), netip.AddrPortFrom(dst, dport)
	p.Verdict = Match
}

// hasPrefixOrIsPrefix reports whether b starts with s, or is a prefix of it.
func hasPrefixOrIsPrefix(b []byte, s string) bool {
	n := min(len(b), len(s))
	return string(b[:n]) == s[:n]
}

func (p *ProxyHeader) malformed(err error) {
	*p = ProxyHeader{Verdict: Malformed, Err: err}
}

func (p *ProxyHeader) parseV2(b []byte, limit int) {
	n := min(len(b), len(ProxyV2Signature))
	if string(b[:n]) != ProxyV2Signature[:n] {
		return
	}
	p.Verdict = NeedMore
	if len(b) < 16 {
		return
	}
	verCmd, fam := b[12], b[13]
	size := 16 + int(binary.BigEndian.Uint16(b[14:16]))
	if verCmd>>4 != 2 || verCmd&0xF > 1 || fam>>4 > FamilyUnix || fam&0xF > 2 {
		p.malformed(ErrProxyV2)
		return
	}
	if size > limit {
		p.Verdict = TooLarge
		return
	}
	if len(b) < size {
		return
	}
	p.Version, p.Len = 2, size
	p.Local = verCmd&0xF == 0
	p.Family, p.Transport = fam>>4, fam&0xF
	body := b[16:size]
	var addrLen int
	switch p.Family {
	case FamilyInet:
		addrLen = 12
	case FamilyInet6:
		addrLen = 36
	case FamilyUnix:
		addrLen = 216
	}
	if len(body) < addrLen {
		p.malformed(ErrProxyV2)
		return
	}
	switch p.Family {
	case FamilyInet:
		p.Src = netip.AddrPortFrom(netip.AddrFrom4([4]byte(body[0:4])), binary.BigEndian.Uint16(body[8:10]))
		p.Dst = netip.AddrPortFrom(netip.AddrFrom4([4]byte(body[4:8])), binary.BigEndian.Uint16(body[10:12]))
	case FamilyInet6:
		p.Src = netip.AddrPortFrom(netip.AddrFrom16([16]byte(body[0:16])), binary.BigEndian.Uint16(body[32:34]))
		p.Dst = netip.AddrPortFrom(netip.AddrFrom16([16]byte(body[16:32])), binary.BigEndian.Uint16(body[34:36]))
	}
	tlvs := body[addrLen:]
	for t := tlvs; len(t) > 0; {
		if len(t) < 3 || len(t) < 3+int(binary.BigEndian.Uint16(t[1:3])) {
			p.malformed(ErrProxyV2)
			return
		}
		t = t[3+int(binary.BigEndian.Uint16(t[1:3])):]
	}
	if len(tlvs) > 0 {
		p.TLVs = tlvs
	}
	p.Verdict = Match
}

func parsePort(b []byte) (uint16, bool) {
	if len(b) == 0 || len(b) > 5 || (b[0] == '0' && len(b) > 1) {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if !isDigit(c) {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return uint16(n), n <= 0xFFFF
}

func parseAddr(b []byte, fam uint8) (netip.Addr, bool) {
	if fam == FamilyInet {
		a, ok := parseIPv4(b)
		return netip.AddrFrom4(a), ok
	}
	return parseIPv6(b)
}

// parseIPv4 parses a dotted quad without leading zeros.
func parseIPv4(b []byte) (a [4]byte, ok bool) {
	k := 0
	for i := 0; i < 4; i++ {
		if i > 0 {
			if k == len(b) || b[k] != '.' {
				return a, false
			}
			k++
		}
		start, v := k, 0
		for k < len(b) && isDigit(b[k]) && k-start < 3 {
			v = v*10 + int(b[k]-'0')
			k++
		}
		if k == start || v > 255 || (b[start] == '0' && k-start > 1) {
			return a, false
		}
		a[i] = byte(v)
	}
	return a, k == len(b)
}

// parseIPv6 parses RFC 4291 §2.2 text: eight groups of up to four hex
// digits, one "::" for a run of zero groups, and an optional dotted quad in
// the last 32 bits. Zones are not allowed.
func parseIPv6(b []byte) (netip.Addr, bool) {
	var a [16]byte
	ellipsis := -1 // byte index in a where "::" stands
	i, k := 0, 0   // i: next byte of a; k: next byte of b
	if len(b) >= 2 && b[0] == ':' && b[1] == ':' {
		ellipsis, k = 0, 2
		if k == len(b) {
			return netip.AddrFrom16(a), true
		}
	}
	for i < 16 {
		// An IPv4 tail takes the last 4 bytes.
		if i <= 12 && hasDot(b[k:]) {
			v4, ok := parseIPv4(b[k:])
			if !ok {
				return netip.Addr{}, false
			}
			copy(a[i:], v4[:])
			i += 4
			k = len(b)
			break
		}
		start, v := k, 0
		for k < len(b) && k-start < 4 {
			d, ok := hexVal(b[k])
			if !ok {
				break
			}
			v = v<<4 | d
			k++
		}
		if k == start {
			return netip.Addr{}, false
		}
		a[i], a[i+1] = byte(v>>8), byte(v)
		i += 2
		if k == len(b) {
			break
		}
		if b[k] != ':' || k+1 == len(b) {
			return netip.Addr{}, false
		}
		k++
		if b[k] == ':' {
			if ellipsis >= 0 {
				return netip.Addr{}, false
			}
			ellipsis = i
			k++
			if k == len(b) {
				break
			}
		}
	}
	if k != len(b) {
		return netip.Addr{}, false
	}
	if i < 16 {
		if ellipsis < 0 {
			return netip.Addr{}, false
		}
		n := i - ellipsis
		copy(a[16-n:], a[ellipsis:i])
		clear(a[ellipsis : 16-n])
	} else if ellipsis >= 0 {
		return netip.Addr{}, false // "::" must stand for at least one group
	}
	return netip.AddrFrom16(a), true
}

func hasDot(b []byte) bool {
	for _, c := range b {
		if c == '.' {
			return true
		}
		if c == ':' {
			return false
		}
	}
	return false
}

func hexVal(c byte) (int, bool) {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0'), true
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10, true
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10, true
	}
	return 0, false
}
