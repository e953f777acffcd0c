package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// TestH2CTrailers: a response with trailers is a good response.
func TestH2CTrailers(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Checksum")
		io.WriteString(w, "body")
		w.Header().Set("X-Checksum", "abc")
	}))
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	t.Cleanup(srv.Close)
	res := run(t, Config{Mode: H2C, Target: srv.URL, Concurrency: 1, Streams: 4, Requests: 40})
	if res.Errors != 0 || res.Requests != 40 {
		t.Errorf("requests %d, errors %v %v; want 40 ok", res.Requests, res.ErrorsByKind, res.ErrorSamples)
	}
}

// TestH2CNoWindow: a server that opens no flow-control window (and never
// answers) cannot hold a run past its end: the send's wait is bounded by
// the request timeout and the run's end, and the requests count as
// timeouts.
func TestH2CNoWindow(t *testing.T) {
	addr := rawServer(t, func(c net.Conn) {
		pre := make([]byte, len(http2.ClientPreface))
		if _, err := io.ReadFull(c, pre); err != nil {
			return
		}
		fr := http2.NewFramer(c, c)
		fr.WriteSettings()
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				return
			}
			if sf, ok := f.(*http2.SettingsFrame); ok && !sf.IsAck() {
				fr.WriteSettingsAck()
			}
		}
	})
	done := make(chan *Result, 1)
	go func() {
		res, err := Run(context.Background(), Config{Mode: H2C, Target: "http://" + addr + "/", Concurrency: 1, Streams: 1,
			Size: 100000, Duration: 300 * time.Millisecond, Timeout: 100 * time.Millisecond})
		if err != nil {
			t.Error(err)
		}
		done <- res
	}()
	var res *Result
	select {
	case res = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not end: h2c's send waited for window for ever")
	}
	if res.Requests != 0 || res.ErrorsByKind["timeout"] == 0 {
		t.Errorf("requests %d, errors %v; want timeouts only", res.Requests, res.ErrorsByKind)
	}
}

// h2FramedServer runs answer for each request HEADERS on a connection
// (with its stream ID and the index of the request on the connection),
// after the preface and SETTINGS; it returns when the client closes.
func h2FramedServer(c net.Conn, answer func(fr *http2.Framer, id uint32, i int)) {
	h2FramedServerAfter(c, 0, answer)
}

// h2FramedServerAfter is h2FramedServer sending its SETTINGS wait after
// the client's preface.
func h2FramedServerAfter(c net.Conn, wait time.Duration, answer func(fr *http2.Framer, id uint32, i int)) {
	pre := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(c, pre); err != nil {
		return
	}
	time.Sleep(wait)
	fr := http2.NewFramer(c, c)
	fr.WriteSettings()
	for i := 0; ; {
		f, err := fr.ReadFrame()
		if err != nil {
			return
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				fr.WriteSettingsAck()
			}
		case *http2.HeadersFrame:
			answer(fr, f.StreamID, i)
			i++
		}
	}
}

func h2OK(fr *http2.Framer, id uint32) {
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: []byte{0x88}, EndStream: true, EndHeaders: true}) // :status 200
}

// TestH2CRefusedStream: a stream the server refuses (RST_STREAM
// REFUSED_STREAM) was not processed, and is retried (RFC 9113 §8.7), at
// most h2MaxRetries times.
func TestH2CRefusedStream(t *testing.T) {
	var seen atomic.Int64
	first := rawServer(t, func(c net.Conn) {
		h2FramedServer(c, func(fr *http2.Framer, id uint32, i int) {
			if i == 0 {
				fr.WriteRSTStream(id, http2.ErrCodeRefusedStream)
				return
			}
			h2OK(fr, id)
		})
	})
	res := run(t, Config{Mode: H2C, Target: "http://" + first + "/", Concurrency: 1, Streams: 1, Requests: 5})
	wantOK(t, res, 5)
	if res.Connections != 1 {
		t.Errorf("connections %d; want 1", res.Connections)
	}
	// A server that refuses every stream fails each request after
	// h2MaxRetries retries: bounded, not a loop until the timeout.
	all := rawServer(t, func(c net.Conn) {
		h2FramedServer(c, func(fr *http2.Framer, id uint32, i int) {
			seen.Add(1)
			fr.WriteRSTStream(id, http2.ErrCodeRefusedStream)
		})
	})
	res = run(t, Config{Mode: H2C, Target: "http://" + all + "/", Concurrency: 1, Streams: 1, Requests: 3})
	wantErrors(t, res, KindReset, 3)
	if want := int64(3 * (1 + h2MaxRetries)); seen.Load() != want {
		t.Errorf("the server saw %d requests; want %d, each tried %d times", seen.Load(), want, 1+h2MaxRetries)
	}
}

