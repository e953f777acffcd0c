#!/usr/bin/env bash
# daemon.sh compares the portmux daemon with HAProxy and sslh in front of
# the same backends, and with going direct, on one machine:
#
#   conn       a new connection per request (loadgen -mode http1)
#   keepalive  requests on kept-alive connections (-mode http1-keepalive)
#   bulk       one stream of BULK_MIB MiB each way through a TCP echo
#              (-mode tcp -size BULK_MIB MiB -n 1: one request that
#              streams, writing and checking 1 MiB at a time, on one
#              connection; not stop-and-wait round trips)
#
# Every multiplexer listens on one port and decides by content, as sslh
# does: HTTP/1 to the web backend, anything else to the echo backend.
# portmux routes http2, websocket, http1, ssh and any (the issue's shape);
# HAProxy runs mode tcp with `tcp-request inspect-delay` and
# req.proto_http, with `option splice-auto` (and, for bulk only, also
# without splice and with forced splice-request/-response); sslh-select
# probes --http with --anyprot as the rest.
#
# Variants alternate within each round (direct, portmux, haproxy, sslh,
# ...), ROUNDS times; the summary gives medians with min-max and ratios to
# direct. The load tool, the proxies and the backends share the machine.
#
# Output: bench/results/daemon.md (Markdown), bench/results/daemon-raw.txt
# (a line per run) and bench/results/daemon-bench.txt (the same in
# benchstat's format: benchstat -col /impl bench/results/daemon-bench.txt).
#
# Knobs (environment):
#   ROUNDS    rounds, default 5
#   DURATION  seconds per conn and keepalive run, default 5
#   CONC      connections in flight for conn and keepalive, default 50
#   BULK_MIB  MiB each way in the bulk run, default 2048
#   PORT      first of 9 consecutive ports on 127.0.0.1, default 8190
#
# Needs haproxy, sslh (sslh-select), jq and curl: apt-get install haproxy
# sslh jq curl. Takes about ROUNDS x 100 s.
set -euo pipefail

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-5}
CONC=${CONC:-50}
BULK_MIB=${BULK_MIB:-2048}
PORT=${PORT:-8190}

cd "$(dirname "$0")/.."
out=bench/results
mkdir -p "$out"
raw=$out/daemon-raw.txt
SSLH=$(command -v sslh-select || true)
for tool in haproxy jq curl; do
	command -v "$tool" >/dev/null || { echo "daemon.sh: $tool is not installed (apt-get install haproxy sslh jq curl)" >&2; exit 1; }
done
[[ -n $SSLH ]] || { echo "daemon.sh: sslh-select is not installed (apt-get install sslh)" >&2; exit 1; }

web=$PORT echo=$((PORT + 1)) pm=$((PORT + 2)) ha=$((PORT + 3)) hanosplice=$((PORT + 4)) hasplice=$((PORT + 5)) sslh=$((PORT + 6))

tmp=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT

go build -o "$tmp/portmux" ./cmd/portmux
go build -o "$tmp/loadgen" ./bench/cmd/loadgen
go build -o "$tmp/bareserver" ./bench/bareserver
"$tmp/bareserver" -addr "127.0.0.1:$web" -echo-addr "127.0.0.1:$echo" 2>"$tmp/backend.log" &
pids+=($!)
declare -A pid # by impl, for CPU time: the proxy's process
backend_pid=$!

cat >"$tmp/portmux.yaml" <<EOF
log: { level: error }
listeners:
  - listen: 127.0.0.1:$pm
    max_connections: 20000
    routes:
      - { match: http2, to: 127.0.0.1:$web }
      - { match: websocket, to: 127.0.0.1:$web }
      - { match: http1, to: 127.0.0.1:$web }
      - { match: ssh, to: 127.0.0.1:$echo }
      - { match: any, to: 127.0.0.1:$echo }
EOF
"$tmp/portmux" -config "$tmp/portmux.yaml" >"$tmp/portmux.log" 2>&1 &
pids+=($!)
pid[portmux]=$!

