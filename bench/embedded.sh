#!/usr/bin/env bash
# embedded.sh measures portmux as a library: an http.Server on the listener
# itself (none), behind portmux and behind cmux v0.1.5, each mux with three
# routes (h2, WebSocket, HTTP/1), in a process of its own
# (bench/bareserver -mux ...), driven by loadgen from another:
#
#   conn       a new connection per request (-mode http1, Connection: close)
#   keepalive  requests on kept-alive connections (-mode http1-keepalive)
#
# with the server process's CPU (user + system, from /proc) per request.
# Variants alternate within each round, each in a fresh server process;
# the summary gives medians with min-max and ratios to none.
#
# Output: bench/results/embedded.md (Markdown) and
# bench/results/embedded-raw.txt (benchstat format: benchstat -col /impl).
#
# Knobs (environment): ROUNDS (default 5), DURATION seconds per run
# (default 5), CONC connections (default 50), PORT (default 8180).
# Needs jq. Takes about ROUNDS x 6 x (DURATION + 2) seconds.
set -euo pipefail

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-5}
CONC=${CONC:-50}
PORT=${PORT:-8180}

cd "$(dirname "$0")/.."
out=bench/results
mkdir -p "$out"
raw=$out/embedded-raw.txt
command -v jq >/dev/null || { echo "embedded.sh: jq is not installed (apt-get install jq)" >&2; exit 1; }

tmp=$(mktemp -d)
server=
cleanup() {
	[[ -n $server ]] && kill "$server" 2>/dev/null
	wait 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
go build -o "$tmp/loadgen" ./bench/cmd/loadgen
go build -o "$tmp/bareserver" ./bench/bareserver
ticks=$(getconf CLK_TCK)

# cputicks prints a process's user + system CPU time in clock ticks.
cputicks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

: >"$raw"
{
	echo "goos: linux"
	echo "goarch: $(go env GOARCH)"
	echo "pkg: github.com/portmux/portmux/bench/embedded"
	echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
} >>"$raw"
start=$(date +%s)
for i in $(seq "$ROUNDS"); do
	for test in conn keepalive; do
		for impl in none portmux cmux; do
			echo "round $i/$ROUNDS: $test $impl" >&2
			"$tmp/bareserver" -addr "127.0.0.1:$PORT" -mux "$impl" 2>"$tmp/server.log" &
			server=$!
			for _ in $(seq 50); do
				curl -fsS -o /dev/null "http://127.0.0.1:$PORT/" 2>/dev/null && break
				sleep 0.1
			done
			mode=http1
			[[ $test == keepalive ]] && mode=http1-keepalive
			t0=$(cputicks "$server")
			read -r rate reqs errs < <("$tmp/loadgen" -json -mode "$mode" -c "$CONC" -d "${DURATION}s" "http://127.0.0.1:$PORT/" | jq -r '"\(.requests_per_s) \(.requests) \(.errors)"')
			t1=$(cputicks "$server")
			kill "$server"
			wait "$server" 2>/dev/null || true
			server=
			cpu=$(awk -v d="$((t1 - t0))" -v n="$reqs" -v hz="$ticks" 'BEGIN { printf "%.2f", d * 1e6 / hz / (n > 0 ? n : 1) }')
			echo "BenchmarkEmbedded/test=$test/impl=$impl 1 $rate req/s $cpu server-cpu-us/req $errs errors" >>"$raw"
			sleep 0.5
		done
	done
done
elapsed=$(($(date +%s) - start))

{
	echo "# portmux embedded: http.Server bare vs behind portmux vs behind cmux"
	echo
	echo "| machine | |"
	echo "|---|---|"
	echo "| cores (nproc) | $(nproc) |"
	echo "| CPU | $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//') |"
	echo "| Go | $(go version | cut -d' ' -f3-) |"
	echo "| commit | $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . ':!bench/results' 2>/dev/null || echo ' (with uncommitted changes)') |"
	echo "| run | $ROUNDS rounds, ${DURATION}s per run, $CONC connections; ${elapsed} s |"
	echo
	echo "Medians over the rounds (min-max), ratios to the bare server. conn: a"
	echo "connection per request, so requests/s is connections/s. CPU is the server"
	echo "process's alone (the load comes from another process)."
	echo
	echo "| test | impl | requests/s | / none | server CPU µs/request | / none | runs with errors |"
	echo "|---|---|--:|--:|--:|--:|--:|"
	awk '
	$1 ~ /^BenchmarkEmbedded/ {
		split($1, p, "/"); test = substr(p[2], 6); impl = substr(p[3], 6)
		k = test SUBSEP impl
		if (!(k in n)) order[++no] = k
		n[k]++; rate[k, n[k]] = $3 + 0; cpu[k, n[k]] = $5 + 0
		if ($7 + 0 > 0) errs[k]++
	}
	function med(arr, k,   i, j, t, m, a) {
		m = n[k]
		for (i = 1; i <= m; i++) a[i] = arr[k, i]
		for (i = 2; i <= m; i++) for (j = i; j > 1 && a[j-1] > a[j]; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
		lo = a[1]; hi = a[m]
		return (m % 2) ? a[(m+1)/2] : (a[m/2] + a[m/2+1]) / 2
	}
	END {
		for (o = 1; o <= no; o++) { k = order[o]; mr[k] = med(rate, k); rlo[k] = lo; rhi[k] = hi; mc[k] = med(cpu, k) }
		for (o = 1; o <= no; o++) {
			k = order[o]; split(k, q, SUBSEP); b = q[1] SUBSEP "none"
			printf "| %s | %s | %.0f (%.0f–%.0f) | %.2f | %.1f | %.2f | %d |\n", q[1], q[2], mr[k], rlo[k], rhi[k], mr[k] / mr[b], mc[k], mc[k] / mc[b], errs[k] + 0
		}
	}' "$raw"
} >"$out/embedded.md"
cat "$out/embedded.md"