// TestH2CGoAway: requests above a GOAWAY's last stream ID were not
// processed and are retried on a new connection, and the client closes
// the connection that went away once its streams are done.
func TestH2CGoAway(t *testing.T) {
	var conns, closedFirst atomic.Int64
	closed := make(chan struct{}, 10)
	addr := rawServer(t, func(c net.Conn) {
		if conns.Add(1) > 1 {
			select { // the client should have closed the last one first
			case <-closed:
				closedFirst.Add(1)
			case <-time.After(2 * time.Second):
			}
		}
		var goneAway bool
		// One request per connection, then GOAWAY for the next.
		h2FramedServer(c, func(fr *http2.Framer, id uint32, i int) {
			if i == 0 {
				h2OK(fr, id)
				return
			}
			fr.WriteGoAway(id-2, http2.ErrCodeNo, nil)
			goneAway = true
		})
		if goneAway {
			closed <- struct{}{}
		}
	})
	res := run(t, Config{Mode: H2C, Target: "http://" + addr + "/", Concurrency: 1, Streams: 1, Requests: 4})
	wantOK(t, res, 4)
	if res.Connections != 4 || closedFirst.Load() != 3 {
		t.Errorf("connections %d, closed before the next one opened %d; want 4 and 3", res.Connections, closedFirst.Load())
	}
}

// slowSettingsH2 is an h2 server that waits before its SETTINGS and then
// answers every request with an empty 200.
func slowSettingsH2(wait time.Duration) func(net.Conn) {
	return func(c net.Conn) {
		h2FramedServerAfter(c, wait, func(fr *http2.Framer, id uint32, _ int) { h2OK(fr, id) })
	}
}

// TestH2CConnectNotInLatency: the workers that wait for the connection
// another one is opening leave that wait out of their latency, as the
// one that dials does.
func TestH2CConnectNotInLatency(t *testing.T) {
	const wait = 500 * time.Millisecond
	addr := rawServer(t, slowSettingsH2(wait))
	res := run(t, Config{Mode: H2C, Target: "http://" + addr + "/", Concurrency: 1, Streams: 4, Requests: 4})
	wantOK(t, res, 4)
	if max := time.Duration(res.Latency.Max) * time.Microsecond; max >= wait {
		t.Errorf("latency up to %v (p50 %vµs): the connect time is in it", max, res.Latency.P50)
	}
}

// TestH2CGoAwayEvery: a server that sends GOAWAY every few requests
// (nginx's keepalive_requests) can leave the same request unprocessed
// again and again; it is retried until processed (RFC 9113 §8.7), never
// counted as an error, and the server processes each exactly once.
// Serving fewer per connection than the streams in flight makes it
// happen every time, and needs the retries to go first on the next
// connection, or the same request would be last again and again.
func TestH2CGoAwayEvery(t *testing.T) {
	for _, perConn := range []int{5, 3} {
		var served atomic.Int64
		addr := rawServer(t, func(c net.Conn) {
			var last uint32
			h2FramedServer(c, func(fr *http2.Framer, id uint32, i int) {
				switch {
				case i < perConn:
					served.Add(1)
					last = id
					h2OK(fr, id)
				case i == perConn:
					fr.WriteGoAway(last, http2.ErrCodeNo, nil)
				}
				// and ignore the streams above last
			})
		})
		res := run(t, Config{Mode: H2C, Target: "http://" + addr + "/", Concurrency: 1, Streams: 4, Requests: 200})
		wantOK(t, res, 200)
		if served.Load() != 200 {
			t.Errorf("%d per connection: the server served %d requests; want 200", perConn, served.Load())
		}
	}
}

// TestH2CResultBeatsStop: a request whose result is in when the run
// stops counts as done, not as unfinished, however select would choose.
func TestH2CResultBeatsStop(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := &runner{ctx: ctx, cancel: cancel}
	c := &h2Client{w: &worker{r: r, status: map[int]uint64{}}, st: h2Stream{done: make(chan error, 1), status: 200}}
	conn := &h2Conn{streams: map[uint32]*h2Stream{}, err: errors.New("closed")}
	conn.cond = sync.NewCond(&conn.mu)
	for i := range 200 {
		c.st.done <- nil
		if err := c.await(conn); err != nil {
			t.Fatalf("round %d: %v; want the result", i, err)
		}
	}
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
