package bench

import (
	"io"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portmux/portmux/mux"
	"github.com/soheilhy/cmux"
)

// silentConns is how many idle clients BenchmarkSilentConns holds open.
const silentConns = 2000

// countingListener counts accepted connections.
type countingListener struct {
	net.Listener
	n atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// BenchmarkSilentConns measures the memory a connection costs while it
// has sent nothing: heap plus goroutine stacks, per connection, after
// silentConns clients connected and every one was accepted. "held" only
// accepts and keeps the conns (no goroutine per conn): its figure is the
// sockets' own cost (both ends live in this process), which the
// "over-held" metric subtracts.
func BenchmarkSilentConns(b *testing.B) {
	var held float64
	for _, impl := range []string{"held", "bare", "portmux", "cmux"} {
		b.Run("impl="+impl, func(b *testing.B) {
			var perConn float64
			for b.Loop() {
				perConn = measureSilent(b, impl)
			}
			if impl == "held" {
				held = perConn
			}
			b.ReportMetric(perConn, "B/conn")
			if impl != "held" && held > 0 {
				b.ReportMetric(perConn-held, "B/conn-over-held")
			}
		})
	}
}

func memInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse + ms.StackInuse
}

func measureSilent(b *testing.B, impl string) float64 {
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ln := &countingListener{Listener: tcp}
	srv := &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }),
		ReadHeaderTimeout: time.Minute,
	}
	var wg sync.WaitGroup
	var held []net.Conn
	var heldMu sync.Mutex
	stop := func() {}
	switch impl {
	case "held":
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				heldMu.Lock()
				held = append(held, c)
				heldMu.Unlock()
			}
		}()
		stop = func() { ln.Close() }
	case "bare":
		wg.Add(1)
		go func() { defer wg.Done(); srv.Serve(ln) }()
		stop = func() { srv.Close() }
	case "portmux":
		m := new(mux.Mux)
		m.SniffTimeout = time.Minute
		m.Listen("h2", mux.HTTP2())
		m.Listen("ws", mux.WebSocket())
		h1 := m.Listen("http1", mux.HTTP1())
		wg.Add(2)
		go func() { defer wg.Done(); m.Serve(ln) }()
		go func() { defer wg.Done(); srv.Serve(h1) }()
		stop = func() { m.Close(); srv.Close() }
	case "cmux":
		m := cmux.New(ln)
		m.SetReadTimeout(time.Minute)
		m.Match(cmux.HTTP2())
		m.Match(cmux.HTTP1HeaderField("Upgrade", "websocket"))
		h1 := m.Match(cmux.HTTP1Fast())
		go m.Serve() // cmux's Serve does not return after Close
		wg.Add(1)
		go func() { defer wg.Done(); srv.Serve(h1) }()
		stop = func() { m.Close(); srv.Close() }
	}

	before := memInUse()
	clients := make([]net.Conn, 0, silentConns)
	for range silentConns {
		c, err := net.Dial("tcp", tcp.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		clients = append(clients, c)
	}
	for ln.n.Load() < silentConns {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // let every per-conn goroutine reach its read
	after := memInUse()

	for _, c := range clients {
		c.Close()
	}
	stop()
	heldMu.Lock()
	for _, c := range held {
		c.Close()
	}
	heldMu.Unlock()
	wg.Wait()
	return float64(int64(after)-int64(before)) / silentConns
}
