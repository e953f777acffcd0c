package loadgen

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// h2cServer serves h on cleartext HTTP/2 (and HTTP/1.1).
func h2cServer(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Config.Protocols.SetHTTP1(true)
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestEndDrains: the requests in flight when Duration passes are waited
// for (up to Drain) and counted, however long after the end they finish.
func TestEndDrains(t *testing.T) {
	var seen atomic.Int64
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Add(1)
		io.Copy(io.Discard, r.Body)
		time.Sleep(300 * time.Millisecond) // longer than the run
		io.WriteString(w, "late\n")
	})
	h1 := httpServer(t, slow)
	h2 := h2cServer(t, slow)
	for _, tc := range []struct {
		mode   Mode
		target string
	}{{HTTP1, h1}, {HTTP1KeepAlive, h1}, {H2C, h2}} {
		engines(t, func(t *testing.T) {
			seen.Store(0)
			res := run(t, Config{Mode: tc.mode, Target: tc.target, Concurrency: 2, Streams: 2, Duration: 50 * time.Millisecond, Drain: 5 * time.Second})
			if res.Requests == 0 || int64(res.Requests) != seen.Load() || res.Errors != 0 || res.Unfinished != 0 {
				t.Errorf("%s: requests %d, errors %v, unfinished %d; want every one of the %d the server saw counted as ok",
					tc.mode, res.Requests, res.ErrorSamples, res.Unfinished, seen.Load())
			}
			if res.Elapsed < 300*time.Millisecond {
				t.Errorf("%s: elapsed %v ends before the requests it counts did", tc.mode, res.Elapsed)
			}
		})
	}
}

// TestEndUnfinished: requests still in flight when the drain ends, or
// when the caller cancels, are counted as unfinished, not dropped.
func TestEndUnfinished(t *testing.T) {
	addr := rawServer(t, func(c net.Conn) { io.Copy(io.Discard, c) }) // never answers
	h2 := rawServer(t, h2SilentServer)
	for _, mode := range []Mode{HTTP1, HTTP1KeepAlive, H2C, TCP} {
		engines(t, func(t *testing.T) {
			target := addr
			if mode == H2C {
				target = h2
			}
			res := run(t, Config{Mode: mode, Target: target, Concurrency: 2, Streams: 2, Duration: 50 * time.Millisecond, Drain: 20 * time.Millisecond})
			want := uint64(2)
			if mode == H2C {
				want = 4
			}
			if res.Unfinished != want || res.Errors != 0 || res.Requests != 0 {
				t.Errorf("%s: unfinished %d, errors %v, requests %d; want %d unfinished only", mode, res.Unfinished, res.ErrorSamples, res.Requests, want)
			}

			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(50*time.Millisecond, cancel)
			res, err := Run(ctx, Config{Mode: mode, Target: target, Concurrency: 2, Streams: 2})
			if err != nil {
				t.Fatal(err)
			}
			if res.Unfinished != want || res.Errors != 0 {
				t.Errorf("%s, cancelled: unfinished %d, errors %v; want %d unfinished", mode, res.Unfinished, res.ErrorSamples, want)
			}
		})
	}
}

// TestEndMissed: in a paced run, the requests that fell due while every
// worker was busy, and so were never sent, are counted as missed.
func TestEndMissed(t *testing.T) {
	addr := rawServer(t, func(c net.Conn) { io.Copy(io.Discard, c) }) // never answers
	res := run(t, Config{Mode: HTTP1, Target: addr, Concurrency: 1, Rate: 1000, Duration: 300 * time.Millisecond, Drain: 10 * time.Millisecond})
	// Requests 0 to 300 fell due within the run; one was sent.
	if res.Unfinished != 1 || res.Missed < 300 {
		t.Errorf("unfinished %d, missed %d; want 1 and at least 300", res.Unfinished, res.Missed)
	}
	// Unpaced runs miss nothing, and neither does a paced run whose
	// workers keep up (here, every request is sent).
	url := httpServer(t, hello)
	res = run(t, Config{Mode: HTTP1, Target: url, Concurrency: 2, Rate: 200, Requests: 10})
	if res.Missed != 0 || res.Requests != 10 {
		t.Errorf("requests %d, missed %d; want 10 and 0", res.Requests, res.Missed)
	}
}

// h2SilentServer speaks enough HTTP/2 for requests to be sent, and never
// answers them.
func h2SilentServer(c net.Conn) {
	pre := make([]byte, 24)
	if _, err := io.ReadFull(c, pre); err != nil {
		return
	}
	c.Write([]byte{0, 0, 0, 4, 0, 0, 0, 0, 0}) // empty SETTINGS
	c.Write([]byte{0, 0, 0, 4, 1, 0, 0, 0, 0}) // and the ACK of the client's
	io.Copy(io.Discard, c)
}

// TestElapsedStuck: a request that never finishes is interrupted at the
// end of the drain and counted as unfinished; it must not stretch the
// run's elapsed time, and so understate its rates, to the drain's end.
func TestElapsedStuck(t *testing.T) {
	var n atomic.Int64
	addr := rawServer(t, func(c net.Conn) {
		if n.Add(1) == 1 {
			io.Copy(io.Discard, c) // never answers
			return
		}
		br := bufio.NewReader(c)
		for {
			for {
				l, err := br.ReadString('\n')
				if err != nil {
					return
				}
				if l == "\r\n" {
					break
				}
			}
			if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"); err != nil {
				return
			}
		}
	})
	engines(t, func(t *testing.T) {
		n.Store(0)
		const d, drain = 500 * time.Millisecond, 2 * time.Second
		res := run(t, Config{Mode: HTTP1KeepAlive, Target: addr, Concurrency: 2, Duration: d, Drain: drain})
		if res.Unfinished != 1 || res.Requests == 0 {
			t.Fatalf("requests %d, unfinished %d; want some and 1", res.Requests, res.Unfinished)
		}
		if res.Elapsed < d || res.Elapsed > d+drain/2 {
			t.Errorf("elapsed %v; want from %v to well before the end of the drain", res.Elapsed, d)
		}
	})
}
