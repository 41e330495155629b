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
# caddy: the real gateway of the Caddy forward_auth guide's test
# (e2e/caddy_test.go runs docs/sideband-caddy.md against it). Where systemd
# runs, the package also starts a system Caddy on port 80; the test never
# uses it (its own listens on a free loopback port).
command -v caddy >/dev/null 2>&1 || [ -x /usr/bin/caddy ] || need+=(caddy)
# etcd: the real etcd of the cluster-mode tests, run by them as a process of
# its own (e2e/etcd_test.go); etcdctl (etcd-client) for docs/cluster.md and
# for looking into a test's etcd by hand. Debian bookworm ships 3.4.23. Where
# systemd runs, the package also starts a system etcd on 127.0.0.1:2379; the
# tests never use it (theirs listen on free ports, data in temp dirs).
command -v etcd >/dev/null 2>&1 || [ -x /usr/bin/etcd ] || need+=(etcd-server)
command -v etcdctl >/dev/null 2>&1 || [ -x /usr/bin/etcdctl ] || need+=(etcd-client)
# strace: the power-cut tests (internal/powercut, internal/store,
# e2e/crash_test.go) run the store under it to log every write and sync of
# its file, then replay what a power cut at each acknowledgement leaves.
command -v strace >/dev/null 2>&1 || [ -x /usr/bin/strace ] || need+=(strace)
# chromium: the headless browser the console's tests drive (e2e
# console_test.go, through chromedp), as an operator's browser would.
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || need+=(chromium)
# certutil and pk12util (NSS tools) and openssl: the certificate sign-in
# test puts a client certificate into the browser's NSS database.
command -v pk12util >/dev/null 2>&1 || need+=(libnss3-tools)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
if [ ${#need[@]} -gt 0 ]; then
	sudo=""
	[ "$(id -u)" = 0 ] || sudo="sudo"
	# env: sudo would drop an exported DEBIAN_FRONTEND.
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq </dev/null
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" </dev/null
fi

# A Chromium policy for the console's certificate sign-in test (e2e
# TestConsoleX509): Chromium picks the client certificate it holds for
# https://127.0.0.1 on any port by itself (a person would pick it in a
# dialog, which a headless browser cannot show). Loopback only.
policy=/etc/chromium/policies/managed/ase-e2e-client-cert.json
if [ ! -f "$policy" ]; then
	sudo=""
	[ "$(id -u)" = 0 ] || sudo="sudo"
	$sudo mkdir -p "$(dirname "$policy")"
	echo '{"AutoSelectCertificateForUrls": ["{\"pattern\":\"https://127.0.0.1:*\",\"filter\":{}}"]}' | $sudo tee "$policy" >/dev/null
fi

# Redocly CLI: the strict OpenAPI linter the suite runs on the management
# API's description (e2e TestOpenAPIPassesStrictLint). From the npm
# registry, pinned, into the user's cache (outside the repository), once.
redocly_version=2.77.0
redocly_dir="${XDG_CACHE_HOME:-$HOME/.cache}/ase-test-tools/redocly"
if ! grep -qs "\"version\": \"$redocly_version\"" "$redocly_dir/node_modules/@redocly/cli/package.json"; then
	command -v npm >/dev/null 2>&1 || { echo "npm is needed to install the Redocly CLI (Node.js >= 20.19)" >&2; exit 1; }
	mkdir -p "$redocly_dir"
	npm install --prefix "$redocly_dir" --no-audit --no-fund --no-save --loglevel=error "@redocly/cli@$redocly_version" </dev/null
fi
