// Command loadgen drives load at a server and reports its throughput,
// latency percentiles, connect times, errors by kind and bytes each way:
// HTTP/1.1 with a connection per request or kept alive, h2c, WebSocket
// echoes, raw TCP streams through an echo server, and the 426 answers of
// an upgrade-only port. It measures portmux (bench/*.sh drive it) and any
// other server; its engine, with the meaning of every figure and JSON
// field, is package bench/loadgen.
//
//	go run ./bench/cmd/loadgen -mode h2c -c 4 -streams 25 http://127.0.0.1:8080/
//
// "loadgen -h" lists the modes and flags.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/portmux/portmux/bench/loadgen"
)

const benchUsage = `usage: loadgen [flags] TARGET

Drives TARGET with requests and reports throughput, latency percentiles,
errors by kind and bytes each way. TARGET is a URL (http://host:port/path,
ws://host:port/path, tcp://host:port) or host:port. Flags may come before
or after TARGET.

Modes (-mode):
  http1            a new connection per request, Connection: close
  http1-keepalive  requests one after another on each worker's connection
  h2c              HTTP/2 with prior knowledge: -c connections x -streams
  ws               WebSocket handshake, then -size byte messages echoed back
  tcp              stream -size bytes out and read them back from an echo
                   server, checking every byte: -size 2147483648 -n 1 is
                   one 2 GiB stream each way, in constant memory
  426              plain HTTP/1.1 GET; expects 426 Upgrade Required whose
                   Upgrade names -upgrade and whose Connection holds
                   upgrade and close

The run ends after -d or -n requests (attempts, failed ones included),
whichever comes first; with -n alone only the count ends it, with neither
it lasts 10s. After -d no request starts, and those in flight are waited
for up to -drain; the rest are reported as unfinished. With -rate, latency
counts from when each request was due, and requests that fell due while
every worker was busy and were never sent are reported as missed.
Exit status: 0, or 1 if no request succeeded (all failed, or none finished), 2
for bad usage.

Flags:
`

