#!/usr/bin/env bash
# all.sh runs every comparison of the suite, one after another, and
# gathers their Markdown into bench/results/summary.md:
#
#   run.sh        sniff parse, per-connection path on net.Pipe, loopback
#                 connection rate, memory per silent connection, h2load
#                 through the mux, the WebSocket bridge vs plain TCP
#                 (benchstat tables; raw in latest-raw.txt)
#   embedded.sh   http.Server bare vs behind portmux vs behind cmux:
#                 connection and keep-alive rates, server CPU per request
#   daemon.sh     the portmux daemon vs HAProxy vs sslh vs direct
#   loadtool.sh   loadgen vs wrk and h2load (the load tool itself)
#
# Each part's peers (h2load, wrk, haproxy, sslh, jq) must be installed;
# outside CI a part whose peer is missing is skipped and the summary says
# so, under CI (CI set) that is an error. Knobs pass through to the
# parts (ROUNDS, DURATION, ...). About 25 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
out=bench/results
mkdir -p "$out"
summary=$out/summary.md
{
	echo "# loadgenmarks: summary"
	echo
	echo "Made by \`bench/all.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD)."
	echo
} >"$summary"

part() { # name, needed tools...
	local name=$1
	shift
	local missing=()
	for t in "$@"; do
		command -v "$t" >/dev/null || missing+=("$t")
	done
	if [ ${#missing[@]} -gt 0 ]; then
		if [ -n "${CI:-}" ]; then
			echo "all.sh: $name needs ${missing[*]}, which is not installed" >&2
			exit 1
		fi
		echo "all.sh: skipping $name: ${missing[*]} not installed" >&2
		printf '## %s: skipped\n\n%s is not installed on this machine.\n\n' "$name" "${missing[*]}" >>"$summary"
		return 1
	fi
	echo "all.sh: $name" >&2
}

if part run.sh h2load; then
	bash bench/run.sh >/dev/null
	{ cat "$out/latest.md"; echo; } >>"$summary"
fi
if part embedded.sh jq curl; then
	bash bench/embedded.sh >/dev/null
	{ cat "$out/embedded.md"; echo; } >>"$summary"
fi
if part daemon.sh haproxy sslh-select jq curl; then
	bash bench/daemon.sh >/dev/null
	{ cat "$out/daemon.md"; echo; } >>"$summary"
fi
if part loadtool.sh wrk h2load jq curl; then
	bash bench/loadtool.sh >/dev/null
	{ cat "$out/loadtool.md"; echo; } >>"$summary"
fi
cat "$summary"
