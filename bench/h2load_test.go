package bench

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"sync"
	"testing"

	"github.com/soheilhy/cmux"

	"github.com/portmux/portmux/h2c"
	"github.com/portmux/portmux/internal/testtool"
	"github.com/portmux/portmux/mux"
)

// h2loadImpls: an h2c http.Server on the TCP listener itself, behind
// portmux (serving it with package h2c) and behind cmux, each mux with
// three routes (h2, WebSocket, HTTP/1).
var h2loadImpls = []string{"bare", "portmux", "cmux"}

// startH2C serves "ok" over HTTP/1.1 and prior-knowledge h2c on
// 127.0.0.1:0 through impl.
func startH2C(impl string) (addr string, stop func() error, err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	srv := &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }),
		ReadHeaderTimeout: sniffTimeout,
		Protocols:         p,
	}
	var wg sync.WaitGroup
	closeMux := func() {}
	switch impl {
	case "bare":
		wg.Go(func() { srv.Serve(ln) })
	case "portmux":
		m := new(mux.Mux)
		m.SniffTimeout = sniffTimeout
		hs := &h2c.Server{HTTP: srv}
		h2 := m.Listen("h2", mux.HTTP2())
		m.Listen("websocket", mux.WebSocket())
		h1 := m.Listen("http1", mux.HTTP1())
		wg.Go(func() { hs.Serve(h2) })
		wg.Go(func() { hs.Serve(h1) })
		wg.Go(func() { m.Serve(ln) })
		closeMux = func() { m.Close() }
	case "cmux":
		m := cmux.New(ln)
		m.SetReadTimeout(sniffTimeout)
		h2 := m.Match(cmux.HTTP2())
		m.Match(cmux.HTTP1HeaderField("Upgrade", "websocket"))
		h1 := m.Match(cmux.HTTP1Fast())
		wg.Go(func() { srv.Serve(h2) })
		wg.Go(func() { srv.Serve(h1) })
		wg.Go(func() { m.Serve() })
		closeMux = func() { m.Close(); ln.Close() }
	default:
		ln.Close()
		return "", nil, fmt.Errorf("unknown impl %q", impl)
	}
	return ln.Addr().String(), func() error {
		err := srv.Close()
		closeMux()
		wg.Wait()
		if errors.Is(err, net.ErrClosed) {
			// cmux's route listeners share the root's Close.
			err = nil
		}
		return err
	}, nil
}

var (
	h2loadRate = regexp.MustCompile(`finished in [^,]+, ([0-9.]+) req/s`)
	h2loadDone = regexp.MustCompile(`requests: (\d+) total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, (\d+) errored`)
)

// runH2load sends n requests over 4 connections with 10 streams each and
// returns h2load's rate.
func runH2load(bin, addr string, n int) (reqPerSec float64, err error) {
	out, err := exec.Command(bin, "-n", strconv.Itoa(n), "-c", "4", "-m", "10", "-T", "10", "http://"+addr+"/").CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("h2load: %v\n%s", err, out)
	}
	d := h2loadDone.FindSubmatch(out)
	r := h2loadRate.FindSubmatch(out)
	if d == nil || r == nil {
		return 0, fmt.Errorf("h2load output not understood:\n%s", out)
	}
	if string(d[2]) != strconv.Itoa(n) {
		return 0, fmt.Errorf("h2load: %s of %d succeeded (%s failed, %s errored)", d[2], n, d[3], d[4])
	}
	return strconv.ParseFloat(string(r[1]), 64)
}

// BenchmarkH2load: h2load (a separate process, so this process's CPU is
// the server's alone) sends b.N requests, 4 connections x 10 streams.
func BenchmarkH2load(b *testing.B) {
	bin := testtool.Need(b, "h2load")
	for _, impl := range h2loadImpls {
		b.Run("impl="+impl, func(b *testing.B) {
			addr, stop, err := startH2C(impl)
			if err != nil {
				b.Fatal(err)
			}
			defer func() {
				if err := stop(); err != nil && !errors.Is(err, http.ErrServerClosed) {
					b.Error(err)
				}
			}()
			b.ResetTimer()
			cpu0 := cpuTime()
			rate, err := runH2load(bin, addr, max(b.N, 100))
			cpu := cpuTime() - cpu0
			b.StopTimer()
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(rate, "req/s")
			b.ReportMetric(float64(cpu.Nanoseconds())/1e3/float64(max(b.N, 100)), "server-cpu-us/req")
		})
	}
}

// TestH2load runs a short h2load through each variant.
func TestH2load(t *testing.T) {
	bin := testtool.Need(t, "h2load")
	for _, impl := range h2loadImpls {
		t.Run("impl="+impl, func(t *testing.T) {
			addr, stop, err := startH2C(impl)
			if err != nil {
				t.Fatal(err)
			}
			defer stop()
			if _, err := runH2load(bin, addr, 200); err != nil {
				t.Error(err)
			}
		})
	}
}