haproxy_cfg() { # port, splice options
	cat <<EOF
global
	maxconn 4000
	log stderr format raw local0 emerg
defaults
	mode tcp
	timeout connect 5s
	timeout client 30s
	timeout server 30s
	$2
frontend f
	bind 127.0.0.1:$1
	tcp-request inspect-delay 3s
	tcp-request content accept if HTTP
	tcp-request content accept if { req.len gt 0 }
	use_backend web if HTTP
	default_backend echo
backend web
	server web 127.0.0.1:$web
backend echo
	server echo 127.0.0.1:$echo
EOF
}
haproxy_cfg "$ha" "option splice-auto" >"$tmp/ha.cfg"
haproxy_cfg "$hanosplice" "" >"$tmp/ha-nosplice.cfg"
haproxy_cfg "$hasplice" $'option splice-request\n\toption splice-response' >"$tmp/ha-splice.cfg"
for c in ha ha-nosplice ha-splice; do
	haproxy -db -f "$tmp/$c.cfg" >"$tmp/$c.log" 2>&1 &
	pids+=($!)
	case $c in
	ha) pid[haproxy]=$! ;;
	ha-nosplice) pid[haproxy-nosplice]=$! ;;
	ha-splice) pid[haproxy-splice]=$! ;;
	esac
done
"$SSLH" -f -n -p "127.0.0.1:$sslh" --http "127.0.0.1:$web" --anyprot "127.0.0.1:$echo" -t 3 >"$tmp/sslh.log" 2>&1 &
pids+=($!)
pid[sslh]=$!

