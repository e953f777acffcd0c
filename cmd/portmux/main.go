// Command portmux puts several protocols on one TCP port.
//
// Run without flags, it serves its embedded default configuration, which
// shows the idea on this machine:
//
//   - on 127.0.0.1:8080, a small page over HTTP/1.1 and over h2c (HTTP/2
//     with prior knowledge), and a WebSocket echo at /echo that the page
//     uses, all on the one port;
//   - on 127.0.0.1:8081, an upgrade-only port (websocket): a plain HTTP
//     request gets 426 Upgrade Required naming websocket, and a WebSocket
//     handshake reaches the same echo.
//
// SIGINT or SIGTERM stops accepting and lets established connections
// finish for up to -grace before closing them.
//
// "portmux bench [flags] TARGET" is a load generator instead: it drives
// TARGET over HTTP/1.1, h2c, WebSocket or raw TCP, or checks its 426
// answers, and reports throughput, latency percentiles and errors by kind;
// "portmux bench -h" lists its flags.
//
// The YAML configuration of backends, PROXY protocol, metrics and reload
// described in the project's issues are not built yet; see README.md.
package main

import (
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/portmux/portmux/mux"
)

var version = "devel"

//go:embed page.html
var page []byte

type config struct {
	addr, upgradeAddr string
	grace             time.Duration
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "bench" {
		os.Exit(runBench(os.Args[2:]))
	}
	var cfg config
	flag.StringVar(&cfg.addr, "addr", "127.0.0.1:8080", "address of the multiplexed port (HTTP/1.1, h2c, WebSocket)")
	flag.StringVar(&cfg.upgradeAddr, "upgrade-addr", "127.0.0.1:8081", "address of the upgrade-only port (websocket)")
	flag.DurationVar(&cfg.grace, "grace", 10*time.Second, "how long established connections may finish after SIGINT or SIGTERM")
	showVersion := flag.Bool("version", false, "print the version and exit")
	flag.Parse()
	if *showVersion {
		fmt.Println("portmux", version)
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, os.Stdout, nil); err != nil {
		fmt.Fprintln(os.Stderr, "portmux:", err)
		os.Exit(1)
	}
}

// run serves the embedded default configuration until ctx ends, then shuts
// down within cfg.grace. If ready is not nil, it receives the two bound
// addresses once both ports listen.
func run(ctx context.Context, cfg config, out io.Writer, ready chan<- [2]string) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return err
	}
	uln, err := net.Listen("tcp", cfg.upgradeAddr)
	if err != nil {
		ln.Close()
		return err
	}

	// Port 1: h2c, WebSocket at /echo, and HTTP/1.1, one handler for both HTTP versions.
	m := mux.New(ln)
	m.Logger = log
	h2 := m.Listen("h2c", mux.HTTP2())
	echo := newEchoServer()
	m.HandleFunc("websocket", mux.And(mux.WebSocket(), mux.PathPrefix("/echo")), echo.serve)
	h1 := m.Listen("http1", mux.HTTP1())

	// Port 2: upgrade-only.
	u := mux.New(uln)
	u.Logger = log
	u.UpgradeOnly = []string{"websocket"}
	u.HandleFunc("websocket", mux.WebSocket(), echo.serve)

	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	srv2 := &http.Server{Handler: site(), Protocols: &p, ReadHeaderTimeout: 10 * time.Second}
	srv1 := &http.Server{Handler: site(), ReadHeaderTimeout: 10 * time.Second}

	var wg sync.WaitGroup
	serve := func(f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, mux.ErrMuxClosed) && !errors.Is(err, net.ErrClosed) {
				log.Error("serve", "err", err)
			}
		}()
	}
	serve(func() error { return srv2.Serve(h2) })
	serve(func() error { return srv1.Serve(h1) })
	serve(m.Serve)
	serve(u.Serve)

	a, b := ln.Addr().String(), uln.Addr().String()
	fmt.Fprintf(out, `portmux %s: embedded default configuration
  http://%[2]s/       a page over HTTP/1.1 and h2c; WebSocket echo at ws://%[2]s/echo
  http://%[3]s/       upgrade-only (websocket): plain HTTP gets 426 Upgrade Required
try:
  curl -i http://%[2]s/
  curl --http2-prior-knowledge http://%[2]s/
  curl -i http://%[3]s/
  open http://%[2]s/ in a browser: the page echoes a message over the WebSocket
`, version, a, b)
	if ready != nil {
		ready <- [2]string{a, b}
	}

	<-ctx.Done()
	fmt.Fprintln(out, "portmux: shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), cfg.grace)
	defer cancel()
	echo.goAway() // WebSocket clients would otherwise hold the drain for the whole grace
	// The four drains run at once, each with the whole grace period.
	var drainErr error
	var mu sync.Mutex
	var drains sync.WaitGroup
	for _, f := range []func(context.Context) error{m.Shutdown, u.Shutdown, srv1.Shutdown, srv2.Shutdown} {
		drains.Go(func() {
			if e := f(sctx); e != nil {
				mu.Lock()
				drainErr = fmt.Errorf("connections still open after the %v grace period were closed", cfg.grace)
				mu.Unlock()
			}
		})
	}
	drains.Wait()
	m.Close()
	u.Close()
	srv1.Close()
	srv2.Close()
	wg.Wait()
	return drainErr
}

// site serves the page and a plain-text answer that names the protocol.
func site() http.Handler {
	mx := http.NewServeMux()
	mx.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Accept") != "" && !acceptsHTML(r) {
			fmt.Fprintf(w, "hello from portmux over %s\n", r.Proto)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("X-Protocol", r.Proto)
		w.Write(page)
	})
	mx.HandleFunc("GET /proto", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s\n", r.Proto)
	})
	return mx
}

func acceptsHTML(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept") {
		if strings.Contains(v, "text/html") {
			return true
		}
	}
	return false
}
