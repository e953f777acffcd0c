package bench

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/portmux/portmux/mux"
	"github.com/soheilhy/cmux"
)

// loopbackImpls: http.Server on the TCP listener itself, behind portmux,
// and behind cmux, each mux with three routes (h2, WebSocket, HTTP/1).
var loopbackImpls = []string{"bare", "portmux", "cmux"}

// loopbackClients is the number of client goroutines dialling at once.
const loopbackClients = 8

const loopbackRequest = "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"

// startLoopback serves an http.Server whose handler writes "ok" on
// 127.0.0.1:0 through impl. stop closes everything and waits for the
// goroutines it started.
func startLoopback(impl string) (addr string, stop func() error, err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			io.WriteString(w, "ok")
		}),
		ReadHeaderTimeout: sniffTimeout,
	}
	var wg sync.WaitGroup
	var srvErr, muxErr error
	serveHTTP := func(l net.Listener) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			srvErr = srv.Serve(l)
		}()
	}
	var closeMux func()
	switch impl {
	case "bare":
		serveHTTP(ln)
		closeMux = func() {}
	case "portmux":
		m := new(mux.Mux)
		m.SniffTimeout = sniffTimeout
		m.Listen("h2", mux.HTTP2())
		m.Listen("websocket", mux.WebSocket())
		serveHTTP(m.Listen("http1", mux.HTTP1()))
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := m.Serve(ln); !errors.Is(err, mux.ErrClosed) {
				muxErr = fmt.Errorf("portmux Serve returned %v; want ErrClosed", err)
			}
		}()
		closeMux = func() { m.Close() }
	case "cmux":
		m := cmux.New(ln)
		m.SetReadTimeout(sniffTimeout)
		m.Match(cmux.HTTP2())
		m.Match(cmux.HTTP1HeaderField("Upgrade", "websocket"))
		serveHTTP(m.Match(cmux.HTTP1Fast()))
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.Serve()
		}()
		// cmux's Close does not stop Serve; closing the root listener does.
		closeMux = func() { m.Close(); ln.Close() }
	default:
		ln.Close()
		return "", nil, fmt.Errorf("unknown impl %q", impl)
	}
	stop = func() error {
		srv.Close()
		closeMux()
		wg.Wait()
		if !errors.Is(srvErr, http.ErrServerClosed) {
			return fmt.Errorf("http.Server.Serve returned %v; want ErrServerClosed", srvErr)
		}
		return muxErr
	}
	return ln.Addr().String(), stop, nil
}

// getOnce makes one connection, sends one request with Connection: close
// and reads the response to EOF.
func getOnce(addr string, buf []byte) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(connWait))
	if _, err := io.WriteString(c, loopbackRequest); err != nil {
		return err
	}
	n := 0
	for {
		m, err := c.Read(buf[n:])
		n += m
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if n == len(buf) {
			return errors.New("response too long")
		}
	}
	if r := buf[:n]; !bytes.HasPrefix(r, []byte("HTTP/1.1 200 ")) || !bytes.HasSuffix(r, []byte("\r\n\r\nok")) {
		return fmt.Errorf("response %q; want 200 with body ok", r)
	}
	return nil
}

// cpuTime is the user plus system CPU time of the whole process: client
// and server share it.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func BenchmarkLoopback(b *testing.B) {
	for _, impl := range loopbackImpls {
		b.Run("impl="+impl, func(b *testing.B) {
			addr, stop, err := startLoopback(impl)
			if err != nil {
				b.Fatal(err)
			}
			defer func() {
				if err := stop(); err != nil {
					b.Error(err)
				}
			}()
			var next atomic.Int64
			var failed atomic.Pointer[error]
			var wg sync.WaitGroup
			b.ReportAllocs()
			b.ResetTimer()
			cpu0, t0 := cpuTime(), time.Now()
			for range loopbackClients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					buf := make([]byte, 4096)
					for next.Add(1) <= int64(b.N) {
						if err := getOnce(addr, buf); err != nil {
							failed.CompareAndSwap(nil, &err)
							return
						}
					}
				}()
			}
			wg.Wait()
			elapsed, cpu := time.Since(t0), cpuTime()-cpu0
			b.StopTimer()
			if err := failed.Load(); err != nil {
				b.Fatal(*err)
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "conns/s")
			// Client and server share the process: this is both sides.
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "proc-cpu-us/conn")
		})
	}
}

// TestLoopback serves a few connections through each variant.
func TestLoopback(t *testing.T) {
	for _, impl := range loopbackImpls {
		t.Run("impl="+impl, func(t *testing.T) {
			addr, stop, err := startLoopback(impl)
			if err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 4096)
			for range 3 {
				if err := getOnce(addr, buf); err != nil {
					t.Error(err)
				}
			}
			if err := stop(); err != nil {
				t.Error(err)
			}
		})
	}
}
