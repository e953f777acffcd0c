package proxyproto

import (
	"net"
	"net/netip"
	"testing"

	"github.com/portmux/portmux/sniff"
)

// TestAppendV2 reads each header back with the project's own PROXY parser.
func TestAppendV2(t *testing.T) {
	tcp := func(s string) net.Addr { return net.TCPAddrFromAddrPort(netip.MustParseAddrPort(s)) }
	tests := []struct {
		name     string
		src, dst net.Addr
		local    bool
		family   uint8
		wantSrc  string
		wantDst  string
		wantLen  int
	}{
		{"ipv4", tcp("192.0.2.1:51000"), tcp("198.51.100.2:443"), false, sniff.FamilyInet, "192.0.2.1:51000", "198.51.100.2:443", 28},
		{"ipv6", tcp("[2001:db8::1]:4000"), tcp("[2001:db8::2]:80"), false, sniff.FamilyInet6, "[2001:db8::1]:4000", "[2001:db8::2]:80", 52},
		{"mapped ipv4", tcp("[::ffff:10.0.0.1]:1"), tcp("10.0.0.2:2"), false, sniff.FamilyInet, "10.0.0.1:1", "10.0.0.2:2", 28},
		{"mixed families", tcp("10.0.0.1:1"), tcp("[2001:db8::2]:2"), true, sniff.FamilyUnspec, "", "", 16},
		{"not tcp", &net.UnixAddr{Name: "/x", Net: "unix"}, tcp("10.0.0.2:2"), true, sniff.FamilyUnspec, "", "", 16},
		{"nil", nil, nil, true, sniff.FamilyUnspec, "", "", 16},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := AppendV2([]byte("x"), tt.src, tt.dst)[1:]
			if len(b) != tt.wantLen || len(b) > MaxV2Len {
				t.Fatalf("len %d; want %d (max %d)", len(b), tt.wantLen, MaxV2Len)
			}
			var r sniff.Result
			r.Parse(append(b, "GET / HTTP/1.1\r\n"...), 4096)
			p := r.Proxy
			if p.Verdict != sniff.Match || p.Version != 2 || p.Len != len(b) {
				t.Fatalf("parsed as %+v", p)
			}
			if p.Local != tt.local || p.Family != tt.family {
				t.Errorf("local %v family %d; want %v %d", p.Local, p.Family, tt.local, tt.family)
			}
			if !tt.local {
				if p.Src.String() != tt.wantSrc || p.Dst.String() != tt.wantDst || p.Transport != 1 {
					t.Errorf("src %v dst %v transport %d; want %s %s 1", p.Src, p.Dst, p.Transport, tt.wantSrc, tt.wantDst)
				}
			}
		})
	}
}

func TestAppendV2Allocs(t *testing.T) {
	src := &net.TCPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 1}
	dst := &net.TCPAddr{IP: net.IPv4(10, 0, 0, 2), Port: 2}
	buf := make([]byte, 0, MaxV2Len)
	if n := testing.AllocsPerRun(100, func() { AppendV2(buf[:0], src, dst) }); n != 0 {
		t.Errorf("%v allocations; want 0", n)
	}
}
