package loadgen

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/portmux/portmux/mux"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// rawServer accepts on loopback and runs serve per connection; the
// cleanup closes the listener and every connection and waits for the
// goroutines.
func rawServer(t testing.TB, serve func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns = map[net.Conn]bool{}
	)
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			wg.Go(func() {
				defer func() {
					c.Close()
					mu.Lock()
					delete(conns, c)
					mu.Unlock()
				}()
				serve(c)
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

func httpServer(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

var hello = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	io.WriteString(w, "hello\n")
})

func run(t *testing.T, cfg Config) *Result {
	t.Helper()
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// engines runs f with the epoll loop (where there is one) and with
// goroutine workers.
func engines(t *testing.T, f func(t *testing.T)) {
	for _, off := range []bool{false, true} {
		t.Run(map[bool]string{false: "loop", true: "goroutines"}[off], func(t *testing.T) {
			noEventLoop = off
			defer func() { noEventLoop = false }()
			f(t)
		})
	}
}

func wantOK(t *testing.T, res *Result, n uint64) {
	t.Helper()
	if res.Requests != n || res.Errors != 0 {
		t.Fatalf("requests %d, errors %d %v; want %d and none", res.Requests, res.Errors, res.ErrorSamples, n)
	}
	if res.Histogram.Count() != n {
		t.Errorf("latencies recorded: %d; want %d", res.Histogram.Count(), n)
	}
	if res.Latency.P50 <= 0 || res.Latency.P50 > res.Latency.P999 || res.Latency.P999 > res.Latency.Max {
		t.Errorf("latency %+v out of order", res.Latency)
	}
}

func wantErrors(t *testing.T, res *Result, kind ErrorKind, n uint64) {
	t.Helper()
	if got := res.ErrorsByKind[kind.String()]; got != n || res.Errors != n || res.Requests != 0 {
		t.Fatalf("%s errors %d (all errors %d %v, requests %d); want %d", kind, got, res.Errors, res.ErrorSamples, res.Requests, n)
	}
	if res.ErrorSamples[kind.String()] == "" {
		t.Errorf("no sample message for %s", kind)
	}
}

func TestHTTP1(t *testing.T) {
	url := httpServer(t, hello)
	engines(t, func(t *testing.T) {
		res := run(t, Config{Mode: HTTP1, Target: url + "/x?y=1", Concurrency: 4, Requests: 200})
		wantOK(t, res, 200)
		if res.Connections != 200 {
			t.Errorf("connections %d; want 200, one per request", res.Connections)
		}
		req := "GET /x?y=1 HTTP/1.1\r\nHost: " + strings.TrimPrefix(url, "http://") + "\r\nUser-Agent: portmux-bench\r\nConnection: close\r\n\r\n"
		if res.BytesSent != 200*uint64(len(req)) {
			t.Errorf("bytes sent %d; want 200 x %d", res.BytesSent, len(req))
		}
		if res.BytesReceived < 200*uint64(len("HTTP/1.1 200 OK\r\n\r\nhello\n")) {
			t.Errorf("bytes received %d: too few", res.BytesReceived)
		}
		if res.Status["200"] != 200 {
			t.Errorf("status %v", res.Status)
		}
	})
}

func TestHTTP1Body(t *testing.T) {
	var mu sync.Mutex
	var got []string
	url := httpServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, r.Method+" "+r.Host+" "+fmt.Sprint(len(b)))
		mu.Unlock()
		w.(http.Flusher).Flush() // a chunked response
		io.WriteString(w, "ok")
	}))
	engines(t, func(t *testing.T) {
		mu.Lock()
		got = nil
		mu.Unlock()
		res := run(t, Config{Mode: HTTP1, Target: url, Host: "example.test", Size: 1000, Requests: 10})
		wantOK(t, res, 10)
		mu.Lock()
		defer mu.Unlock()
		if want := "POST example.test 1000"; len(got) != 10 || got[0] != want {
			t.Errorf("server saw %q; want 10 x %q", got, want)
		}
	})
}

