package sniff

import "testing"

// TestParseAllocs keeps the hot path free of allocations: Parse on every
// capture, on every prefix, and the lookups routes make.
func TestParseAllocs(t *testing.T) {
	var r Result
	for name, b := range corpusInputs(t) {
		n := testing.AllocsPerRun(50, func() {
			for k := 0; k <= len(b); k += 1 + len(b)/64 {
				r.Parse(b[:k], 0)
			}
			r.Parse(b, 0)
			_ = r.HTTP1.UpgradeTo("websocket")
			_ = r.HTTP1.WebSocket()
			_, _ = r.HTTP1.Header("user-agent")
			_ = r.TLS.OffersALPN("h2")
			_, _ = r.Protocol()
		})
		if n != 0 {
			t.Errorf("%s: %v allocations per run; want 0", name, n)
		}
	}
}
