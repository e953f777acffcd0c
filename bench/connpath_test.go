package bench

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/portmux/portmux/internal/testtool"
	"github.com/portmux/portmux/mux"
	"github.com/soheilhy/cmux"
)

// The routes of BenchmarkConnPath, in the order they are added.
type routeKind int

const (
	routeH2 routeKind = iota
	routeWS
	routeH1
)

var routeNames = [...]string{"h2", "websocket", "http1"}

// routeSets are the two configurations: with and without a WebSocket route.
var routeSets = []struct {
	name   string
	routes []routeKind
}{
	{"3", []routeKind{routeH2, routeWS, routeH1}},
	{"2", []routeKind{routeH2, routeH1}},
}

var connPathInputs = []capture{inCurlGet, inWebSocket, inH2}

// connPathImpls are the variants: no mux at all, portmux, and cmux with
// HTTP1Fast (the usual README setup) or HTTP1 (a request-line parse) as
// the HTTP/1 route.
var connPathImpls = []string{"nomux", "portmux", "cmux", "cmux-http1"}

// sniffTimeout is the read timeout both muxes get (portmux's default).
const sniffTimeout = 3 * time.Second

// wantRoute is the route that should take in.
func wantRoute(in capture, routes []routeKind) routeKind {
	switch in {
	case inH2:
		return routeH2
	case inWebSocket:
		for _, r := range routes {
			if r == routeWS {
				return routeWS
			}
		}
	}
	return routeH1
}

// delivery is what a consumer reports about one connection.
type delivery struct {
	route routeKind // -1 without a mux
	err   error
}

// connRig is one running configuration: a pipe listener, the mux over it
// (if any) and one consumer goroutine per route, each of which accepts,
// reads the whole capture and reports on got.
type connRig struct {
	ln   *testtool.PipeListener
	got  chan delivery
	quit chan struct{} // closed by stop: consumers stop reporting
	// watchdog bounds the wait for a delivery; it is reset, not remade,
	// per connection so that it adds no allocation.
	watchdog *time.Timer
	// bounded sets a write deadline on each client conn (tests only: a
	// pipe deadline allocates).
	bounded bool
	stop    func() error // closes everything and waits for every goroutine
}

func startConnRig(impl string, routes []routeKind, want []byte) (*connRig, error) {
	rig := &connRig{ln: testtool.NewPipeListener(), got: make(chan delivery, 1), quit: make(chan struct{})}
	rig.watchdog = time.NewTimer(connWait)
	rig.watchdog.Stop()
	var wg sync.WaitGroup
	consume := func(l net.Listener, route routeKind) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, len(want))
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				_, err = io.ReadFull(c, buf)
				if err == nil && !bytes.Equal(buf, want) {
					err = fmt.Errorf("route %d read %q; want %q", route, buf, want)
				}
				c.Close()
				select {
				case rig.got <- delivery{route, err}:
				case <-rig.quit:
					return
				}
			}
		}()
	}

	switch impl {
	case "nomux":
		consume(rig.ln, -1)
		rig.stop = func() error {
			close(rig.quit)
			rig.ln.Close()
			wg.Wait()
			return nil
		}

	case "portmux":
		m := new(mux.Mux)
		m.SniffTimeout = sniffTimeout
		for _, r := range routes {
			var match mux.Matcher
			switch r {
			case routeH2:
				match = mux.HTTP2()
			case routeWS:
				match = mux.WebSocket()
			case routeH1:
				match = mux.HTTP1()
			}
			consume(m.Listen(routeNames[r], match), r)
		}
		served := make(chan error, 1)
		go func() { served <- m.Serve(rig.ln) }()
		rig.stop = func() error {
			close(rig.quit)
			m.Close()
			err := <-served
			wg.Wait()
			if !errors.Is(err, mux.ErrClosed) {
				return fmt.Errorf("portmux Serve returned %v; want ErrClosed", err)
			}
			return nil
		}

	case "cmux", "cmux-http1":
		m := cmux.New(rig.ln)
		m.SetReadTimeout(sniffTimeout) // none by default
		for _, r := range routes {
			var match cmux.Matcher
			switch {
			case r == routeH2:
				match = cmux.HTTP2()
			case r == routeWS:
				match = cmux.HTTP1HeaderField("Upgrade", "websocket")
			case impl == "cmux":
				match = cmux.HTTP1Fast()
			default:
				match = cmux.HTTP1()
			}
			consume(m.Match(match), r)
		}
		served := make(chan error, 1)
		go func() { served <- m.Serve() }()
		rig.stop = func() error {
			// cmux's Close does not stop Serve, which waits in Accept:
			// closing the root listener does.
			close(rig.quit)
			m.Close()
			rig.ln.Close()
			<-served
			wg.Wait()
			return nil
		}

	default:
		return nil, fmt.Errorf("unknown impl %q", impl)
	}
	return rig, nil
}

