#!/usr/bin/env bash
# Runs the whole ASE test suite: formatting, vet, and every test with the
# race detector. Installs what the tests need first (see scripts/deps.sh).
set -euo pipefail
cd "$(dirname "$0")"

scripts/deps.sh

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt would change:"; echo "$unformatted"; exit 1
fi
echo "== go vet"
go vet ./...
echo "== go test -race"
go test -race -count=1 -timeout 30m ./... "$@"
