#!/usr/bin/env bash
# Sideband throughput, side by side in one run (issue 4):
#   A. POST /ase/request to ASE vs POST to a do-nothing handler on the same
#      HTTP stack (fasthttp): target ASE >= 0.8 of it;
#   B. nginx auth_request -> ASE /ase/authz vs nginx auth_request -> a
#      do-nothing 200 server: target ASE >= 0.9 of it;
# with 1,000,000 deny-list entries loaded in ASE. Alternating rounds; the
# summary reports medians. Usage: bench/sideband.sh [ROUNDS] [SECONDS]
source "$(dirname "$0")/lib.sh"
ROUNDS=${1:-5}; DUR=${2:-10}
need wrk wrk; need nginx nginx
build
work=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null; pkill -P $$ 2>/dev/null; rm -rf "$work"' EXIT

ase_port=$(free_port); mgmt_port=$(free_port); null_port=$(free_port); backend_port=$(free_port)
gw_ase=$(free_port); gw_null=$(free_port)
cat >"$work/ase.conf" <<CONF
mode=sideband
http_ws_port=$ase_port
https_wss_port=0
management_port=$mgmt_port
data_dir=$work/data
enable_sideband_keepalive=true
attack_list_memory=512MB
enable_access_log=true
CONF
setsid "$BENCH_DIR/bin/ase" serve --config "$work/ase.conf" 2>"$work/ase.log" &
setsid "$BENCH_DIR/bin/nullserver" -addr 127.0.0.1:$null_port &
setsid "$BENCH_DIR/bin/nullserver" -stdlib -addr 127.0.0.1:$backend_port &
wait_http "http://127.0.0.1:$mgmt_port/v5/ase/status"
curl -s -X POST "http://127.0.0.1:$mgmt_port/v5/ase/api?api_id=shop" -H 'x-ase-access-key: admin' -H 'x-ase-secret-key: admin' \
	-H 'Content-Type: application/json' -d '{"api_metadata": {"url": "/shop", "cookie": "SID", "oauth2_access_token": true}}' >/dev/null
"$BENCH_DIR/bin/loadlists" -url "http://127.0.0.1:$mgmt_port" -n 1000000

cat >"$work/post.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"source_ip": "198.51.100.7", "source_port": "40000", "method": "GET", "url": "/shop/items/42?x=1", "http_version": "1.1", "headers": [{"Host": "shop.example.com"}, {"User-Agent": "bench"}, {"Accept": "*/*"}, {"Cookie": "SID=clean-session"}, {"Authorization": "Bearer clean-token"}]}'
LUA

mkdir -p "$work/gw_ase" "$work/gw_null"
for side in ase null; do
	if [ $side = ase ]; then port=$gw_ase; authz="127.0.0.1:$ase_port"; else port=$gw_null; authz="127.0.0.1:$null_port"; fi
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
    upstream authz { server $authz; keepalive 64; }
    upstream backend { server 127.0.0.1:$backend_port; keepalive 64; }
    server {
        listen 127.0.0.1:$port;
        location / {
            auth_request /_authz;
            proxy_http_version 1.1; proxy_set_header Connection "";
            proxy_pass http://backend;
        }
        location = /_authz {
            internal;
            proxy_pass http://authz/ase/authz;
            proxy_http_version 1.1; proxy_set_header Connection "";
            proxy_pass_request_body off; proxy_set_header Content-Length "";
            proxy_set_header X-Original-URI \$request_uri;
            proxy_set_header X-Original-Method \$request_method;
            proxy_set_header X-Real-IP \$remote_addr;
        }
    }
}
CONF
	start_nginx "$work/gw_$side" "$work/gw_$side/nginx.conf" >/dev/null
	wait_http "http://127.0.0.1:$port/shop/x"
done

out="$RESULTS/sideband-$(date -u +%Y%m%dT%H%M%SZ).txt"
: >"$work/a_ase"; : >"$work/a_null"; : >"$work/b_ase"; : >"$work/b_null"
for r in $(seq 1 "$ROUNDS"); do
	for t in a_null a_ase b_null b_ase; do
		case $t in
			a_ase) res=$(wrk -t1 -c32 -d${DUR}s -s "$work/post.lua" "http://127.0.0.1:$ase_port/ase/request") ;;
			a_null) res=$(wrk -t1 -c32 -d${DUR}s -s "$work/post.lua" "http://127.0.0.1:$null_port/ase/request") ;;
			b_ase) res=$(wrk -t1 -c32 -d${DUR}s "http://127.0.0.1:$gw_ase/shop/items/42") ;;
			b_null) res=$(wrk -t1 -c32 -d${DUR}s "http://127.0.0.1:$gw_null/shop/items/42") ;;
		esac
		v=$(rps "$res"); echo "$v" >>"$work/$t"
		echo "round $r $t $v req/s" | tee -a "$out"
	done
done
a_ase=$(median <"$work/a_ase"); a_null=$(median <"$work/a_null"); b_ase=$(median <"$work/b_ase"); b_null=$(median <"$work/b_null")
{
	echo "medians of $ROUNDS rounds of ${DUR}s, wrk -t1 -c32, 1,000,000 deny-list entries loaded"
	echo "A /ase/request: ASE $a_ase req/s, do-nothing fasthttp $a_null req/s, ratio $(awk "BEGIN {printf \"%.2f\", $a_ase/$a_null}") (target >= 0.80)"
	echo "B nginx auth_request: ->ASE $b_ase req/s, ->do-nothing $b_null req/s, ratio $(awk "BEGIN {printf \"%.2f\", $b_ase/$b_null}") (target >= 0.90)"
} | tee -a "$out"
