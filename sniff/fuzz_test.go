package sniff

import (
	"testing"
	"unsafe"
)

// FuzzParse checks Parse's invariants on any input: no panic; every slice
// in the result lies inside the input (or, for TLS values split across
// records, inside the result's scratch space); and parsing the prefixes one
// after another settles on the verdicts of the whole.
func FuzzParse(f *testing.F) {
	for _, b := range corpusInputs(f) {
		f.Add(b, 0)
		f.Add(b, 64)
	}
	f.Add([]byte("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n"), 0)
	f.Fuzz(checkInvariants)
}

// Per-parser targets: each starts from its own protocol's captures, so the
// fuzzer spends its time inside that parser; the invariants are the same.

func FuzzHTTP1(f *testing.F) {
	fuzzFrom(f, "curl_get.bin", "curl_post.bin", "chromium_websocket.bin", "curl_h2_upgrade.bin", "nghttp_upgrade.bin")
}
func FuzzTLS(f *testing.F) {
	fuzzFrom(f, "go_tls_clienthello.bin", "go_tls_clienthello_split.bin", "openssl_s_client.bin")
}
func FuzzProxy(f *testing.F) { fuzzFrom(f, "haproxy_proxy_v1.bin", "haproxy_proxy_v2.bin") }
func FuzzSSH(f *testing.F)   { fuzzFrom(f, "openssh_banner.bin") }
func FuzzHTTP2(f *testing.F) {
	fuzzFrom(f, "curl_h2_prior_knowledge.bin", "nghttp_prior_knowledge.bin")
}

func fuzzFrom(f *testing.F, files ...string) {
	for _, name := range files {
		f.Add(readCapture(f, name), 0)
	}
	f.Fuzz(checkInvariants)
}

func checkInvariants(t *testing.T, b []byte, limit int) {
	limit = limit % (DefaultLimit + 1)
	var r Result
	r.Parse(b, limit)
	inside := func(name string, s []byte) {
		if len(s) == 0 {
			return
		}
		p := uintptr(unsafe.Pointer(unsafe.SliceData(s)))
		lo := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
		slo := uintptr(unsafe.Pointer(&r.scratch[0]))
		inB := p >= lo && p+uintptr(len(s)) <= lo+uintptr(len(b))
		inScratch := p >= slo && p+uintptr(len(s)) <= slo+uintptr(len(r.scratch))
		if !inB && !inScratch {
			t.Fatalf("%s points outside the input", name)
		}
	}
	h := &r.HTTP1
	for _, s := range [][]byte{h.Method, h.Target, h.Host, h.WebSocketKey, h.WebSocketVer, h.HTTP2Settings, h.head} {
		inside("HTTP1 field", s)
	}
	for _, s := range h.Upgrades() {
		inside("Upgrade token", s)
	}
	inside("ServerName", r.TLS.ServerName)
	for _, s := range r.TLS.ALPN() {
		inside("ALPN", s)
	}
	inside("TLVs", r.Proxy.TLVs)
	inside("SSH", r.SSH.SoftwareVersion)
	if h.Verdict == Match {
		if h.HeadLen <= 0 || r.Offset+h.HeadLen > len(b) {
			t.Fatalf("HeadLen %d outside the input of %d", h.HeadLen, len(b))
		}
		_, _ = h.Header("x")
		_ = h.WebSocket()
		for name, value := range h.Fields() {
			inside("field name", name)
			inside("field value", value)
			if !IsToken(name) {
				t.Fatalf("field name %q is not a token", name)
			}
			if _, ok := h.Header(string(name)); !ok {
				t.Fatalf("Fields yields %q, which Header does not find", name)
			}
		}
	}
	// Without a PROXY header, the HTTP/1 parser alone says what Parse
	// said of HTTP/1.
	if r.Proxy.Verdict == NoMatch {
		var h1 HTTP1Head
		h1.Parse(b, limit)
		if h1.Verdict != h.Verdict || h1.Err != h.Err || h1.HeadLen != h.HeadLen {
			t.Fatalf("HTTP1Head.Parse: %v %v %d; Result.Parse: %v %v %d", h1.Verdict, h1.Err, h1.HeadLen, h.Verdict, h.Err, h.HeadLen)
		}
	}
	if r.TLS.Verdict == Match && r.Offset+r.TLS.Len > len(b) {
		t.Fatalf("ClientHello length %d outside the input of %d", r.TLS.Len, len(b))
	}
	if len(b) <= 512 {
		checkPrefixes(t, b, limit)
	}
}
