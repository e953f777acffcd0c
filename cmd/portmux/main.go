// Command portmux puts several protocols on one TCP port.
//
// Run without flags, it serves its embedded default configuration
// (default.yaml), which shows the idea on this machine:
//
//   - on 127.0.0.1:8080, a small page over HTTP/1.1 and over h2c (HTTP/2
//     with prior knowledge), and a WebSocket echo at /echo that the page
//     uses, all on the one port;
//   - on 127.0.0.1:8081, an upgrade-only port (websocket): a plain HTTP
//     request gets 426 Upgrade Required naming websocket, and a WebSocket
//     handshake reaches the same echo.
//
// With -config FILE it serves a YAML configuration of listeners and
// routes to backends (docs/configuration.md): proxied (bulk spliced
// between TCP sockets, with PROXY v1/v2 out if asked), WebSocket bridged
// to TCP, or served by the built-in page and echo. -check validates a
// configuration and exits. Metrics are served in Prometheus text format
// if configured.
//
// SIGINT or SIGTERM stops accepting and lets established connections
// finish for up to the grace period (-grace, or grace: in the file) before
// closing them. SIGHUP reloads the file: routes and listener settings
// change at once for new connections, sockets that stay in the
// configuration stay open, and established connections are not touched.
//
// The engine is package internal/daemon; this file is flags, signals and
// wiring.
package main

import (
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/portmux/portmux/internal/daemon"
)

var version = "devel"

//go:embed default.yaml
var defaultConfig []byte

// options are the command line's.
type options struct {
	configPath        string // empty: the embedded default
	addr, upgradeAddr string // the default configuration's two ports
	grace             time.Duration
}

func main() {
	var o options
	flag.StringVar(&o.configPath, "config", "", "YAML configuration `file` (default: the embedded demo configuration)")
	flag.StringVar(&o.addr, "addr", "", "with the default configuration: address of the multiplexed port (default 127.0.0.1:8080)")
	flag.StringVar(&o.upgradeAddr, "upgrade-addr", "", "with the default configuration: address of the upgrade-only port (default 127.0.0.1:8081)")
	flag.DurationVar(&o.grace, "grace", 0, "how long established connections may finish after SIGINT or SIGTERM (default: the file's grace, else 10s)")
	check := flag.Bool("check", false, "validate the configuration and exit")
	showVersion := flag.Bool("version", false, "print the version and exit")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: portmux [flags]   serve the embedded demo, or -config FILE\n\nflags:\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "portmux: unexpected argument %q (the load tool is go run ./bench/cmd/loadgen)\n", flag.Arg(0))
		flag.Usage()
		os.Exit(2)
	}
	// SIGHUP from the first moment: its default action would kill us
	// (systemctl reload can come early).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	if *showVersion {
		fmt.Println("portmux", version)
		return
	}
	cfg, err := loadConfig(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "portmux:", err)
		os.Exit(1)
	}
	if *check {
		routes := 0
		for _, l := range cfg.Listeners {
			routes += len(l.Routes)
		}
		fmt.Printf("portmux: configuration OK: %s, %s\n", plural(len(cfg.Listeners), "listener"), plural(routes, "route"))
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	context.AfterFunc(ctx, stop) // a second SIGINT or SIGTERM ends the process at once
	reload := make(chan struct{}, 1)
	go func() {
		for range hup {
			select {
			case reload <- struct{}{}:
			default:
			}
		}
	}()
	if err := run(ctx, o, cfg, os.Stdout, nil, reload); err != nil {
		fmt.Fprintln(os.Stderr, "portmux:", err)
		os.Exit(1)
	}
}

// loadConfig reads the -config file, or the embedded default with the
// -addr and -upgrade-addr overrides.
func loadConfig(o options) (*daemon.Config, error) {
	if o.configPath == "" {
		cfg, err := daemon.ParseConfig(defaultConfig)
		if err != nil {
			return nil, err
		}
		if o.addr != "" {
			cfg.Listeners[0].Listen, cfg.Listeners[0].Name = o.addr, ""
		}
		if o.upgradeAddr != "" {
			cfg.Listeners[1].Listen, cfg.Listeners[1].Name = o.upgradeAddr, ""
		}
		return cfg, cfg.Check()
	}
	if o.addr != "" || o.upgradeAddr != "" {
		return nil, errors.New("-addr and -upgrade-addr apply to the default configuration only; set listen: in the file")
	}
	data, err := os.ReadFile(o.configPath)
	if err != nil {
		return nil, err
	}
	cfg, err := daemon.ParseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", o.configPath, err)
	}
	return cfg, nil
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

func newLogger(lc daemon.LogConfig, w io.Writer) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(lc.Level)) // checked already; "" is info
	opts := &slog.HandlerOptions{Level: level}
	if lc.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// run serves cfg until ctx ends, then shuts down within the grace period.
// A receive on reload re-reads the configuration (the file, or the
// default). If ready is not nil, it receives the bound addresses, in
// configuration order, once every listener listens.
func run(ctx context.Context, o options, cfg *daemon.Config, out io.Writer, ready chan<- []string, reload <-chan struct{}) error {
	log := newLogger(cfg.Log, os.Stderr)
	d := daemon.New(cfg, log)
	if err := d.Start(); err != nil {
		return err
	}
	addrs := d.Addrs()
	if o.configPath == "" {
		a, b := addrs[0], addrs[1]
		fmt.Fprintf(out, `portmux %s: embedded default configuration
  http://%[2]s/       a page over HTTP/1.1 and h2c; WebSocket echo at ws://%[2]s/echo
  http://%[3]s/       upgrade-only (websocket): plain HTTP gets 426 Upgrade Required
try:
  curl -i http://%[2]s/
  curl --http2-prior-knowledge http://%[2]s/
  curl -i http://%[3]s/
  open http://%[2]s/ in a browser: the page echoes a message over the WebSocket
`, version, a, b)
	} else {
		fmt.Fprintf(out, "portmux %s: %s: listening on %s\n", version, o.configPath, strings.Join(addrs, ", "))
	}
	if ready != nil {
		ready <- addrs
	}
	for done := false; !done; {
		select {
		case <-reload:
			old := d.Config()
			if err := d.Reload(func() (*daemon.Config, error) { return loadConfig(o) }); err != nil {
				log.Error("reload failed; the running configuration stays", "err", err)
				continue
			}
			next := d.Config()
			log.Info("configuration reloaded", "listeners", len(next.Listeners))
			if next.Log != old.Log || next.Metrics != old.Metrics {
				log.Warn("log: and metrics: changed in the file; they take effect at the next start")
			}
		case <-ctx.Done():
			done = true
		}
	}
	fmt.Fprintln(out, "portmux: shutting down")
	grace := o.grace
	if grace <= 0 {
		grace = time.Duration(d.Config().Grace)
	}
	if grace <= 0 {
		grace = daemon.DefaultGrace
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	return d.Shutdown(sctx)
}
