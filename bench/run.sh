#!/usr/bin/env bash
# run.sh runs the bench package's benchmarks ROUNDS times, interleaved so
# that the variants alternate (each round runs every variant once, in a
# fresh process), and summarises them with benchstat, the variants side by
# side (-col /impl).
#
# Output: benchstat tables on stdout and in bench/results/latest.txt, the raw
# benchmark lines in bench/results/latest-raw.txt, and a Markdown summary
# with medians and ratios in bench/results/latest.md.
#
# Knobs (environment):
#   ROUNDS      rounds, default 10
#   BENCHTIME   -benchtime of BenchmarkSniff and BenchmarkConnPath, default 200ms
#   LOOPBACK_N  connections per BenchmarkLoopback variant, default 5000
#   H2LOAD_N    h2load requests per BenchmarkH2load variant, default 50000
#   SUMMARIZE_ONLY=1  skip the runs; summarise bench/results/latest-raw.txt again
#
# Takes about 3 minutes on 2 cores with the defaults.
set -euo pipefail

ROUNDS=${ROUNDS:-10}
BENCHTIME=${BENCHTIME:-200ms}
LOOPBACK_N=${LOOPBACK_N:-5000}
H2LOAD_N=${H2LOAD_N:-50000}

cd "$(dirname "$0")/.."
out=bench/results
mkdir -p "$out"
raw=$out/latest-raw.txt

export PATH="$(go env GOPATH)/bin:$PATH"
if ! command -v benchstat >/dev/null; then
	echo "installing benchstat" >&2
	go install golang.org/x/perf/cmd/benchstat@latest ||
		go install golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da
fi

if [[ ${SUMMARIZE_ONLY:-} != 1 ]]; then
	: >"$raw"
	start=$(date +%s)
	for i in $(seq "$ROUNDS"); do
		echo "round $i/$ROUNDS" >&2
		go test -run '^$' -bench 'Sniff|ConnPath' -benchmem -benchtime "$BENCHTIME" -count 1 ./bench/ >>"$raw"
		go test -run '^$' -bench 'Loopback' -benchmem -benchtime "${LOOPBACK_N}x" -count 1 ./bench/ >>"$raw"
		go test -run '^$' -bench 'SilentConns' -benchtime 1x -count 1 ./bench/ >>"$raw"
		go test -run '^$' -bench 'H2load' -benchtime "${H2LOAD_N}x" -count 1 ./bench/ >>"$raw"
		# The WebSocket bridge against plain TCP, sub-benchmarks renamed
		# to size=/impl= keys for benchstat's columns.
		go test -run '^$' -bench 'Flow' -benchmem -benchtime "$BENCHTIME" -count 1 ./wsbridge/ |
			sed -E 's#^BenchmarkFlow/([0-9]+KiB)/([A-Za-z]+)#BenchmarkFlow/size=\1/impl=\2#' >>"$raw"
	done
	elapsed=$(($(date +%s) - start))
	echo "$elapsed" >"$out/latest-elapsed.txt"
fi
elapsed=$(cat "$out/latest-elapsed.txt" 2>/dev/null || echo '?')

# benchstat compares every column with the first: portmux for the sniff
# step, the variant without a mux for the two connection benchmarks.
{
	echo "## BenchmarkSniff: portmux parse + route check vs cmux matchers on the same bytes"
	benchstat -filter '.name:Sniff' -col '/impl@(portmux cmux cmux-http1)' "$raw"
	echo
	echo "## BenchmarkConnPath: accept -> sniff -> route -> consumer read, on net.Pipe"
	benchstat -filter '.name:ConnPath' -col '/impl@(nomux portmux cmux cmux-http1)' "$raw"
	echo
	echo "## BenchmarkLoopback: http.Server, one connection per request, $LOOPBACK_N conns x $ROUNDS rounds"
	benchstat -filter '.name:Loopback' -col '/impl@(bare portmux cmux)' "$raw"
	echo
	echo "## BenchmarkSilentConns: memory per connection that has sent nothing (heap + stacks)"
	benchstat -filter '.name:SilentConns' -col '/impl@(held bare portmux cmux)' "$raw"
	echo
	echo "## BenchmarkH2load: h2load, $H2LOAD_N requests over 4 h2c connections x 10 streams, x $ROUNDS rounds"
	benchstat -filter '.name:H2load' -col '/impl@(bare portmux cmux)' "$raw"
	echo
	echo "## BenchmarkFlow (wsbridge): messages echoed through the WebSocket bridge vs plain TCP to the same echo backend"
	benchstat -filter '.name:Flow' -col '/impl@(plainTCP bridge connEcho)' "$raw"
} | tee "$out/latest.txt"

