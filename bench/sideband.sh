#!/usr/bin/env bash
# Sideband throughput, side by side in one run, with 1,000,000 deny-list
# entries loaded in ASE and sideband authentication on (a token per call):
#   A. POST /ase/request to ASE vs POST to a do-nothing handler on the same
#      HTTP stack (fasthttp): target ASE >= 0.8 of it (issue 4);
#   B. nginx auth_request -> ASE /ase/authz vs nginx auth_request -> a
#      do-nothing net/http server answering 200 with no body (issue 18,
#      point 1): target ASE >= 0.9 of its throughput, p99 <= 1.5x its p99,
#      ASE's CPU per request that of the do-nothing server. Both nginx are
#      docs/sideband-nginx.md's configuration as operators copy it (upstream
#      keepalive, proxy_http_version 1.1, Connection ""), only the addresses
#      and the token changed: the figure is the one operators will see.
# Alternating rounds (who goes first rotates); the summary reports medians.
# For B, each run also reports the CPU per request of the auth server (ASE or
# the do-nothing one) and of nginx, from /proc/<pid>/stat (utime+stime over
# the run, divided by the requests wrk counted), and the connections the
# auth server accepted per 1,000 requests.
# Usage: bench/sideband.sh [ROUNDS] [SECONDS]
source "$(dirname "$0")/lib.sh"
ROUNDS=${1:-5}; DUR=${2:-10}
need wrk wrk; need nginx nginx
build
work=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null; pkill -P $$ 2>/dev/null; rm -rf "$work"' EXIT

ase_port=$(free_port); mgmt_port=$(free_port); null_port=$(free_port); authz_null_port=$(free_port); backend_port=$(free_port)
gw_ase=$(free_port); gw_null=$(free_port)
cat >"$work/ase.conf" <<CONF
mode=sideband
http_ws_port=$ase_port
https_wss_port=0
management_port=$mgmt_port
data_dir=$work/data
enable_sideband_keepalive=true
enable_sideband_authentication=true
attack_list_memory=512MB
enable_access_log=true
CONF
setsid "$BENCH_DIR/bin/ase" serve --config "$work/ase.conf" 2>"$work/ase.log" &
ase_pid=$!
setsid "$BENCH_DIR/bin/nullserver" -addr 127.0.0.1:$null_port &
setsid "$BENCH_DIR/bin/nullserver" -stdlib -addr 127.0.0.1:$authz_null_port &
null_pid=$!
setsid "$BENCH_DIR/bin/nullserver" -stdlib -addr 127.0.0.1:$backend_port &
wait_http "http://127.0.0.1:$mgmt_port/v5/ase/status"
wait_http "http://127.0.0.1:$authz_null_port/_nullserver/connections"
for p in "$ase_pid:ase" "$null_pid:nullserver"; do
	[ "$(cat "/proc/${p%%:*}/comm")" = "${p#*:}" ] || { echo "pid ${p%%:*} is not ${p#*:}" >&2; exit 1; }
done
admin=(-H 'x-ase-access-key: admin' -H 'x-ase-secret-key: admin')
curl -s -X POST "http://127.0.0.1:$mgmt_port/v5/ase/api?api_id=shop" "${admin[@]}" \
	-H 'Content-Type: application/json' -d '{"api_metadata": {"url": "/shop", "cookie": "SID", "oauth2_access_token": true}}' >/dev/null
token=$(curl -s -X POST "http://127.0.0.1:$mgmt_port/v5/ase/sideband/token" "${admin[@]}" | python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])')
"$BENCH_DIR/bin/loadlists" -url "http://127.0.0.1:$mgmt_port" -n 1000000

cat >"$work/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["ASE-Token"] = "$token"
wrk.body = '{"source_ip": "198.51.100.7", "source_port": "40000", "method": "GET", "url": "/shop/items/42?x=1", "http_version": "1.1", "headers": [{"Host": "shop.example.com"}, {"User-Agent": "bench"}, {"Accept": "*/*"}, {"Cookie": "SID=clean-session"}, {"Authorization": "Bearer clean-token"}]}'
LUA

# guide_nginx AUTHZ_PORT LISTEN_PORT: docs/sideband-nginx.md's nginx block,
# each example address and the token replaced (each exactly once).
guide_nginx() {
	local conf
	conf=$(awk '/^```nginx$/ {on=1; next} /^```$/ {on=0} on' "$ROOT/docs/sideband-nginx.md")
	for r in "server 127.0.0.1:8080;|server 127.0.0.1:$1;" "server 127.0.0.1:9000;|server 127.0.0.1:$backend_port;" \
		"listen 80;|listen 127.0.0.1:$2;" "\"0123456789abcdef0123456789abcdef\"|\"$token\""; do
		local from=${r%%|*} to=${r#*|}
		[ "$(grep -cF -- "$from" <<<"$conf")" = 1 ] || { echo "docs/sideband-nginx.md: $from is not there once" >&2; exit 1; }
		conf=${conf/"$from"/"$to"}
	done
	echo "$conf"
}

mkdir -p "$work/gw_ase" "$work/gw_null"
declare -A ngx_pid
for side in ase null; do
	if [ $side = ase ]; then port=$gw_ase; authz=$ase_port; else port=$gw_null; authz=$authz_null_port; fi
	cat >"$work/gw_$side/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $work/gw_$side/nginx.pid;
error_log $work/gw_$side/error.log warn;
$( [ "$(id -u)" = 0 ] && echo "user root;" )
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $work/gw_$side/cb; proxy_temp_path $work/gw_$side/p;
    fastcgi_temp_path $work/gw_$side/f; uwsgi_temp_path $work/gw_$side/u; scgi_temp_path $work/gw_$side/s;
$(guide_nginx "$authz" "$port")
}
CONF
	start_nginx "$work/gw_$side" "$work/gw_$side/nginx.conf" >/dev/null
	wait_http "http://127.0.0.1:$port/shop/x"
	ngx_pid[$side]=$(cat "$work/gw_$side/nginx.pid")
