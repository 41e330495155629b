#!/usr/bin/env bash
# Idle CPU (issue 18, point 6): what ASE costs with no traffic at all, side
# by side with a do-nothing net/http server (bench/nullserver -stdlib) left
# idle the same way. Target: below 0.5% of a core. Every party runs in a
# session of its own, on loopback, all at once: each round measures them
# all over the same window.
#   inline           the default configuration (HTTPS port on, access log
#                    on), no API
#   inline+api       an API (health_check off) in front of a do-nothing
#                    backend, 1,000 deny entries with a TTL of 1h and 1,000
#                    without, after 500 requests (the client gone since)
#   sideband         the default configuration in sideband mode, no API
#   sideband+api     an API, the same entries, after 500 /ase/request calls
#   net/http         the do-nothing server, after 500 requests
# BASELINE=path also runs each ASE configuration with that build of ase
# (e.g. an earlier commit's), in the same windows: before and after side by
# side.
# After a warm-up (WARM seconds, 10 by default), each round reads
# utime+stime from /proc/<pid>/stat and the threads' context switches (each
# a wake-up: /proc/<pid>/task/*/status) before and after SECONDS, and
# prints % of a core and wake-ups per second; the summary gives medians.
# Usage: [BASELINE=path] bench/idle.sh [ROUNDS] [SECONDS]
source "$(dirname "$0")/lib.sh"
ROUNDS=${1:-3}; DUR=${2:-60}; WARM=${WARM:-10}
build
work=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null; pkill -P $$ 2>/dev/null; rm -rf "$work"' EXIT
out="$RESULTS/idle-$(date -u +%Y%m%dT%H%M%SZ).txt"
admin=(-H 'x-ase-access-key: admin' -H 'x-ase-secret-key: admin')
declare -A pid bin

backend=$(free_port)
setsid "$BENCH_DIR/bin/nullserver" -stdlib -addr 127.0.0.1:$backend &
pid[net/http]=$!
wait_http "http://127.0.0.1:$backend/"

# start_ase NAME MODE BIN: ASE with the default configuration but for its
# ports (free, loopback) and data directory.
start_ase() {
	local dir="$work/${1//\//_}" data mgmt
	mkdir -p "$dir"
	data=$(free_port); mgmt=$(free_port)
	cat >"$dir/ase.conf" <<CONF
mode=$2
listen_address=127.0.0.1
http_ws_port=$data
https_wss_port=$(free_port)
management_port=$mgmt
data_dir=$dir/data
CONF
	setsid "$3" serve --config "$dir/ase.conf" >"$dir/ase.log" 2>&1 &
	pid[$1]=$!
	bin[$1]=$3
	echo "$data $mgmt" >"$dir/ports"
	wait_http "http://127.0.0.1:$mgmt/v5/ase/status"
}

# entries MGMT: 1,000 deny entries with a TTL of 1h, 1,000 without.
entries() {
	python3 - "$1" <<'PY'
import json, sys, urllib.request
for ttl in ("3600", None):
    base = 20 if ttl else 30
    batch = [dict({"type": "ip", "value": f"{base}.0.{i // 256}.{i % 256}"}, **({"ttl": ttl} if ttl else {})) for i in range(1000)]
    req = urllib.request.Request(f"http://127.0.0.1:{sys.argv[1]}/v5/ase/firewall/blacklist", json.dumps(batch).encode(),
                                 {"x-ase-access-key": "admin", "x-ase-secret-key": "admin", "Content-Type": "application/json"})
    urllib.request.urlopen(req).read()
PY
}

api() { # api MGMT JSON
	curl -sf -X POST "http://127.0.0.1:$1/v5/ase/api?api_id=shop" "${admin[@]}" -H 'Content-Type: application/json' -d "$2" >/dev/null
}

