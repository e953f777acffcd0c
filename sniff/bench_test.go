package sniff

import "testing"

// The inputs the issue names: curl GET, a browser WebSocket upgrade, the
// h2 preface with SETTINGS, and a post-quantum ClientHello with SNI and ALPN.
var benchInputs = []struct{ name, file string }{
	{"curl_get", "curl_get.bin"},
	{"chromium_websocket", "chromium_websocket.bin"},
	{"h2_preface_settings", "curl_h2_prior_knowledge.bin"},
	{"go_tls_pq_clienthello", "go_tls_clienthello.bin"},
	{"go_tls_split_records", "go_tls_clienthello_split.bin"},
	{"openssh_banner", "openssh_banner.bin"},
	{"haproxy_proxy_v2_get", "haproxy_proxy_v2.bin"},
}

func BenchmarkParse(b *testing.B) {
	for _, in := range benchInputs {
		buf := readCapture(b, in.file)
		b.Run(in.name, func(b *testing.B) {
			var r Result
			b.ReportAllocs()
			b.SetBytes(int64(len(buf)))
			for b.Loop() {
				r.Parse(buf, 0)
			}
			if _, v := r.Protocol(); v != Match {
				b.Fatalf("verdict %v", v)
			}
		})
	}
}

// BenchmarkHTTP1Head is the parse a WebSocket server makes of Chromium's
// handshake: the HTTP/1 head alone, then every field in turn.
func BenchmarkHTTP1Head(b *testing.B) {
	buf := readCapture(b, "chromium_websocket.bin")
	var h HTTP1Head
	b.ReportAllocs()
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		h.Parse(buf, 0)
		for name, value := range h.Fields() {
			_, _ = name, value
		}
	}
	if h.Verdict != Match {
		b.Fatalf("verdict %v", h.Verdict)
	}
}