done

# conns SIDE: connections the auth server of SIDE accepted so far.
conns() {
	if [ "$1" = ase ]; then
		curl -s "http://127.0.0.1:$mgmt_port/v5/ase/metrics" "${admin[@]}" | awk '$1 == "ase_sideband_connections_accepted_total" {print $2}'
	else
		curl -s "http://127.0.0.1:$authz_null_port/_nullserver/connections"
	fi
}
per_k() { awk "BEGIN {printf \"%.1f\n\", $1 * 1000 / $2}"; }          # per_k COUNT REQUESTS

out="$RESULTS/sideband-$(date -u +%Y%m%dT%H%M%SZ).txt"
echo "load at start: $(uptime)" | tee -a "$out"
for f in a_ase a_null b_ase b_null p99_ase p99_null cpu_ase cpu_null ngx_ase ngx_null conn_ase conn_null; do : >"$work/$f"; done
order=(a_null a_ase b_null b_ase)
for r in $(seq 1 "$ROUNDS"); do
	for t in "${order[@]}"; do
		case $t in
			a_ase) res=$(wrk -t1 -c32 -d${DUR}s -s "$work/post.lua" "http://127.0.0.1:$ase_port/ase/request") ;;
			a_null) res=$(wrk -t1 -c32 -d${DUR}s -s "$work/post.lua" "http://127.0.0.1:$null_port/ase/request") ;;
			b_*)
				side=${t#b_}
				if [ $side = ase ]; then port=$gw_ase; pid=$ase_pid; else port=$gw_null; pid=$null_pid; fi
				c0=$(conns $side); s0=$(ticks $pid); n0=$(ticks "${ngx_pid[$side]}")
				res=$(wrk -t1 -c32 -d${DUR}s --latency -H 'Cookie: SID=clean-session' -H 'Authorization: Bearer clean-token' "http://127.0.0.1:$port/shop/items/42")
				s1=$(ticks $pid); n1=$(ticks "${ngx_pid[$side]}"); c1=$(conns $side)
				n=$(requests "$res")
				p99 "$res" >>"$work/p99_$side"
				us_per $((s1 - s0)) "$n" >>"$work/cpu_$side"
				us_per $((n1 - n0)) "$n" >>"$work/ngx_$side"
				per_k "$(awk "BEGIN {print $c1 - $c0}")" "$n" >>"$work/conn_$side"
				;;
		esac
		v=$(rps "$res"); echo "$v" >>"$work/$t"
		case $t in
			b_*) echo "round $r $t $v req/s, p99 $(tail -1 "$work/p99_$side") ms, CPU/request: $(tail -1 "$work/cpu_$side") us auth server, $(tail -1 "$work/ngx_$side") us nginx; $(tail -1 "$work/conn_$side") connections per 1,000 requests" | tee -a "$out" ;;
			*) echo "round $r $t $v req/s" | tee -a "$out" ;;
		esac
	done
	order=("${order[@]:1}" "${order[0]}") # rotate who goes first
done
m() { median <"$work/$1"; }
ratio() { awk "BEGIN {printf \"%.2f\", $1 / $2}"; }
{
	echo "load at end: $(uptime)"
	echo "medians of $ROUNDS rounds of ${DUR}s, wrk -t1 -c32, 1,000,000 deny-list entries loaded, sideband authentication on"
	echo "A /ase/request: ASE $(m a_ase) req/s, do-nothing fasthttp $(m a_null) req/s, ratio $(ratio "$(m a_ase)" "$(m a_null)") (target >= 0.80)"
	echo "B nginx auth_request (docs/sideband-nginx.md): ->ASE $(m b_ase) req/s, ->do-nothing net/http $(m b_null) req/s, ratio $(ratio "$(m b_ase)" "$(m b_null)") (target >= 0.90)"
	echo "  p99: ->ASE $(m p99_ase) ms, ->do-nothing $(m p99_null) ms, ratio $(ratio "$(m p99_ase)" "$(m p99_null)") (target <= 1.5)"
	echo "  CPU per request: ASE $(m cpu_ase) us, do-nothing server $(m cpu_null) us; nginx $(m ngx_ase) us (->ASE), $(m ngx_null) us (->do-nothing)"
	echo "  connections accepted per 1,000 requests: ASE $(m conn_ase), do-nothing server $(m conn_null)"
} | tee -a "$out"