# start_all SUFFIX BIN: the four ASE configurations.
start_all() {
	local data mgmt
	start_ase "inline$1" inline "$2"
	start_ase "inline+api$1" inline "$2"
	read -r data mgmt <"$work/inline+api$1/ports"
	api "$mgmt" "{\"api_metadata\": {\"url\": \"/shop\", \"health_check\": false, \"servers\": [{\"host\": \"127.0.0.1\", \"port\": $backend}]}}"
	entries "$mgmt"
	curl -s "http://127.0.0.1:$data/shop/items/[1-500]" >/dev/null
	start_ase "sideband$1" sideband "$2"
	start_ase "sideband+api$1" sideband "$2"
	read -r data mgmt <"$work/sideband+api$1/ports"
	api "$mgmt" '{"api_metadata": {"url": "/shop", "health_check": false}}'
	entries "$mgmt"
	curl -s -X POST -H 'Content-Type: application/json' \
		-d '{"source_ip": "198.51.100.7", "source_port": "40000", "method": "GET", "url": "/shop/items/42", "http_version": "1.1", "headers": [{"Host": "shop.example.com"}]}' \
		"http://127.0.0.1:$data/ase/request?n=[1-500]" >/dev/null
}

parties=(inline inline+api sideband sideband+api)
start_all "" "$BENCH_DIR/bin/ase"
if [ -n "${BASELINE:-}" ]; then
	start_all " (baseline)" "$BASELINE"
	parties+=("inline (baseline)" "inline+api (baseline)" "sideband (baseline)" "sideband+api (baseline)")
fi
parties+=(net/http)
curl -s "http://127.0.0.1:$backend/items/[1-500]" >/dev/null
for p in "${parties[@]}"; do
	want=nullserver; [ "$p" = net/http ] || want=$(basename "${bin[$p]}" | cut -c1-15)
	[ "$(cat "/proc/${pid[$p]}/comm")" = "$want" ] || { echo "pid ${pid[$p]} ($p) is not $want" >&2; exit 1; }
done

cpu() { awk '{print $14+$15}' "/proc/$1/stat"; }
wakes() { cat /proc/"$1"/task/*/status 2>/dev/null | awk '/^(voluntary|nonvoluntary)_ctxt_switches/ {s+=$2} END {print s+0}'; }
key() { echo "${1//[^a-z+]/_}"; }

{
	echo "== idle: ${WARM}s warm-up, then $ROUNDS rounds of ${DUR}s, every party measured over the same window ($(nproc) cores)"
	echo "ase: $BENCH_DIR/bin/ase ($(cd "$ROOT" && git log -1 --format=%h 2>/dev/null || echo '?'))${BASELINE:+; baseline: $BASELINE}"
	echo "load before: $(uptime)"
} | tee -a "$out"
sleep "$WARM"
for p in "${parties[@]}"; do : >"$work/cpu_$(key "$p")"; : >"$work/wake_$(key "$p")"; done
declare -A c0 w0
for r in $(seq 1 "$ROUNDS"); do
	for p in "${parties[@]}"; do c0[$p]=$(cpu "${pid[$p]}"); w0[$p]=$(wakes "${pid[$p]}"); done
	t0=$(date +%s.%N)
	sleep "$DUR"
	t1=$(date +%s.%N)
	echo "round $r ($(uptime | sed 's/.*load/load/'))" | tee -a "$out"
	for p in "${parties[@]}"; do
		c1=$(cpu "${pid[$p]}"); w1=$(wakes "${pid[$p]}")
		pct=$(awk -v a="${c0[$p]}" -v b="$c1" -v hz="$HZ" -v t0="$t0" -v t1="$t1" 'BEGIN {printf "%.3f", (b-a)/hz/(t1-t0)*100}')
		ws=$(awk -v a="${w0[$p]}" -v b="$w1" -v t0="$t0" -v t1="$t1" 'BEGIN {printf "%.1f", (b-a)/(t1-t0)}')
		echo "$pct" >>"$work/cpu_$(key "$p")"; echo "$ws" >>"$work/wake_$(key "$p")"
		printf '  %-24s %7s%% of a core %8s wake-ups/s\n' "$p" "$pct" "$ws" | tee -a "$out"
	done
done
{
	echo "load after: $(uptime)"
	printf '%-24s %12s %12s\n' party "% of a core" "wake-ups/s"
	for p in "${parties[@]}"; do
		printf '%-24s %12s %12s\n' "$p" "$(median <"$work/cpu_$(key "$p")")" "$(median <"$work/wake_$(key "$p")")"
	done
	echo "(medians of $ROUNDS rounds of ${DUR}s; /proc counts CPU time in 1/${HZ} s, so 0.017% is one tick in 60 s; target: below 0.5% of a core)"
} | tee -a "$out"
