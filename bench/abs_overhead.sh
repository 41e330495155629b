#!/usr/bin/env bash
# What behavioural detection costs (issue 20): "throughput with every
# detector on stays within 10% of detection off (inline and sideband, same
# run)". Four ASE instances run side by side, identical but for enable_abs:
#   inline   abs on / abs off: mode=inline, enable_xff=true, the same API
#            definition (url /, cookie SID, oauth2_access_token true) in
#            front of the do-nothing backend bench/bin/nullserver (as
#            bench/inline.sh); driven by wrk -t1 -c64 (keep-alive) with
#            bench/abs_overhead/inline.lua: GETs whose X-Forwarded-For
#            rotates over 5,000 loopback addresses, Authorization: Bearer
#            over 5,000 tokens and the path over 50 values, so that
#            detection tracks many identities (10,000 and more);
#   sideband abs on / abs off: mode=sideband, enable_sideband_keepalive=true,
#            the same API definition; driven by wrk -t1 -c64 with
#            bench/abs_overhead/sideband.lua: the ASE protocol, POST
#            /ase/request (source_ip and the bearer token rotating as
#            inline) and, for every request call (all are allowed), the
#            paired POST /ase/response (response_code 200, content-length
#            100) with the same X-CorrelationID, so detection counts each
#            request and its answer. Its req/s are calls/s (the two calls
#            of a client request count two) and its CPU is per call.
# Alternating rounds (who goes first rotates), after a 3 s warm-up of each
# instance that is not counted. Reported per instance: the median req/s and
# the median CPU per request of ASE's process (utime+stime from /proc over
# the round, divided by the requests wrk counted); then the ratios abs on /
# abs off of the median req/s, inline and sideband, and the median of each
# round's ratio (the two run back to back in a round, so the machine's
# drift between rounds cancels out), PASS when both are >= 0.90. A FAIL
# is printed, not an exit status: this is a measurement.
#
# Training: the default abs_training_period (24h) is kept, so detection
# learns (counts every request, fills its windows and figures) for the whole
# run and never enforces. Counting is the cost: enforcing does the same work
# per request and adds only a few atomic loads (the learned thresholds, the
# policy) to compare against, and nothing found is listed either way here.
# The number of identities tracked by the abs-on instances is printed at the
# end (GET /v5/ase/abs) when the management API has that route.
#
# Both inline instances (and both sideband ones) keep their access logs on
# (the default), as operators run them. ASE_GOENV="GOGC=200 ..." runs the
# ASE instances (only) with those Go runtime settings.
# Usage: bench/abs_overhead.sh [ROUNDS] [SECONDS]   (default 5 rounds of 10 s)
# Writes bench/results/abs-overhead-<timestamp>.txt.
source "$(dirname "$0")/lib.sh"
ROUNDS=${1:-5}; DUR=${2:-10}
need wrk wrk
build
work=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null; pkill -P $$ 2>/dev/null; rm -rf "$work"' EXIT
LUA_DIR="$BENCH_DIR/abs_overhead"
admin=(-H 'x-ase-access-key: admin' -H 'x-ase-secret-key: admin')

backend=$(free_port)
setsid "$BENCH_DIR/bin/nullserver" -addr 127.0.0.1:$backend &
wait_http "http://127.0.0.1:$backend/"

# start_ase NAME MODE ABS: an ASE instance; its pid, data port and
# management port in pid[NAME], port[NAME], mgmt[NAME].
declare -A pid port mgmt
start_ase() {
	local name=$1 mode=$2 abs=$3 dir="$work/$1"
	mkdir -p "$dir"
	port[$name]=$(free_port); mgmt[$name]=$(free_port)
	{
		echo "mode=$mode"
		echo "http_ws_port=${port[$name]}"
		echo "https_wss_port=0"
		echo "management_port=${mgmt[$name]}"
		echo "data_dir=$dir/data"
		echo "enable_access_log=true"
		echo "enable_abs=$abs"
		if [ "$mode" = inline ]; then
			echo "enable_xff=true"
		else
			echo "enable_sideband_keepalive=true"
			echo "enable_sideband_authentication=false"
		fi
	} >"$dir/ase.conf"
	env ${ASE_GOENV:-} setsid "$BENCH_DIR/bin/ase" serve --config "$dir/ase.conf" 2>"$dir/ase.log" &
	pid[$name]=$!
	wait_http "http://127.0.0.1:${mgmt[$name]}/v5/ase/status"
	[ "$(cat "/proc/${pid[$name]}/comm")" = ase ] || { echo "pid ${pid[$name]} is not ase" >&2; exit 1; }
	local servers=""
	[ "$mode" = inline ] && servers=", \"servers\": [{\"host\": \"127.0.0.1\", \"port\": $backend}]"
	curl -sf -X POST "http://127.0.0.1:${mgmt[$name]}/v5/ase/api?api_id=api" "${admin[@]}" -H 'Content-Type: application/json' \
		-d "{\"api_metadata\": {\"url\": \"/\", \"cookie\": \"SID\", \"oauth2_access_token\": true$servers}}" >/dev/null
}
start_ase in_on inline true
start_ase in_off inline false
start_ase sb_on sideband true
start_ase sb_off sideband false

