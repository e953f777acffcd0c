package loadgen

import (
	"io"
	"net"
	"testing"
	"time"
)

// TestConnectLatency: every connection opened has its connect time
// recorded, apart from the requests' latencies.
func TestConnectLatency(t *testing.T) {
	url := httpServer(t, hello)
	echo := rawServer(t, func(c net.Conn) { io.Copy(c, c) })
	h2 := h2cServer(t, hello)
	for _, cfg := range []Config{
		{Mode: HTTP1, Target: url, Concurrency: 2, Requests: 20},
		{Mode: HTTP1KeepAlive, Target: url, Concurrency: 2, Requests: 20},
		{Mode: Upgrade426, Target: upgradeOnly(t, "websocket"), Concurrency: 2, Requests: 20},
		{Mode: TCP, Target: "tcp://" + echo, Concurrency: 2, Requests: 20, Size: 10},
		{Mode: H2C, Target: h2, Concurrency: 2, Streams: 2, Requests: 20},
	} {
		engines(t, func(t *testing.T) {
			res := run(t, cfg)
			wantOK(t, res, 20)
			if n := res.ConnectHistogram.Count(); n != res.Connections || n == 0 {
				t.Errorf("%s: %d connect times for %d connections", cfg.Mode, n, res.Connections)
			}
			c := res.Connect
			if c.P50 <= 0 || c.P50 > c.P90 || c.P90 > c.P99 || c.P99 > c.Max {
				t.Errorf("%s: connect %+v out of order", cfg.Mode, c)
			}
		})
	}
}

// TestConnectNotInLatency: an h2c connection is open once the server's
// SETTINGS have come; a server that sends them a second late makes the
// connect time long, but not the latency of the request that waited for
// it, which counts from its first byte.
func TestConnectNotInLatency(t *testing.T) {
	const wait = time.Second
	addr := rawServer(t, slowSettingsH2(wait))
	res := run(t, Config{Mode: H2C, Target: "http://" + addr + "/", Concurrency: 1, Streams: 1, Requests: 3})
	wantOK(t, res, 3)
	if min := time.Duration(res.Connect.Min) * time.Microsecond; min < wait {
		t.Errorf("connect time %v; want at least %v", min, wait)
	}
	if max := time.Duration(res.Latency.Max) * time.Microsecond; max >= wait {
		t.Errorf("latency up to %v: the connect time is in it", max)
	}
}