# Markdown: medians of each metric per variant, and ratios.
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
{
	echo "# loadgenmarks"
	echo
	echo "| machine | |"
	echo "|---|---|"
	echo "| cores (nproc) | $(nproc) |"
	echo "| CPU | $cpu |"
	echo "| Go | $(go version | cut -d' ' -f3-) |"
	echo "| date | $(date -u '+%Y-%m-%d %H:%M UTC') |"
	echo "| commit | $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . ':!bench/results' 2>/dev/null || echo ' (with uncommitted changes)') |"
	echo "| run | $ROUNDS rounds, -benchtime $BENCHTIME, loopback ${LOOPBACK_N}x, h2load ${H2LOAD_N}x; ${elapsed} s |"
	echo
	echo "Medians over the rounds. For time and allocations, a ratio below 1 means"
	echo "portmux costs less; for conns/s and req/s, above 1 means portmux is faster."
	echo "\`cmux\` uses HTTP1Fast for the HTTP/1 route, \`cmux-http1\` uses HTTP1."
	echo "baseline is \`nomux\` (ConnPath), \`bare\` (Loopback, H2load) or \`plainTCP\` (Flow, where the portmux column is the WebSocket bridge)."
	echo "proc-cpu-us/conn is user+system CPU of the whole process (client and server);"
	echo "server-cpu-us/req (H2load) is the server's alone, h2load being another process."
	echo "B/conn-over-held is heap + stack per silent connection beyond the sockets' own cost."
	echo
	echo "| benchmark | metric | portmux | cmux | cmux-http1 | baseline | portmux/cmux | portmux/cmux-http1 | portmux/baseline |"
	echo "|---|---|--:|--:|--:|--:|--:|--:|--:|"
	# Each result line: name, iterations, then value-unit pairs.
	awk 'BEGIN { rank["conns/s"] = 1; rank["ns/op"] = 2; rank["proc-cpu-us/conn"] = 3; rank["allocs/op"] = 4; rank["B/conn-over-held"] = 5; rank["req/s"] = 6; rank["server-cpu-us/req"] = 7; rank["msgs/s"] = 8; rank["MB/s"] = 9 }
	$1 ~ /^Benchmark/ {
		name = $1; sub(/-[0-9]+$/, "", name)
		impl = name; sub(/.*\/impl=/, "", impl); sub(/\/.*/, "", impl)
		group = name; sub(/\/impl=[^\/]*/, "", group)
		if (!(group in idx)) idx[group] = ++n
		for (i = 3; i < NF; i += 2) {
			u = $(i + 1)
			if (u in rank)
				printf "%d\t%s\t%d %s\t%s\t%s\n", idx[group], group, rank[u], u, impl, $i
		}
	}' "$raw" | sort -t "$(printf '\t')" -k1,1n -k3,3 -k4,4 -k5,5g | awk -F '\t' '
	function flush(   m) {
		if (cnt == 0) return
		m = (cnt % 2) ? v[(cnt + 1) / 2] : (v[cnt / 2] + v[cnt / 2 + 1]) / 2
		med[key] = m
		cnt = 0
	}
	function fmtv(x) {
		if (x == "") return "–"
		if (x >= 100) return sprintf("%.0f", x)
		return sprintf("%.3g", x)
	}
	function ratio(a, b) {
		if (a == "" || b == "" || b == 0) return "–"
		return sprintf("%.2f", a / b)
	}
	{
		k = $1 SUBSEP $2 SUBSEP $3 SUBSEP $4
		if (k != key) { flush(); key = k }
		v[++cnt] = $5
		if (!(($1 SUBSEP $2 SUBSEP $3) in rows)) { rows[$1 SUBSEP $2 SUBSEP $3] = 1; rk[++nr] = $1 SUBSEP $2 SUBSEP $3 }
	}
	END {
		flush()
		for (r = 1; r <= nr; r++) {
			split(rk[r], f, SUBSEP)
			sub(/^[0-9]+ /, "", f[3])
			p = med[rk[r] SUBSEP "portmux"]; c = med[rk[r] SUBSEP "cmux"]; h = med[rk[r] SUBSEP "cmux-http1"]
			if (p == "") p = med[rk[r] SUBSEP "bridge"]
			b = med[rk[r] SUBSEP "nomux"]; if (b == "") b = med[rk[r] SUBSEP "bare"]; if (b == "") b = med[rk[r] SUBSEP "plainTCP"]
			printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", f[2], f[3], fmtv(p), fmtv(c), fmtv(h), fmtv(b), ratio(p, c), ratio(p, h), ratio(p, b)
		}
	}'
} >"$out/latest.md"
cat "$out/latest.md"
echo "total run time: ${elapsed} s" >&2