# load NAME SECONDS: one wrk run against NAME; wrk's output.
load() {
	case $1 in
		in_*) wrk -t1 -c64 -d${2}s -s "$LUA_DIR/inline.lua" "http://127.0.0.1:${port[$1]}/" ;;
		sb_*) wrk -t1 -c64 -d${2}s -s "$LUA_DIR/sideband.lua" "http://127.0.0.1:${port[$1]}/ase/request" ;;
	esac
}
# errors OUTPUT: wrk's non-2xx answers and socket errors, when any
errors() { grep -E 'Non-2xx|Socket errors' <<<"$1" | sed 's/^ *//' | paste -sd';' - || true; }

names=(in_on in_off sb_on sb_off)
for n in "${names[@]}"; do
	res=$(load $n 3)
	e=$(errors "$res")
	[ -z "$e" ] || { echo "warm-up of $n: $e" >&2; }
	: >"$work/rps_$n"; : >"$work/cpu_$n"
done

out="$RESULTS/abs-overhead-$(date -u +%Y%m%dT%H%M%SZ).txt"
{
	echo "load at start: $(uptime)"
	echo "$(nproc) cores; ASE $(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet HEAD -- 2>/dev/null || echo ' (work tree with changes)'); ASE_GOENV=${ASE_GOENV:-}"
	echo "== wrk -t1 -c64 -d${DUR}s, $ROUNDS alternating rounds (inline: req/s; sideband: calls/s, request and response calls)"
} | tee -a "$out"
order=(in_off in_on sb_off sb_on)
for r in $(seq 1 "$ROUNDS"); do
	for n in "${order[@]}"; do
		c0=$(ticks "${pid[$n]}")
		res=$(load $n "$DUR")
		c1=$(ticks "${pid[$n]}")
		v=$(rps "$res"); echo "$v" >>"$work/rps_$n"
		us_per $((c1 - c0)) "$(requests "$res")" >>"$work/cpu_$n"
		e=$(errors "$res")
		echo "round $r $n $v req/s, $(tail -1 "$work/cpu_$n") us CPU/request${e:+ ($e)}" | tee -a "$out"
	done
	order=("${order[@]:1}" "${order[0]}") # rotate who goes first
done

# tracked NAME: identities behavioural detection tracks in NAME, if the
# management API reports it.
tracked() {
	curl -s "http://127.0.0.1:${mgmt[$1]}/v5/ase/abs" "${admin[@]}" | python3 -c '
import json, sys
try:
    d = json.load(sys.stdin)
    print(d.get("tracked_clients", "n/a"), "tracked identities;", ", ".join(
        "api %s %s" % (a.get("api_id", "?"), "training" if a.get("training") else "enforcing") for a in d.get("apis", [])) or "no API state")
except Exception:
    print("n/a (no GET /v5/ase/abs)")' 2>/dev/null || echo "n/a"
}
m() { median <"$work/$1"; }
ratio() { awk "BEGIN {printf \"%.3f\", $1 / $2}"; }
verdict() { awk "BEGIN {print ($1 >= 0.90 ? \"PASS\" : \"FAIL\")}"; }
ri=$(ratio "$(m rps_in_on)" "$(m rps_in_off)"); rs=$(ratio "$(m rps_sb_on)" "$(m rps_sb_off)")
# paired ON OFF: the median of the rounds' ratios ON/OFF (each round runs
# both back to back: the machine's drift between rounds cancels out).
paired() { paste "$work/rps_$1" "$work/rps_$2" | awk '{printf "%.4f\n", $1 / $2}' | median; }
pi=$(paired in_on in_off); ps=$(paired sb_on sb_off)
{
	echo "load at end: $(uptime)"
	echo "== medians of $ROUNDS rounds of ${DUR}s"
	printf "%-22s %12s %18s\n" instance "req/s" "us CPU/request"
	for n in in_on in_off sb_on sb_off; do
		case $n in in_on) l="inline, abs on";; in_off) l="inline, abs off";; sb_on) l="sideband, abs on";; sb_off) l="sideband, abs off";; esac
		printf "%-22s %12s %18s\n" "$l" "$(m rps_$n)" "$(m cpu_$n)"
	done
	echo "inline   abs on / abs off: throughput $ri, per round (median) $pi ($(verdict "$(awk "BEGIN {print ($ri < $pi ? $ri : $pi)}")"), target >= 0.90 both ways), CPU per request $(ratio "$(m cpu_in_on)" "$(m cpu_in_off)")"
	echo "sideband abs on / abs off: throughput $rs, per round (median) $ps ($(verdict "$(awk "BEGIN {print ($rs < $ps ? $rs : $ps)}")"), target >= 0.90 both ways), CPU per call $(ratio "$(m cpu_sb_on)" "$(m cpu_sb_off)")"
	echo "detection state at the end: inline abs on: $(tracked in_on); sideband abs on: $(tracked sb_on)"
} | tee -a "$out"
echo "written to $out"