// one makes a connection, writes capture and waits until a consumer has
// read it all, returning that consumer's report.
func (rig *connRig) one(capture []byte) delivery {
	c, err := rig.ln.Dial()
	if err != nil {
		return delivery{-1, err}
	}
	if rig.bounded {
		c.SetWriteDeadline(time.Now().Add(connWait))
	}
	// net.Pipe is synchronous: the Write returns once every byte is read.
	if _, err := c.Write(capture); err != nil {
		c.Close()
		return delivery{-1, err}
	}
	rig.watchdog.Reset(connWait)
	var d delivery
	select {
	case d = <-rig.got:
	case <-rig.watchdog.C:
		d = delivery{-1, errors.New("no route delivered the connection in time")}
	}
	rig.watchdog.Stop()
	c.Close()
	return d
}

// connWait bounds one connection's wait for its consumer.
const connWait = 2 * sniffTimeout

func BenchmarkConnPath(b *testing.B) {
	for _, rs := range routeSets {
		for _, in := range connPathInputs {
			buf := readCapture(b, in)
			want := wantRoute(in, rs.routes)
			for _, impl := range connPathImpls {
				name := fmt.Sprintf("routes=%s/in=%s/impl=%s", rs.name, in.name, impl)
				b.Run(name, func(b *testing.B) {
					rig, err := startConnRig(impl, rs.routes, buf)
					if err != nil {
						b.Fatal(err)
					}
					defer func() {
						if err := rig.stop(); err != nil {
							b.Error(err)
						}
					}()
					b.ReportAllocs()
					b.SetBytes(int64(len(buf)))
					b.ResetTimer()
					for range b.N {
						d := rig.one(buf)
						if d.err != nil {
							b.Fatal(d.err)
						}
						if d.route >= 0 && d.route != want {
							b.Fatalf("routed to %s; want %s", routeNames[d.route], routeNames[want])
						}
					}
					b.StopTimer()
				})
			}
		}
	}
}

// TestConnPath runs every BenchmarkConnPath configuration for a few
// connections and checks the route taken and the bytes replayed.
func TestConnPath(t *testing.T) {
	for _, rs := range routeSets {
		for _, in := range connPathInputs {
			buf := readCapture(t, in)
			want := wantRoute(in, rs.routes)
			for _, impl := range connPathImpls {
				name := fmt.Sprintf("routes=%s/in=%s/impl=%s", rs.name, in.name, impl)
				t.Run(name, func(t *testing.T) {
					rig, err := startConnRig(impl, rs.routes, buf)
					if err != nil {
						t.Fatal(err)
					}
					rig.bounded = true
					for range 3 {
						d := rig.one(buf)
						if d.err != nil {
							t.Error(d.err)
						} else if d.route >= 0 && d.route != want {
							t.Errorf("routed to %s; want %s", routeNames[d.route], routeNames[want])
						}
					}
					if err := rig.stop(); err != nil {
						t.Error(err)
					}
				})
			}
		}
	}
}
