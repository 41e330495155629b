#!/usr/bin/env bash
# Flow-control accuracy through the real binary (issue 6): a client sends
# at twice its client_spike_threshold for 10 seconds; it must be admitted
# at the threshold within 5%. Repeated for several thresholds; the
# connection-quota accuracy (no server ever over its quota, arrival order
# kept) is shown by e2e TestServerConnectionQuotaAndQueue.
# Usage: bench/flow.sh [SECONDS]
source "$(dirname "$0")/lib.sh"
DUR=${1:-10}
need_vegeta
build
work=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
backend=$(free_port); ase=$(free_port); mgmt=$(free_port)
"$BENCH_DIR/bin/nullserver" -addr 127.0.0.1:$backend &
printf 'mode=inline\nhttp_ws_port=%s\nhttps_wss_port=0\nmanagement_port=%s\ndata_dir=%s/data\n' $ase $mgmt "$work" >"$work/ase.conf"
"$BENCH_DIR/bin/ase" serve --config "$work/ase.conf" 2>"$work/ase.log" &
wait_http "http://127.0.0.1:$mgmt/v5/ase/status"
out="$RESULTS/flow-$(date -u +%Y%m%dT%H%M%SZ).txt"
for threshold in 50/second 500/second 2000/second 6000/minute; do
	n=${threshold%/*}; unit=${threshold#*/}
	case $unit in second) per=$n;; minute) per=$((n/60));; hour) per=$((n/3600));; esac
	id="t$RANDOM"
	curl -s -X POST "http://127.0.0.1:$mgmt/v5/ase/api?api_id=$id" -H 'x-ase-access-key: admin' -H 'x-ase-secret-key: admin' \
		-H 'Content-Type: application/json' -d "{\"api_metadata\": {\"url\": \"/$id\", \"flow_control\": {\"client_spike_threshold\": \"$threshold\"},
		\"servers\": [{\"host\": \"127.0.0.1\", \"port\": $backend}]}}" >/dev/null
	rate=$((2*per))
	codes=$(echo "GET http://127.0.0.1:$ase/$id/x" | "$BENCH_DIR/bin/vegeta" attack -rate=$rate -duration=${DUR}s -keepalive=true \
		| "$BENCH_DIR/bin/vegeta" report -type=json | python3 -c 'import json,sys; d=json.load(sys.stdin)["status_codes"]; print(d.get("200",0), d.get("429",0))')
	ok=${codes% *}; limited=${codes#* }
	want=$((per*DUR))
	echo "threshold $threshold: sent $((rate*DUR)) at ${rate}/s for ${DUR}s, admitted $ok (want $want, $(awk "BEGIN {printf \"%+.1f%%\", ($ok-$want)*100/$want}")), 429: $limited" | tee -a "$out"
done
