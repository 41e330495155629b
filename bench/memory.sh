#!/usr/bin/env bash
# Memory and time of bulk imports through the binary (issue 18, point 4):
# 1,000,000 deny-list entries loaded through the management API into a
# fresh ASE, the way an operator loads threat feeds, then a restart with
# them. Two loads:
#   json   10 calls of 100,000 (JSON arrays: IPv4 addresses, tokens and
#          cookies; bench/loadlists)
#   text   one call of 1,000,000 (a plain-text feed of IPv4 addresses, 14 MB)
# For each: the load's time, the peak RSS (VmHWM) with its anonymous and
# file-backed parts at the peak (sampled every 50 ms: the file part is the
# store's file mapped by bbolt), RSS after the load, the restart's time
# (until the management API answers with every entry loaded) and its RSS,
# and status's "attack list memory used" against what the heap profile
# (ASE_MEMPROFILE, written at the stop after a collection) says the lists'
# own allocations hold. Targets: peak under 150 MiB, load under 5 s,
# restart under 3 s, "used" within 10% of the heap profile's figure.
# BASELINE=path also runs that build of ase (e.g. an earlier commit's), in
# alternating rounds; a build before streamed imports takes at most 100,000
# entries a call (its text load is skipped) and writes no heap profile.
# Usage: [BASELINE=path] bench/memory.sh [ROUNDS]
source "$(dirname "$0")/lib.sh"
ROUNDS=${1:-3}
build
work=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null; pkill -P $$ 2>/dev/null; rm -rf "$work"' EXIT
out="$RESULTS/memory-$(date -u +%Y%m%dT%H%M%SZ).txt"
admin=(-H 'x-ase-access-key: admin' -H 'x-ase-secret-key: admin')
builds=(new)
declare -A binof=([new]="$BENCH_DIR/bin/ase")
if [ -n "${BASELINE:-}" ]; then builds=(base new); binof[base]=$BASELINE; fi

kib() { awk -v k="$1" '/^'"$1"':/ {print $2}' "/proc/$2/status"; }
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k/1024}'; }

# start BIN DIR: ASE on loopback ports with its data in DIR; sets pid, mgmt.
start() {
	mgmt=$(free_port)
	cat >"$2/ase.conf" <<CONF
mode=inline
listen_address=127.0.0.1
management_address=127.0.0.1
http_ws_port=$(free_port)
https_wss_port=0
management_port=$mgmt
data_dir=$2/data
attack_list_memory=1GB
CONF
	ASE_MEMPROFILE="$2/heap.prof" setsid "$1" serve --config "$2/ase.conf" >>"$2/ase.log" 2>&1 &
	pid=$!
}

# ready: wait (polling every 10 ms) until the management API answers.
ready() {
	for _ in $(seq 1 3000); do
		curl -s -o /dev/null "http://127.0.0.1:$mgmt/v5/ase/status" && return 0
		sleep 0.01
	done
	echo "ASE did not start" >&2; return 1
}

stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; }

# round BUILD LOAD: one load and restart; appends a line to $work/LOAD.BUILD.
round() {
	local b=$1 load=$2 dir="$work/$1-$2" args
	rm -rf "$dir"; mkdir -p "$dir"
	case $load in
	json) args=(-n 1000000) ;;
	text) args=(-n 1000000 -per 1000000 -format text) ;;
	esac
	start "${binof[$b]}" "$dir"; ready
	# The peak's parts: RssAnon and RssFile sampled while loading.
	( while kill -0 "$pid" 2>/dev/null; do
		echo "$(kib RssAnon "$pid") $(kib RssFile "$pid")"; sleep 0.05
	done ) >"$dir/samples" 2>/dev/null &
	local sampler=$!
	local secs
	secs=$("$BENCH_DIR/bin/loadlists" -url "http://127.0.0.1:$mgmt" "${args[@]}" | awk '{print $(NF)}' | tr -d s)
	kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null || true
	local hwm rss peak used
	hwm=$(kib VmHWM "$pid"); rss=$(kib VmRSS "$pid")
	peak=$(awk '{t=$1+$2; if (t>m) {m=t; a=$1; f=$2}} END {printf "%.1f %.1f", a/1024, f/1024}' "$dir/samples")
	used=$(curl -s "${admin[@]}" "http://127.0.0.1:$mgmt/v5/ase/status" | python3 -c 'import json,sys; print(json.load(sys.stdin)["attack_list_memory_bytes"]["used"])')
	stop
	local heap="-"
	if [ -s "$dir/heap.prof" ]; then
		# What the lists' own allocations hold (bbolt's, made during their
		# commits, left out).
		heap=$(cd "$ROOT" && go tool pprof -sample_index=inuse_space -top -nodecount=100000 -unit=B \
			-focus='ase/internal/lists\.' -ignore='bbolt' "${binof[$b]}" "$dir/heap.prof" 2>/dev/null |
			awk '/Showing nodes accounting for/ {sub(/B,/, "", $5); print $5}')
	fi
	local t0 t1 rrss
	t0=$(date +%s.%N); start "${binof[$b]}" "$dir"; ready; t1=$(date +%s.%N)
	rrss=$(kib VmRSS "$pid")
	stop
	echo "$secs $(mib "$hwm") $peak $(mib "$rss") $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b-a}') $(mib "$rrss") $used $heap" >>"$work/$load.$b"
	printf '%-5s %-4s load %6.2f s  peak %6.1f MiB (anon %s, file %s)  after %6.1f MiB  restart %s s, %s MiB  used %s B, heap profile %s B\n' \
		"$b" "$load" "$secs" "$(mib "$hwm")" $peak "$(mib "$rss")" "$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b-a}')" "$(mib "$rrss")" "$used" "$heap" | tee -a "$out"
}

echo "== bench/memory.sh, $ROUNDS alternating rounds; load at the start: $(uptime | sed 's/.*load average: //')" | tee -a "$out"
for r in $(seq 1 "$ROUNDS"); do
	for load in json text; do
		for b in "${builds[@]}"; do
			if [ "$b" = base ] && [ "$load" = text ]; then continue; fi
			round "$b" "$load"
		done
	done
done
echo "== load at the end: $(uptime | sed 's/.*load average: //')" | tee -a "$out"

col() { awk -v c="$1" '{print $c}' "$2" | median; }
echo "== medians" | tee -a "$out"
for load in json text; do
	for b in "${builds[@]}"; do
		f="$work/$load.$b"; [ -f "$f" ] || continue
		used=$(col 8 "$f"); heap=$(col 9 "$f")
		grep -q -- ' -$' "$f" && heap="-"
		ratio="-"
		[ "$heap" != "-" ] && [ -n "$heap" ] && ratio=$(awk -v u="$used" -v h="$heap" 'BEGIN {printf "%+.1f%%", 100*(u-h)/h}')
		printf '%-5s %-4s load %s s, peak %s MiB (anon %s, file %s), after %s MiB, restart %s s (%s MiB), used %s MiB vs heap profile %s MiB (%s)\n' \
			"$b" "$load" "$(col 1 "$f")" "$(col 2 "$f")" "$(col 3 "$f")" "$(col 4 "$f")" "$(col 5 "$f")" "$(col 6 "$f")" "$(col 7 "$f")" \
			"$(awk -v u="$used" 'BEGIN {printf "%.2f", u/1048576}')" "$( [ "$heap" = "-" ] && echo - || awk -v h="$heap" 'BEGIN {printf "%.2f", h/1048576}')" "$ratio" | tee -a "$out"
	done
done
