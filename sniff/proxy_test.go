package sniff

import (
	"encoding/binary"
	"net/netip"
	"testing"
)

func TestProxyV1(t *testing.T) {
	tests := []struct {
		in       string
		verdict  Verdict
		src, dst string
	}{
		{"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nGET", Match, "192.0.2.1:56324", "198.51.100.2:443"},
		{"PROXY TCP6 2001:db8::1 ::ffff:192.0.2.9 1 65535\r\n", Match, "[2001:db8::1]:1", "[::ffff:192.0.2.9]:65535"},
		{"PROXY UNKNOWN\r\n", Match, "invalid AddrPort", "invalid AddrPort"},
		{"PROXY UNKNOWN ffff::1 ::1 1 2\r\n", Match, "invalid AddrPort", "invalid AddrPort"},
		{"PROXY TCP4 192.0.2.1 198.51.100.2 56324\r\n", Malformed, "", ""},
		{"PROXY TCP4 192.0.2.01 198.51.100.2 1 2\r\n", Malformed, "", ""},
		{"PROXY TCP4 192.0.2.1 198.51.100.2 1 65536\r\n", Malformed, "", ""},
		{"PROXY TCP4 2001:db8::1 198.51.100.2 1 2\r\n", Malformed, "", ""},
		{"PROXY TCP4 192.0.2.1 198.51.100.2 1 2\n", Malformed, "", ""},
		{"PROXY TCP4 192.0.2.1 198.51.100.2 1 2", NeedMore, "", ""},
		{"PROXY / HTTP/1.1\r\nHost: a\r\n\r\n", NoMatch, "", ""}, // an HTTP method named PROXY
		{"PROXY TCP4 " + string(make([]byte, 100)), Malformed, "", ""},
	}
	for _, tt := range tests {
		var r Result
		r.Parse([]byte(tt.in), 0)
		p := r.Proxy
		if p.Verdict != tt.verdict {
			t.Errorf("%q: verdict %v; want %v", tt.in, p.Verdict, tt.verdict)
			continue
		}
		if tt.verdict == Match && (p.Src.String() != tt.src || p.Dst.String() != tt.dst) {
			t.Errorf("%q: %v -> %v; want %v -> %v", tt.in, p.Src, p.Dst, tt.src, tt.dst)
		}
		checkPrefixes(t, []byte(tt.in), 0)
	}
	var r Result
	r.Parse([]byte("PROXY / HTTP/1.1\r\nHost: a\r\n\r\n"), 0)
	if r.HTTP1.Verdict != Match || string(r.HTTP1.Method) != "PROXY" {
		t.Errorf("PROXY method: HTTP1 %v %q; want match PROXY", r.HTTP1.Verdict, r.HTTP1.Method)
	}
}

func proxyV2(cmd, fam byte, body []byte) []byte {
	b := append([]byte(ProxyV2Signature), 0x20|cmd, fam, 0, 0)
	binary.BigEndian.PutUint16(b[14:], uint16(len(body)))
	return append(b, body...)
}

