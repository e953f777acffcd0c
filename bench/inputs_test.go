package bench

import (
	"os"
	"path/filepath"
	"testing"
)

// capture is one real client's first bytes, from sniff/testdata/captures.
type capture struct {
	name string // the in=... key of the sub-benchmark
	file string
}

var (
	inCurlGet   = capture{"curl_get", "curl_get.bin"}
	inWebSocket = capture{"websocket", "chromium_websocket.bin"}
	inH2        = capture{"h2_preface", "curl_h2_prior_knowledge.bin"}
	inTLS       = capture{"tls", "go_tls_clienthello.bin"}
)

func readCapture(tb testing.TB, in capture) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("..", "sniff", "testdata", "captures", in.file))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}
