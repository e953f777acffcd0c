// Package bench holds comparative benchmarks for portmux: the sniffing
// step alone (portmux's one parse against cmux v0.1.5's matchers), the
// whole per-connection path from accept to the consumer's first read on
// net.Pipe (no mux, portmux, cmux), the loopback TCP connection rate
// of an http.Server behind each, and h2c requests per second (h2load, 4
// connections x 10 streams) through each to the same h2c http.Server.
//
// The benchmarks live in the test files; this file exists so that the
// package builds and vets on its own. Run them with run.sh, which
// interleaves the variants, repeats them and summarises with benchstat:
//
//	bench/run.sh
//
// The shell scripts beside it drive whole processes: embedded.sh (an
// http.Server bare, behind portmux and behind cmux), daemon.sh (the
// portmux daemon against HAProxy and sslh), loadtool.sh (the load tool,
// bench/cmd/loadgen, against wrk and h2load on bareserver, a bare
// net/http server), and all.sh, which runs every part; README.md here
// says how, and what each measures.
//
// Sub-benchmarks name their variant with an impl=... key (impl=portmux,
// impl=cmux, impl=bare, impl=nomux), so `benchstat -col /impl` puts the
// variants side by side. cmux is imported here, as the baseline, and by
// mux/cmuxcompat, the adapter for code that stays on cmux; the packages
// that serve (mux, sniff, h2c, wsbridge) never import it.
package bench
