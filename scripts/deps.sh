#!/usr/bin/env bash
# Installs what the test suite needs and the machine may lack. Go modules
# come through the module proxy; system packages through apt-get.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== dependencies"
go mod download

need=()
# nginx: the real gateway of the forward-auth (auth_request) tests and the
# baseline of the inline benchmarks.
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
if [ ${#need[@]} -gt 0 ]; then
	sudo=""
	[ "$(id -u)" = 0 ] || sudo="sudo"
	export DEBIAN_FRONTEND=noninteractive
	$sudo apt-get update -qq </dev/null
	$sudo apt-get install -y -qq "${need[@]}" </dev/null
fi
