#!/usr/bin/env bash
# loadtool.sh checks that "loadgen" is not the bottleneck: against
# the same bare net/http server (bench/bareserver), it measures what
# `loadgen` reaches next to the reference tool for each comparison:
#
#   http1      a new connection per request: wrk -H 'Connection: close'
#              vs loadgen -mode http1 (the issue's bar: >= 0.95x)
#   keepalive  requests on kept-alive connections: wrk vs -mode http1-keepalive
#   h2c        HTTP/2 prior knowledge, 4 connections x 25 streams: h2load
#              vs -mode h2c
#
# interleaved: reference, ours, reference, ours, ... ROUNDS times, each in
# a fresh process. It reports medians with min-max, the ratio of the
# medians, and the median of the per-round ratios (each round's two runs
# are seconds apart, so they share most of the machine's noise).
#
# Output: bench/results/loadtool.md (Markdown) and
# bench/results/loadtool-raw.txt (one line per run).
#
# Knobs (environment):
#   ROUNDS       rounds, default 7
#   DURATION     seconds per run, default 5
#   CONC         connections in flight, both tools, default 50 (http1, keepalive)
#   THREADS      wrk and h2load threads, default nproc
#   COMPARE      which comparisons, default "http1 keepalive h2c"
#   PORT         the server's HTTP/1.1 port on 127.0.0.1, default 8090; h2c on PORT+1
#
# wrk and h2load come from Debian (apt-get install wrk nghttp2-client),
# jq too. Takes about ROUNDS x 2 x (DURATION + 1) seconds per comparison.
set -euo pipefail

ROUNDS=${ROUNDS:-7}
DURATION=${DURATION:-5}
CONC=${CONC:-50}
THREADS=${THREADS:-$(nproc)}
COMPARE=${COMPARE:-http1 keepalive h2c}
PORT=${PORT:-8090}
H2C_CONNS=4
H2C_STREAMS=25

cd "$(dirname "$0")/.."
out=bench/results
mkdir -p "$out"
raw=$out/loadtool-raw.txt
for tool in wrk h2load jq curl; do
	command -v "$tool" >/dev/null || { echo "loadtool.sh: $tool is not installed (apt-get install wrk nghttp2-client jq curl)" >&2; exit 1; }
done

tmp=$(mktemp -d)
go build -o "$tmp/loadgen" ./bench/cmd/loadgen
go build -o "$tmp/bareserver" ./bench/bareserver
"$tmp/bareserver" -addr "127.0.0.1:$PORT" -h2c-addr "127.0.0.1:$((PORT + 1))" 2>"$tmp/server.log" &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null || true; rm -rf "$tmp"' EXIT
url=http://127.0.0.1:$PORT/
h2url=http://127.0.0.1:$((PORT + 1))/
for _ in $(seq 50); do
	curl -fsS -o /dev/null "$url" 2>/dev/null && break
	sleep 0.1
done

# reference prints "rate errors requests" for one run of the reference tool.
reference() {
	local o
	case $1 in
	http1 | keepalive)
		local hdr=()
		[[ $1 == http1 ]] && hdr=(-H 'Connection: close')
		o=$(/usr/bin/time -f '%U %S' -o "$tmp/cpu" wrk -t"$THREADS" -c"$CONC" -d"${DURATION}s" "${hdr[@]}" "$url")
		echo "$(awk '/^Requests\/sec:/ { print $2 }' <<<"$o") $(awk '/Socket errors|Non-2xx/ { n++ } END { print n + 0 }' <<<"$o") $(awk '/ requests in / { print $1 }' <<<"$o")"
		;;
	h2c)
		o=$(/usr/bin/time -f '%U %S' -o "$tmp/cpu" h2load -t"$THREADS" -c"$H2C_CONNS" -m"$H2C_STREAMS" -D"$DURATION" "$h2url")
		echo "$(awk '/^finished in/ { print $4 }' <<<"$o") $(awk '/^requests:/ { print $10 + $12 }' <<<"$o") $(awk '/^requests:/ { print $8 }' <<<"$o")"
		;;
	esac
}

# ours prints "rate errors requests" for one run of loadgen.
ours() {
	local args
	case $1 in
	http1) args=(-mode http1 -c "$CONC" "$url") ;;
	keepalive) args=(-mode http1-keepalive -c "$CONC" "$url") ;;
	h2c) args=(-mode h2c -c "$H2C_CONNS" -streams "$H2C_STREAMS" "$h2url") ;;
	esac
	/usr/bin/time -f '%U %S' -o "$tmp/cpu" "$tmp/loadgen" -d "${DURATION}s" -json "${args[@]}" | jq -r '"\(.requests_per_s) \(.errors) \(.requests)"'
}

# cpu prints the last run's user+system CPU per request, in µs.
cpu() {
	awk -v n="$1" '{ printf "%.1f", ($1 + $2) * 1e6 / (n > 0 ? n : 1) }' "$tmp/cpu"
}

