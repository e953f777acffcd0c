package proxyproto

import (
	"net"
	"testing"

	"github.com/portmux/portmux/sniff"
)

// TestAppendV1 checks the text header against sniff's parser, which reads
// what HAProxy sends.
func TestAppendV1(t *testing.T) {
	for _, tt := range []struct {
		src, dst net.Addr
		want     string
	}{
		{&net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 5000}, &net.TCPAddr{IP: net.IPv4(198, 51, 100, 2), Port: 443}, "PROXY TCP4 192.0.2.1 198.51.100.2 5000 443\r\n"},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 1}, &net.TCPAddr{IP: net.ParseIP("2001:db8::ff"), Port: 65535}, "PROXY TCP6 2001:db8::1 2001:db8::ff 1 65535\r\n"},
		{&net.TCPAddr{IP: net.ParseIP("::ffff:192.0.2.1"), Port: 7}, &net.TCPAddr{IP: net.IPv4(192, 0, 2, 9), Port: 8}, "PROXY TCP4 192.0.2.1 192.0.2.9 7 8\r\n"},
		{&net.TCPAddr{IP: net.ParseIP("fe80::1"), Zone: "eth0", Port: 1}, &net.TCPAddr{IP: net.ParseIP("fe80::2"), Zone: "eth0", Port: 2}, "PROXY TCP6 fe80::1 fe80::2 1 2\r\n"},
		{&net.UnixAddr{Name: "/x"}, &net.TCPAddr{IP: net.IPv4(192, 0, 2, 9), Port: 8}, "PROXY UNKNOWN\r\n"},
	} {
		got := string(AppendV1(nil, tt.src, tt.dst))
		if got != tt.want || len(got) > MaxV1Len {
			t.Errorf("got %q; want %q", got, tt.want)
		}
		var r sniff.Result
		r.Parse([]byte(got+"GET / HTTP/1.1\r\nHost: x\r\n\r\n"), 4096)
		if r.Proxy.Verdict != sniff.Match || r.Proxy.Len != len(got) {
			t.Errorf("sniff reads %q as %v (len %d)", got, r.Proxy.Verdict, r.Proxy.Len)
		}
	}
}
