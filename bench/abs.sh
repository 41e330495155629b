#!/usr/bin/env bash
# Behavioural detection (issue 20): detection delay and false positives of
# the six detectors on a replayed normal mix, in virtual time
# (bench/absreplay): 2,000 clients (NATs, roaming, heavy integrations,
# Zipf browsing, 404s, logins with 5% mistyped passwords) train the engine
# for 1 h, then the same mix runs 30 min with one attacker per detector
# started at known times. Per attacker: found or not, the delay in seconds
# and in its own requests; the normal identities reported (any detector).
# No server is started and nothing is sent: addresses are loopback values.
# Writes bench/results/abs-replay.md (and .json).
# Usage: bench/abs.sh [absreplay flags, e.g. -clients 5000 -seed 2 -bignat 100]
source "$(dirname "$0")/lib.sh"
mkdir -p "$BENCH_DIR/bin"
(cd "$ROOT" && go build -o "$BENCH_DIR/bin/absreplay" ./bench/absreplay)
"$BENCH_DIR/bin/absreplay" "$@" -json >"$RESULTS/abs-replay.json"
"$BENCH_DIR/bin/absreplay" "$@" | tee "$RESULTS/abs-replay.md"
