#!/usr/bin/env bash
# Inline throughput and latency, side by side in one run (issue 5): the same
# do-nothing backend reached directly, through nginx (OS package,
# proxy_pass with upstream keep-alive, as many workers as ASE's cores) and
# through ASE inline with 1,000,000 deny-list entries loaded and a client
# spike threshold configured but not reached. Both proxies buffer their
# access logs. Target (issue 18, point 2): ASE >= 1.2x nginx's throughput, ASE's added
# p99 latency at half load no more than nginx's, and ASE's CPU per request
# below nginx's (each proxy's own processes, from /proc).
# Usage: bench/inline.sh [ROUNDS] [SECONDS]
source "$(dirname "$0")/lib.sh"
ROUNDS=${1:-5}; DUR=${2:-10}
need wrk wrk; need nginx nginx; need_vegeta
build
work=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null; pkill -P $$ 2>/dev/null; [ -f "$work/nginx/nginx.pid" ] && kill $(cat "$work/nginx/nginx.pid") 2>/dev/null; rm -rf "$work"' EXIT
cores=$(nproc)

backend=$(free_port); ase=$(free_port); mgmt=$(free_port); ngx=$(free_port)
setsid "$BENCH_DIR/bin/nullserver" -addr 127.0.0.1:$backend &
nullpid=$!

cat >"$work/ase.conf" <<CONF
mode=inline
http_ws_port=$ase
https_wss_port=0
management_port=$mgmt
data_dir=$work/data
attack_list_memory=512MB
enable_access_log=true
CONF
# ASE_GOENV="GOGC=200 ..." runs ASE (only) with those Go runtime settings.
env ${ASE_GOENV:-} setsid "$BENCH_DIR/bin/ase" serve --config "$work/ase.conf" 2>"$work/ase.log" &
asepid=$!
wait_http "http://127.0.0.1:$mgmt/v5/ase/status"
curl -s -X POST "http://127.0.0.1:$mgmt/v5/ase/api?api_id=api" -H 'x-ase-access-key: admin' -H 'x-ase-secret-key: admin' \
	-H 'Content-Type: application/json' -d "{\"api_metadata\": {\"url\": \"/\", \"cookie\": \"SID\", \"oauth2_access_token\": true,
	\"flow_control\": {\"client_spike_threshold\": \"100000000/second\"},
	\"servers\": [{\"host\": \"127.0.0.1\", \"port\": $backend}]}}" >/dev/null
"$BENCH_DIR/bin/loadlists" -url "http://127.0.0.1:$mgmt" -n 1000000

nginx_proxy_conf "$work/nginx" "$ngx" "$backend"
start_nginx "$work/nginx" "$work/nginx/nginx.conf" >/dev/null
wait_http "http://127.0.0.1:$ngx/"
wait_http "http://127.0.0.1:$ase/"

url() { case $1 in direct) echo "http://127.0.0.1:$backend/api/items/42";; nginx) echo "http://127.0.0.1:$ngx/api/items/42";; ase) echo "http://127.0.0.1:$ase/api/items/42";; esac; }
out="$RESULTS/inline-$(date -u +%Y%m%dT%H%M%SZ).txt"
for t in direct nginx ase; do
	for f in rps p99 cpu user sys backend wrk; do : >"$work/${f}_$t"; done
done
ngxpid=$(cat "$work/nginx/nginx.pid")
pid_of() { case $1 in nginx) echo "$ngxpid";; ase) echo "$asepid";; esac; }
echo "== throughput: wrk -t1 -c64 -d${DUR}s, $ROUNDS alternating rounds" | tee -a "$out"
order=(direct nginx ase)
for r in $(seq 1 "$ROUNDS"); do
	for t in "${order[@]}"; do
		[ $t = direct ] || read -r u0 s0 < <(ticks_split "$(pid_of $t)")
		b0=$(ticks "$nullpid")
		res=$(with_cpu "$work/wrkcpu" wrk -t1 -c64 -d${DUR}s -H 'Cookie: SID=clean' -H 'Authorization: Bearer clean-token' "$(url $t)")
		n=$(requests "$res")
		v=$(rps "$res"); echo "$v" >>"$work/rps_$t"
		us_per $(($(ticks "$nullpid") - b0)) "$n" >>"$work/backend_$t"
		awk -v c="$(cat "$work/wrkcpu")" -v n="$n" 'BEGIN {printf "%.1f\n", c * 1e6 / n}' >>"$work/wrk_$t"
		cpu=""
		if [ $t != direct ]; then
			read -r u1 s1 < <(ticks_split "$(pid_of $t)")
			us_per $((u1 - u0 + s1 - s0)) "$n" >>"$work/cpu_$t"
			us_per $((u1 - u0)) "$n" >>"$work/user_$t"
			us_per $((s1 - s0)) "$n" >>"$work/sys_$t"
			cpu=", $(tail -1 "$work/cpu_$t") us CPU/request ($(tail -1 "$work/user_$t") user, $(tail -1 "$work/sys_$t") kernel)"
		fi
		echo "round $r $t $v req/s$cpu; backend $(tail -1 "$work/backend_$t") us, wrk $(tail -1 "$work/wrk_$t") us" | tee -a "$out"
	done
	order=("${order[@]:1}" "${order[0]}") # rotate who goes first
