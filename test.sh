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
echo "== staticcheck"
# Pinned; built from the module proxy into Go's caches on first use.
go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
echo "== builds for macOS and FreeBSD (the portable data path; README, \"Platforms\")"
GOOS=darwin GOARCH=arm64 go build ./...
GOOS=freebsd GOARCH=amd64 go build ./...
GOOS=darwin GOARCH=arm64 go vet ./internal/... ./cmd/...
GOOS=freebsd GOARCH=amd64 go vet ./internal/... ./cmd/...
echo "== go test -race"
go test -race -count=1 -timeout 30m ./... "$@"