func TestHTTP1KeepAlive(t *testing.T) {
	engines(t, testHTTP1KeepAlive)
}

func testHTTP1KeepAlive(t *testing.T) {
	url := httpServer(t, hello)
	res := run(t, Config{Mode: HTTP1KeepAlive, Target: url, Concurrency: 3, Requests: 300})
	wantOK(t, res, 300)
	if res.Connections < 1 || res.Connections > 3 {
		t.Errorf("connections %d; want at most 3, one per worker", res.Connections)
	}

	// A server that closes after every response makes each worker reconnect.
	url = httpServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		io.WriteString(w, "bye")
	}))
	res = run(t, Config{Mode: HTTP1KeepAlive, Target: url, Concurrency: 2, Requests: 20})
	wantOK(t, res, 20)
	if res.Connections != 20 {
		t.Errorf("connections %d; want 20", res.Connections)
	}

	// A server that closes a kept-alive connection without saying so:
	// the request that finds it closed is retried once on a new one.
	once := rawServer(t, func(c net.Conn) {
		c.Read(make([]byte, 4096))
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	})
	res = run(t, Config{Mode: HTTP1KeepAlive, Target: once, Concurrency: 1, Requests: 10})
	wantOK(t, res, 10)
	if res.Connections != 10 {
		t.Errorf("connections %d; want 10", res.Connections)
	}
}

func TestBadStatus(t *testing.T) {
	url := httpServer(t, http.NotFoundHandler())
	engines(t, func(t *testing.T) {
		res := run(t, Config{Mode: HTTP1, Target: url, Requests: 7})
		wantErrors(t, res, KindBadStatus, 7)
		if res.Status["404"] != 7 {
			t.Errorf("status %v", res.Status)
		}
	})
}

func TestDialErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	for _, mode := range Modes {
		engines(t, func(t *testing.T) {
			target := addr
			if mode != TCP {
				target = "http://" + addr + "/"
			}
			res := run(t, Config{Mode: mode, Target: target, Concurrency: 2, Streams: 1, Requests: 5})
			wantErrors(t, res, KindDial, 5)
			if res.Connections != 0 {
				t.Errorf("%s: connections %d; want 0", mode, res.Connections)
			}
		})
	}
}

func TestTimeout(t *testing.T) {
	addr := rawServer(t, func(c net.Conn) { io.Copy(io.Discard, c) }) // never answers
	for _, mode := range []Mode{HTTP1, HTTP1KeepAlive, Upgrade426, TCP} {
		engines(t, func(t *testing.T) {
			res := run(t, Config{Mode: mode, Target: addr, Concurrency: 2, Requests: 4, Timeout: 50 * time.Millisecond})
			wantErrors(t, res, KindTimeout, 4)
		})
	}
}

func TestResetAndClosed(t *testing.T) {
	reset := rawServer(t, func(c net.Conn) {
		c.Read(make([]byte, 4096))
		c.(*net.TCPConn).SetLinger(0)
	})
	closed := rawServer(t, func(c net.Conn) { c.Read(make([]byte, 4096)) })
	partial := rawServer(t, func(c net.Conn) {
		c.Read(make([]byte, 4096))
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
	})
	garbage := rawServer(t, func(c net.Conn) {
		c.Read(make([]byte, 4096))
		io.WriteString(c, "SSH-2.0-OpenSSH_9.6\r\n\r\n")
	})
	engines(t, func(t *testing.T) {
		wantErrors(t, run(t, Config{Target: reset, Requests: 3}), KindReset, 3)
		wantErrors(t, run(t, Config{Target: closed, Requests: 3}), KindClosed, 3)
		wantErrors(t, run(t, Config{Target: partial, Requests: 3}), KindClosed, 3)
		wantErrors(t, run(t, Config{Target: garbage, Requests: 3}), KindProtocol, 3)
	})
}

