#!/usr/bin/env bash
# Cluster figures (issue 15), on loopback: one etcd, three ase nodes.
#  1. propagation: 1,000 deny entries made one at a time on node A, each
#     timed from A's 200 to the first request node C refuses (p50, p99);
#  2. flow control across the cluster: a client at twice its
#     client_spike_threshold (100/second), its requests spread round-robin,
#     then 70/20/10, over the three nodes: the admitted rate;
#  3. join: with JOIN_ENTRIES (default 1,000,000) list entries in etcd, the
#     time a fourth node with an empty data_dir takes from its start to
#     serving them.
# Usage: bench/cluster.sh [ENTRIES] [JOIN_ENTRIES]
source "$(dirname "$0")/lib.sh"
N=${1:-1000}; JOIN=${2:-1000000}
need etcd etcd-server
build
(cd "$ROOT" && go build -o "$BENCH_DIR/bin/clusterprop" ./bench/clusterprop && go build -o "$BENCH_DIR/bin/clusterflow" ./bench/clusterflow)
work=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null; pkill -P $$ 2>/dev/null; rm -rf "$work"' EXIT
etcd_port=$(free_port); peer_port=$(free_port); backend=$(free_port)
setsid etcd --name bench --data-dir "$work/etcd" --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
	--listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" --initial-cluster "bench=http://127.0.0.1:$peer_port" \
	--quota-backend-bytes 8589934592 >"$work/etcd.log" 2>&1 &
wait_http "http://127.0.0.1:$etcd_port/health"
setsid "$BENCH_DIR/bin/nullserver" -addr 127.0.0.1:$backend &

node() { # node NAME: start a node, print its data and management ports
	local data mgmt; data=$(free_port); mgmt=$(free_port)
	cat >"$work/$1.conf" <<CONF
mode=inline
http_ws_port=$data
https_wss_port=0
management_port=$mgmt
data_dir=$work/$1
enable_xff=true
attack_list_memory=1GB
enable_cluster=true
cluster_id=bench
etcd_endpoints=http://127.0.0.1:$etcd_port
CONF
	setsid "$BENCH_DIR/bin/ase" serve --config "$work/$1.conf" >"$work/$1.log" 2>&1 &
	wait_http "http://127.0.0.1:$mgmt/v5/ase/status"
	echo "$data $mgmt"
}
read -r dataA mgmtA < <(node a)
read -r dataB _ < <(node b)
read -r dataC _ < <(node c)
curl -s -X POST "http://127.0.0.1:$mgmtA/v5/ase/api?api_id=api" -H 'x-ase-access-key: admin' -H 'x-ase-secret-key: admin' \
	-H 'Content-Type: application/json' -d "{\"api_metadata\": {\"url\": \"/\", \"servers\": [{\"host\": \"127.0.0.1\", \"port\": $backend}]}}" >/dev/null

echo "== propagation ($N entries, one at a time, A -> C)"
"$BENCH_DIR/bin/clusterprop" -a "http://127.0.0.1:$mgmtA" -c "http://127.0.0.1:$dataC" -n "$N"

echo "== flow control across the cluster (client at 2x its threshold)"
curl -s -X POST "http://127.0.0.1:$mgmtA/v5/ase/api?api_id=limited" -H 'x-ase-access-key: admin' -H 'x-ase-secret-key: admin' \
	-H 'Content-Type: application/json' -d "{\"api_metadata\": {\"url\": \"/limited\", \"flow_control\": {\"client_spike_threshold\": \"100/second\"}, \"servers\": [{\"host\": \"127.0.0.1\", \"port\": $backend}]}}" >/dev/null
for split in 1,1,1 7,2,1; do
	"$BENCH_DIR/bin/clusterflow" -ports "$dataA,$dataB,$dataC" -path /limited -split "$split" -t 100 -d 10s
done

echo "== join ($JOIN entries in etcd)"
"$BENCH_DIR/bin/loadlists" -url "http://127.0.0.1:$mgmtA" -n "$JOIN"
start=$(date +%s.%N)
read -r _ mgmtD < <(node d)
ready=$(date +%s.%N)
grep "in step with etcd" "$work/d.log" || true
count=$(curl -s -H 'x-ase-access-key: admin' -H 'x-ase-secret-key: admin' "http://127.0.0.1:$mgmtD/v5/ase/metrics" | awk '/^ase_list_entries\{/ && /list="blacklist"/ {s+=$2} END {print s}')
echo "a new node served $count deny entries $(awk -v a="$start" -v b="$ready" 'BEGIN {printf "%.2f", b-a}') s after its start"