// benchMain runs loadgen with args (without the program name) and
// returns the exit status: 0 done, 1 the run's requests all failed or an
// output could not be written, 2 bad usage.
func benchMain(ctx context.Context, args []string, stdout, stderr io.Writer, isTTY bool) int {
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, benchUsage)
		fs.PrintDefaults()
	}
	var (
		cfg      loadgen.Config
		mode     = fs.String("mode", string(loadgen.HTTP1), "what one request is: http1, http1-keepalive, h2c, ws, tcp or 426")
		upgrade  = fs.String("upgrade", "websocket", "426 mode: comma-separated protocols the 426's Upgrade header must name")
		jsonOut  = fs.Bool("json", false, "print the result as JSON (field names documented in package bench/loadgen) instead of text")
		svgFile  = fs.String("svg", "", "also write the latency histogram as an SVG image to this `file`")
		progress = fs.Bool("progress", isTTY, "print a progress line once a second on standard error (default: when it is a terminal)")
	)
	fs.IntVar(&cfg.Concurrency, "c", loadgen.DefaultConcurrency, "concurrency: requests in flight, each on a connection of its own (h2c: connections, each with -streams)")
	fs.IntVar(&cfg.Streams, "streams", loadgen.DefaultStreams, "h2c: requests in flight on each connection")
	fs.DurationVar(&cfg.Duration, "d", 0, "duration of the run (default 10s unless -n is given)")
	fs.DurationVar(&cfg.Drain, "drain", loadgen.DefaultDrain, "after -d, how long to wait for the requests in flight before counting them as unfinished (not with -n alone, where every request runs to its end or -timeout)")
	fs.Int64Var(&cfg.Requests, "n", 0, "stop after this many requests, successful or not (0: no limit)")
	fs.Float64Var(&cfg.Rate, "rate", 0, "requests per second over all workers, at most 1e9 (0: as fast as they go)")
	fs.IntVar(&cfg.Size, "size", 0, "bytes: POST body for HTTP modes (0: GET), ws message (default 16), up to 64 MiB; tcp: bytes streamed each way per request (default 65536, up to 1 TiB)")
	fs.StringVar(&cfg.Host, "host", "", "Host header to send (default: TARGET's host)")
	fs.DurationVar(&cfg.DialTimeout, "dial-timeout", loadgen.DefaultDialTimeout, "bound on each connect (ws: and its handshake; h2c: and the server's SETTINGS)")
	fs.DurationVar(&cfg.Timeout, "timeout", loadgen.DefaultTimeout, "bound on each request once connected")

	// Flags may follow the target: parse, take a positional, parse the rest.
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			return 2
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	usage := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "loadgen: "+format+"\n", a...)
		fmt.Fprintln(stderr, "run 'loadgen -h' for usage")
		return 2
	}
	switch {
	case len(pos) == 0:
		return usage("no TARGET given")
	case len(pos) > 1:
		return usage("one TARGET, got %d: %q", len(pos), pos)
	}
	cfg.Target = pos[0]
	cfg.Mode = loadgen.Mode(*mode)
	known := false
	var names []string
	for _, m := range loadgen.Modes {
		known = known || m == cfg.Mode
		names = append(names, string(m))
	}
	switch {
	case !known:
		return usage("-mode %q: want one of %s", *mode, strings.Join(names, ", "))
	case cfg.Concurrency < 1:
		return usage("-c %d: want at least 1", cfg.Concurrency)
	case cfg.Streams < 1:
		return usage("-streams %d: want at least 1", cfg.Streams)
	case set["streams"] && cfg.Mode != loadgen.H2C:
		return usage("-streams applies to -mode h2c only")
	case set["d"] && cfg.Duration <= 0:
		return usage("-d %v: want a positive duration", cfg.Duration)
	case cfg.Requests < 0:
		return usage("-n %d: want 0 or more", cfg.Requests)
	case cfg.Rate < 0 || math.IsNaN(cfg.Rate) || cfg.Rate > loadgen.MaxRate:
		return usage("-rate %g: want 0 to %g", cfg.Rate, float64(loadgen.MaxRate))
	case cfg.Size < 0 || cfg.Mode != loadgen.TCP && cfg.Size > loadgen.MaxSize:
		return usage("-size %d: want 0 to %d", cfg.Size, loadgen.MaxSize)
	case int64(cfg.Size) > loadgen.MaxTCPSize:
		return usage("-size %d: want 0 to %d (1 TiB)", cfg.Size, int64(loadgen.MaxTCPSize))
	case set["size"] && cfg.Size > 0 && cfg.Mode == loadgen.Upgrade426:
		return usage("-size does not apply to -mode 426, which sends a GET")
	case cfg.DialTimeout <= 0:
		return usage("-dial-timeout %v: want a positive duration", cfg.DialTimeout)
	case cfg.Drain <= 0:
		return usage("-drain %v: want a positive duration", cfg.Drain)
	case set["drain"] && !set["d"] && cfg.Requests > 0:
		// A run that only -n ends has no end to drain after: each
		// request runs to its end or -timeout.
		return usage("-drain applies only with -d, and -n alone ends this run")
	case cfg.Timeout <= 0:
		return usage("-timeout %v: want a positive duration", cfg.Timeout)
	case set["upgrade"] && cfg.Mode != loadgen.Upgrade426:
		return usage("-upgrade applies to -mode 426 only")
	}
	for _, t := range strings.Split(*upgrade, ",") {
		if t = strings.TrimSpace(t); t == "" || strings.ContainsAny(t, " \t") {
			return usage("-upgrade %q: want comma-separated tokens", *upgrade)
		}
		cfg.UpgradeTokens = append(cfg.UpgradeTokens, t)
	}
	if *progress {
		// One line, rewritten in place (\r, then erase to its end).
		var last loadgen.Progress
		cfg.Progress = func(p loadgen.Progress) {
			rate := float64(p.Requests-last.Requests) / (p.Elapsed - last.Elapsed).Seconds()
			fmt.Fprintf(stderr, "\r%5.0fs  %d ok  %d errors  %d connections  %.0f requests/s in the last second\x1b[K",
				p.Elapsed.Seconds(), p.Requests, p.Errors, p.Connections, rate)
			last = p
		}
	}

	res, err := loadgen.Run(ctx, cfg)
	if *progress {
		fmt.Fprint(stderr, "\r\x1b[K")
	}
	if err != nil {
		if errors.Is(err, loadgen.ErrBadTarget) {
			return usage("TARGET %q: %v", cfg.Target, strings.TrimPrefix(err.Error(), "loadgen: "))
		}
		return usage("%v", err)
	}
	status := 0
	if *jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(res)
	} else {
		err = res.WriteText(stdout)
	}
	if err != nil {
		fmt.Fprintln(stderr, "loadgen:", err)
		status = 1
	}
	if *svgFile != "" {
		if err := writeSVG(*svgFile, res); err != nil {
			fmt.Fprintln(stderr, "loadgen: -svg:", err)
			status = 1
		}
	}
	if res.Requests == 0 {
		// Every request failed, or none finished (a target that never
		// answers): not a measurement.
		status = 1
	}
	return status
}

func writeSVG(name string, res *loadgen.Result) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	if err := loadgen.WriteSVG(f, res); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func main() {
	os.Exit(run(os.Args[1:]))
}

// run stops the run early on SIGINT or SIGTERM (and still reports), and
// shows progress on a terminal.
func run(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	context.AfterFunc(ctx, stop) // a second SIGINT or SIGTERM ends the process at once
	return benchMain(ctx, args, os.Stdout, os.Stderr, isTerminal(os.Stderr))
}

// isTerminal reports whether f is a character device, as terminals are.
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