// upgradeOnly serves an upgrade-only portmux port.
func upgradeOnly(t *testing.T, tokens ...string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := new(mux.Mux)
	m.UpgradeOnly = tokens
	m.HandleFunc("websocket", mux.WebSocket(), func(_ context.Context, c net.Conn) error { return c.Close() })
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.Serve(ln)
	}()
	t.Cleanup(func() {
		m.Close()
		<-done
	})
	return "http://" + ln.Addr().String() + "/"
}

func Test426(t *testing.T) {
	port := upgradeOnly(t, "websocket", "h2c")
	plain := httpServer(t, hello)
	engines(t, func(t *testing.T) {
		res := run(t, Config{Mode: Upgrade426, Target: port, Concurrency: 3, Requests: 30, UpgradeTokens: []string{"H2C", "websocket"}})
		wantOK(t, res, 30)
		if res.Status["426"] != 30 || res.Connections != 30 {
			t.Errorf("status %v, connections %d; want 30 x 426 on 30 connections", res.Status, res.Connections)
		}
		wantErrors(t, run(t, Config{Mode: Upgrade426, Target: port, Requests: 4, UpgradeTokens: []string{"websocket", "foo"}}), KindBadHeader, 4)
		wantErrors(t, run(t, Config{Mode: Upgrade426, Target: plain, Requests: 4}), KindBadStatus, 4)
	})
}

func TestH2C(t *testing.T) {
	var mu sync.Mutex
	protos := map[string]int{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		mu.Lock()
		protos[fmt.Sprint(r.Proto, " ", r.Method, " ", n)]++
		mu.Unlock()
		io.WriteString(w, "hello over h2c\n")
	}))
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	t.Cleanup(srv.Close)

	res := run(t, Config{Mode: H2C, Target: srv.URL, Concurrency: 2, Streams: 5, Requests: 200, Size: 100})
	wantOK(t, res, 200)
	if res.Connections < 1 || res.Connections > 2 {
		t.Errorf("connections %d; want at most 2, one per transport", res.Connections)
	}
	mu.Lock()
	if protos["HTTP/2.0 POST 100"] != 200 {
		t.Errorf("server saw %v", protos)
	}
	mu.Unlock()
	if res.BytesSent < 200*100 || res.BytesReceived < 200*uint64(len("hello over h2c\n")) {
		t.Errorf("bytes %d sent, %d received: too few", res.BytesSent, res.BytesReceived)
	}

	// Bodies larger than the initial flow-control windows (RFC 9113 §6.9).
	res = run(t, Config{Mode: H2C, Target: srv.URL, Concurrency: 1, Streams: 3, Requests: 9, Size: 300000})
	wantOK(t, res, 9)
	mu.Lock()
	if protos["HTTP/2.0 POST 300000"] != 9 {
		t.Errorf("server saw %v", protos)
	}
	mu.Unlock()

	// A server allowing fewer streams than asked for: the rest wait for
	// streams to end. net/http's server may still refuse a few: it
	// counts a stream closed only once its own goroutine has seen its
	// last frame written, which can come after the client has read it.
	srv.Config.HTTP2 = &http.HTTP2Config{MaxConcurrentStreams: 2}
	res = run(t, Config{Mode: H2C, Target: srv.URL, Concurrency: 1, Streams: 8, Requests: 100})
	if res.Requests+res.Errors != 100 || res.Requests == 0 || res.Errors != res.ErrorsByKind["reset"] {
		t.Errorf("MaxConcurrentStreams 2: requests %d, errors %v", res.Requests, res.ErrorSamples)
	}

	// Status, reset and timeout, stream by stream.
	block := make(chan struct{})
	defer close(block)
	mux := http.NewServeMux()
	mux.Handle("/404", http.NotFoundHandler())
	mux.HandleFunc("/abort", func(http.ResponseWriter, *http.Request) { panic(http.ErrAbortHandler) })
	mux.HandleFunc("/stall", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done(): // the client's RST_STREAM
		case <-block:
		}
	})
	srv2 := httptest.NewUnstartedServer(mux)
	srv2.Config.Protocols = srv.Config.Protocols
	srv2.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv2.Start()
	t.Cleanup(srv2.Close)
	wantErrors(t, run(t, Config{Mode: H2C, Target: srv2.URL + "/404", Concurrency: 1, Streams: 2, Requests: 6}), KindBadStatus, 6)
	wantErrors(t, run(t, Config{Mode: H2C, Target: srv2.URL + "/abort", Concurrency: 1, Streams: 2, Requests: 6}), KindReset, 6)
	wantErrors(t, run(t, Config{Mode: H2C, Target: srv2.URL + "/stall", Concurrency: 1, Streams: 2, Requests: 6, Timeout: 20 * time.Millisecond}), KindTimeout, 6)

	// An HTTP/1-only server does not speak the preface.
	res = run(t, Config{Mode: H2C, Target: httpServer(t, hello), Concurrency: 1, Streams: 1, Requests: 3})
	if res.Requests != 0 || res.Errors != 3 {
		t.Errorf("h2c to an HTTP/1 server: requests %d, errors %v", res.Requests, res.ErrorsByKind)
	}
}