for p in $web $pm $ha $sslh; do
	for _ in $(seq 100); do
		curl -fsS -o /dev/null "http://127.0.0.1:$p/" 2>/dev/null && break
		sleep 0.1
	done
	curl -fsS -o /dev/null "http://127.0.0.1:$p/" || { echo "daemon.sh: nothing answers on $p" >&2; tail "$tmp"/*.log >&2; exit 1; }
done

# run prints "rate errors units" for one run: test, port. units is what
# CPU time is divided by: requests for conn and keepalive, MB received for
# bulk.
run() {
	case $1 in
	conn) "$tmp/loadgen" -json -mode http1 -c "$CONC" -d "${DURATION}s" "http://127.0.0.1:$2/" | jq -r '"\(.connections_per_s) \(.errors) \(.requests)"' ;;
	keepalive) "$tmp/loadgen" -json -mode http1-keepalive -c "$CONC" -d "${DURATION}s" "http://127.0.0.1:$2/" | jq -r '"\(.requests_per_s) \(.errors) \(.requests)"' ;;
	bulk) "$tmp/loadgen" -json -mode tcp -size $((BULK_MIB << 20)) -c 1 -n 1 -timeout 120s "tcp://127.0.0.1:$2" | jq -r '"\(.received_mb_per_s) \(.errors) \(.received_mb_per_s * .elapsed_s)"' ;;
	esac
}

# ticks prints a process's user + system CPU time in clock ticks, or 0.
ticks() {
	[[ -n $1 && -r /proc/$1/stat ]] || { echo 0; return; }
	# Fields after the command name, which may hold spaces: utime is the
	# 12th, stime the 13th.
	sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}
hz=$(getconf CLK_TCK)

: >"$raw"
printf 'goos: linux\ngoarch: %s\npkg: github.com/portmux/portmux/bench/daemon\n' "$(go env GOARCH)" >"$out/daemon-bench.txt"
start=$(date +%s)
for i in $(seq "$ROUNDS"); do
	for test in conn keepalive bulk; do
		variants="direct:$web portmux:$pm haproxy:$ha sslh:$sslh"
		[[ $test == bulk ]] && variants="direct:$echo portmux:$pm haproxy:$ha haproxy-nosplice:$hanosplice haproxy-splice:$hasplice sslh:$sslh"
		for v in $variants; do
			echo "round $i/$ROUNDS: $test ${v%%:*}" >&2
			impl=${v%%:*}
			p0=$(ticks "${pid[$impl]:-}") b0=$(ticks "$backend_pid")
			read -r rate errs units < <(run "$test" "${v#*:}")
			p1=$(ticks "${pid[$impl]:-}") b1=$(ticks "$backend_pid")
			cpu=$(awk -v p="$((p1 - p0))" -v b="$((b1 - b0))" -v hz="$hz" -v n="$units" 'BEGIN { if (n <= 0) n = 1; printf "proxy_cpu=%.1f backend_cpu=%.1f", p * 1e6 / hz / n, b * 1e6 / hz / n }')
			echo "test=$test round=$i impl=$impl rate=$rate errors=$errs $cpu" >>"$raw"
			unit=conns/s
			[[ $test == keepalive ]] && unit=req/s
			[[ $test == bulk ]] && unit=MB/s
			per=req
			[[ $test == bulk ]] && per=MB
			read -r pcpu bcpu < <(echo "$cpu" | sed 's/[a-z_]*=//g')
			echo "BenchmarkDaemon/test=$test/impl=$impl 1 $rate $unit $pcpu proxy-cpu-µs/$per $bcpu backend-cpu-µs/$per" >>"$out/daemon-bench.txt"
			sleep 0.5
		done
	done
done
elapsed=$(($(date +%s) - start))

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
{
	echo "# portmux daemon vs HAProxy vs sslh vs direct"
	echo
	echo "| machine | |"
	echo "|---|---|"
	echo "| cores (nproc) | $(nproc) |"
	echo "| CPU | $cpu |"
	echo "| Go | $(go version | cut -d' ' -f3-) |"
	echo "| HAProxy, sslh | $(haproxy -v | head -1 | awk '{ print $3 }'), $("$SSLH" -V 2>&1 | head -1 | awk '{ print $2 }') |"
	echo "| commit | $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . ':!bench/results' 2>/dev/null || echo ' (with uncommitted changes)') |"
	echo "| run | $ROUNDS rounds, ${DURATION}s per conn/keepalive run, $CONC connections, bulk $BULK_MIB MiB each way; ${elapsed} s |"
	echo
	echo "Medians over the rounds (min-max), and the ratio of the medians to direct."
	echo "conn: connections/s; keepalive: requests/s; bulk: MB/s received (10^6 bytes)."
	echo "CPU: user + system time of the proxy's process and of the backends' (one"
	echo "process for both), per request (conn, keepalive) or per MB received (bulk),"
	echo "medians; from /proc at 1/$hz s resolution. The load tool's own is not counted."
	echo
	echo "| test | impl | rate | / direct | proxy CPU µs | backend CPU µs | runs with errors |"
	echo "|---|---|--:|--:|--:|--:|--:|"
	awk '
	{
		delete v
		for (f = 1; f <= NF; f++) { split($f, kv, "="); v[kv[1]] = kv[2] }
		k = v["test"] SUBSEP v["impl"]
		if (!(k in n)) { order[++no] = k }
		n[k]++
		rate[k, n[k]] = v["rate"] + 0
		pc[k, n[k]] = v["proxy_cpu"] + 0
		bc[k, n[k]] = v["backend_cpu"] + 0
		if (v["errors"] + 0 > 0) errs[k]++
	}
	# med returns the median of x[k, 1..n[k]] and sets lo and hi.
	function med(x, k,   i, j, t, m, a) {
		m = n[k]
		for (i = 1; i <= m; i++) a[i] = x[k, i]
		for (i = 2; i <= m; i++) for (j = i; j > 1 && a[j-1] > a[j]; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
		lo = a[1]; hi = a[m]
		return (m % 2) ? a[(m+1)/2] : (a[m/2] + a[m/2+1]) / 2
	}
	END {
		for (o = 1; o <= no; o++) md[order[o]] = med(rate, order[o])
		for (o = 1; o <= no; o++) {
			k = order[o]; split(k, p, SUBSEP)
			d = md[p[1] SUBSEP "direct"]
			r = med(rate, k); rlo = lo; rhi = hi
			proxy = (p[2] == "direct") ? "–" : sprintf("%.1f", med(pc, k))
			printf "| %s | %s | %.0f (%.0f–%.0f) | %s | %s | %.1f | %d |\n", p[1], p[2], r, rlo, rhi, (d > 0 ? sprintf("%.2f", r / d) : "–"), proxy, med(bc, k), errs[k] + 0
		}
	}' "$raw"
} >"$out/daemon.md"
cat "$out/daemon.md"