done
direct=$(median <"$work/rps_direct"); nginx=$(median <"$work/rps_nginx"); asev=$(median <"$work/rps_ase")
rate=$(awk "BEGIN {r=($nginx<$asev?$nginx:$asev)/2; printf \"%d\", r}")
echo "== latency at half load: vegeta at $rate req/s for ${DUR}s, $ROUNDS alternating rounds" | tee -a "$out"
for r in $(seq 1 "$ROUNDS"); do
	for t in direct nginx ase; do
		p=$(echo "GET $(url $t)" | "$BENCH_DIR/bin/vegeta" attack -rate=$rate -duration=${DUR}s -keepalive=true -max-workers=256 \
			-header 'Cookie: SID=clean' -header 'Authorization: Bearer clean-token' | "$BENCH_DIR/bin/vegeta" report -type=json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["latencies"]["99th"]/1e6, d["success"])')
		echo "${p%% *}" >>"$work/p99_$t"
		echo "round $r $t p99 ${p%% *} ms (success ratio ${p##* })" | tee -a "$out"
	done
done
pd=$(median <"$work/p99_direct"); pn=$(median <"$work/p99_nginx"); pa=$(median <"$work/p99_ase")
{
	echo "== medians (1,000,000 deny-list entries in ASE; $cores cores; backend: do-nothing fasthttp server)"
	echo "throughput: direct $direct req/s, nginx $nginx req/s, ASE $asev req/s; ASE/nginx $(awk "BEGIN {printf \"%.2f\", $asev/$nginx}") (target >= 1.20)"
	echo "CPU per request (the proxy's own, workers included): nginx $(median <"$work/cpu_nginx") us, ASE $(median <"$work/cpu_ase") us (target: ASE below nginx)"
	# Where the two cores go per request, and what that allows: the cores
	# are saturated, so throughput follows the CPU every party spends on a
	# request. The ceiling is the throughput ASE would reach, the others
	# spending what they did beside it, if its own user-space CPU were zero
	# (only its kernel time left: the system calls and TCP over loopback).
	m() { median <"$work/$1"; }
	echo "CPU per request, medians: nginx $(m user_nginx) user + $(m sys_nginx) kernel, backend $(m backend_nginx), wrk $(m wrk_nginx); ASE $(m user_ase) user + $(m sys_ase) kernel, backend $(m backend_ase), wrk $(m wrk_ase) (us)"
	awk -v n="$(m user_nginx)" -v ns="$(m sys_nginx)" -v nb="$(m backend_nginx)" -v nw="$(m wrk_nginx)" \
		-v as="$(m sys_ase)" -v ab="$(m backend_ase)" -v aw="$(m wrk_ase)" \
		'BEGIN {printf "ceiling: with no user-space CPU at all, ASE would reach %.2fx nginx (all parties %.1f us per request through nginx, %.1f us through ASE with only its kernel time)\n", (n+ns+nb+nw)/(as+ab+aw), n+ns+nb+nw, as+ab+aw}'
	echo "p99 at $rate req/s: direct $pd ms, nginx $pn ms (+$(awk "BEGIN {printf \"%.3f\", $pn-$pd}")), ASE $pa ms (+$(awk "BEGIN {printf \"%.3f\", $pa-$pd}")) (target: ASE's added p99 <= nginx's)"
} | tee -a "$out"