func TestWS(t *testing.T) {
	addr := rawServer(t, func(c net.Conn) {
		if _, err := ws.Upgrade(c); err != nil {
			return
		}
		for {
			msg, op, err := wsutil.ReadClientData(c)
			if err != nil {
				return
			}
			if len(msg) > 1 { // split the echo across frames, with a ping between
				wsutil.WriteServerMessage(c, ws.OpPing, []byte("p"))
				ws.WriteFrame(c, ws.NewFrame(op, false, msg[:1]))
				ws.WriteFrame(c, ws.NewFrame(ws.OpContinuation, true, msg[1:]))
				continue
			}
			wsutil.WriteServerMessage(c, op, msg)
		}
	})
	for _, size := range []int{0, 1, 200, 70000} {
		res := run(t, Config{Mode: WS, Target: "ws://" + addr + "/echo", Concurrency: 3, Requests: 30, Size: size})
		wantOK(t, res, 30)
		if res.Connections < 1 || res.Connections > 3 {
			t.Errorf("size %d: connections %d; want at most 3, one per worker", size, res.Connections)
		}
		if want := uint64(30 * cmp.Or(size, DefaultWSSize)); res.BytesSent < want || res.BytesReceived < want {
			t.Errorf("size %d: bytes %d sent, %d received; want over %d", size, res.BytesSent, res.BytesReceived, want)
		}
	}

	// A server that echoes something else, or closes.
	wrong := rawServer(t, func(c net.Conn) {
		ws.Upgrade(c)
		wsutil.ReadClientData(c)
		wsutil.WriteServerMessage(c, ws.OpBinary, []byte("not the message"))
	})
	wantErrors(t, run(t, Config{Mode: WS, Target: wrong, Requests: 3}), KindProtocol, 3)
	closing := rawServer(t, func(c net.Conn) {
		ws.Upgrade(c)
		wsutil.WriteServerMessage(c, ws.OpClose, ws.NewCloseFrameBody(ws.StatusGoingAway, ""))
	})
	wantErrors(t, run(t, Config{Mode: WS, Target: closing, Requests: 3}), KindClosed, 3)
	// Not a WebSocket server: the handshake fails.
	wantErrors(t, run(t, Config{Mode: WS, Target: httpServer(t, hello), Requests: 3}), KindDial, 3)
}

