#!/usr/bin/env bash
# Inline over TLS, side by side in one run (issue 18, point 3): the same
# do-nothing backend through nginx (OS package, `listen ... ssl`,
# proxy_pass with upstream keep-alive, `proxy_http_version 1.1`,
# `Connection ""`, as many workers as ASE's cores) and through ASE's
# https_wss_port, both with the same certificate (ECDSA P-256, made here)
# and the same keep-alive clients. Then a 1 GiB download through each over
# TLS: its speed, and ASE's peak RSS before and after it (a streamed
# response holds memory flat; a buffered one grows by the body).
# Target: ASE >= 1.0x nginx's TLS throughput; ASE's peak RSS grows by less
# than 64 MiB during the 1 GiB download.
# Usage: bench/stream.sh [ROUNDS] [SECONDS]
source "$(dirname "$0")/lib.sh"
ROUNDS=${1:-5}; DUR=${2:-10}
need wrk wrk; need nginx nginx; need openssl openssl; need curl curl
build
work=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null; pkill -P $$ 2>/dev/null; [ -f "$work/nginx/nginx.pid" ] && kill $(cat "$work/nginx/nginx.pid") 2>/dev/null; rm -rf "$work"' EXIT
cores=$(nproc)

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=127.0.0.1 \
	-addext subjectAltName=IP:127.0.0.1 -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null

backend=$(free_port); plain=$(free_port); tls=$(free_port); mgmt=$(free_port); ngx=$(free_port)
setsid "$BENCH_DIR/bin/nullserver" -addr 127.0.0.1:$backend &

cat >"$work/ase.conf" <<CONF
mode=inline
http_ws_port=$plain
https_wss_port=$tls
tls_cert_file=$work/cert.pem
tls_key_file=$work/key.pem
management_port=$mgmt
data_dir=$work/data
enable_access_log=true
CONF
env ${ASE_GOENV:-} setsid "$BENCH_DIR/bin/ase" serve --config "$work/ase.conf" 2>"$work/ase.log" &
asepid=$!
wait_http "http://127.0.0.1:$mgmt/v5/ase/status"
curl -s -X POST "http://127.0.0.1:$mgmt/v5/ase/api?api_id=api" -H 'x-ase-access-key: admin' -H 'x-ase-secret-key: admin' \
	-H 'Content-Type: application/json' -d "{\"api_metadata\": {\"url\": \"/\", \"cookie\": \"SID\", \"oauth2_access_token\": true,
	\"servers\": [{\"host\": \"127.0.0.1\", \"port\": $backend}]}}" >/dev/null

nginx_proxy_conf "$work/nginx" "$ngx" "$backend" "$work/cert.pem" "$work/key.pem"
start_nginx "$work/nginx" "$work/nginx/nginx.conf" >/dev/null
for u in "https://127.0.0.1:$ngx/" "https://127.0.0.1:$tls/"; do
	for _ in $(seq 1 200); do curl -sk -o /dev/null "$u" && break; sleep 0.05; done
done

url() { case $1 in nginx) echo "https://127.0.0.1:$ngx$2";; ase) echo "https://127.0.0.1:$tls$2";; esac; }
out="$RESULTS/stream-$(date -u +%Y%m%dT%H%M%SZ).txt"
for t in nginx ase; do : >"$work/rps_$t"; : >"$work/mbs_$t"; : >"$work/cpu_$t"; done
ngxpid=$(cat "$work/nginx/nginx.pid")
pid_of() { case $1 in nginx) echo "$ngxpid";; ase) echo "$asepid";; esac; }
echo "== TLS throughput: wrk -t1 -c64 -d${DUR}s (keep-alive), $ROUNDS alternating rounds" | tee -a "$out"
order=(nginx ase)
for r in $(seq 1 "$ROUNDS"); do
	for t in "${order[@]}"; do
		c0=$(ticks "$(pid_of $t)")
		res=$(wrk -t1 -c64 -d${DUR}s -H 'Cookie: SID=clean' -H 'Authorization: Bearer clean-token' "$(url $t /api/items/42)")
		v=$(rps "$res"); echo "$v" >>"$work/rps_$t"
		us_per $(($(ticks "$(pid_of $t)") - c0)) "$(requests "$res")" >>"$work/cpu_$t"
		echo "round $r $t $v req/s, $(tail -1 "$work/cpu_$t") us CPU/request" | tee -a "$out"
	done
	order=("${order[@]:1}" "${order[0]}")
done

hwm() { awk '/VmHWM/ {print int($2/1024)}' /proc/$asepid/status; }
rss() { awk '/VmRSS/ {print int($2/1024)}' /proc/$asepid/status; }
GiB=$((1 << 30))
curl -sk -o /dev/null "$(url ase "/_nullserver/bytes?n=$((1 << 20))")" # every buffer and pool exists
before=$(hwm)
echo "== 1 GiB downloads over TLS, $ROUNDS alternating rounds (ASE's peak RSS before: $before MiB)" | tee -a "$out"
for r in $(seq 1 "$ROUNDS"); do
	for t in nginx ase; do
		res=$(curl -sk -o /dev/null -w '%{http_code} %{size_download} %{speed_download}' "$(url $t "/_nullserver/bytes?n=$GiB")")
		read -r code size speed <<<"$res"
		[ "$code" = 200 ] && [ "$size" = "$GiB" ] || { echo "$t: HTTP $code, $size of $GiB bytes" | tee -a "$out"; exit 1; }
		mbs=$(awk "BEGIN {printf \"%.0f\", $speed/1048576}"); echo "$mbs" >>"$work/mbs_$t"
		echo "round $r $t $mbs MiB/s$( [ $t = ase ] && echo ", ASE peak RSS $(hwm) MiB, RSS now $(rss) MiB")" | tee -a "$out"
	done
done
after=$(hwm)
nginx=$(median <"$work/rps_nginx"); asev=$(median <"$work/rps_ase")
mn=$(median <"$work/mbs_nginx"); ma=$(median <"$work/mbs_ase")
{
	echo "== medians ($cores cores; backend: do-nothing fasthttp server; ECDSA P-256, TLS 1.3)"
	echo "TLS throughput: nginx $nginx req/s, ASE $asev req/s; ASE/nginx $(awk "BEGIN {printf \"%.2f\", $asev/$nginx}") (target >= 1.00)"
	echo "TLS CPU per request (the proxy's own, workers included): nginx $(median <"$work/cpu_nginx") us, ASE $(median <"$work/cpu_ase") us"
	echo "1 GiB over TLS: nginx $mn MiB/s, ASE $ma MiB/s; ASE's peak RSS $before -> $after MiB (+$((after - before)); target < 64)"
} | tee -a "$out"
