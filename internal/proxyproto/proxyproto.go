// Package proxyproto writes PROXY protocol version 2 headers (the HAProxy
// PROXY protocol specification, section 2.2) that tell a backend the
// address of the client a proxy connected on its behalf.
//
// It only writes; reading belongs to sniff and mux. It imports nothing of
// ours, so the bridge and the daemon share it.
package proxyproto

import (
	"encoding/binary"
	"net"
	"net/netip"
)

// signature is the fixed 12-byte start of every v2 header.
const signature = "\r\n\r\n\x00\r\nQUIT\n"

// Command and family bytes of the v2 header (section 2.2).
const (
	cmdLocal = 0x20 // version 2, LOCAL: the addresses mean nothing
	cmdProxy = 0x21 // version 2, PROXY: addresses follow

	tcp4 = 0x11 // AF_INET, STREAM
	tcp6 = 0x21 // AF_INET6, STREAM
)

// MaxV2Len is the length of the longest header AppendV2 writes (TCP over
// IPv6).
const MaxV2Len = 16 + 36

// AppendV2 appends a PROXY v2 header for a TCP connection from src to dst
// and returns the extended slice. When both are TCP addresses of the same
// family (IPv4-mapped IPv6 counts as IPv4), the command is PROXY with
// those addresses; otherwise (a pipe, a Unix socket, mixed families) it is
// LOCAL with no address, which a receiver treats as "use the connection's
// own addresses". It allocates only if dst lacks room.
func AppendV2(b []byte, src, dst net.Addr) []byte {
	s, sok := addrPort(src)
	d, dok := addrPort(dst)
	if !sok || !dok || s.Addr().Is4() != d.Addr().Is4() {
		b = append(b, signature...)
		return append(b, cmdLocal, 0x00, 0, 0)
	}
	b = append(b, signature...)
	b = append(b, cmdProxy)
	if s.Addr().Is4() {
		b = append(b, tcp4, 0, 12)
		s4, d4 := s.Addr().As4(), d.Addr().As4()
		b = append(b, s4[:]...)
		b = append(b, d4[:]...)
	} else {
		b = append(b, tcp6, 0, 36)
		s16, d16 := s.Addr().As16(), d.Addr().As16()
		b = append(b, s16[:]...)
		b = append(b, d16[:]...)
	}
	b = binary.BigEndian.AppendUint16(b, s.Port())
	return binary.BigEndian.AppendUint16(b, d.Port())
}

// addrPort returns a TCP address with an IPv4-mapped address unmapped, so
// that a dual-stack listener's clients are reported as IPv4.
func addrPort(a net.Addr) (netip.AddrPort, bool) {
	ta, ok := a.(*net.TCPAddr)
	if !ok || ta == nil {
		return netip.AddrPort{}, false
	}
	ap := ta.AddrPort()
	if !ap.Addr().IsValid() {
		return netip.AddrPort{}, false
	}
	// No zone: "fe80::1%eth0" has no place in a PROXY header.
	return netip.AddrPortFrom(ap.Addr().Unmap().WithZone(""), ap.Port()), true
}
