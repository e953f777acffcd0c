#!/usr/bin/env bash
# loadtool.sh checks that "portmux bench" is not the bottleneck: it
# measures the connection rate (a new connection per request) that
# `portmux bench -mode http1` and `wrk -H 'Connection: close'` reach
# against the same bare net/http server (bench/bareserver), interleaved:
# wrk, ours, wrk, ours, ... ROUNDS times, each in a fresh process. It
# reports medians with min-max and the ratio of the medians, and the
# median of the per-round ratios (each round's two runs are seconds
# apart, so they share most of the machine's noise).
#
# Output: bench/results/loadtool.md (Markdown) and
# bench/results/loadtool-raw.txt (one line per run).
#
# Knobs (environment):
#   ROUNDS    rounds, default 7
#   DURATION  seconds per run, default 5
#   CONC      connections in flight, both tools, default 50
#   THREADS   wrk threads, default nproc
#   PORT      the server's port on 127.0.0.1, default 8090
#
# wrk comes from Debian: apt-get install wrk. Takes ROUNDS x 2 x
# (DURATION + 1) seconds.
set -euo pipefail

ROUNDS=${ROUNDS:-7}
DURATION=${DURATION:-5}
CONC=${CONC:-50}
THREADS=${THREADS:-$(nproc)}
PORT=${PORT:-8090}

cd "$(dirname "$0")/.."
out=bench/results
mkdir -p "$out"
raw=$out/loadtool-raw.txt
command -v wrk >/dev/null || { echo "loadtool.sh: wrk is not installed (apt-get install wrk)" >&2; exit 1; }
command -v jq >/dev/null || { echo "loadtool.sh: jq is not installed (apt-get install jq)" >&2; exit 1; }

tmp=$(mktemp -d)
go build -o "$tmp/portmux" ./cmd/portmux
go build -o "$tmp/bareserver" ./bench/bareserver
"$tmp/bareserver" -addr "127.0.0.1:$PORT" 2>"$tmp/server.log" &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; rm -rf "$tmp"' EXIT
url=http://127.0.0.1:$PORT/
for _ in $(seq 50); do
	curl -fsS -o /dev/null "$url" 2>/dev/null && break
	sleep 0.1
done

: >"$raw"
start=$(date +%s)
for i in $(seq "$ROUNDS"); do
	echo "round $i/$ROUNDS" >&2
	w=$(wrk -t"$THREADS" -c"$CONC" -d"${DURATION}s" -H 'Connection: close' "$url")
	wrate=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$w")
	werr=$(awk '/Socket errors|Non-2xx/ { printf "%s ", $0 }' <<<"$w")
	echo "round=$i tool=wrk conns_per_s=$wrate errors=\"${werr% }\"" >>"$raw"
	sleep 1
	j=$("$tmp/portmux" bench -mode http1 -c "$CONC" -d "${DURATION}s" -json "$url")
	orate=$(jq -r '.requests_per_s' <<<"$j")
	oerr=$(jq -r '.errors' <<<"$j")
	echo "round=$i tool=portmux conns_per_s=$orate errors=$oerr" >>"$raw"
	sleep 1
done
elapsed=$(($(date +%s) - start))

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
summary=$(awk '
	{
		for (f = 1; f <= NF; f++) { split($f, kv, "="); v[kv[1]] = kv[2] }
		r = v["conns_per_s"] + 0
		if (v["tool"] == "wrk") { w[++nw] = r; wr[v["round"]] = r } else { o[++no] = r; orr[v["round"]] = r }
	}
	function sort(a, n,   i, j, t) { for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] > a[j]; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t } }
	function med(a, n) { sort(a, n); return (n % 2) ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2 }
	END {
		mw = med(w, nw); mo = med(o, no)
		for (k in orr) if (k in wr) q[++nq] = orr[k] / wr[k]
		mq = med(q, nq)
		printf "| wrk -H '\''Connection: close'\'' | %.0f | %.0f–%.0f |\n", mw, w[1], w[nw]
		printf "| portmux bench -mode http1 | %.0f | %.0f–%.0f |\n", mo, o[1], o[no]
		printf "\nRatio of the medians (portmux / wrk): **%.2f**; median of the per-round ratios: %.2f (range %.2f–%.2f).\n", mo / mw, mq, q[1], q[nq]
	}' "$raw")

{
	echo "# portmux bench vs wrk: connection rate"
	echo
	echo "| machine | |"
	echo "|---|---|"
	echo "| cores (nproc) | $(nproc) |"
	echo "| CPU | $cpu |"
	echo "| Go | $(go version | cut -d' ' -f3-) |"
	echo "| wrk | $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2) |"
	echo "| date | $(date -u '+%Y-%m-%d %H:%M UTC') |"
	echo "| commit | $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . ':!bench/results' 2>/dev/null || echo ' (with uncommitted changes)') |"
	echo "| run | $ROUNDS interleaved rounds (wrk, then portmux bench), ${DURATION} s each, $CONC connections in flight, wrk -t$THREADS; ${elapsed} s |"
	echo
	echo "Target: bench/bareserver (a bare net/http server) on 127.0.0.1, a new"
	echo "connection per request. Client and server share the machine's cores, so"
	echo "the less CPU a client spends per connection, the more the server gets."
	echo
	echo "| client | conns/s, median | min–max |"
	echo "|---|--:|--:|"
	echo "$summary"
	echo
	echo "Errors per run (should be none): $(awk '{ for (f = 1; f <= NF; f++) if ($f ~ /^errors=/ && $f != "errors=0" && $f != "errors=\"\"") n++ } END { print n + 0 }' "$raw") runs with errors; raw lines in \`loadtool-raw.txt\`."
	echo
	echo "Command: \`ROUNDS=$ROUNDS DURATION=$DURATION CONC=$CONC bench/loadtool.sh\`"
} >"$out/loadtool.md"
cat "$out/loadtool.md"
