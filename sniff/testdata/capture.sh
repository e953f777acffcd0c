#!/usr/bin/env bash
# (Re)make the real-client captures in sniff/testdata/captures/.
#
# Run from the repository root:
#
#	bash sniff/testdata/capture.sh            # all captures
#	bash sniff/testdata/capture.sh curl_get   # only the named ones
#
# Every capture is made against a server-silent listener on 127.0.0.1:<ephemeral>
# (see sniff/testdata/capture/main.go): the client connects, sends its first
# bytes and gets no answer; the listener writes what it received once the
# client has been quiet for QUIET (default 500ms). No traffic leaves 127.0.0.1.
#
# Missing tools are installed with apt-get (Debian). At the end a manifest
# (tool versions, sizes, sha256) is printed; copy it into captures/README.md
# if the captures changed.
set -euo pipefail

if [[ ! -f go.mod ]] || ! grep -q '^module github.com/portmux/portmux$' go.mod; then
	echo "capture.sh: run from the portmux repository root" >&2
	exit 1
fi

OUT=sniff/testdata/captures
QUIET=${QUIET:-500ms}
mkdir -p "$OUT"

# ---------------------------------------------------------------- tools

need_pkgs=()
command -v curl >/dev/null || need_pkgs+=(curl)
command -v nghttp >/dev/null || need_pkgs+=(nghttp2-client)
command -v openssl >/dev/null || need_pkgs+=(openssl)
command -v ssh >/dev/null || need_pkgs+=(openssh-client)
[[ -x /usr/bin/chromium ]] || need_pkgs+=(chromium)
command -v haproxy >/dev/null || need_pkgs+=(haproxy)
if ((${#need_pkgs[@]})); then
	echo "capture.sh: installing ${need_pkgs[*]}" >&2
	apt-get update
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need_pkgs[@]}"
fi

TMP=$(mktemp -d /tmp/portmux-capture.XXXXXX)
BG_PIDS=()
cleanup() {
	local p
	for p in "${BG_PIDS[@]}"; do
		# Only processes this script started (haproxy/chromium are started
		# with setsid, so their process group id is their pid).
		kill -- "-$p" 2>/dev/null || kill "$p" 2>/dev/null || true
	done
	rm -rf "$TMP"
}
trap cleanup EXIT

go build -o "$TMP/capture" ./sniff/testdata/capture
CAP="$TMP/capture"

# ---------------------------------------------------------------- helpers

# start_capture NAME [extra listen flags...]: start the silent listener in
# the background; sets PORT and CAP_PID.
start_capture() {
	local name=$1
	shift
	rm -f "$TMP/port" "$OUT/$name.bin"
	"$CAP" -mode listen -o "$OUT/$name.bin" -portfile "$TMP/port" -quiet "$QUIET" -timeout 60s "$@" >/dev/null 2>"$TMP/$name.listener.log" &
	CAP_PID=$!
	local i
	for ((i = 0; i < 100; i++)); do
		[[ -s "$TMP/port" ]] && break
		sleep 0.05
	done
	[[ -s "$TMP/port" ]] || { echo "capture.sh: listener for $name did not start" >&2; return 1; }
	PORT=$(<"$TMP/port")
}

# finish_capture NAME: wait for the listener to write its file.
finish_capture() {
	local name=$1
	if ! wait "$CAP_PID"; then
		echo "capture.sh: $name: listener failed:" >&2
		cat "$TMP/$name.listener.log" "$TMP/$name.log" >&2 2>/dev/null || true
		return 1
	fi
	[[ -s "$OUT/$name.bin" ]] || { echo "capture.sh: $name: empty" >&2; return 1; }
	printf '%-32s %6d bytes\n' "$name.bin" "$(stat -c %s "$OUT/$name.bin")"
}

# wait_listen PORT: wait until something listens on 127.0.0.1:PORT, without
# connecting to it (a probe connection would be forwarded to the capture).
wait_listen() {
	local hex i
	hex=$(printf '%04X' "$1")
	for ((i = 0; i < 100; i++)); do
		if awk -v p="0100007F:$hex" '$2 == p && $4 == "0A" { f = 1 } END { exit !f }' /proc/net/tcp; then
			return 0
		fi
		sleep 0.05
	done
	echo "capture.sh: nothing listening on 127.0.0.1:$1" >&2
	return 1
}

# A client "fails" against a silent server by design: ignore its exit status
# and its chatter (kept in $TMP/NAME.log while the script runs).
client() {
	local name=$1
	shift
	"$@" >"$TMP/$name.log" 2>&1 </dev/null || true
}

curl_has_ws() {
	curl --version | awk '/^Protocols:/ { for (i = 2; i <= NF; i++) if ($i == "ws") f = 1 } END { exit !f }'
}

# ---------------------------------------------------------------- captures

cap_curl_get() {
	start_capture curl_get
	client curl_get curl -v --max-time 3 "http://127.0.0.1:$PORT/"
	finish_capture curl_get
}

cap_curl_post() {
	start_capture curl_post
	client curl_post curl -v --max-time 3 -d 'hello=world' "http://127.0.0.1:$PORT/"
	finish_capture curl_post
}

cap_curl_h2_prior_knowledge() {
	start_capture curl_h2_prior_knowledge
	client curl_h2_prior_knowledge curl -v --max-time 3 --http2-prior-knowledge "http://127.0.0.1:$PORT/"
	finish_capture curl_h2_prior_knowledge
}

cap_curl_h2_upgrade() {
	start_capture curl_h2_upgrade
	client curl_h2_upgrade curl -v --max-time 3 --http2 "http://127.0.0.1:$PORT/"
	finish_capture curl_h2_upgrade
}

cap_curl_websocket() {
	if ! curl_has_ws; then
		echo "curl_websocket.bin                (skipped: this curl has no ws:// support)"
		return 0
	fi
	start_capture curl_websocket
	client curl_websocket curl -v --max-time 3 "ws://127.0.0.1:$PORT/echo"
	finish_capture curl_websocket
}

cap_nghttp_prior_knowledge() {
	start_capture nghttp_prior_knowledge
	client nghttp_prior_knowledge timeout 10 nghttp -v "http://127.0.0.1:$PORT/"
	finish_capture nghttp_prior_knowledge
}

cap_nghttp_upgrade() {
	start_capture nghttp_upgrade
	client nghttp_upgrade timeout 10 nghttp -v -u "http://127.0.0.1:$PORT/"
	finish_capture nghttp_upgrade
}

cap_chromium_websocket() {
	rm -f "$TMP/pageport"
	start_capture chromium_websocket -wspage -pageportfile "$TMP/pageport"
	local pport profile cpid
	pport=$(<"$TMP/pageport")
	profile=$(mktemp -d "$TMP/chromium-profile.XXXXXX")
	setsid /usr/bin/chromium --headless --no-sandbox --disable-gpu --disable-quic \
		--no-first-run --disable-background-networking --disable-component-update \
		--disable-sync --user-data-dir="$profile" \
		"http://127.0.0.1:$pport/" >"$TMP/chromium.log" 2>&1 </dev/null &
	cpid=$!
	BG_PIDS+=("$cpid")
	finish_capture chromium_websocket
	kill -- "-$cpid" 2>/dev/null || true
	wait "$cpid" 2>/dev/null || true
}

cap_go_tls_clienthello() {
	start_capture go_tls_clienthello
	client go_tls_clienthello "$CAP" -mode tlsclient -addr "127.0.0.1:$PORT" -servername www.example.com -timeout 5s
	finish_capture go_tls_clienthello
	# Derived, not captured: the same handshake bytes re-framed into 3 records.
	"$CAP" -mode split -parts 3 -i "$OUT/go_tls_clienthello.bin" -o "$OUT/go_tls_clienthello_split.bin"
	printf '%-32s %6d bytes (derived)\n' go_tls_clienthello_split.bin "$(stat -c %s "$OUT/go_tls_clienthello_split.bin")"
}

cap_openssl_s_client() {
	start_capture openssl_s_client
	client openssl_s_client timeout 10 openssl s_client -connect "127.0.0.1:$PORT" -servername www.example.com -alpn h2,http/1.1
	finish_capture openssl_s_client
}

cap_openssh_banner() {
	start_capture openssh_banner
	client openssh_banner timeout 10 ssh -o StrictHostKeyChecking=no -o BatchMode=yes -p "$PORT" 127.0.0.1
	finish_capture openssh_banner
}

# cap_haproxy NAME SEND_PROXY_KEYWORD
cap_haproxy() {
	local name=$1 kw=$2 fe hpid
	start_capture "$name"
	fe=$("$CAP" -mode freeport)
	cat >"$TMP/$name.cfg" <<EOF
global
	maxconn 16

defaults
	mode tcp
	timeout connect 5s
	timeout client 10s
	timeout server 10s

frontend fe
	bind 127.0.0.1:$fe
	default_backend be

backend be
	server capture 127.0.0.1:$PORT $kw
EOF
	setsid haproxy -db -f "$TMP/$name.cfg" >"$TMP/$name.haproxy.log" 2>&1 </dev/null &
	hpid=$!
	BG_PIDS+=("$hpid")
	wait_listen "$fe"
	client "$name" curl -v --max-time 3 "http://127.0.0.1:$fe/"
	finish_capture "$name"
	kill -- "-$hpid" 2>/dev/null || kill "$hpid" 2>/dev/null || true
	wait "$hpid" 2>/dev/null || true
}
cap_haproxy_proxy_v1() { cap_haproxy haproxy_proxy_v1 send-proxy; }
cap_haproxy_proxy_v2() { cap_haproxy haproxy_proxy_v2 send-proxy-v2; }

cap_go_http_get() {
	start_capture go_http_get
	client go_http_get "$CAP" -mode httpclient -url "http://127.0.0.1:$PORT/" -timeout 3s
	finish_capture go_http_get
}

ALL=(curl_get curl_post curl_h2_prior_knowledge curl_h2_upgrade curl_websocket
	nghttp_prior_knowledge nghttp_upgrade chromium_websocket go_tls_clienthello
	openssl_s_client openssh_banner haproxy_proxy_v1 haproxy_proxy_v2 go_http_get)

todo=("$@")
((${#todo[@]})) || todo=("${ALL[@]}")
for c in "${todo[@]}"; do
	c=${c%.bin}
	[[ $c == go_tls_clienthello_split ]] && c=go_tls_clienthello
	declare -F "cap_$c" >/dev/null || { echo "capture.sh: unknown capture $c" >&2; exit 1; }
	"cap_$c"
done

# ---------------------------------------------------------------- manifest

echo
echo "== manifest ($(date -u +%Y-%m-%dT%H:%M:%SZ)) =="
echo "curl:     $(curl --version | head -1)"
echo "nghttp:   $(nghttp --version)"
echo "chromium: $(/usr/bin/chromium --version 2>/dev/null)"
echo "openssl:  $(openssl version)"
echo "ssh:      $(ssh -V 2>&1)"
echo "haproxy:  $(haproxy -v | head -1)"
echo "go:       $(go version)"
(cd "$OUT" && sha256sum -- *.bin | while read -r sum f; do
	printf '%-32s %6d  %s\n' "$f" "$(stat -c %s "$f")" "$sum"
done)
