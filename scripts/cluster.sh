#!/usr/bin/env bash
# Starts (or stops) a three-node ASE cluster on this machine, on loopback:
# one etcd and three `ase serve` nodes sharing its state. See
# docs/cluster.md.
#
#   scripts/cluster.sh start [DIR]   build ase, start etcd and the nodes
#   scripts/cluster.sh status [DIR]  GET /cluster from the first node
#   scripts/cluster.sh stop [DIR]    stop the nodes, then etcd
#   scripts/cluster.sh etcd-stop|etcd-start [DIR]   an etcd outage, and its end
#
# DIR (default ./cluster-demo) holds the configurations, data and logs.
# Ports: ETCD_PORT (2379), and for node n (1..3) data port DATA_BASE+n
# (8000+n) and management port MGMT_BASE+n (8010+n).
set -euo pipefail
cd "$(dirname "$0")/.."
cmd=${1:-start}
dir=$(mkdir -p "${2:-cluster-demo}" && cd "${2:-cluster-demo}" && pwd)
etcd_port=${ETCD_PORT:-2379}
data_base=${DATA_BASE:-8000}
mgmt_base=${MGMT_BASE:-8010}
cluster_id=${CLUSTER_ID:-demo}

wait_for() { # URL: until it answers at all
	for _ in $(seq 1 300); do
		[ "$(curl -s -o /dev/null -w '%{http_code}' "$1")" != 000 ] && return 0
		sleep 0.1
	done
	echo "timed out waiting for $1" >&2
	return 1
}

start_etcd() {
	mkdir -p "$dir/etcd"
	setsid etcd --name ase-demo --data-dir "$dir/etcd" \
		--listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
		--listen-peer-urls "http://127.0.0.1:$((etcd_port + 1))" --initial-advertise-peer-urls "http://127.0.0.1:$((etcd_port + 1))" \
		--initial-cluster "ase-demo=http://127.0.0.1:$((etcd_port + 1))" \
		>"$dir/etcd.log" 2>&1 </dev/null &
	echo $! >"$dir/etcd.pid"
	wait_for "http://127.0.0.1:$etcd_port/health"
}

stop_pid() { # FILE
	[ -f "$1" ] || return 0
	local pid
	pid=$(cat "$1")
	kill "$pid" 2>/dev/null || true
	for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	rm -f "$1"
}

case "$cmd" in
start)
	command -v etcd >/dev/null || scripts/deps.sh
	go build -o "$dir/ase" ./cmd/ase
	start_etcd
	for n in 1 2 3; do
		cat >"$dir/node$n.conf" <<CONF
; node $n of the demo cluster (scripts/cluster.sh)
mode=inline
http_ws_port=$((data_base + n))
https_wss_port=0
management_port=$((mgmt_base + n))
listen_address=127.0.0.1
data_dir=$dir/node$n
enable_cluster=true
cluster_id=$cluster_id
etcd_endpoints=http://127.0.0.1:$etcd_port
CONF
		setsid "$dir/ase" serve --config "$dir/node$n.conf" >"$dir/node$n.log" 2>&1 </dev/null &
		echo $! >"$dir/node$n.pid"
	done
	for n in 1 2 3; do
		wait_for "http://127.0.0.1:$((mgmt_base + n))/v5/ase/status"
	done
	echo "etcd on 127.0.0.1:$etcd_port; nodes' data ports $((data_base + 1))-$((data_base + 3)), management ports $((mgmt_base + 1))-$((mgmt_base + 3)); logs in $dir"
	;;
status)
	curl -fs -H 'x-ase-access-key: admin' -H "x-ase-secret-key: ${ASE_PASSWORD:-admin}" "http://127.0.0.1:$((mgmt_base + 1))/v5/ase/cluster"
	;;
stop)
	for f in "$dir"/node*.pid "$dir"/etcd.pid; do
		stop_pid "$f"
	done
	;;
etcd-stop)
	stop_pid "$dir/etcd.pid"
	;;
etcd-start)
	start_etcd
	;;
*)
	echo "usage: scripts/cluster.sh start|status|stop|etcd-stop|etcd-start [DIR]" >&2
	exit 2
	;;
esac
