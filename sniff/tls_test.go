package sniff

import (
	"bytes"
	"testing"
)

func TestTLSEdges(t *testing.T) {
	hello := readCapture(t, "go_tls_clienthello.bin")
	var r Result

	// Values that straddle record boundaries come back whole.
	for _, size := range []int{1, 2, 3, 5, 13, 64} {
		r.Parse(reframe(hello, size), 0)
		if r.TLS.Verdict != Match || string(r.TLS.ServerName) != "www.example.com" || !r.TLS.OffersALPN("http/1.1") {
			t.Errorf("records of %d: %v %q %q", size, r.TLS.Verdict, r.TLS.ServerName, r.TLS.ALPN())
		}
		if r.TLS.MaxVersion != 0x0304 || r.TLS.LegacyVersion != 0x0303 {
			t.Errorf("records of %d: versions %#x/%#x", size, r.TLS.LegacyVersion, r.TLS.MaxVersion)
		}
	}

	// A limit below the hello's size is known from its first 9 bytes.
	r.Parse(hello[:9], 1024)
	if r.TLS.Verdict != TooLarge {
		t.Errorf("hello over limit: %v; want too large", r.TLS.Verdict)
	}
	checkPrefixes(t, hello, 1024)
	// Fragmented into so many records that the headers pass the limit.
	small := reframe(hello, 1)
	r.Parse(small, len(small)-1)
	if r.TLS.Verdict != TooLarge {
		t.Errorf("fragmented hello over limit: %v; want too large", r.TLS.Verdict)
	}

	// Every truncation of the body, relabelled as complete, is a malformed
	// hello: NoMatch, never a panic.
	for n := 4; n < len(hello)-recordHeaderLen; n++ {
		b := bytes.Clone(hello[:recordHeaderLen+n])
		b[3], b[4] = byte(n>>8), byte(n)
		hs := n - 4
		b[6], b[7], b[8] = byte(hs>>16), byte(hs>>8), byte(hs)
		r.Parse(b, 0)
		if r.TLS.Verdict != NoMatch && r.TLS.Verdict != Match {
			t.Fatalf("truncated to %d: %v", n, r.TLS.Verdict)
		}
	}

	for name, in := range map[string][]byte{
		"alert record":       {21, 3, 3, 0, 2, 2, 40},
		"server hello":       {22, 3, 3, 0, 4, 2, 0, 0, 0},
		"zero-length record": {22, 3, 1, 0, 0},
		"record too long":    {22, 3, 1, 0x40, 0x01},
		"SSL 2 style":        {0x80, 0x2e, 1, 0, 2},
		"version 3.9":        {22, 3, 9},
	} {
		r.Parse(in, 0)
		if r.TLS.Verdict != NoMatch {
			t.Errorf("%s: %v; want no match", name, r.TLS.Verdict)
		}
	}
}