func TestProxyV2(t *testing.T) {
	inet := []byte{192, 0, 2, 1, 198, 51, 100, 2, 0xDC, 0x04, 0x01, 0xBB}
	withTLV := append(append([]byte{}, inet...), 0x02, 0, 3, 'f', 'o', 'o', 0x04, 0, 0) // AUTHORITY, NOOP
	v6 := make([]byte, 36)
	v6[15], v6[31], v6[33], v6[35] = 1, 2, 80, 81

	var r Result
	in := append(proxyV2(1, 0x11, withTLV), "SSH-2.0-x\r\n"...)
	r.Parse(in, 0)
	p := r.Proxy
	if p.Verdict != Match || p.Version != 2 || p.Local || p.Src.String() != "192.0.2.1:56324" || p.Dst.String() != "198.51.100.2:443" {
		t.Fatalf("v2 inet: %+v", p)
	}
	if v, ok := p.TLV(0x02); !ok || string(v) != "foo" {
		t.Errorf("TLV(AUTHORITY) = %q, %v", v, ok)
	}
	if r.Offset != p.Len || r.SSH.Verdict != Match {
		t.Errorf("payload after v2: offset %d len %d ssh %v", r.Offset, p.Len, r.SSH.Verdict)
	}
	checkPrefixes(t, in, 0)

	r.Parse(proxyV2(1, 0x21, v6), 0)
	if r.Proxy.Verdict != Match || r.Proxy.Src.String() != "[::1]:80" || r.Proxy.Dst.String() != "[::2]:81" {
		t.Errorf("v2 inet6: %+v", r.Proxy)
	}
	r.Parse(proxyV2(0, 0x00, nil), 0)
	if r.Proxy.Verdict != Match || !r.Proxy.Local {
		t.Errorf("v2 LOCAL: %+v", r.Proxy)
	}
	for name, bad := range map[string][]byte{
		"short address":  proxyV2(1, 0x11, inet[:8]),
		"bad TLV":        proxyV2(1, 0x11, append(append([]byte{}, inet...), 0x02, 0, 9, 'x')),
		"version 3":      append([]byte(ProxyV2Signature), 0x31, 0x11, 0, 0),
		"command 2":      append([]byte(ProxyV2Signature), 0x22, 0x11, 0, 0),
		"family 4":       append([]byte(ProxyV2Signature), 0x21, 0x41, 0, 0),
		"transport 3":    append([]byte(ProxyV2Signature), 0x21, 0x13, 0, 0),
		"unix too short": proxyV2(1, 0x31, inet),
	} {
		r.Parse(bad, 0)
		if r.Proxy.Verdict != Malformed {
			t.Errorf("%s: verdict %v; want malformed", name, r.Proxy.Verdict)
		}
		if r.HTTP1.Verdict != NoMatch || r.TLS.Verdict != NoMatch {
			t.Errorf("%s: payload parsers ran after a broken PROXY header", name)
		}
	}
	r.Parse(proxyV2(1, 0x11, make([]byte, 600)), 512)
	if r.Proxy.Verdict != TooLarge {
		t.Errorf("v2 over limit: %v; want too large", r.Proxy.Verdict)
	}
}

// TestParseIPv6 compares our allocation-free parser with net/netip.
func TestParseIPv6(t *testing.T) {
	for _, s := range []string{
		"::", "::1", "1::", "2001:db8::1", "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7::", "::2:3:4:5:6:7:8",
		"::ffff:192.0.2.1", "1:2:3:4:5:6:1.2.3.4", "fe80::1%eth0", "1:2:3:4:5:6:7:8:9", "1::2::3",
		":1", "1:", "1:2:3:4:5:6:7:8::", "::1:2:3:4:5:6:7:8", "12345::", "::01.2.3.4", "g::", "",
		"1:2:3:4:5:6:7::8",
	} {
		checkIPv6(t, s)
	}
}

func checkIPv6(t *testing.T, s string) {
	got, ok := parseIPv6([]byte(s))
	want, err := netip.ParseAddr(s)
	wantOK := err == nil && want.Is6() && want.Zone() == ""
	if ok != wantOK || (ok && got != want) {
		t.Errorf("parseIPv6(%q) = %v, %v; netip says %v, %v", s, got, ok, want, err)
	}
}

func FuzzParseIPv6(f *testing.F) {
	for _, s := range []string{"::", "2001:db8::1", "::ffff:1.2.3.4", "1:2:3:4:5:6:7:8"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) { checkIPv6(t, s) })
}

func TestSSH(t *testing.T) {
	tests := []struct {
		in      string
		verdict Verdict
		proto   string
		soft    string
	}{
		{"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n", Match, "2.0", "OpenSSH_9.2p1"},
		{"SSH-1.99-Cisco-1.25\r\n", Match, "1.99", "Cisco-1.25"},
		{"SSH-2.0-Go\n", Match, "2.0", "Go"},
		{"SSH-2.0-OpenSSH", NeedMore, "", ""},
		{"SSH-2.0-\x01\r\n", NoMatch, "", ""},
		{"SSH-2.0\r\n", NoMatch, "", ""},
		{"SSH-2.0-x\rz", NoMatch, "", ""},
		{"SSH-2.0-" + string(make([]byte, 300)), NoMatch, "", ""},
		{"SSX", NoMatch, "", ""},
	}
	for _, tt := range tests {
		var r Result
		r.Parse([]byte(tt.in), 0)
		s := r.SSH
		if s.Verdict != tt.verdict || string(s.ProtoVersion) != tt.proto || string(s.SoftwareVersion) != tt.soft {
			t.Errorf("%q: %v %q %q; want %v %q %q", tt.in, s.Verdict, s.ProtoVersion, s.SoftwareVersion, tt.verdict, tt.proto, tt.soft)
		}
		checkPrefixes(t, []byte(tt.in), 0)
	}
}
