package loadgen

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

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