func TestTCP(t *testing.T) {
	addr := rawServer(t, func(c net.Conn) { io.Copy(c, c) })
	for _, size := range []int{1, 1000, 1 << 20} { // 1 MiB: more than the socket buffers
		res := run(t, Config{Mode: TCP, Target: "tcp://" + addr, Concurrency: 2, Requests: 10, Size: size})
		wantOK(t, res, 10)
		if want := uint64(10 * size); res.BytesSent != want || res.BytesReceived != want {
			t.Errorf("size %d: bytes %d sent, %d received; want %d each", size, res.BytesSent, res.BytesReceived, want)
		}
		if res.Connections < 1 || res.Connections > 2 {
			t.Errorf("connections %d; want at most 2, one per worker", res.Connections)
		}
	}
	// An echo that changes a byte.
	bad := rawServer(t, func(c net.Conn) {
		b := make([]byte, 64<<10)
		for {
			n, err := c.Read(b)
			if err != nil {
				return
			}
			b[0]++
			c.Write(b[:n])
		}
	})
	wantErrors(t, run(t, Config{Mode: TCP, Target: bad, Requests: 3, Size: 10}), KindProtocol, 3)
}

// TestPacedAndTimed: a paced run and one bounded by time end by
// themselves; nothing here depends on how fast they went.
func TestPacedAndTimed(t *testing.T) {
	url := httpServer(t, hello)
	res := run(t, Config{Mode: HTTP1, Target: url, Concurrency: 2, Requests: 20, Rate: 2000})
	wantOK(t, res, 20)
	if res.Rate != 2000 {
		t.Errorf("rate_limit %g", res.Rate)
	}
	for _, mode := range []Mode{HTTP1, HTTP1KeepAlive} {
		engines(t, func(t *testing.T) {
			res := run(t, Config{Mode: mode, Target: url, Concurrency: 2, Duration: 100 * time.Millisecond})
			if res.Errors != 0 || res.ElapsedSeconds <= 0 {
				t.Errorf("%s: errors %v, elapsed %g", mode, res.ErrorSamples, res.ElapsedSeconds)
			}
		})
	}
}

func TestCancel(t *testing.T) {
	addr := rawServer(t, func(c net.Conn) { io.Copy(io.Discard, c) }) // never answers
	for _, mode := range []Mode{HTTP1, WS, TCP, H2C} {
		engines(t, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			var once sync.Once
			cfg := Config{Mode: mode, Target: addr, Concurrency: 2, Streams: 1, Timeout: time.Hour, DialTimeout: time.Hour,
				Progress: func(Progress) { once.Do(cancel) }}
			time.AfterFunc(50*time.Millisecond, cancel)
			res, err := Run(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if res.Errors != 0 {
				t.Errorf("%s: requests cut short by the end counted as errors: %v %v", mode, res.ErrorsByKind, res.ErrorSamples)
			}
		})
	}
}

func TestProgress(t *testing.T) {
	url := httpServer(t, hello)
	var mu sync.Mutex
	var got []Progress
	// The run lasts until at least one progress report has been made.
	ctx, cancel := context.WithCancel(context.Background())
	res, err := Run(ctx, Config{Target: url, Concurrency: 1, Rate: 100, Progress: func(p Progress) {
		mu.Lock()
		got = append(got, p)
		mu.Unlock()
		cancel()
	}})
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) == 0 || got[0].Requests > res.Requests || got[0].Elapsed <= 0 {
		t.Errorf("progress %+v, result %d requests", got, res.Requests)
	}
}

func TestBadConfig(t *testing.T) {
	for _, cfg := range []Config{
		{Mode: "http3", Target: "127.0.0.1:1"},
		{Target: "127.0.0.1:1", Concurrency: -1},
		{Target: "127.0.0.1:1", Size: MaxSize + 1},
		{Target: "127.0.0.1:1", Rate: -1},
		{Target: "127.0.0.1:1", Rate: math.NaN()},
		{Target: "127.0.0.1:1", Rate: math.Inf(1)},
		{Target: "127.0.0.1:1", Rate: 1e300}, // would overflow the missed count
		{Target: "127.0.0.1:1", Rate: MaxRate * 1.5},
		{Mode: Upgrade426, Target: "127.0.0.1:1", UpgradeTokens: []string{"a b"}},
	} {
		if _, err := Run(context.Background(), cfg); !errors.Is(err, ErrBadConfig) {
			t.Errorf("%+v: err %v; want ErrBadConfig", cfg, err)
		}
	}
	for _, cfg := range []Config{
		{Target: "https://127.0.0.1:1/"},
		{Mode: WS, Target: "wss://127.0.0.1:1/"},
		{Mode: TCP, Target: "http://127.0.0.1:1/"},
		{Target: "127.0.0.1"},
		{Target: "http://user@127.0.0.1:1/"},
		{Target: "no-such-host.invalid:80"},
	} {
		if _, err := Run(context.Background(), cfg); !errors.Is(err, ErrBadTarget) {
			t.Errorf("%+v: err %v; want ErrBadTarget", cfg, err)
		}
	}
}

