package proxyproto

import (
	"net"
	"strconv"
)

// MaxV1Len is the longest v1 header (section 2.1: 107 bytes with CRLF).
const MaxV1Len = 107

// AppendV1 appends a PROXY v1 (text) header for a TCP connection from src
// to dst: "PROXY TCP4 src dst sport dport\r\n", or "PROXY UNKNOWN\r\n" when
// the addresses are not TCP ones of one family, which a receiver treats as
// "use the connection's own addresses".
func AppendV1(b []byte, src, dst net.Addr) []byte {
	s, sok := addrPort(src)
	d, dok := addrPort(dst)
	if !sok || !dok || s.Addr().Is4() != d.Addr().Is4() {
		return append(b, "PROXY UNKNOWN\r\n"...)
	}
	b = append(b, "PROXY "...)
	if s.Addr().Is4() {
		b = append(b, "TCP4 "...)
	} else {
		b = append(b, "TCP6 "...)
	}
	b = s.Addr().AppendTo(b)
	b = append(b, ' ')
	b = d.Addr().AppendTo(b)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(s.Port()), 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(d.Port()), 10)
	return append(b, "\r\n"...)
}
