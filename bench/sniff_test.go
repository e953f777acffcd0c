package bench

import (
	"bytes"
	"io"
	"testing"

	"github.com/portmux/portmux/mux"
	"github.com/portmux/portmux/sniff"
	"github.com/soheilhy/cmux"
)

// sniffCase pairs one capture with the check a route would make on it:
// portmux parses the whole capture once and runs the route's matcher on
// the parse; cmux runs its matcher over a reader of the same bytes.
type sniffCase struct {
	in      capture
	portmux mux.Matcher
	cmux    []namedCmux // impl name -> matcher
}

type namedCmux struct {
	impl  string
	match cmux.Matcher
}

func sniffCases() []sniffCase {
	return []sniffCase{
		{inCurlGet, mux.HTTP1(), []namedCmux{
			{"cmux", cmux.HTTP1Fast()},
			{"cmux-http1", cmux.HTTP1()},
		}},
		{inWebSocket, mux.WebSocket(), []namedCmux{
			{"cmux", cmux.HTTP1HeaderField("Upgrade", "websocket")},
		}},
		{inH2, mux.HTTP2(), []namedCmux{
			{"cmux", cmux.HTTP2()},
		}},
		// portmux reads SNI and ALPN out of the whole ClientHello; cmux.TLS
		// only compares the record header's first three bytes.
		{inTLS, mux.And(mux.ServerName("www.example.com"), mux.ALPN("h2")), []namedCmux{
			{"cmux", cmux.TLS()},
		}},
	}
}

// sniffPortmux is one route decision as the mux makes it: parse, then ask
// the route's matcher about the shared result.
func sniffPortmux(r *sniff.Result, in *mux.Input, buf []byte, m mux.Matcher) sniff.Verdict {
	*in = mux.NewInput(r, buf, 0, false)
	return m(in)
}

func BenchmarkSniff(b *testing.B) {
	for _, tc := range sniffCases() {
		buf := readCapture(b, tc.in)
		b.Run("in="+tc.in.name+"/impl=portmux", func(b *testing.B) {
			var r sniff.Result
			var in mux.Input
			b.ReportAllocs()
			b.SetBytes(int64(len(buf)))
			for b.Loop() {
				if v := sniffPortmux(&r, &in, buf, tc.portmux); v != sniff.Match {
					b.Fatalf("verdict %v; want match", v)
				}
			}
		})
		for _, c := range tc.cmux {
			b.Run("in="+tc.in.name+"/impl="+c.impl, func(b *testing.B) {
				rd := bytes.NewReader(buf)
				b.ReportAllocs()
				b.SetBytes(int64(len(buf)))
				for b.Loop() {
					rd.Reset(buf)
					if !c.match(rd) {
						b.Fatal("cmux matcher said no")
					}
				}
			})
		}
	}
}

// TestSniffCases checks that every matcher of BenchmarkSniff says yes to
// its capture, once.
func TestSniffCases(t *testing.T) {
	for _, tc := range sniffCases() {
		buf := readCapture(t, tc.in)
		var r sniff.Result
		var in mux.Input
		if v := sniffPortmux(&r, &in, buf, tc.portmux); v != sniff.Match {
			t.Errorf("%s: portmux verdict %v; want match", tc.in.name, v)
		}
		for _, c := range tc.cmux {
			if !c.match(io.Reader(bytes.NewReader(buf))) {
				t.Errorf("%s: %s matcher said no", tc.in.name, c.impl)
			}
		}
	}
}