: >"$raw"
start=$(date +%s)
for i in $(seq "$ROUNDS"); do
	for cmp in $COMPARE; do
		echo "round $i/$ROUNDS: $cmp" >&2
		read -r rate errs n < <(reference "$cmp")
		echo "cmp=$cmp round=$i tool=reference rate=$rate errors=$errs cpu_us=$(cpu "$n")" >>"$raw"
		sleep 1
		read -r rate errs n < <(ours "$cmp")
		echo "cmp=$cmp round=$i tool=loadgen rate=$rate errors=$errs cpu_us=$(cpu "$n")" >>"$raw"
		sleep 1
	done
done
elapsed=$(($(date +%s) - start))

# summary prints the table rows and the ratios of one comparison.
summary() {
	awk -v cmp="$1" -v refname="$2" -v ourname="$3" '
	{
		delete v
		for (f = 1; f <= NF; f++) { split($f, kv, "="); v[kv[1]] = kv[2] }
		if (v["cmp"] != cmp) next
		r = v["rate"] + 0
		if (v["tool"] == "reference") { w[++nw] = r; wr[v["round"]] = r; wc[nw] = v["cpu_us"] + 0 } else { o[++no] = r; orr[v["round"]] = r; oc[no] = v["cpu_us"] + 0 }
		if (v["errors"] + 0 > 0) errs++
	}
	function sort(a, n,   i, j, t) { for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] > a[j]; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t } }
	function med(a, n) { sort(a, n); return (n % 2) ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2 }
	END {
		if (nw == 0 || no == 0) exit
		for (k in orr) if (k in wr) q[++nq] = orr[k] / wr[k]
		mw = med(w, nw); mo = med(o, no); mq = med(q, nq); mwc = med(wc, nw); moc = med(oc, no)
		printf "| %s | %s | %.0f (%.0f–%.0f) | %s | %.0f (%.0f–%.0f) | **%.2f** | %.2f (%.2f–%.2f) | %.1f / %.1f | %d |\n", cmp, refname, mw, w[1], w[nw], ourname, mo, o[1], o[no], mo / mw, mq, q[1], q[nq], mwc, moc, errs + 0
	}' "$raw"
}

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
{
	echo "# loadgen vs wrk and h2load"
	echo
	echo "| machine | |"
	echo "|---|---|"
	echo "| cores (nproc) | $(nproc) |"
	echo "| CPU | $cpu |"
	echo "| Go | $(go version | cut -d' ' -f3-) |"
	echo "| wrk, h2load | $(wrk -v 2>&1 | head -1 | cut -d' ' -f2), $(h2load --version 2>&1 | head -1 | awk '{ print $2 }') |"
	echo "| date | $(date -u '+%Y-%m-%d %H:%M UTC') |"
	echo "| commit | $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . ':!bench/results' 2>/dev/null || echo ' (with uncommitted changes)') |"
	echo "| run | $ROUNDS interleaved rounds (reference tool, then loadgen), ${DURATION} s each; ${elapsed} s |"
	echo
	echo "Target: bench/bareserver, a bare net/http server on 127.0.0.1 (h2c on its"
	echo "own port). Client and server share the machine's cores, so the less CPU a"
	echo "client spends per request, the more the server gets: a ratio below 1 means"
	echo "the tool costs more than the reference, not that it measured wrongly."
	echo "Rates are requests/s; with \`Connection: close\` each request is a connection."
	echo "Client CPU is the client process's user + system time over its requests, the"
	echo "cost that the shared cores make into the rate (it includes the kernel's work"
	echo "for the client's sockets, and on loopback some of the server's)."
	echo
	echo "| comparison | reference | requests/s, median (min–max) | loadgen | requests/s, median (min–max) | ratio of medians | per-round ratio, median (min–max) | client CPU µs/request, reference / loadgen (medians) | runs with errors |"
	echo "|---|---|--:|---|--:|--:|--:|--:|--:|"
	for cmp in $COMPARE; do
		case $cmp in
		http1) summary http1 "\`wrk -t$THREADS -c$CONC -H 'Connection: close'\`" "\`-mode http1 -c $CONC\`" ;;
		keepalive) summary keepalive "\`wrk -t$THREADS -c$CONC\`" "\`-mode http1-keepalive -c $CONC\`" ;;
		h2c) summary h2c "\`h2load -t$THREADS -c$H2C_CONNS -m$H2C_STREAMS\`" "\`-mode h2c -c $H2C_CONNS -streams $H2C_STREAMS\`" ;;
		esac
	done
	echo
	echo "Command: \`ROUNDS=$ROUNDS DURATION=$DURATION CONC=$CONC COMPARE='$COMPARE' bench/loadtool.sh\`; raw lines in \`loadtool-raw.txt\`."
} >"$out/loadtool.md"
cat "$out/loadtool.md"
