package sniff

import (
	"bytes"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"testing"
	"testing/iotest"
)

// want describes the final parse of one capture.
type want struct {
	proto    Protocol
	verdict  Verdict
	sni      string
	alpn     []string
	upgrades string // comma-joined UpgradeTo-valid tokens checked: "websocket", "h2c"
	proxy    int    // PROXY version stripped, 0 for none
	method   string
}

var corpus = map[string]want{
	"curl_get.bin":                 {proto: HTTP1, verdict: Match, method: "GET"},
	"curl_post.bin":                {proto: HTTP1, verdict: Match, method: "POST"},
	"go_http_get.bin":              {proto: HTTP1, verdict: Match, method: "GET"},
	"curl_h2_prior_knowledge.bin":  {proto: HTTP2, verdict: Match},
	"nghttp_prior_knowledge.bin":   {proto: HTTP2, verdict: Match},
	"curl_h2_upgrade.bin":          {proto: HTTP1, verdict: Match, method: "GET", upgrades: "h2c"},
	"nghttp_upgrade.bin":           {proto: HTTP1, verdict: Match, method: "GET", upgrades: "h2c"},
	"chromium_websocket.bin":       {proto: HTTP1, verdict: Match, method: "GET", upgrades: "websocket"},
	"go_tls_clienthello.bin":       {proto: TLS, verdict: Match, sni: "www.example.com", alpn: []string{"h2", "http/1.1"}},
	"go_tls_clienthello_split.bin": {proto: TLS, verdict: Match, sni: "www.example.com", alpn: []string{"h2", "http/1.1"}},
	"openssl_s_client.bin":         {proto: TLS, verdict: Match, sni: "www.example.com", alpn: []string{"h2", "http/1.1"}},
	"openssh_banner.bin":           {proto: SSH, verdict: Match},
	"haproxy_proxy_v1.bin":         {proto: HTTP1, verdict: Match, method: "GET", proxy: 1},
	"haproxy_proxy_v2.bin":         {proto: HTTP1, verdict: Match, method: "GET", proxy: 2},
}

func readCapture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "captures", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// corpusInputs returns every capture plus inputs derived from them: the Go
// ClientHello re-framed into records of 1, 7 and 100 bytes, so that SNI and
// ALPN values straddle record boundaries.
func corpusInputs(t testing.TB) map[string][]byte {
	t.Helper()
	in := map[string][]byte{}
	for name := range corpus {
		in[name] = readCapture(t, name)
	}
	hello := in["go_tls_clienthello.bin"]
	for _, size := range []int{1, 7, 100} {
		in["go_tls_clienthello_records_"+string(rune('0'+size%10))+".bin"] = reframe(hello, size)
	}
	return in
}

// reframe splits the handshake bytes of a single-record hello into records
// of at most size bytes each (RFC 8446 §5.1 allows any fragmentation).
func reframe(rec []byte, size int) []byte {
	hs := rec[recordHeaderLen:]
	var out []byte
	for len(hs) > 0 {
		n := min(size, len(hs))
		out = append(out, 22, rec[1], rec[2], 0, 0)
		binary.BigEndian.PutUint16(out[len(out)-2:], uint16(n))
		out = append(out, hs[:n]...)
		hs = hs[n:]
	}
	return out
}

func wantFor(name string) want {
	if w, ok := corpus[name]; ok {
		return w
	}
	return corpus["go_tls_clienthello.bin"]
}

func checkWant(t *testing.T, r *Result, w want) {
	t.Helper()
	p, v := r.Protocol()
	if p != w.proto || v != w.verdict {
		t.Fatalf("Protocol() = %v, %v; want %v, %v (http1 err %v)", p, v, w.proto, w.verdict, r.HTTP1.Err)
	}
	if got := string(r.TLS.ServerName); got != w.sni {
		t.Errorf("ServerName = %q; want %q", got, w.sni)
	}
	var alpn []string
	for _, a := range r.TLS.ALPN() {
		alpn = append(alpn, string(a))
	}
	if len(alpn) != len(w.alpn) || (len(alpn) > 0 && string(bytes.Join(r.TLS.ALPN(), []byte(","))) != joinStrings(w.alpn)) {
		t.Errorf("ALPN = %q; want %q", alpn, w.alpn)
	}
	for _, tok := range []string{"websocket", "h2c"} {
		if got, want := r.HTTP1.UpgradeTo(tok), bytes.Contains([]byte(w.upgrades), []byte(tok)); got != want {
			t.Errorf("UpgradeTo(%q) = %v; want %v", tok, got, want)
		}
	}
	if r.Proxy.Version != w.proxy {
		t.Errorf("Proxy.Version = %d; want %d", r.Proxy.Version, w.proxy)
	}
	if got := string(r.HTTP1.Method); got != w.method {
		t.Errorf("Method = %q; want %q", got, w.method)
	}
}

func joinStrings(s []string) string { return string(bytes.Join(toBytes(s), []byte(","))) }

func toBytes(s []string) [][]byte {
	var out [][]byte
	for _, x := range s {
		out = append(out, []byte(x))
	}
	return out
}

func TestCorpus(t *testing.T) {
	for name, b := range corpusInputs(t) {
		t.Run(name, func(t *testing.T) {
			var r Result
			r.Parse(b, 0)
			checkWant(t, &r, wantFor(name))
		})
	}
}

// verdicts lists every parser's verdict, for comparing parses.
func verdicts(r *Result) [5]Verdict {
	return [5]Verdict{r.Proxy.Verdict, r.HTTP1.Verdict, r.HTTP2, r.TLS.Verdict, r.SSH.Verdict}
}

// TestSplitFeeding feeds every input as the mux would, accumulating reads,
// for every split point: a verdict other than NeedMore, once given, never
// changes, and the last parse equals the parse of the whole input.
func TestSplitFeeding(t *testing.T) {
	for name, b := range corpusInputs(t) {
		t.Run(name, func(t *testing.T) {
			checkPrefixes(t, b, 0)
			// One byte per read, through a reader, as a slow client sends.
			var buf []byte
			var r Result
			one := iotest.OneByteReader(bytes.NewReader(b))
			for {
				var c [1]byte
				n, err := one.Read(c[:])
				buf = append(buf, c[:n]...)
				if err == io.EOF {
					break
				}
				r.Parse(buf, 0)
			}
			checkWant(t, &r, wantFor(name))
		})
	}
}

// checkPrefixes parses every prefix of b and checks that verdicts settle
// monotonically to those of the whole of b.
func checkPrefixes(t testing.TB, b []byte, limit int) {
	t.Helper()
	var whole, r Result
	whole.Parse(b, limit)
	final := verdicts(&whole)
	var settled [5]bool
	var first [5]Verdict
	for k := 0; k <= len(b); k++ {
		r.Parse(b[:k], limit)
		got := verdicts(&r)
		for i, v := range got {
			if settled[i] && v != first[i] {
				t.Fatalf("prefix %d: parser %d went from %v to %v", k, i, first[i], v)
			}
			if v != NeedMore && !settled[i] {
				if v != final[i] {
					t.Fatalf("prefix %d: parser %d says %v; whole input says %v", k, i, v, final[i])
				}
				settled[i], first[i] = true, v
			}
		}
	}
}