// jsonFields are the documented top-level fields of Result's JSON.
var jsonFields = []string{
	"mode", "target", "concurrency", "streams", "rate_limit", "size", "elapsed_s",
	"requests", "requests_per_s", "connections", "connections_per_s",
	"errors", "unfinished", "missed", "errors_by_kind", "error_samples", "status",
	"bytes_sent", "bytes_received", "sent_mb_per_s", "received_mb_per_s",
	"latency_us", "latency_relative_error", "connect_us",
}

func TestJSON(t *testing.T) {
	url := httpServer(t, http.NotFoundHandler())
	res := run(t, Config{Target: url, Requests: 3})
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	want := slices.Sorted(slices.Values(jsonFields))
	if !slices.Equal(keys, want) {
		t.Errorf("JSON fields %q; want %q", keys, want)
	}
	var kinds map[string]uint64
	json.Unmarshal(m["errors_by_kind"], &kinds)
	for _, k := range ErrorKinds() {
		if _, ok := kinds[k.String()]; !ok {
			t.Errorf("errors_by_kind lacks %q", k)
		}
	}
	if kinds["bad_status"] != 3 {
		t.Errorf("errors_by_kind %v", kinds)
	}
	var lat map[string]float64
	json.Unmarshal(m["latency_us"], &lat)
	for _, k := range []string{"min", "mean", "p50", "p90", "p99", "p99_9", "max"} {
		if _, ok := lat[k]; !ok {
			t.Errorf("latency_us lacks %q", k)
		}
	}
}

func TestWriteText(t *testing.T) {
	url := httpServer(t, hello)
	res := run(t, Config{Target: url, Requests: 5})
	var b strings.Builder
	if err := res.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"mode http1", "5 ok, 0 errors, 0 unfinished", "p99.9", "200: 5"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, b.String())
		}
	}
}

// TestHTTP1Large sends and receives bodies far larger than the socket
// buffers, so that writes and reads resume across many readiness edges.
func TestHTTP1Large(t *testing.T) {
	big := strings.Repeat("x", 3<<20)
	url := httpServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		if n != 4<<20 {
			http.Error(w, fmt.Sprint("body of ", n), http.StatusBadRequest)
			return
		}
		if r.URL.Path == "/chunked" {
			w.(http.Flusher).Flush()
		}
		io.WriteString(w, big)
	}))
	for _, path := range []string{"/length", "/chunked"} {
		engines(t, func(t *testing.T) {
			for _, mode := range []Mode{HTTP1, HTTP1KeepAlive} {
				res := run(t, Config{Mode: mode, Target: url + path, Concurrency: 2, Requests: 4, Size: 4 << 20})
				wantOK(t, res, 4)
				if res.BytesSent < 4*4<<20 || res.BytesReceived < 4*3<<20 {
					t.Errorf("%s %s: bytes %d sent, %d received; want over %d and %d", mode, path, res.BytesSent, res.BytesReceived, 4*4<<20, 4*3<<20)
				}
			}
		})
	}
}

// TestIPv6 drives an IPv6 loopback target, where the machine has one.
func TestIPv6(t *testing.T) {
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: hello}}
	srv.Start()
	t.Cleanup(srv.Close)
	engines(t, func(t *testing.T) {
		wantOK(t, run(t, Config{Mode: HTTP1, Target: srv.URL, Requests: 20}), 20)
	})
}
